//! The caller's own account: `GET /v1/account` (limits and today's usage) and its keys,
//! `GET/POST /v1/account/keys` and `DELETE /v1/account/keys/{prefix}` (scope `keys:manage`).

use crate::auth::Caller;
use crate::keys::{KeyRequest, KeyView, invalid_key_request, issue_key, log_key_event, positive};
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDate, Utc};
use imgmeta_auth::KeyPrefix;
use imgmeta_domain::{AccountId, ErrorCode, Name, Scope, ScopeSet};
use imgmeta_store::{KeyAccount, Revoked};
use serde::{Deserialize, Serialize};

/// The caller's account: its limits, today's usage and the key of this request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Account)]
pub(super) struct AccountView {
    id: AccountId,
    name: String,
    created_at: DateTime<Utc>,
    limits: Limits,
    usage: Usage,
    /// The key this request was made with (absent when authentication is disabled, and for a
    /// request made with a session).
    key: Option<KeyView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AccountLimits)]
struct Limits {
    /// Accepted submissions per UTC day, all the account's keys together.
    daily_quota: u32,
    /// Days a finished job's result is kept before it is purged.
    retention_days: u32,
    /// Whether GPS coordinates are left out of every stored result.
    redact_gps: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AccountUsage)]
struct Usage {
    /// The UTC day counted.
    day: NaiveDate,
    submissions: u32,
    remaining: u32,
}

/// The caller's account: limits and today's usage. Any valid key may read its own account.
#[utoipa::path(
    get,
    path = "/v1/account",
    tag = "account",
    operation_id = "get_account",
    responses((status = 200, description = "The account.", body = AccountView))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    session: Option<Extension<crate::sessions::SessionUser>>,
) -> Result<Json<AccountView>, ApiError> {
    let account = state
        .store
        .get_account(caller.account)
        .await?
        .ok_or_else(|| {
            // The key's account row is referenced by a foreign key: this cannot happen
            // unless the database was edited by hand.
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "the key's account is missing",
            )
        })?;
    // A session's hidden key is not shown, as in the key list.
    let key = match &caller.key {
        Some(key) if session.is_none() => state.store.get_api_key(key.id).await?.map(KeyView::from),
        _ => None,
    };
    Ok(Json(AccountView {
        id: account.id,
        name: account.name,
        created_at: account.created_at,
        limits: Limits {
            daily_quota: account.daily_quota,
            retention_days: account.retention_days,
            redact_gps: account.redact_gps,
        },
        usage: Usage {
            day: account.day,
            submissions: account.used_today,
            remaining: account.daily_quota.saturating_sub(account.used_today),
        },
        key,
    }))
}

/// The account's keys, revoked ones included.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct KeyList {
    keys: Vec<KeyView>,
}

/// The account's keys, revoked ones included. Scope `keys:manage`.
#[utoipa::path(
    get,
    path = "/v1/account/keys",
    tag = "account",
    operation_id = "list_keys",
    responses((status = 200, description = "The keys (never their secrets).", body = KeyList))
)]
pub(super) async fn list_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<KeyList>, ApiError> {
    caller.require(Scope::KeysManage)?;
    let keys = state.store.list_account_keys(caller.account).await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// A new key of the caller's account. Unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateAccountKey)]
struct CreateBody {
    /// 1 to 100 characters, for people to tell keys apart.
    name: String,
    /// Among the creating key's own; `jobs:write` and `jobs:read` when absent.
    #[schema(value_type = Option<Vec<imgmeta_domain::Scope>>)]
    scopes: Option<Vec<String>>,
    /// At least 1, at most the creating key's own (its default).
    rate_per_minute: Option<u32>,
    /// At least 1, at most the creating key's own (its default).
    daily_quota: Option<u32>,
}

/// Creates a key in the caller's account; the whole key is shown this once. Scope
/// `keys:manage`.
///
/// Its scopes must be among the creating key's, and its limits default to, and may not exceed,
/// the creating key's own (a key cannot mint a stronger or faster one); with authentication
/// disabled, the operator defaults.
#[utoipa::path(
    post,
    path = "/v1/account/keys",
    tag = "account",
    operation_id = "create_key",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The new key, with its secret `key`.", body = crate::keys::IssuedKey),
        (status = 400, description = "`invalid_json`, `invalid_name`, `invalid_scope`.", body = crate::error::ErrorEnvelope),
        (status = 403, description = "`insufficient_scope` (a scope the creating key lacks) or `limit_too_high`.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Scope::KeysManage)?;
    let body: CreateBody =
        crate::routes::json_object(&body).map_err(|e| invalid_key_request(e.code, e.message))?;
    let name = Name::parse(&body.name).map_err(|e| invalid_key_request(e.code, e.message))?;
    let scopes = match &body.scopes {
        Some(scopes) => {
            ScopeSet::parse(scopes).map_err(|e| invalid_key_request(e.code, e.message))?
        }
        None => ScopeSet::default_for_keys(),
    };
    let creator = match &caller.key {
        Some(key) => Some(
            state
                .store
                .get_api_key(key.id)
                .await?
                .map(KeyView::from)
                .ok_or_else(|| {
                    // The key authenticated this very request: only a hand-edited database gets here.
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        ErrorCode::Internal,
                        "the calling key is missing",
                    )
                })?,
        ),
        None => None,
    };
    // A key grants no more than it holds: without jobs:read it cannot mint a key that reads.
    if !caller.scopes.covers(&scopes) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InsufficientScope,
            format!(
                "a key may grant only scopes it holds ({}); asked for {}",
                caller.scopes.as_strs().join(" "),
                scopes.as_strs().join(" ")
            ),
        ));
    }
    let (max_rate, max_quota) = match &creator {
        Some(key) => (key.rate_per_minute, key.daily_quota),
        None => (
            state.security.default_rate_per_minute,
            state.security.default_daily_quota,
        ),
    };
    let rate_per_minute = positive("rate_per_minute", body.rate_per_minute, max_rate)?;
    let daily_quota = positive("daily_quota", body.daily_quota, max_quota)?;
    for (field, asked, max) in [
        ("rate_per_minute", rate_per_minute, max_rate),
        ("daily_quota", daily_quota, max_quota),
    ] {
        if asked > max {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::LimitTooHigh,
                format!("{field} may not exceed the creating key's own ({max})"),
            ));
        }
    }
    let request = KeyRequest {
        name,
        rate_per_minute,
        daily_quota,
        scopes,
        account: KeyAccount::Existing(caller.account),
    };
    let issued = issue_key(&state.store, &request, "account").await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Revokes one of the account's keys (possibly the one making the request). Scope
/// `keys:manage`.
///
/// Another account's prefix is answered exactly as a missing one.
#[utoipa::path(
    delete,
    path = "/v1/account/keys/{prefix}",
    tag = "account",
    operation_id = "revoke_key",
    params(("prefix" = String, Path, description = "The key's prefix, as key lists show it.")),
    responses(
        (status = 200, description = "The key, revoked.", body = crate::keys::KeyView),
        (status = 404, description = "`key_not_found`: no key with this prefix in the account.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw_prefix): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    caller.require(Scope::KeysManage)?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::KeyNotFound,
            "no key with this prefix in this account",
        )
    };
    let prefix = KeyPrefix::parse(raw_prefix.trim()).map_err(|_| not_found())?;
    match state
        .store
        .revoke_account_key(caller.account, prefix.as_str())
        .await?
    {
        Revoked::Revoked(record) => {
            // Its next request here reads the revocation, not a lease taken before it.
            state.security.token_leases.forget(record.id);
            log_key_event("key_revoked", &record, "account");
            Ok(Json(record.into()))
        }
        Revoked::NotFound { foreign } => {
            if foreign {
                caller.cross_account_miss("key", &prefix);
            }
            Err(not_found())
        }
    }
}
