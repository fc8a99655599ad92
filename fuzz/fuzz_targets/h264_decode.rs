//! Access units through openh264's decoder (`codec::H264Decoder`), as the snapshot and JPEG
//! paths decode camera H.264.
//! The properties checked are in `fuzz/checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decode_bytes(data));
