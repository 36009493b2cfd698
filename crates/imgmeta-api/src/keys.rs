//! API keys: issuing one (shared by `imgmeta keys create`, `imgmeta up`, the operators'
//! `POST /v1/keys` and the accounts' own `POST /v1/account/keys`), the operators' route,
//! guarded by the admin token, and the public view of a key.

use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use imgmeta_auth::ApiKey;
use imgmeta_domain::{AccountId, ErrorCode, Name, ScopeSet};
use imgmeta_store::{
    AccountLookup, ApiKeyRecord, KeyAccount, NewAccount, NewApiKey, Store, StoreError,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

/// What to issue a key for.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub name: Name,
    pub rate_per_minute: u32,
    pub daily_quota: u32,
    pub scopes: ScopeSet,
    /// The account it joins, or a new one (named after the key) that it creates.
    pub account: KeyAccount,
}

impl KeyRequest {
    /// A key with the default scopes in a new account of its own, named after it, whose
    /// daily quota is the key's (so a lone key behaves exactly as keys did before accounts).
    pub fn in_new_account(
        name: Name,
        rate_per_minute: u32,
        daily_quota: u32,
        retention_days: u32,
    ) -> Self {
        Self {
            account: KeyAccount::New(NewAccount {
                name: name.clone(),
                daily_quota,
                retention_days,
                redact_gps: false,
            }),
            name,
            rate_per_minute,
            daily_quota,
            scopes: ScopeSet::default_for_keys(),
        }
    }
}

/// A freshly issued key: the secret, shown once, and its stored record.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    /// The whole key; it is not stored and cannot be shown again.
    pub key: String,
    #[serde(flatten)]
    pub record: KeyView,
}

/// A key as its owners and operators see it: never the secret, never its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Key)]
pub struct KeyView {
    pub prefix: String,
    pub name: String,
    /// The id of the account the key belongs to.
    pub account: AccountId,
    pub scopes: ScopeSet,
    pub rate_per_minute: u32,
    pub daily_quota: u32,
    /// Accepted submissions with this key today (UTC).
    pub used_today: u32,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(record: ApiKeyRecord) -> Self {
        Self {
            prefix: record.prefix,
            name: record.name,
            account: record.account_id,
            scopes: record.scopes,
            rate_per_minute: record.rate_per_minute,
            daily_quota: record.daily_quota,
            used_today: record.used_today,
            created_at: record.created_at,
            revoked_at: record.revoked_at,
        }
    }
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
            name: request.name.as_str().to_owned(),
            rate_per_minute: request.rate_per_minute,
            daily_quota: request.daily_quota,
            scopes: request.scopes.clone(),
            account: request.account.clone(),
        };
        // A prefix collision (one in 62^8) just means drawing another key.
        if let Some(record) = store.create_api_key(&new).await? {
            log_key_event("key_created", &record, via);
            return Ok(IssuedKey {
                key: key.expose().to_owned(),
                record: record.into(),
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
        account.id = %record.account_id,
        scopes = %record.scopes.as_strs().join(" "),
        via,
        "api key {}",
        if event == "key_revoked" { "revoked" } else { "created" }
    );
}

/// The account an operator names by id or name: `404 account_not_found`, or
/// `409 ambiguous_account` when several accounts share the name.
pub async fn resolve_account(store: &Store, id_or_name: &str) -> Result<AccountId, ApiError> {
    match store.find_account(id_or_name).await? {
        AccountLookup::Found(account) => Ok(account.id),
        AccountLookup::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::AccountNotFound,
            "no account with this id or name",
        )),
        AccountLookup::Ambiguous(ids) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::AmbiguousAccount,
            format!(
                "{} accounts carry this name; use an id: {}",
                ids.len(),
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// `400 invalid_json` for a key request that does not parse, with a security event.
pub(crate) fn invalid_key_request(code: ErrorCode, message: String) -> ApiError {
    tracing::info!(
        kind = "security",
        event = "validation_failed",
        code = code.as_str(),
        "key request rejected"
    );
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// A limit a request may set: at least 1; absent means `default`.
pub(crate) fn positive(field: &str, value: Option<u32>, default: u32) -> Result<u32, ApiError> {
    match value {
        Some(0) => Err(invalid_key_request(
            ErrorCode::InvalidJson,
            format!("{field} must be at least 1"),
        )),
        Some(n) => Ok(n.min(i32::MAX as u32)),
        None => Ok(default),
    }
}

/// An operator's new key. Unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateKey)]
struct CreateKeyBody {
    /// 1 to 100 characters.
    name: String,
    rate_per_minute: Option<u32>,
    daily_quota: Option<u32>,
    /// An account id or name; absent: a new account named after the key.
    account: Option<String>,
    /// `jobs:write` and `jobs:read` when absent.
    #[schema(value_type = Option<Vec<imgmeta_domain::Scope>>)]
    scopes: Option<Vec<String>>,
}

/// Guards the operators' routes from the request head, before any body is read: `403` when no
/// admin token is configured, `401` without the right one.
pub(crate) async fn require_admin(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(admin_token) = &state.security.admin_token else {
        tracing::warn!(
            kind = "security",
            event = "auth_failed",
            reason = "admin_disabled",
            "key sign-up refused: no admin token configured"
        );
        return ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "key sign-up over HTTP is disabled; set IMGMETA_ADMIN_TOKEN to enable it",
        )
        .into_response();
    };
    let presented = crate::auth::bearer(request.headers()).unwrap_or_default();
    if !imgmeta_auth::tokens_match(presented, admin_token.expose_secret()) {
        tracing::warn!(
            kind = "security",
            event = "auth_failed",
            reason = "bad_admin_token",
            "key sign-up refused"
        );
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "the admin token is required: send Authorization: Bearer <admin token>",
        )
        .into_response();
    }
    next.run(request).await
}

/// Creates a key, in a new account of its own or an existing one (operators only).
///
/// Needs `Authorization: Bearer <IMGMETA_ADMIN_TOKEN>` (checked from the request head); the
/// whole key is shown this once.
#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "operators",
    operation_id = "create_key_as_operator",
    request_body = CreateKeyBody,
    responses(
        (status = 201, description = "The new key, with its secret `key`.", body = IssuedKey),
        (status = 400, description = "`invalid_json`, `invalid_name`, `invalid_scope`.", body = crate::error::ErrorEnvelope),
        (status = 404, description = "`account_not_found`.", body = crate::error::ErrorEnvelope),
        (status = 409, description = "`ambiguous_account`: several accounts carry this name; use an id.", body = crate::error::ErrorEnvelope),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: CreateKeyBody =
        crate::routes::json_object(&body).map_err(|e| invalid_key_request(e.code, e.message))?;
    let name = Name::parse(&body.name).map_err(|e| invalid_key_request(e.code, e.message))?;
    let rate_per_minute = positive(
        "rate_per_minute",
        body.rate_per_minute,
        state.security.default_rate_per_minute,
    )?;
    let daily_quota = positive(
        "daily_quota",
        body.daily_quota,
        state.security.default_daily_quota,
    )?;
    let mut request = KeyRequest::in_new_account(
        name,
        rate_per_minute,
        daily_quota,
        state.security.default_retention_days,
    );
    if let Some(scopes) = &body.scopes {
        request.scopes =
            ScopeSet::parse(scopes).map_err(|e| invalid_key_request(e.code, e.message))?;
    }
    if let Some(account) = &body.account {
        request.account = KeyAccount::Existing(resolve_account(&state.store, account).await?);
    }
    let issued = issue_key(&state.store, &request, "api").await?;
    Ok((StatusCode::CREATED, Json(issued)))
}
