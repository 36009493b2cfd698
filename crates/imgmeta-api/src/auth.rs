//! `Authorization: Bearer <key>` on `/v1/*` and `/img`: the key is checked (shape, checksum,
//! then its stored hash in constant time), then admitted against its rate limit and, for
//! submissions, its daily quota. Unknown, malformed and revoked keys get the same 401.

use crate::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use imgmeta_auth::{ApiKey, KeyHash, KeyPrefix};
use imgmeta_domain::ErrorCode;
use imgmeta_store::{Admission, AdmissionOutcome};

/// The key a request was authenticated with, for handlers and logs.
#[derive(Debug, Clone)]
pub struct AuthenticatedKey {
    pub id: i64,
    pub prefix: KeyPrefix,
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
        return next.run(request).await;
    }
    let presented = bearer(request.headers());
    let key = match authenticate(&state, presented).await {
        Ok(key) => key,
        Err(Ok(failure)) => {
            tracing::warn!(
                kind = "security",
                event = "auth_failed",
                reason = failure.as_str(),
                key.prefix = presented
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
    // Submissions count towards the daily quota; polling only towards the rate limit.
    let is_submission = request.method() == Method::POST;
    let admission = match state.store.admit(key.id, is_submission).await {
        Ok(admission) => admission,
        Err(error) => return ApiError::from(error).into_response(),
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
            request.extensions_mut().insert(key);
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
            "daily submission quota used up; it renews at 00:00 UTC".to_owned(),
        ),
        AdmissionOutcome::Revoked => return unauthorized(),
    };
    rate_limit_headers(response.headers_mut(), &admission);
    response
}

/// The key, or why there is none: `Err(Ok(_))` is a refusal, `Err(Err(_))` a store failure.
async fn authenticate(
    state: &AppState,
    presented: Option<&str>,
) -> Result<AuthenticatedKey, Result<Failure, ApiError>> {
    let presented = presented.ok_or(Ok(Failure::Missing))?;
    let key = ApiKey::parse(presented).map_err(|_| Ok(Failure::Malformed))?;
    let prefix = key.prefix();
    let stored = state
        .store
        .find_api_key(prefix.as_str())
        .await
        .map_err(|e| Err(ApiError::from(e)))?
        .ok_or(Ok(Failure::Unknown))?;
    let matches = KeyHash::from_bytes(&stored.hash).is_some_and(|h| h.matches(&key.hash()));
    if !matches {
        return Err(Ok(Failure::Unknown));
    }
    if stored.revoked {
        return Err(Ok(Failure::Revoked));
    }
    Ok(AuthenticatedKey {
        id: stored.id,
        prefix,
    })
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
