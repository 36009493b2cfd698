//! API keys: issuing one (shared by `imgmeta keys create`, `imgmeta up` and the operators'
//! `POST /v1/keys`), and that route, guarded by the admin token.

use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use imgmeta_auth::ApiKey;
use imgmeta_domain::ErrorCode;
use imgmeta_store::{ApiKeyRecord, NewApiKey, Store, StoreError};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

/// Longest key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 100;

/// What to issue a key for.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub name: String,
    pub rate_per_minute: u32,
    pub daily_quota: u32,
}

/// A freshly issued key: the secret, shown once, and its stored record.
#[derive(Debug, Serialize)]
pub struct IssuedKey {
    /// The whole key; it is not stored and cannot be shown again.
    pub key: String,
    pub prefix: String,
    pub name: String,
    pub rate_per_minute: u32,
    pub daily_quota: u32,
    pub created_at: DateTime<Utc>,
}

/// Checks a key name: 1 to 100 characters, no control characters.
pub fn validate_key_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_KEY_NAME_CHARS {
        return Err(format!("name must be 1 to {MAX_KEY_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".to_owned());
    }
    Ok(name.to_owned())
}

/// Generates a key and stores its hash; `via` says who asked, for the security log.
pub async fn issue_key(
    store: &Store,
    request: &KeyRequest,
    via: &'static str,
) -> Result<IssuedKey, StoreError> {
    loop {
        let key = ApiKey::generate();
        let new = NewApiKey {
            prefix: key.prefix().to_string(),
            hash: *key.hash().as_bytes(),
            name: request.name.clone(),
            rate_per_minute: request.rate_per_minute,
            daily_quota: request.daily_quota,
        };
        // A prefix collision (one in 62^8) just means drawing another key.
        if let Some(record) = store.create_api_key(&new).await? {
            log_key_event("key_created", &record, via);
            return Ok(IssuedKey {
                key: key.expose().to_owned(),
                prefix: record.prefix,
                name: record.name,
                rate_per_minute: record.rate_per_minute,
                daily_quota: record.daily_quota,
                created_at: record.created_at,
            });
        }
    }
}

/// The security event for a key created or revoked (its prefix, never the key).
pub fn log_key_event(event: &'static str, record: &ApiKeyRecord, via: &'static str) {
    tracing::info!(
        kind = "security",
        event,
        key.prefix = %record.prefix,
        key.name = %imgmeta_auth::clean(&record.name),
        via,
        "api key {}",
        if event == "key_revoked" { "revoked" } else { "created" }
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKeyBody {
    name: String,
    rate_per_minute: Option<u32>,
    daily_quota: Option<u32>,
}

/// `POST /v1/keys` with `Authorization: Bearer <IMGMETA_ADMIN_TOKEN>`: `201` and the new key.
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let Some(admin_token) = &state.security.admin_token else {
        tracing::warn!(
            kind = "security",
            event = "auth_failed",
            reason = "admin_disabled",
            "key sign-up refused: no admin token configured"
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "key sign-up over HTTP is disabled; set IMGMETA_ADMIN_TOKEN to enable it",
        ));
    };
    let presented = crate::auth::bearer(&headers).unwrap_or_default();
    if !imgmeta_auth::tokens_match(presented, admin_token.expose_secret()) {
        tracing::warn!(
            kind = "security",
            event = "auth_failed",
            reason = "bad_admin_token",
            "key sign-up refused"
        );
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "the admin token is required: send Authorization: Bearer <admin token>",
        ));
    }
    let invalid = |message: String| {
        tracing::info!(
            kind = "security",
            event = "validation_failed",
            code = "invalid_json",
            "key request rejected"
        );
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, message)
    };
    let body: CreateKeyBody =
        serde_json::from_slice(&body).map_err(|e| invalid(format!("invalid JSON body: {e}")))?;
    let positive = |field: &str, value: Option<u32>, default: u32| match value {
        Some(0) => Err(invalid(format!("{field} must be at least 1"))),
        Some(n) => Ok(n.min(i32::MAX as u32)),
        None => Ok(default),
    };
    let request = KeyRequest {
        name: validate_key_name(&body.name).map_err(invalid)?,
        rate_per_minute: positive(
            "rate_per_minute",
            body.rate_per_minute,
            state.security.default_rate_per_minute,
        )?,
        daily_quota: positive(
            "daily_quota",
            body.daily_quota,
            state.security.default_daily_quota,
        )?,
    };
    let issued = issue_key(&state.store, &request, "api").await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[cfg(test)]
mod tests {
    use super::validate_key_name;

    #[test]
    fn key_names_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(validate_key_name("  ci  ").unwrap(), "ci");
        assert!(validate_key_name("").is_err());
        assert!(validate_key_name(&"n".repeat(101)).is_err());
        assert!(validate_key_name("evil\nname").is_err());
    }
}
