//! V4L2 buffer conversion, YUYV and NV12 to I420, with any size, stride and `bytesused`.
//! The properties checked are in `fuzz/checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::yuv_bytes(data));
