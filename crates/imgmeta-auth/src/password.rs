//! Passwords: hashed with argon2id at OWASP's recommended cost (19 MiB, two passes, one lane)
//! into PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), the only form stored.
//!
//! Both hashing and verifying take tens of milliseconds of CPU and 19 MiB on purpose: callers
//! on an async runtime run them on a blocking thread.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use std::sync::OnceLock;

/// Memory per hash, in KiB (OWASP Password Storage Cheat Sheet: m=19456, t=2, p=1).
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// Passes over that memory.
pub const ARGON2_ITERATIONS: u32 = 2;
/// Lanes (degree of parallelism).
pub const ARGON2_LANES: u32 = 1;

/// Bytes of random salt per hash (the PHC format's recommended 16).
const SALT_BYTES: usize = 16;

/// Hashing failed: only a broken parameter set or an allocation failure gets here.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordHashError(String);

fn hasher() -> Result<Argon2<'static>, PasswordHashError> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        .map_err(|e| PasswordHashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, PasswordHashError> {
    let mut salt = [0u8; SALT_BYTES];
    rand::rng().fill_bytes(&mut salt);
    let hash = hasher()?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| PasswordHashError(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` is the one `phc` was made from (the comparison inside is constant-time).
/// A string that is not an argon2 PHC string matches nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    // The cost comes from the PHC string, so hashes made with older parameters still verify.
    hasher().is_ok_and(|h| h.verify_password(password.as_bytes(), phc).is_ok())
}

/// Spends exactly what verifying a real user's password costs, for a login naming no user, so
/// that the answer's timing does not tell which e-mail addresses have an account. Always false.
pub fn verify_against_dummy(password: &str) -> bool {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        hash_password(&hex::encode(secret)).ok()
    });
    if let Some(dummy) = dummy {
        let _ = verify_password(password, dummy);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_an_argon2id_phc_string_with_owasp_parameters() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(
            phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "unexpected PHC string {phc}"
        );
        assert!(!phc.contains("correct horse"));
    }

    #[test]
    fn only_the_right_password_verifies() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapler", &phc));
        assert!(!verify_password("", &phc));
        assert!(!verify_password(
            "correct horse battery staple",
            "not a phc string"
        ));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        let (a, b) = (
            hash_password("same password").unwrap(),
            hash_password("same password").unwrap(),
        );
        assert_ne!(a, b, "salts must differ");
        assert!(verify_password("same password", &a) && verify_password("same password", &b));
    }

    #[test]
    fn the_dummy_never_matches() {
        assert!(!verify_against_dummy("anything at all"));
        assert!(!verify_against_dummy(""));
    }
}
