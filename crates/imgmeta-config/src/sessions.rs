//! Sign-up, sessions and login throttling: `IMGMETA_SIGNUP`, the sessions' lifetimes, the
//! cookie's `Secure` attribute and the failed-login limits.

use crate::{ConfigError, Env};
use std::time::Duration;

/// Whether anyone may create an account with `POST /v1/signup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupMode {
    Open,
    /// The default: accounts are created by operators (`imgmeta keys create`, `POST /v1/keys`).
    Closed,
}

/// When the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecure {
    /// Always, except when the API listens on a loopback address (plain-http local use).
    Auto,
    /// Always, even on loopback (an API behind a TLS-terminating proxy on the same host).
    Always,
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// `IMGMETA_SIGNUP=open|closed` (default `closed`).
    pub signup: SignupMode,
    /// A session unused this long ends (`IMGMETA_SESSION_IDLE_SECS`, default 12 h).
    pub idle: Duration,
    /// A session ends this long after login, used or not (`IMGMETA_SESSION_MAX_SECS`,
    /// default 7 days).
    pub lifetime: Duration,
    /// `IMGMETA_SESSION_COOKIE_SECURE=auto|always` (default `auto`).
    pub cookie_secure: CookieSecure,
    /// The window failed logins are counted in (`IMGMETA_LOGIN_WINDOW_SECS`, default 15 min).
    pub login_window: Duration,
    /// Failed logins for one e-mail address within the window before further attempts are
    /// refused (`IMGMETA_LOGIN_MAX_FAILURES_PER_ACCOUNT`, default 5).
    pub login_failures_per_account: u32,
    /// Failed logins from one client address (an IPv6 /64) within the window before further
    /// attempts are refused (`IMGMETA_LOGIN_MAX_FAILURES_PER_ADDRESS`, default 20).
    pub login_failures_per_address: u32,
}

pub(crate) fn from_env(env: &Env<'_>) -> Result<SessionSettings, ConfigError> {
    let signup = match env
        .string("IMGMETA_SIGNUP", "closed")
        .to_ascii_lowercase()
        .as_str()
    {
        "open" => SignupMode::Open,
        "closed" => SignupMode::Closed,
        other => {
            return Err(ConfigError {
                var: "IMGMETA_SIGNUP",
                reason: format!("expected \"open\" or \"closed\", got {other:?}"),
            });
        }
    };
    let cookie_secure = match env
        .string("IMGMETA_SESSION_COOKIE_SECURE", "auto")
        .to_ascii_lowercase()
        .as_str()
    {
        "auto" => CookieSecure::Auto,
        "always" => CookieSecure::Always,
        other => {
            return Err(ConfigError {
                var: "IMGMETA_SESSION_COOKIE_SECURE",
                reason: format!("expected \"auto\" or \"always\", got {other:?}"),
            });
        }
    };
    let secs = |var: &'static str, default: u64, min: u64, max: u64| {
        Ok::<_, ConfigError>(Duration::from_secs(env.parse_in(
            var,
            default,
            min..=max,
        )?))
    };
    Ok(SessionSettings {
        signup,
        idle: secs("IMGMETA_SESSION_IDLE_SECS", 12 * 3600, 60, 31_536_000)?,
        lifetime: secs("IMGMETA_SESSION_MAX_SECS", 7 * 86_400, 60, 31_536_000)?,
        cookie_secure,
        login_window: secs("IMGMETA_LOGIN_WINDOW_SECS", 900, 1, 86_400)?,
        login_failures_per_account: env.parse_in(
            "IMGMETA_LOGIN_MAX_FAILURES_PER_ACCOUNT",
            5,
            1..=1_000_000,
        )?,
        login_failures_per_address: env.parse_in(
            "IMGMETA_LOGIN_MAX_FAILURES_PER_ADDRESS",
            20,
            1..=1_000_000,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::settings;

    #[test]
    fn sign_up_is_closed_and_sessions_last_12_h_idle_and_7_days_by_default() {
        let s = settings(&[]).unwrap().sessions;
        assert_eq!(s.signup, SignupMode::Closed);
        assert_eq!(s.idle, Duration::from_secs(43_200));
        assert_eq!(s.lifetime, Duration::from_secs(604_800));
        assert_eq!(s.cookie_secure, CookieSecure::Auto);
        assert_eq!(s.login_window, Duration::from_secs(900));
        assert_eq!(s.login_failures_per_account, 5);
        assert_eq!(s.login_failures_per_address, 20);
    }

    #[test]
    fn sign_up_opens_only_when_asked_to() {
        let s = settings(&[("IMGMETA_SIGNUP", "Open")]).unwrap().sessions;
        assert_eq!(s.signup, SignupMode::Open);
        let err = settings(&[("IMGMETA_SIGNUP", "yes")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_SIGNUP");
        let err = settings(&[("IMGMETA_SESSION_COOKIE_SECURE", "never")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_SESSION_COOKIE_SECURE");
        let err = settings(&[("IMGMETA_LOGIN_MAX_FAILURES_PER_ACCOUNT", "0")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_LOGIN_MAX_FAILURES_PER_ACCOUNT");
    }
}
