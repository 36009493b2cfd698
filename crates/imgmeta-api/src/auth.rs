//! `Authorization: Bearer <key>` on `/v1/*` and `/img`: the key is checked (shape, checksum,
//! then its stored hash in constant time), then admitted against its rate limit and, for
//! submissions, its daily quotas. A request without the header may present a session cookie
//! instead (`sessions`), which authenticates as its user's hidden session key and is admitted
//! the same way. Unknown, malformed and revoked keys get the same 401. The
//! [`Caller`] it leaves for handlers names the account every object they touch must belong to,
//! and the scopes they check.

use crate::known_keys::KnownKey;
use crate::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use imgmeta_auth::{ApiKey, KeyHash, KeyPrefix};
use imgmeta_domain::{AccountId, ErrorCode, Scope, ScopeSet};
use imgmeta_store::{Admission, AdmissionOutcome, Owner};

/// The key a request was authenticated with, for handlers and logs.
#[derive(Debug, Clone)]
pub struct AuthenticatedKey {
    pub id: i64,
    pub prefix: KeyPrefix,
    pub account: AccountId,
    pub scopes: ScopeSet,
    /// The account's GPS setting, read with the key.
    pub redact_gps: bool,
}

/// Who is asking: the account whose objects the request may see, the key (none when
/// authentication is disabled) and what it may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: AccountId,
    pub key: Option<AuthenticatedKey>,
    pub scopes: ScopeSet,
}

impl Caller {
    /// The caller when authentication is disabled: the built-in account, every scope.
    pub fn built_in() -> Self {
        Self {
            account: AccountId::BUILT_IN,
            key: None,
            scopes: ScopeSet::all(),
        }
    }

    /// The account's GPS setting when it came with the key (not for the built-in caller).
    pub fn redact_gps(&self) -> Option<bool> {
        self.key.as_ref().map(|k| k.redact_gps)
    }

    pub fn owner(&self) -> Owner {
        Owner {
            account: self.account,
            key_id: self.key.as_ref().map(|k| k.id),
        }
    }

    /// The key's public prefix for logs, or `-` without a key.
    pub fn key_prefix(&self) -> String {
        self.key
            .as_ref()
            .map_or_else(|| "-".to_owned(), |k| k.prefix.to_string())
    }

    /// `403 insufficient_scope` naming the missing scope, unless the key has it.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            return Ok(());
        }
        metrics::counter!(imgmeta_telemetry::INSUFFICIENT_SCOPE, "scope" => scope.as_str())
            .increment(1);
        tracing::warn!(
            kind = "security",
            event = "insufficient_scope",
            key.prefix = %self.key_prefix(),
            scope = scope.as_str(),
            "request refused: the key lacks a scope"
        );
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InsufficientScope,
            format!("this API key lacks the scope {scope}"),
        ))
    }

    /// Records a request for an object that exists only in another account (answered exactly
    /// as a missing one), so that probing shows in the security log and the metrics.
    pub fn cross_account_miss(&self, object: &'static str, id: &dyn std::fmt::Display) {
        metrics::counter!(imgmeta_telemetry::CROSS_ACCOUNT_MISSES, "object" => object).increment(1);
        tracing::warn!(
            kind = "security",
            event = "cross_account_miss",
            key.prefix = %self.key_prefix(),
            account.id = %self.account,
            object,
            object.id = %imgmeta_auth::clean(&id.to_string()),
            "request for another account's object answered as not found"
        );
    }
}

/// Why a request was refused authentication; only the security log sees the difference.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Missing,
    Malformed,
    Unknown,
    Revoked,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
        }
    }
}

pub(crate) async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !state.security.auth_enabled {
        request.extensions_mut().insert(Caller::built_in());
        return next.run(request).await;
    }
    let presented = bearer(request.headers()).map(str::to_owned);
    // A session cookie authenticates only a request without an Authorization header: with
    // both, the header decides, exactly as without the cookie.
    let cookie = (!request.headers().contains_key(header::AUTHORIZATION))
        .then(|| crate::sessions::presented_cookie(request.headers()).map(str::to_owned))
        .flatten();
    let authenticated = match cookie {
        Some(cookie) => match crate::sessions::authenticate(&state, &mut request, &cookie).await {
            Ok(key) => Ok(key),
            Err(response) => return response,
        },
        None => authenticate(&state, presented.as_deref()).await,
    };
    let key = match authenticated {
        Ok(key) => key,
        Err(Ok(failure)) => {
            tracing::warn!(
                kind = "security",
                event = "auth_failed",
                reason = failure.as_str(),
                key.prefix = presented
                    .as_deref()
                    .and_then(KeyPrefix::of_presented)
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                http.method = %request.method(),
                http.path = %imgmeta_auth::clean(request.uri().path()),
                "authentication failed"
            );
            return unauthorized();
        }
        Err(Err(error)) => return error.into_response(),
    };
    // Submissions are checked against the daily quotas; everything else only against the
    // rate limit.
    // One key may hold only its share of the requests in flight, so a client that opens many
    // slow requests starves itself, not the others.
    let limit = state.security.max_in_flight_per_key;
    let Some(_share) = state
        .security
        .shares
        .try_take(crate::shares::Holder::Key(key.id), limit)
    else {
        return crate::limits::share_full("key", key.prefix.as_str(), limit);
    };
    // A submission with an Idempotency-Key may be a replay, which is answered even when the
    // quota is used up: the quotas are charged only when a job is really accepted.
    let is_submission = request.method() == Method::POST
        && matches!(request.uri().path(), "/v1/jobs" | "/img")
        && !request.headers().contains_key("idempotency-key");
    let leases = &state.security.token_leases;
    let mut admission = match leases.admit(&state.store, key.id, is_submission).await {
        Ok(admission) => admission,
        Err(error) => return ApiError::from(error).into_response(),
    };
    // The key's scopes and its account's GPS setting as the admission read them (they may
    // have changed since the key was verified); none when it was revoked meanwhile.
    let Some(now) = admission.key.take() else {
        if let Some(hash) = presented.as_deref().and_then(presented_hash) {
            state.security.known_keys.forget(&hash);
        }
        leases.forget(key.id);
        tracing::warn!(
            kind = "security",
            event = "auth_failed",
            reason = Failure::Revoked.as_str(),
            key.prefix = %key.prefix,
            http.method = %request.method(),
            http.path = %imgmeta_auth::clean(request.uri().path()),
            "authentication failed"
        );
        return unauthorized();
    };
    let key = AuthenticatedKey {
        id: key.id,
        prefix: key.prefix,
        account: key.account,
        scopes: now.scopes,
        redact_gps: now.redact_gps,
    };
    let refused = |code: ErrorCode, event: &str, retry_after_secs: u64, message: String| {
        tracing::warn!(
            kind = "security",
            event,
            key.prefix = %key.prefix,
            retry_after_secs,
            "request refused"
        );
        let mut response =
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        response
    };
    let mut response = match admission.outcome {
        AdmissionOutcome::Allowed => {
            request.extensions_mut().insert(Caller {
                account: key.account,
                scopes: key.scopes.clone(),
                key: Some(key.clone()),
            });
            next.run(request).await
        }
        AdmissionOutcome::RateLimited { retry_after_secs } => refused(
            ErrorCode::RateLimited,
            "rate_limited",
            retry_after_secs,
            format!(
                "rate limit of {} requests per minute reached; retry after {retry_after_secs} s",
                admission.limit
            ),
        ),
        AdmissionOutcome::QuotaExceeded { retry_after_secs } => refused(
            ErrorCode::QuotaExceeded,
            "quota_exceeded",
            retry_after_secs,
            "daily submission quota (of the key or its account) used up; it renews at 00:00 UTC"
                .to_owned(),
        ),
        // Answered above: a revoked key's admission carries no key.
        AdmissionOutcome::Revoked => return unauthorized(),
    };
    rate_limit_headers(response.headers_mut(), &admission);
    response
}

/// The hash of a presented Bearer key, when it is shaped like one.
fn presented_hash(presented: &str) -> Option<KeyHash> {
    ApiKey::parse(presented).ok().map(|key| key.hash())
}

/// The key, or why there is none: `Err(Ok(_))` is a refusal, `Err(Err(_))` a store failure.
/// A key this process verified recently is not looked up again ([`KnownKeys`]); what may
/// change (revocation, scopes, the GPS setting) is read by the admission that follows on
/// every request.
///
/// [`KnownKeys`]: crate::known_keys::KnownKeys
async fn authenticate(
    state: &AppState,
    presented: Option<&str>,
) -> Result<KnownKey, Result<Failure, ApiError>> {
    let presented = presented.ok_or(Ok(Failure::Missing))?;
    let key = ApiKey::parse(presented).map_err(|_| Ok(Failure::Malformed))?;
    let hash = key.hash();
    if let Some(known) = state.security.known_keys.get(&hash) {
        return Ok(known);
    }
    let prefix = key.prefix();
    let stored = state
        .store
        .find_api_key(prefix.as_str())
        .await
        .map_err(|e| Err(ApiError::from(e)))?
        .ok_or(Ok(Failure::Unknown))?;
    let matches = KeyHash::from_bytes(&stored.hash).is_some_and(|h| h.matches(&hash));
    if !matches {
        return Err(Ok(Failure::Unknown));
    }
    if stored.revoked {
        return Err(Ok(Failure::Revoked));
    }
    let known = KnownKey {
        id: stored.id,
        prefix,
        account: stored.account_id,
    };
    state.security.known_keys.keep(&hash, known.clone());
    Ok(known)
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthorized() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "a valid API key is required: send Authorization: Bearer <key>",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The IETF `RateLimit-*` fields: the bucket size, whole requests left, seconds until full.
fn rate_limit_headers(headers: &mut HeaderMap, admission: &Admission) {
    headers.insert("ratelimit-limit", HeaderValue::from(admission.limit));
    headers.insert(
        "ratelimit-remaining",
        HeaderValue::from(admission.remaining),
    );
    headers.insert("ratelimit-reset", HeaderValue::from(admission.reset_secs));
}

#[cfg(test)]
mod tests {
    use super::bearer;
    use axum::http::{HeaderMap, HeaderValue, header};

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_bearer_credentials_are_read() {
        assert_eq!(bearer(&with_auth("Bearer imk_x")), Some("imk_x"));
        assert_eq!(bearer(&with_auth("bearer  imk_x ")), Some("imk_x"));
        assert_eq!(bearer(&with_auth("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer(&with_auth("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
