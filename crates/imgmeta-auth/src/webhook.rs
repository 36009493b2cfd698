//! Webhook secrets and signatures, per the Standard Webhooks specification: a secret is
//! `whsec_` and the base64 of its random bytes; a message is signed as
//! `base64(HMAC-SHA256(secret, "{webhook-id}.{webhook-timestamp}.{body}"))` and sent as
//! `webhook-signature: v1,<signature>`, several space-separated while more than one secret is
//! valid (a rotation's overlap).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// What marks a string as a webhook signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the specification asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// A new random secret's bytes.
pub fn generate_webhook_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// The secret as its owner sees it once: `whsec_<base64>`.
pub fn format_webhook_secret(bytes: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The bytes of a `whsec_…` secret (or of its bare base64); `None` if it is neither.
pub fn parse_webhook_secret(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD.decode(b64).ok().filter(|b| !b.is_empty())
}

/// One `v1,<base64>` signature of a message.
pub fn sign_webhook(secret: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn webhook_signature_header(
    secrets: &[&[u8]],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| sign_webhook(s, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any `v1` signature in `header` is `secret`'s for this message (compared in constant
/// time). The receiving side, for tests and the CLI's documentation; a receiver also checks
/// that the timestamp is recent.
pub fn verify_webhook(
    secret: &[u8],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    use subtle::ConstantTimeEq;
    let expected = sign_webhook(secret, msg_id, timestamp, body);
    header
        .split(' ')
        .filter(|s| s.starts_with("v1,"))
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_published_test_vector() {
        let secret = parse_webhook_secret(VECTOR_SECRET).unwrap();
        assert_eq!(
            sign_webhook(&secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
        assert!(verify_webhook(
            &secret,
            VECTOR_ID,
            VECTOR_TS,
            VECTOR_BODY,
            VECTOR_SIGNATURE
        ));
    }

    #[test]
    fn a_changed_id_timestamp_body_or_secret_does_not_verify() {
        let secret = parse_webhook_secret(VECTOR_SECRET).unwrap();
        let sig = VECTOR_SIGNATURE;
        assert!(!verify_webhook(
            &secret,
            "msg_other",
            VECTOR_TS,
            VECTOR_BODY,
            sig
        ));
        assert!(!verify_webhook(
            &secret,
            VECTOR_ID,
            VECTOR_TS + 1,
            VECTOR_BODY,
            sig
        ));
        assert!(!verify_webhook(&secret, VECTOR_ID, VECTOR_TS, b"{}", sig));
        assert!(!verify_webhook(
            &generate_webhook_secret(),
            VECTOR_ID,
            VECTOR_TS,
            VECTOR_BODY,
            sig
        ));
        assert!(!verify_webhook(
            &secret,
            VECTOR_ID,
            VECTOR_TS,
            VECTOR_BODY,
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
    }

    #[test]
    fn during_a_rotation_both_secrets_sign_and_either_verifies() {
        let old = generate_webhook_secret();
        let new = generate_webhook_secret();
        let header = webhook_signature_header(&[&new, &old], "msg_1", 1_700_000_000, b"body");
        assert_eq!(header.split(' ').count(), 2, "{header}");
        assert!(verify_webhook(
            &new,
            "msg_1",
            1_700_000_000,
            b"body",
            &header
        ));
        assert!(verify_webhook(
            &old,
            "msg_1",
            1_700_000_000,
            b"body",
            &header
        ));
        assert!(!verify_webhook(
            &generate_webhook_secret(),
            "msg_1",
            1_700_000_000,
            b"body",
            &header
        ));
    }

    #[test]
    fn secrets_are_32_random_bytes_shown_as_whsec_base64() {
        let a = generate_webhook_secret();
        let b = generate_webhook_secret();
        assert_eq!(a.len(), SECRET_BYTES);
        assert_ne!(a, b);
        let shown = format_webhook_secret(&a);
        assert!(shown.starts_with("whsec_"), "{shown}");
        assert_eq!(parse_webhook_secret(&shown), Some(a));
        assert_eq!(parse_webhook_secret("whsec_!!!"), None);
    }
}
