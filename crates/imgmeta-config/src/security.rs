//! Security settings: authentication, per-key limits, the global in-flight cap, the domain
//! policy lists, inbound request limits and the per-host fetch rate.

use crate::{ConfigError, Env};
use secrecy::SecretString;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// Whether `/v1/*` and `/img` require an API key (`IMGMETA_AUTH=enabled|disabled`).
    pub auth_enabled: bool,
    /// The operators' token for `POST /v1/keys`; key sign-up over HTTP is off without it.
    pub admin_token: Option<SecretString>,
    /// Rate limit given to new keys unless one is chosen, in requests per minute.
    pub default_rate_per_minute: u32,
    /// Daily submission quota given to new keys unless one is chosen.
    pub default_daily_quota: u32,
    /// Days a new account keeps finished jobs' results before the retention sweep erases them
    /// (`IMGMETA_RETENTION_DAYS`, default 30).
    pub default_retention_days: u32,
    /// Most requests one API process serves at once; more are refused with 503.
    pub max_in_flight: usize,
    /// Most of those one key may hold (`IMGMETA_MAX_IN_FLIGHT_PER_KEY`, default 64), so one
    /// client cannot take every slot.
    pub max_in_flight_per_key: usize,
    /// The same for requests without a key, per client address
    /// (`IMGMETA_MAX_IN_FLIGHT_PER_ADDRESS`, default 64).
    pub max_in_flight_per_address: usize,
    /// Most open client connections (`IMGMETA_MAX_CONNECTIONS`, default 10,000); held below the
    /// file-descriptor limit, so the process can always open database and broker connections.
    /// Over it, idle connections are closed first.
    pub max_connections: usize,
    /// Time allowed to write a response to a client that does not read
    /// (`IMGMETA_RESPONSE_WRITE_TIMEOUT_MS`, default 10 s).
    pub response_write_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests
    /// (`IMGMETA_KEEP_ALIVE_IDLE_MS`, default 30 s).
    pub keep_alive_idle: Duration,
    /// Proxies whose `X-Forwarded-For` is believed (`IMGMETA_TRUSTED_PROXIES`: addresses or
    /// CIDR blocks, comma-separated; default none).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Fetches per second any one image host gets from all workers together; 0 turns it off.
    pub host_fetch_rate_per_second: f64,
    /// Blocked domains (entries from `IMGMETA_BLOCKED_DOMAINS` and the file named by
    /// `IMGMETA_BLOCKED_DOMAINS_FILE`), in the domain list format.
    pub blocked_domains: String,
    /// The allowlist, if one is configured (`IMGMETA_ALLOWED_DOMAINS[_FILE]`).
    pub allowed_domains: Option<String>,
    /// How long a client may take to send its request line and headers.
    pub header_read_timeout: Duration,
    /// Time allowed for a whole request body, from the end of the headers.
    pub body_read_timeout: Duration,
    /// Longest request target (path and query) accepted, in bytes.
    pub max_url_bytes: usize,
    /// Largest image a client may upload with `POST /v1/jobs` (`IMGMETA_MAX_UPLOAD_BYTES`,
    /// default 20 MiB, as much as a worker fetches).
    pub max_upload_bytes: usize,
    /// Most uploads one API process reads at once (`IMGMETA_MAX_UPLOADS_IN_FLIGHT`, default
    /// 16): each may hold `max_upload_bytes` in memory, so they get a cap of their own.
    pub max_uploads_in_flight: usize,
}

pub(crate) fn from_env(env: &Env<'_>) -> Result<SecuritySettings, ConfigError> {
    let auth_enabled = match env
        .string("IMGMETA_AUTH", "enabled")
        .to_ascii_lowercase()
        .as_str()
    {
        "enabled" => true,
        "disabled" => false,
        other => {
            return Err(ConfigError {
                var: "IMGMETA_AUTH",
                reason: format!("expected \"enabled\" or \"disabled\", got {other:?}"),
            });
        }
    };
    let admin_token = admin_token(env)?;
    Ok(SecuritySettings {
        auth_enabled,
        admin_token: admin_token.map(SecretString::from),
        default_rate_per_minute: env.parse_in("IMGMETA_RATE_PER_MINUTE", 120, 1..=1_000_000)?,
        default_daily_quota: env.parse_in("IMGMETA_DAILY_QUOTA", 10_000, 1..=1_000_000_000)?,
        default_retention_days: env.parse_in("IMGMETA_RETENTION_DAYS", 30, 1..=36_500)?,
        max_in_flight: env.parse_in("IMGMETA_MAX_IN_FLIGHT", 512, 1..=1_000_000)?,
        max_in_flight_per_key: env.parse_in("IMGMETA_MAX_IN_FLIGHT_PER_KEY", 64, 1..=1_000_000)?,
        max_in_flight_per_address: env.parse_in(
            "IMGMETA_MAX_IN_FLIGHT_PER_ADDRESS",
            64,
            1..=1_000_000,
        )?,
        max_connections: env.parse_in("IMGMETA_MAX_CONNECTIONS", 10_000, 16..=1_000_000)?,
        response_write_timeout: Duration::from_millis(env.parse_in(
            "IMGMETA_RESPONSE_WRITE_TIMEOUT_MS",
            10_000,
            100..=300_000,
        )?),
        keep_alive_idle: Duration::from_millis(env.parse_in(
            "IMGMETA_KEEP_ALIVE_IDLE_MS",
            30_000,
            100..=3_600_000,
        )?),
        trusted_proxies: trusted_proxies(env)?,
        host_fetch_rate_per_second: env.parse_in(
            "IMGMETA_HOST_FETCH_RATE_PER_SECOND",
            5.0,
            0.0..=10_000.0,
        )?,
        blocked_domains: list(
            env,
            "IMGMETA_BLOCKED_DOMAINS",
            "IMGMETA_BLOCKED_DOMAINS_FILE",
        )?
        .unwrap_or_default(),
        allowed_domains: list(
            env,
            "IMGMETA_ALLOWED_DOMAINS",
            "IMGMETA_ALLOWED_DOMAINS_FILE",
        )?,
        header_read_timeout: Duration::from_millis(env.parse_in(
            "IMGMETA_HEADER_READ_TIMEOUT_MS",
            10_000,
            100..=300_000,
        )?),
        body_read_timeout: Duration::from_millis(env.parse_in(
            "IMGMETA_BODY_READ_TIMEOUT_MS",
            10_000,
            100..=300_000,
        )?),
        max_url_bytes: env.parse_in("IMGMETA_MAX_URL_BYTES", 8 * 1024, 256..=64 * 1024)?,
        max_upload_bytes: env.parse_in(
            "IMGMETA_MAX_UPLOAD_BYTES",
            20 * 1024 * 1024,
            1024..=256 * 1024 * 1024,
        )?,
        max_uploads_in_flight: env.parse_in("IMGMETA_MAX_UPLOADS_IN_FLIGHT", 16, 1..=100_000)?,
    })
}

/// `IMGMETA_TRUSTED_PROXIES`: addresses (`10.0.0.5`) or blocks (`10.0.0.0/8`), comma-separated.
fn trusted_proxies(env: &Env<'_>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let raw = env.string("IMGMETA_TRUSTED_PROXIES", "");
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError {
                    var: "IMGMETA_TRUSTED_PROXIES",
                    reason: format!("{entry:?} is neither an IP address nor a CIDR block"),
                })
        })
        .collect()
}

/// A domain list from a variable and a file together; `None` when neither is set. The entries
/// are validated by the fetch crate's parser when the process starts.
fn list(
    env: &Env<'_>,
    var: &'static str,
    file_var: &'static str,
) -> Result<Option<String>, ConfigError> {
    let inline = (env.0)(var).filter(|v| !v.trim().is_empty());
    let from_file = match (env.0)(file_var).filter(|v| !v.trim().is_empty()) {
        Some(path) => Some(
            std::fs::read_to_string(path.trim()).map_err(|e| ConfigError {
                var: file_var,
                reason: format!("cannot read {path:?}: {e}"),
            })?,
        ),
        None => None,
    };
    Ok(match (inline, from_file) {
        (None, None) => None,
        (a, b) => Some(format!(
            "{}\n{}",
            a.unwrap_or_default(),
            b.unwrap_or_default()
        )),
    })
}

/// The admin token from `IMGMETA_ADMIN_TOKEN`, or from the file `IMGMETA_ADMIN_TOKEN_FILE`
/// names (Docker and Kubernetes secrets are files); setting both is refused.
fn admin_token(env: &Env<'_>) -> Result<Option<String>, ConfigError> {
    let direct = env.optional("IMGMETA_ADMIN_TOKEN");
    let (var, token) = match (direct, env.optional("IMGMETA_ADMIN_TOKEN_FILE")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError {
                var: "IMGMETA_ADMIN_TOKEN_FILE",
                reason: "the admin token is set directly too: set only one of the two".into(),
            });
        }
        (Some(token), None) => ("IMGMETA_ADMIN_TOKEN", token),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
                var: "IMGMETA_ADMIN_TOKEN_FILE",
                reason: format!("cannot read {path}: {e}"),
            })?;
            ("IMGMETA_ADMIN_TOKEN_FILE", text.trim().to_owned())
        }
        (None, None) => return Ok(None),
    };
    if token.len() < 16 {
        return Err(ConfigError {
            var,
            reason: "use at least 16 characters".into(),
        });
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use crate::tests::settings;
    use secrecy::ExposeSecret;

    #[test]
    fn auth_is_on_and_no_lists_are_set_by_default() {
        let s = settings(&[]).unwrap().security;
        assert!(s.auth_enabled);
        assert!(s.admin_token.is_none());
        assert_eq!(s.blocked_domains, "");
        assert!(s.allowed_domains.is_none());
        assert_eq!(s.default_rate_per_minute, 120);
    }

    #[test]
    fn trusted_proxies_take_addresses_and_blocks_and_refuse_anything_else() {
        let s = settings(&[("IMGMETA_TRUSTED_PROXIES", "10.0.0.5, 192.168.0.0/16,::1")])
            .unwrap()
            .security;
        let shown: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.0.0.5/32", "192.168.0.0/16", "::1/128"]);
        assert!(settings(&[]).unwrap().security.trusted_proxies.is_empty());
        assert!(settings(&[("IMGMETA_TRUSTED_PROXIES", "proxy.internal")]).is_err());
    }

    #[test]
    fn auth_can_only_be_turned_off_by_name() {
        assert!(
            !settings(&[("IMGMETA_AUTH", "disabled")])
                .unwrap()
                .security
                .auth_enabled
        );
        let err = settings(&[("IMGMETA_AUTH", "off")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_AUTH");
    }

    #[test]
    fn the_admin_token_can_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("imgmeta-admin-{}", std::process::id()));
        std::fs::write(&path, "correct-horse-battery-staple\n").unwrap();
        let file = path.to_str().unwrap();
        let s = settings(&[("IMGMETA_ADMIN_TOKEN_FILE", file)]).unwrap();
        assert_eq!(
            s.security.admin_token.unwrap().expose_secret(),
            "correct-horse-battery-staple"
        );
        let err = settings(&[
            ("IMGMETA_ADMIN_TOKEN_FILE", file),
            ("IMGMETA_ADMIN_TOKEN", "correct-horse-battery"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "IMGMETA_ADMIN_TOKEN_FILE");
        std::fs::write(&path, "short\n").unwrap();
        let err = settings(&[("IMGMETA_ADMIN_TOKEN_FILE", file)]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_ADMIN_TOKEN_FILE");
        std::fs::remove_file(&path).unwrap();
        let err = settings(&[("IMGMETA_ADMIN_TOKEN_FILE", file)]).unwrap_err();
        assert!(err.reason.contains("cannot read"), "{}", err.reason);
    }

    #[test]
    fn a_short_admin_token_is_refused_and_a_good_one_never_prints() {
        let err = settings(&[("IMGMETA_ADMIN_TOKEN", "short")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_ADMIN_TOKEN");
        let s = settings(&[("IMGMETA_ADMIN_TOKEN", "correct-horse-battery")]).unwrap();
        assert_eq!(
            s.security.admin_token.as_ref().unwrap().expose_secret(),
            "correct-horse-battery"
        );
        assert!(!format!("{s:?}").contains("correct-horse"));
    }

    #[test]
    fn domain_lists_join_the_variable_and_the_file() {
        let path = std::env::temp_dir().join(format!("imgmeta-blocked-{}.txt", std::process::id()));
        std::fs::write(&path, "evil.example\n# comment\n").unwrap();
        let s = settings(&[
            ("IMGMETA_BLOCKED_DOMAINS", "bad.example"),
            ("IMGMETA_BLOCKED_DOMAINS_FILE", path.to_str().unwrap()),
            ("IMGMETA_ALLOWED_DOMAINS", "good.example"),
        ])
        .unwrap()
        .security;
        std::fs::remove_file(&path).unwrap();
        assert!(s.blocked_domains.contains("bad.example"));
        assert!(s.blocked_domains.contains("evil.example"));
        assert_eq!(
            s.allowed_domains.as_deref().map(str::trim),
            Some("good.example")
        );
        let err = settings(&[("IMGMETA_BLOCKED_DOMAINS_FILE", "/nonexistent/list")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_BLOCKED_DOMAINS_FILE");
    }
}
