//! Sessions: a user's login, carried by the `imgmeta_session` cookie, authenticates requests as
//! the user's hidden session key (so `/v1/*` handlers, rate limits and quotas treat it exactly
//! as an API key of the account holding every scope). This module resolves a presented cookie
//! to its session, enforces CSRF on what a session changes, guards sign-up and login against
//! other origins, and runs password hashing off the async runtime.
//!
//! *Session/CSRF invariant:* a request authenticated by a session cookie with a method other
//! than GET, HEAD or OPTIONS goes on only with the session's `X-CSRF-Token`; a request with an
//! `Authorization` header is authenticated by it alone, and the cookie is ignored.

mod cookie;
mod throttle;

pub(crate) use cookie::{cleared_cookie, presented_cookie, session_cookie};
pub(crate) use throttle::{Throttle, email_log_id, throttled};

use crate::known_keys::KnownKey;
use crate::{ApiError, AppState};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use imgmeta_auth::{KeyPrefix, SessionToken};
use imgmeta_config::SessionSettings;
use imgmeta_domain::ErrorCode;
use imgmeta_store::{SessionLifetime, SessionRecord, Store};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The header a session's state-changing requests carry their CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// How sign-up, sessions and the login throttle behave in this process.
#[derive(Clone)]
pub struct SessionPolicy {
    pub signup_open: bool,
    pub lifetime: SessionLifetime,
    /// Whether the session cookie carries `Secure` (decided from the listening address).
    pub secure_cookie: bool,
    pub throttle: Throttle,
    /// Password hashes computed at once: each takes 19 MiB and a core for tens of milliseconds,
    /// so a burst of logins queues here instead of exhausting memory or the blocking pool.
    hashing: Arc<Semaphore>,
}

impl SessionPolicy {
    /// The policy of an API listening on `listen`.
    pub fn new(settings: &SessionSettings, listen: SocketAddr) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            signup_open: settings.signup == imgmeta_config::SignupMode::Open,
            lifetime: SessionLifetime {
                idle: settings.idle,
                max: settings.lifetime,
            },
            secure_cookie: cookie::cookie_is_secure(settings.cookie_secure, listen.ip()),
            throttle: Throttle {
                window: settings.login_window,
                per_account: settings.login_failures_per_account,
                per_address: settings.login_failures_per_address,
            },
            hashing: Arc::new(Semaphore::new(cores.max(1))),
        }
    }

    /// Runs `work` (a password hash or verification) on a blocking thread, at most one per core
    /// at a time.
    pub(crate) async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let internal = || {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            )
        };
        let _permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| internal())?;
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            tracing::error!(kind = "error", error = %e, "password hashing task failed");
            internal()
        })
    }
}

/// The session a request was made with, left in the request for the session routes (and for
/// `/v1/*` handlers that need to know a session, not a key, is asking).
#[derive(Debug, Clone)]
pub(crate) struct SessionUser {
    pub token: SessionToken,
    pub session: SessionRecord,
}

/// Why a presented session cookie was refused; only the security log sees the difference.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// Not a token this service could have made.
    Malformed,
    /// No such session: logged out, expired, ended by a password change, or its key revoked.
    Unknown,
    /// A state-changing request without the session's CSRF token.
    Csrf,
}

/// Resolves the session a request presents, and checks its CSRF token when the method changes
/// state. `Err` is the answer to send.
async fn resolve(
    state: &AppState,
    cookie: &str,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
) -> Result<SessionUser, Response> {
    let refuse = |refusal: Refusal, user: Option<&SessionRecord>| {
        let user_id = user.map(|s| s.user.id.to_string()).unwrap_or_default();
        let path = imgmeta_auth::clean(path);
        match refusal {
            Refusal::Csrf => {
                tracing::warn!(
                    kind = "security",
                    event = "csrf_failed",
                    reason = if headers.contains_key(CSRF_HEADER) { "wrong_token" } else { "missing_token" },
                    user.id = %user_id,
                    http.method = %method,
                    http.path = %path,
                    "session request refused: no valid CSRF token"
                );
                csrf_failed("this request needs the session's CSRF token in X-CSRF-Token")
            }
            Refusal::Malformed | Refusal::Unknown => {
                tracing::warn!(
                    kind = "security",
                    event = "auth_failed",
                    reason = if matches!(refusal, Refusal::Malformed) { "session_malformed" } else { "session_unknown" },
                    http.method = %method,
                    http.path = %path,
                    "session authentication failed"
                );
                no_session()
            }
        }
    };
    let token = SessionToken::parse(cookie).ok_or_else(|| refuse(Refusal::Malformed, None))?;
    let session = state
        .store
        .find_session(&token.hash(), state.sessions.lifetime.idle)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(|| refuse(Refusal::Unknown, None))?;
    if !is_safe(method) {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !token.csrf_matches(presented) {
            return Err(refuse(Refusal::Csrf, Some(&session)));
        }
    }
    Ok(SessionUser { token, session })
}

/// Methods that change nothing, which a session may use without its CSRF token.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The session key a `/v1/*` request made with a session cookie authenticates as, with the
/// session left in the request; `Err` is the answer (401, or 403 `csrf_failed`). Its scopes
/// and GPS setting are read by the request's admission, as for a Bearer key.
pub(crate) async fn authenticate(
    state: &AppState,
    request: &mut Request,
    cookie: &str,
) -> Result<KnownKey, Response> {
    let user = resolve(
        state,
        cookie,
        request.method(),
        request.headers(),
        request.uri().path(),
    )
    .await?;
    let key = &user.session.key;
    let prefix = KeyPrefix::parse(&key.prefix).map_err(|_| {
        tracing::error!(
            kind = "error",
            key.id = key.id,
            "a session key's prefix is corrupt"
        );
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error",
        )
        .into_response()
    })?;
    let authenticated = KnownKey {
        id: key.id,
        prefix,
        account: key.account_id,
    };
    request.extensions_mut().insert(user);
    Ok(authenticated)
}

/// Guards the session routes (`GET/DELETE /v1/session`, `POST /v1/session/password`) from the
/// request head: `401` without a live session, `403 csrf_failed` for a state change without
/// the CSRF token. The session goes into the request as a [`SessionUser`].
pub(crate) async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(cookie) = presented_cookie(request.headers()).map(str::to_owned) else {
        return no_session();
    };
    match resolve(
        &state,
        &cookie,
        request.method(),
        request.headers(),
        request.uri().path(),
    )
    .await
    {
        Ok(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(response) => response,
    }
}

/// Guards sign-up and login from the request head: `403 csrf_failed` for a request another
/// origin's page started (a login CSRF would log the victim in as the attacker), and `403
/// signup_closed` for a sign-up while `IMGMETA_SIGNUP=closed`.
pub(crate) async fn guard_entry(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let forwarded_host = forwarded_host(&state, &request);
    if cookie::is_cross_origin(request.headers(), forwarded_host.as_deref()) {
        tracing::warn!(
            kind = "security",
            event = "csrf_failed",
            reason = "cross_origin",
            origin = %imgmeta_auth::clean(
                request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or("-")
            ),
            http.path = %imgmeta_auth::clean(request.uri().path()),
            "sign-up or login from another origin refused"
        );
        return csrf_failed("sign-up and login are accepted only from this service's own pages");
    }
    if request.uri().path() == "/v1/signup" && !state.sessions.signup_open {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::SignupClosed,
            "sign-up is closed on this service (IMGMETA_SIGNUP=closed); ask an operator for an account",
        )
        .into_response();
    }
    next.run(request).await
}

/// A trusted proxy's `X-Forwarded-Host`: the host the browser used, when a proxy in front of
/// the API rewrote `Host`.
fn forwarded_host(state: &AppState, request: &Request) -> Option<String> {
    let peer = peer_ip(request)?;
    let trusted = &state.security.trusted_proxies;
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return None;
    }
    let value = request.headers().get("x-forwarded-host")?.to_str().ok()?;
    // The proxy nearest us appended the last entry.
    value.rsplit(',').next().map(|h| h.trim().to_owned())
}

fn peer_ip(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The client's address as every limit sees it (through trusted proxies), for the throttle.
pub(crate) fn client_address(
    state: &AppState,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> IpAddr {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip());
    crate::shares::client_address(peer, headers, &state.security.trusted_proxies)
}

/// `401 unauthorized` for a request without a live session.
pub(crate) fn no_session() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "no valid session: log in with POST /v1/session (or send Authorization: Bearer <key>)",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn csrf_failed(message: &'static str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, ErrorCode::CsrfFailed, message).into_response()
}

/// Deletes ended sessions and login failures that no longer count, every `period`, until
/// `shutdown`. Every API process runs it; the deletes are idempotent.
pub async fn sweep_sessions(
    store: Store,
    window: Duration,
    period: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        match store.sweep_sessions(window, 10_000).await {
            Ok((sessions, failures)) if sessions + failures > 0 => {
                tracing::debug!(sessions, login_failures = failures, "swept ended sessions");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(kind = "error", %error, "session sweep failed"),
        }
    }
}
