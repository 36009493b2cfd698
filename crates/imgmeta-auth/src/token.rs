//! Comparing a presented shared secret (the operators' admin token) with the configured one.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new admin token: 43 base62 characters from the thread-local CSPRNG (about 256 bits).
pub fn generate_admin_token() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(43)
        .map(char::from)
        .collect()
}

/// Whether `presented` equals `expected`, in time independent of where they differ and of
/// their lengths: both are hashed first, then the digests compared in constant time.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(presented), Sha256::digest(expected));
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::{generate_admin_token, tokens_match};

    #[test]
    fn generated_admin_tokens_are_long_and_distinct() {
        let (a, b) = (generate_admin_token(), generate_admin_token());
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn only_the_exact_token_matches() {
        assert!(tokens_match(
            "correct-horse-battery",
            "correct-horse-battery"
        ));
        assert!(!tokens_match(
            "correct-horse-batterY",
            "correct-horse-battery"
        ));
        assert!(!tokens_match("correct-horse", "correct-horse-battery"));
        assert!(!tokens_match("", "correct-horse-battery"));
    }
}
