//! The live WebSocket client's `hello` text message: `output::live::parse_hello`.
//! The properties checked are in `fuzz/checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::hello_bytes(data));
