//! Secrets the daemon and the web server both make or check: the admin password's Argon2 hash
//! and random tokens (session ids, the one-time demo password).
//!
//! Sessions, cookies, roles and the login rate limit stay with the web server
//! ([`crate::web::auth`]); this module only knows bytes and hashes, so the daemon can make the
//! one-time password without knowing anything about the web.

use std::io::Read;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest admin password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Why a password could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short.
    #[error("the password must have at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    /// Hashing failed (the OS random source, most likely).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Memory of one Argon2id run, KiB. OWASP's equal-strength set (m = 7 MiB, t = 5, p = 1)
/// rather than the crate's default 19 MiB: a login storm on a small box then stays within
/// the web server's few concurrent hashes × 7 MiB. A hash made with other parameters (an
/// older config) still verifies: the parameters are part of the hash.
pub const ARGON2_MEMORY_KIB: u32 = 7 * 1024;
/// Argon2id passes over that memory.
pub const ARGON2_PASSES: u32 = 5;

/// Hashes a password with Argon2id, [`ARGON2_MEMORY_KIB`] and [`ARGON2_PASSES`] (blocking:
/// ~0.1-1 s).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// True when `password` matches the PHC `hash` (blocking).
pub fn verify_password(password: &str, hash: &str) -> bool {
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// 32 random bytes from the OS, hex-encoded: session ids and generated passwords.
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort)
        ));
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
