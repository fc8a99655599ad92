//! The text of a config file: `config::parse` (TOML, then validation).
//! The properties checked are in `fuzz/checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::config_bytes(data));
