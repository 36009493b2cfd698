//! API keys: what a key looks like, how it is checked before any database lookup, and how it
//! is stored (only its SHA-256), plus the scrubbing of user-supplied text for security logs,
//! webhook secrets with their Standard Webhooks signatures, users' passwords (argon2id) and
//! session tokens with their CSRF tokens.
//!
//! Pure logic, no I/O: the store keeps hashes, the API authenticates requests with them.

mod key;
mod password;
mod scrub;
mod session;
mod token;
mod webhook;

pub use key::{ApiKey, InvalidKey, KeyHash, KeyPrefix};
pub use password::{
    ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB, PasswordHashError, hash_password,
    verify_against_dummy, verify_password,
};
pub use scrub::clean;
pub use session::{SESSION_TOKEN_BYTES, SessionToken};
pub use token::{generate_admin_token, tokens_match};
pub use webhook::{
    SECRET_BYTES, SECRET_PREFIX, format_webhook_secret, generate_webhook_secret,
    parse_webhook_secret, sign_webhook, verify_webhook, webhook_signature_header,
};
