//! Sign-up and sessions: `POST /v1/signup` (a new account and its first user, logged in),
//! `POST /v1/session` (login), `GET /v1/session`, `DELETE /v1/session` (logout) and
//! `POST /v1/session/password`. Passwords are hashed and checked on blocking threads; logins
//! and password checks pass the login throttle first.

use crate::sessions::{
    SessionUser, Throttle, cleared_cookie, presented_cookie, session_cookie, throttled,
};
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use imgmeta_auth::{ApiKey, SessionToken};
use imgmeta_domain::{AccountId, Email, ErrorCode, Name, Password, UserId};
use imgmeta_store::{
    AttemptIds, LoginAttempt, NewAccount, NewSessionKey, NewUser, SignUp, ThrottleSubject,
    UserRecord,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A user as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub(crate) struct UserView {
    id: UserId,
    email: String,
    account_id: AccountId,
    created_at: DateTime<Utc>,
}

impl From<&UserRecord> for UserView {
    fn from(user: &UserRecord) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            account_id: user.account_id,
            created_at: user.created_at,
        }
    }
}

/// The answer to sign-up, login and `GET /v1/session`: who is logged in, and the CSRF token
/// their state-changing requests must carry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub(crate) struct SessionView {
    user: UserView,
    csrf_token: String,
}

/// A sign-up. Unknown fields are refused.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Signup)]
struct SignupBody {
    /// Compared case-insensitively (stored lower-case).
    email: String,
    /// 10 to 1024 characters.
    password: String,
    /// The new account's name; the address's local part when absent.
    account_name: Option<String>,
}

/// A login. Unknown fields are refused.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Login)]
struct LoginBody {
    email: String,
    password: String,
}

/// A password change. Unknown fields are refused.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PasswordChange)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    /// 10 to 1024 characters.
    new_password: String,
}

/// Signs up: a new account and its user, logged in at once.
///
/// Open only with `IMGMETA_SIGNUP=open` (checked from the head). The new account gets the
/// operator defaults for quota and retention; its user's session the default rate limit. No
/// e-mail is sent: the address is not verified.
#[utoipa::path(
    post,
    path = "/v1/signup",
    tag = "sessions",
    operation_id = "signup",
    request_body = SignupBody,
    responses(
        (status = 201, description = "Signed up and logged in: the user and the session's CSRF token.", body = SessionView,
            headers(
                ("Set-Cookie" = String, description = "`imgmeta_session=<token>; HttpOnly; SameSite=Strict; Path=/` (and `Secure` unless the API listens on loopback)."),
                ("Cache-Control" = String, description = "`no-store`."),
            )),
        (status = 400, description = "`invalid_signup` (the address's shape, a password not 10 to 1024 characters), `invalid_json`.", body = crate::error::ErrorEnvelope),
        (status = 403, description = "`signup_closed` (`IMGMETA_SIGNUP=closed`), or `csrf_failed` (another origin's page).", body = crate::error::ErrorEnvelope),
        (status = 409, description = "`email_taken`.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn signup(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: SignupBody = super::json_object(&body)?;
    let email = Email::parse(&body.email)?;
    let password = Password::parse(&body.password)?;
    let account_name = match body.account_name.as_deref() {
        Some(name) => Name::parse(name).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidSignup, e.message)
        })?,
        None => default_account_name(&email),
    };
    let password_hash = state
        .sessions
        .hash(move || imgmeta_auth::hash_password(password.expose()))
        .await?
        .map_err(|e| {
            tracing::error!(kind = "error", error = %e, "hashing a new password failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            )
        })?;
    let security = &state.security;
    let user = loop {
        // The session key's secret is never shown to anyone: only its hash is stored.
        let key = ApiKey::generate();
        let new = NewUser {
            id: UserId::new(),
            email: email.clone(),
            password_hash: password_hash.clone(),
            account: NewAccount {
                name: account_name.clone(),
                daily_quota: security.default_daily_quota,
                retention_days: security.default_retention_days,
                redact_gps: false,
            },
            session_key: NewSessionKey {
                prefix: key.prefix().to_string(),
                hash: *key.hash().as_bytes(),
                rate_per_minute: security.default_rate_per_minute,
                daily_quota: security.default_daily_quota,
            },
        };
        match state.store.create_user(&new).await? {
            SignUp::Created(user) => break user,
            SignUp::EmailTaken => {
                tracing::info!(
                    kind = "security",
                    event = "signup_refused",
                    reason = "email_taken",
                    email.hash = %crate::sessions::email_log_id(email.as_str()),
                    "sign-up refused: the address has an account"
                );
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::EmailTaken,
                    "an account with this e-mail address exists; log in instead",
                ));
            }
            SignUp::KeyPrefixTaken => continue,
        }
    };
    tracing::info!(
        kind = "security",
        event = "signup",
        user.id = %user.id,
        account.id = %user.account_id,
        "user signed up"
    );
    let token = start_session(&state, &user).await?;
    Ok(logged_in(&state, StatusCode::CREATED, &user, &token))
}

/// Logs in: the user and a session cookie.
///
/// A wrong password and an unknown address are answered alike, after the same work.
#[utoipa::path(
    post,
    path = "/v1/session",
    tag = "sessions",
    operation_id = "login",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in: the user and the session's CSRF token.", body = SessionView,
            headers(
                ("Set-Cookie" = String, description = "`imgmeta_session=<token>; HttpOnly; SameSite=Strict; Path=/` (and `Secure` unless the API listens on loopback)."),
                ("Cache-Control" = String, description = "`no-store`."),
            )),
        (status = 400, description = "`invalid_json`.", body = crate::error::ErrorEnvelope),
        (status = 401, description = "`invalid_credentials`.", body = crate::error::ErrorEnvelope),
        (status = 429, description = "`login_throttled`: too many recent failures for the address or from the client. Carries `Retry-After`.", body = crate::error::ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    )
)]
pub(super) async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: LoginBody = super::json_object(&body)?;
    // An address that is not one still counts against the throttle under its spelling.
    let email = Email::parse(&body.email);
    let email_key = email.as_ref().map_or_else(
        |_| body.email.trim().to_lowercase(),
        |e| e.as_str().to_owned(),
    );
    let client = crate::sessions::client_address(&state, peer.map(|p| p.0.0), &headers);
    let throttle = state.sessions.throttle;
    let subjects = throttle.subjects(&email_key, client);
    let attempt = begin_attempt(&state, &subjects, &email_key, throttle).await?;
    let found = match &email {
        Ok(email) => state.store.find_user_by_email(email).await,
        Err(_) => Ok(None),
    };
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            forget(&state, &attempt).await;
            return Err(e.into());
        }
    };
    let password = body.password;
    let (user, stored_hash) = match found {
        Some(login) => (Some(login.user), Some(login.password_hash)),
        None => (None, None),
    };
    let verified = state
        .sessions
        .hash(move || match stored_hash {
            Some(hash) => imgmeta_auth::verify_password(&password, &hash),
            None => imgmeta_auth::verify_against_dummy(&password),
        })
        .await;
    let verified = match verified {
        Ok(verified) => verified,
        Err(e) => {
            forget(&state, &attempt).await;
            return Err(e);
        }
    };
    let reason = if user.is_none() {
        "unknown_email"
    } else {
        "wrong_password"
    };
    let Some(user) = user.filter(|_| verified) else {
        return Err(invalid_credentials(&email_key, reason));
    };
    state
        .store
        .login_succeeded(&attempt, Some(&subjects[0]))
        .await?;
    // A session cookie presented with the login is replaced: that session ends here.
    if let Some(old) = presented_cookie(&headers).and_then(SessionToken::parse) {
        state.store.delete_session(&old.hash()).await?;
    }
    tracing::info!(
        kind = "security",
        event = "login",
        user.id = %user.id,
        account.id = %user.account_id,
        "user logged in"
    );
    let token = start_session(&state, &user).await?;
    Ok(logged_in(&state, StatusCode::OK, &user, &token))
}

/// The logged-in user and the session's CSRF token.
#[utoipa::path(
    get,
    path = "/v1/session",
    tag = "sessions",
    operation_id = "get_session",
    responses(
        (status = 200, description = "The session's user and CSRF token (`Cache-Control: no-store`).", body = SessionView),
    )
)]
pub(super) async fn get(Extension(user): Extension<SessionUser>) -> Response {
    let mut response = Json(SessionView {
        user: UserView::from(&user.session.user),
        csrf_token: user.token.csrf_token(),
    })
    .into_response();
    no_store(response.headers_mut());
    response
}

/// Logs out: the session is deleted and its cookie cleared.
#[utoipa::path(
    delete,
    path = "/v1/session",
    tag = "sessions",
    operation_id = "logout",
    responses(
        (status = 204, description = "Logged out.",
            headers(("Set-Cookie" = String, description = "The cleared `imgmeta_session` cookie."))),
    )
)]
pub(super) async fn logout(
    State(state): State<AppState>,
    Extension(user): Extension<SessionUser>,
) -> Result<Response, ApiError> {
    state.store.delete_session(&user.token.hash()).await?;
    tracing::info!(
        kind = "security",
        event = "logout",
        user.id = %user.session.user.id,
        "user logged out"
    );
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cleared_cookie(state.sessions.secure_cookie),
    );
    no_store(response.headers_mut());
    Ok(response)
}

/// Changes the password; the user's other sessions end.
///
/// The current password is checked through the login throttle.
#[utoipa::path(
    post,
    path = "/v1/session/password",
    tag = "sessions",
    operation_id = "change_password",
    request_body = PasswordBody,
    responses(
        (status = 204, description = "Changed; every other session of the user has ended."),
        (status = 400, description = "`invalid_signup` (a new password not 10 to 1024 characters), `invalid_json`.", body = crate::error::ErrorEnvelope),
        (status = 401, description = "`invalid_credentials`: the current password is wrong; `unauthorized`: no live session.", body = crate::error::ErrorEnvelope),
        (status = 429, description = "`login_throttled`. Carries `Retry-After`.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn change_password(
    State(state): State<AppState>,
    Extension(user): Extension<SessionUser>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: PasswordBody = super::json_object(&body)?;
    let new_password = Password::parse(&body.new_password)?;
    let me = &user.session.user;
    let client = crate::sessions::client_address(&state, peer.map(|p| p.0.0), &headers);
    let throttle = state.sessions.throttle;
    let subjects = throttle.subjects(&me.email, client);
    let attempt = begin_attempt(&state, &subjects, &me.email, throttle).await?;
    let stored = match state.store.user_password_hash(me.id).await {
        Ok(stored) => stored.unwrap_or_default(),
        Err(e) => {
            forget(&state, &attempt).await;
            return Err(e.into());
        }
    };
    let current = body.current_password;
    let outcome = state
        .sessions
        .hash(move || {
            if !imgmeta_auth::verify_password(&current, &stored) {
                return Ok(None);
            }
            imgmeta_auth::hash_password(new_password.expose()).map(Some)
        })
        .await;
    let new_hash = match outcome {
        Ok(Ok(Some(hash))) => hash,
        Ok(Ok(None)) => return Err(invalid_credentials(&me.email, "wrong_current_password")),
        Ok(Err(e)) => {
            forget(&state, &attempt).await;
            tracing::error!(kind = "error", error = %e, "hashing a new password failed");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            ));
        }
        Err(e) => {
            forget(&state, &attempt).await;
            return Err(e);
        }
    };
    state
        .store
        .login_succeeded(&attempt, Some(&subjects[0]))
        .await?;
    let ended = state
        .store
        .change_password(me.id, &new_hash, &user.token.hash())
        .await?;
    tracing::info!(
        kind = "security",
        event = "password_changed",
        user.id = %me.id,
        sessions_ended = ended,
        "user changed their password; their other sessions ended"
    );
    let mut response = StatusCode::NO_CONTENT.into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// Starts a login attempt against the throttle; `Err` is `429 login_throttled`.
async fn begin_attempt(
    state: &AppState,
    subjects: &[ThrottleSubject; 2],
    email: &str,
    throttle: Throttle,
) -> Result<AttemptIds, ApiError> {
    match state
        .store
        .begin_login_attempt(subjects, throttle.window)
        .await?
    {
        LoginAttempt::Admitted(ids) => Ok(ids),
        LoginAttempt::Throttled {
            subject,
            retry_after_secs,
        } => Err(throttled(
            email,
            if subject == 0 { "account" } else { "address" },
            retry_after_secs,
        )),
    }
}

/// An attempt that could not be decided does not count as a failure (a failure to forget it
/// is logged and otherwise harmless: it only counts once more than it should).
async fn forget(state: &AppState, attempt: &AttemptIds) {
    if let Err(error) = state.store.forget_login_attempt(attempt).await {
        tracing::warn!(kind = "error", %error, "could not forget an undecided login attempt");
    }
}

/// `401 invalid_credentials`, the same for every reason, with its security event.
fn invalid_credentials(email: &str, reason: &'static str) -> ApiError {
    tracing::warn!(
        kind = "security",
        event = "login_failed",
        reason,
        email.hash = %crate::sessions::email_log_id(email),
        "login failed"
    );
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
        "wrong e-mail address or password",
    )
}

/// Starts a session for `user`: a new random token, of which the store keeps the hash.
async fn start_session(state: &AppState, user: &UserRecord) -> Result<SessionToken, ApiError> {
    let token = SessionToken::generate();
    state
        .store
        .create_session(user.id, &token.hash(), state.sessions.lifetime)
        .await?;
    Ok(token)
}

/// The answer that hands a new session to its user: the cookie, and the user with the CSRF
/// token in the body.
fn logged_in(
    state: &AppState,
    status: StatusCode,
    user: &UserRecord,
    token: &SessionToken,
) -> Response {
    let body = SessionView {
        user: UserView::from(user),
        csrf_token: token.csrf_token(),
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(
            token,
            state.sessions.lifetime.max,
            state.sessions.secure_cookie,
        ),
    );
    no_store(response.headers_mut());
    response
}

/// Answers carrying a session or its CSRF token are never cached.
fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A new account's name when the sign-up names none: the address's local part.
fn default_account_name(email: &Email) -> Name {
    Name::parse(email.local_part())
        .or_else(|_| Name::parse(email.as_str()))
        .unwrap_or_else(|_| Name::parse("account").expect("a valid name"))
}
