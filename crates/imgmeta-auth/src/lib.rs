//! API keys: what a key looks like, how it is checked before any database lookup, and how it
//! is stored (only its SHA-256), plus the scrubbing of user-supplied text for security logs,
//! and webhook secrets with their Standard Webhooks signatures.
//!
//! Pure logic, no I/O: the store keeps hashes, the API authenticates requests with them.

mod key;
mod scrub;
mod token;
mod webhook;

pub use key::{ApiKey, InvalidKey, KeyHash, KeyPrefix};
pub use scrub::clean;
pub use token::{generate_admin_token, tokens_match};
pub use webhook::{
    SECRET_BYTES, SECRET_PREFIX, format_webhook_secret, generate_webhook_secret,
    parse_webhook_secret, sign_webhook, verify_webhook, webhook_signature_header,
};
