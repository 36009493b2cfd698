//! Comparing a presented shared secret (the operators' admin token) with the configured one.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `presented` equals `expected`, in time independent of where they differ and of
/// their lengths: both are hashed first, then the digests compared in constant time.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(presented), Sha256::digest(expected));
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::tokens_match;

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
