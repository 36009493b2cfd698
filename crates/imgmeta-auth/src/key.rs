//! The API key format: `imk_` (the type prefix), 32 random base62 characters, and a 6-character
//! base62 CRC-32 checksum, e.g. `imk_3fZq…Xb0Aa1`.
//!
//! The checksum lets a mistyped or truncated key be refused without touching the database, and
//! lets secret scanners recognise leaked keys. The first 8 random characters, with the type
//! prefix, form the key's public [`KeyPrefix`], which is how operators and logs name a key.
//! Only the SHA-256 of the whole key is stored.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Marks the string as an imgmeta API key.
const TYPE_PREFIX: &str = "imk_";
const BODY_CHARS: usize = 32;
const CHECKSUM_CHARS: usize = 6;
/// Random characters that, after the type prefix, identify a key publicly.
const PREFIX_BODY_CHARS: usize = 8;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A whole API key: a secret. It is printed once when created and never logged; `Debug` shows
/// only its prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// Why a string is not an API key. Callers answer every variant with the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    #[error("not an imgmeta API key")]
    Format,
    #[error("the API key's checksum does not match (mistyped or truncated?)")]
    Checksum,
}

/// The public part of a key (`imk_` and 8 characters): safe to show, store and log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix(String);

/// The SHA-256 of a whole key, which is all the database keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl ApiKey {
    /// A new key from the thread-local CSPRNG (ChaCha, seeded by the OS): 32 base62 characters
    /// are about 190 bits of randomness.
    pub fn generate() -> Self {
        let body: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(BODY_CHARS)
            .map(char::from)
            .collect();
        let checksum = checksum(&body);
        Self(format!("{TYPE_PREFIX}{body}{checksum}"))
    }

    /// Checks the shape and checksum of a presented key.
    pub fn parse(raw: &str) -> Result<Self, InvalidKey> {
        let rest = raw.strip_prefix(TYPE_PREFIX).ok_or(InvalidKey::Format)?;
        if rest.len() != BODY_CHARS + CHECKSUM_CHARS
            || !rest.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(InvalidKey::Format);
        }
        let (body, sum) = rest.split_at(BODY_CHARS);
        if checksum(body).as_bytes().ct_eq(sum.as_bytes()).into() {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidKey::Checksum)
        }
    }

    /// The secret itself, for showing once to whoever created the key.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn prefix(&self) -> KeyPrefix {
        KeyPrefix(self.0[..TYPE_PREFIX.len() + PREFIX_BODY_CHARS].to_owned())
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.prefix().as_str())
    }
}

impl KeyPrefix {
    /// Accepts what an operator types to name a key (`imgmeta keys revoke imk_AbCd1234`).
    pub fn parse(raw: &str) -> Result<Self, InvalidKey> {
        let body = raw.strip_prefix(TYPE_PREFIX).ok_or(InvalidKey::Format)?;
        if body.len() == PREFIX_BODY_CHARS && body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidKey::Format)
        }
    }

    /// The prefix of whatever a client presented, for logging a failed attempt: the first
    /// characters only, and only if they look like a prefix, so a pasted secret of another
    /// kind is never echoed.
    pub fn of_presented(raw: &str) -> Option<Self> {
        raw.get(..TYPE_PREFIX.len() + PREFIX_BODY_CHARS)
            .and_then(|p| Self::parse(p).ok())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl KeyHash {
    /// A stored hash; `None` unless it is exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time, so response timing says nothing about how much of a guess
    /// matched.
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", hex::encode(self.0))
    }
}

/// CRC-32 of the body as 6 base62 digits (62^6 > 2^32), most significant first.
fn checksum(body: &str) -> String {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_CHARS];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(digits.to_vec()).expect("base62 digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_and_keeps_its_prefix_and_hash() {
        let key = ApiKey::generate();
        let parsed = ApiKey::parse(key.expose()).unwrap();
        assert_eq!(parsed, key);
        assert_eq!(key.expose().len(), 4 + 32 + 6);
        assert!(key.expose().starts_with("imk_"));
        assert_eq!(key.prefix().as_str(), &key.expose()[..12]);
        assert!(parsed.hash().matches(&key.hash()));
    }

    #[test]
    fn two_generated_keys_differ() {
        let (a, b) = (ApiKey::generate(), ApiKey::generate());
        assert_ne!(a.expose(), b.expose());
        assert!(!a.hash().matches(&b.hash()));
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let key = ApiKey::generate();
        let mut chars: Vec<char> = key.expose().chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(ApiKey::parse(&typo), Err(InvalidKey::Checksum));
    }

    #[test]
    fn strings_of_the_wrong_shape_are_not_keys() {
        let key = ApiKey::generate();
        for bad in [
            "",
            "imk_",
            &key.expose()[..41],
            &format!("{}0", key.expose()),
            &key.expose().replace("imk_", "imx_"),
            &format!("imk_{}", "é".repeat(19)),
        ] {
            assert_eq!(ApiKey::parse(bad), Err(InvalidKey::Format), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = ApiKey::generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose()[12..]));
        assert!(shown.contains(key.prefix().as_str()));
    }

    #[test]
    fn prefixes_parse_only_in_their_exact_shape() {
        let key = ApiKey::generate();
        assert_eq!(KeyPrefix::parse(key.prefix().as_str()), Ok(key.prefix()));
        assert!(KeyPrefix::parse("imk_short").is_err());
        assert!(KeyPrefix::parse(key.expose()).is_err());
        assert_eq!(KeyPrefix::of_presented(key.expose()), Some(key.prefix()));
        assert_eq!(KeyPrefix::of_presented("Basic dXNlcjpwYXNz"), None);
    }

    #[test]
    fn stored_hashes_must_be_32_bytes() {
        let hash = ApiKey::generate().hash();
        assert_eq!(KeyHash::from_bytes(hash.as_bytes()), Some(hash));
        assert_eq!(KeyHash::from_bytes(&[0; 31]), None);
    }
}
