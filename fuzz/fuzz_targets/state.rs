//! A `state.bin`: `state::decode`, with a correct header and CRC around the payload half the
//! time.
//! The properties checked are in `fuzz/checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::state_bytes(data));
