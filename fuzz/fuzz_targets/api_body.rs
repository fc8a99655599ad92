//! A JSON request body of one of the API routes (the first byte picks it): `web::fuzz`.
//! The properties checked are in `fuzz/checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::api_bytes(data));
