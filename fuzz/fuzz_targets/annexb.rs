//! H.264 Annex B access units: `nal_units`, `avc_codec_string`, `is_keyframe`, the normalizer
//! and the V4L2 H.264 capture path.
//! The properties checked are in `fuzz/checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::annexb_bytes(data));
