//! Session tokens: 256 random bits (base64url, 43 characters) in the session cookie, of which
//! the store keeps only the SHA-256; and the session's CSRF token, derived from the session
//! token with HMAC-SHA256, so it is never stored and cannot be computed without the cookie.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// Random bytes in a session token (256 bits).
pub const SESSION_TOKEN_BYTES: usize = 32;
/// Characters of a session token: 32 bytes in unpadded base64url.
const SESSION_TOKEN_CHARS: usize = 43;

/// What the HMAC of a CSRF token authenticates, so the token serves no other purpose.
const CSRF_CONTEXT: &[u8] = b"imgmeta csrf token v1";

/// A session's secret, as the cookie carries it. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// A new token from the thread-local CSPRNG (ChaCha, seeded and reseeded by the OS).
    pub fn generate() -> Self {
        let mut bytes = [0u8; SESSION_TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A presented token of the right shape (43 base64url characters decoding to 32 bytes);
    /// `None` for anything else, which then names no session.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != SESSION_TOKEN_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        (bytes.len() == SESSION_TOKEN_BYTES).then(|| Self(raw.to_owned()))
    }

    /// The token itself, for the `Set-Cookie` that hands it to its owner, and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps and looks sessions up by: SHA-256 of the token.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The session's CSRF token (43 base64url characters): HMAC-SHA256 keyed by the session
    /// token. A page of this origin reads it from the JSON answers; another origin cannot.
    pub fn csrf_token(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(CSRF_CONTEXT);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `presented` (an `X-CSRF-Token` header) is this session's CSRF token, compared
    /// in constant time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        crate::tokens_match(presented, &self.csrf_token())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_carry_256_bits_and_parse_back() {
        let (a, b) = (SessionToken::generate(), SessionToken::generate());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert_eq!(SessionToken::parse(a.expose()), Some(a));
    }

    #[test]
    fn misshapen_tokens_name_no_session() {
        let good = SessionToken::generate();
        assert!(SessionToken::parse(&good.expose()[1..]).is_none());
        assert!(SessionToken::parse(&format!("{}=", &good.expose()[1..])).is_none());
        assert!(SessionToken::parse(&"!".repeat(43)).is_none());
        assert!(SessionToken::parse("").is_none());
    }

    #[test]
    fn the_stored_hash_is_the_tokens_sha256() {
        let token = SessionToken::generate();
        let expected: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
        assert_eq!(token.hash(), expected);
    }

    #[test]
    fn the_csrf_token_is_the_sessions_own_and_compared_exactly() {
        let (a, b) = (SessionToken::generate(), SessionToken::generate());
        let csrf = a.csrf_token();
        assert_eq!(
            csrf,
            a.csrf_token(),
            "the same session always has the same token"
        );
        assert_ne!(csrf, b.csrf_token());
        assert_ne!(csrf, a.expose());
        assert_ne!(csrf, hex::encode(a.hash()));
        assert!(a.csrf_matches(&csrf));
        assert!(!b.csrf_matches(&csrf));
        assert!(!a.csrf_matches(&csrf[1..]));
        assert!(!a.csrf_matches(""));
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = SessionToken::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
    }
}
