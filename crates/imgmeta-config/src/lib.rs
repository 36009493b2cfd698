//! Typed settings for every imgmeta process, read once from `IMGMETA_*` environment variables
//! (and the standard `OTEL_*` ones for trace export).
//!
//! Defaults point at services on localhost so `imgmeta up` works with no configuration; every
//! variable is documented in the README's configuration table.

mod security;
mod sessions;
mod tls;
mod traces;

pub use security::SecuritySettings;
pub use sessions::{CookieSecure, SessionSettings, SignupMode};
pub use traces::TraceExportSettings;

use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A setting that was present but could not be used.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {var} is invalid: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for development.
    Text,
    /// One JSON object per line, for production log pipelines.
    Json,
    /// JSON unless stderr is a terminal: a person at a terminal reads text, while services
    /// (systemd, containers, Kubernetes) write to pipes and get JSON without configuration.
    Auto,
}

/// Everything a process needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http_addr: SocketAddr,
    /// Where a worker serves `/metrics` on its own (the API serves it on `http_addr`).
    pub metrics_addr: Option<SocketAddr>,
    pub database: DatabaseSettings,
    pub amqp_url: SecretString,
    /// Extra CA certificates (PEM) trusted for `amqps://`, from `IMGMETA_AMQP_CA`.
    pub amqp_ca_pem: Option<String>,
    pub queue_prefix: String,
    pub model_dir: PathBuf,
    pub worker: WorkerSettings,
    pub reliability: ReliabilitySettings,
    pub detector: DetectorSettings,
    pub fetch: FetchSettings,
    /// How long `POST /img` waits for a job to finish before answering 202.
    pub legacy_wait: Duration,
    /// The URL cache's lifetimes and bounds (on with the content cache).
    pub url_cache: UrlCacheSettings,
    pub log_format: LogFormat,
    /// The log filter (`RUST_LOG`, tracing's directive syntax); `None`: the default.
    pub log_filter: Option<String>,
    /// Cargo's home (`CARGO_HOME`, else `$HOME/.cargo`): `imgmeta models fetch` takes the
    /// model's crate from its download cache before going to the network.
    pub cargo_home: Option<PathBuf>,
    pub security: SecuritySettings,
    /// Sign-up, sessions and login throttling (`IMGMETA_SIGNUP`, `IMGMETA_SESSION_*`,
    /// `IMGMETA_LOGIN_*`).
    pub sessions: SessionSettings,
    /// Span export over OTLP; `None` (the default) exports nothing.
    pub traces: Option<TraceExportSettings>,
    /// The API that `imgmeta submit` and `imgmeta batches` talk to.
    pub client: ClientSettings,
    /// Sending signed webhooks (`IMGMETA_WEBHOOK_*`).
    pub webhooks: WebhookSettings,
}

/// How webhooks are sent: every API process sends the deliveries that are due.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// Time allowed for one attempt: connect, send, the receiver's status
    /// (`IMGMETA_WEBHOOK_TIMEOUT_MS`, default 10 s).
    pub timeout: Duration,
    /// The wait before the first retry; each later one waits four times longer, at most 8 h
    /// (`IMGMETA_WEBHOOK_RETRY_BASE_MS`, default 5 s).
    pub retry_base: Duration,
    /// How long after its event a delivery is retried before it fails
    /// (`IMGMETA_WEBHOOK_RETRY_FOR_SECS`, default 24 h).
    pub retry_for: Duration,
    /// How long a replaced signing secret keeps signing beside the new one
    /// (`IMGMETA_WEBHOOK_SECRET_OVERLAP_SECS`, default 24 h).
    pub secret_overlap: Duration,
    /// Most attempts one process has in flight (`IMGMETA_WEBHOOK_CONCURRENCY`, default 16).
    pub concurrency: usize,
}

/// A client of the API (`IMGMETA_API_URL`, `IMGMETA_KEY`), for the CLI's batch commands.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The API's base URL (http or https), without a trailing slash.
    pub api_url: String,
    /// The API key the commands send; `None` when unset (they then need `--key`).
    pub key: Option<SecretString>,
}

/// The URL cache (`IMGMETA_CACHE_*`); on whenever the content cache is
/// (`IMGMETA_CACHE_MAX_ENTRIES` > 0), bounded by the same row count.
#[derive(Debug, Clone, Copy)]
pub struct UrlCacheSettings {
    pub enabled: bool,
    /// Freshness of a response that says nothing about it (`IMGMETA_CACHE_TTL`, seconds).
    pub ttl: Duration,
    /// The most any entry stays fresh, whatever the origin says (`IMGMETA_CACHE_MAX_TTL`).
    pub max_ttl: Duration,
    /// How long after expiry an entry may still be served while a refresh runs
    /// (`IMGMETA_CACHE_MAX_STALE`); older ones are swept.
    pub max_stale: Duration,
    /// How long a URL's permanent error is remembered (`IMGMETA_CACHE_NEGATIVE_TTL`).
    pub negative_ttl: Duration,
    /// Most rows the URL cache keeps (the content cache's `IMGMETA_CACHE_MAX_ENTRIES`).
    pub max_entries: i64,
    /// Most bytes of JSON the URL cache keeps (`IMGMETA_CACHE_MAX_BYTES`).
    pub max_bytes: i64,
    /// How long an API process answers from a fresh entry it read, without reading it again
    /// (`IMGMETA_CACHE_HOT_MS`; 0: read every time).
    pub hot: Duration,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// The connection URL, with `IMGMETA_DATABASE_CA` applied as `sslrootcert` and a
    /// verifying `sslmode`.
    pub url: SecretString,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs one worker process runs at once; also the broker prefetch.
    pub concurrency: u16,
    /// CPU threads for inference (0: one per core).
    pub inference_threads: usize,
    /// Most images the detector runs in one forward pass, from the jobs waiting for it.
    pub infer_batch: usize,
    /// How long a claimed job stays reserved without a heartbeat.
    pub lease: Duration,
    /// How long a stopping worker waits for jobs in flight.
    pub shutdown_grace: Duration,
    /// Most runs a job gets; transient failures are retried until then.
    pub max_attempts: i32,
    /// Backoff before the first retry; doubles with every attempt (with jitter).
    pub retry_base: Duration,
    /// Most analyses the content cache keeps (least recently used evicted); 0 turns it off.
    pub cache_max_entries: i64,
    /// Crash hooks for the fault-injection suite; never set in production.
    pub test_hooks: TestHooks,
}

/// Deliberate crashes for fault-injection tests (`IMGMETA_TEST_*`).
#[derive(Debug, Clone, Default)]
pub struct TestHooks {
    /// Abort the process when a job whose URL contains this starts.
    pub crash_on_url_substring: Option<String>,
    /// Abort the process after committing a job's outcome and before acknowledging its message.
    pub crash_after_commit: bool,
}

#[derive(Debug, Clone)]
pub struct ReliabilitySettings {
    /// Messages the outbox may hold while the broker is down before submissions get 503.
    pub max_outbox_backlog: i64,
    /// A queued job whose message was published this long ago is published again.
    pub republish_after: Duration,
    /// While the jobs queue holds no ready message, a queued job whose message was published
    /// this long ago is published again: its message went missing (a purged or deleted queue).
    pub republish_idle_after: Duration,
    /// How often the reconciler sweeps expired leases.
    pub sweep_period: Duration,
}

#[derive(Debug, Clone)]
pub struct DetectorSettings {
    /// Model name from `models/manifest.json`.
    pub model: String,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Boxes of one class overlapping more than this are suppressed.
    pub iou_threshold: f32,
}

#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Allow fetching from loopback and private addresses (local development and tests only).
    pub allow_private: bool,
}

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/imgmeta";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let database_url = tls::database_url(
            parse_url(
                "IMGMETA_DATABASE_URL",
                &env.string("IMGMETA_DATABASE_URL", DEFAULT_DATABASE_URL),
                &["postgres", "postgresql"],
            )?,
            env.optional("IMGMETA_DATABASE_CA").as_deref(),
        )?;
        let amqp_url = env.string("IMGMETA_AMQP_URL", DEFAULT_AMQP_URL);
        let amqp_ca_pem = tls::amqp_ca(
            &parse_url("IMGMETA_AMQP_URL", &amqp_url, &["amqp", "amqps"])?,
            env.optional("IMGMETA_AMQP_CA").as_deref(),
        )?;
        let queue_prefix = env.string("IMGMETA_QUEUE", "imgmeta");
        if queue_prefix.is_empty()
            || queue_prefix.len() > 200
            || !queue_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ConfigError {
                var: "IMGMETA_QUEUE",
                reason: "use 1 to 200 characters from A-Z a-z 0-9 - _ .".into(),
            });
        }
        Ok(Self {
            http_addr: env.parse("IMGMETA_HTTP_ADDR", DEFAULT_HTTP_ADDR)?,
            metrics_addr: match (lookup)("IMGMETA_METRICS_ADDR").filter(|v| !v.trim().is_empty()) {
                None => None,
                Some(raw) => {
                    Some(
                        raw.trim()
                            .parse()
                            .map_err(|e: std::net::AddrParseError| ConfigError {
                                var: "IMGMETA_METRICS_ADDR",
                                reason: e.to_string(),
                            })?,
                    )
                }
            },
            database: DatabaseSettings {
                url: database_url.into(),
                max_connections: env.parse_in("IMGMETA_DATABASE_MAX_CONNECTIONS", 10, 1..=1000)?,
            },
            amqp_url: amqp_url.into(),
            amqp_ca_pem,
            queue_prefix,
            model_dir: PathBuf::from(env.string("IMGMETA_MODEL_DIR", "models")),
            worker: WorkerSettings {
                concurrency: env.parse_in("IMGMETA_WORKER_CONCURRENCY", 2, 1..=1024)?,
                inference_threads: env.parse_in("IMGMETA_INFERENCE_THREADS", 0, 0..=1024)?,
                infer_batch: env.parse_in("IMGMETA_INFER_BATCH", 1, 1..=64)?,
                lease: Duration::from_secs(env.parse_in("IMGMETA_LEASE_SECS", 60, 5..=3600)?),
                shutdown_grace: Duration::from_secs(env.parse_in(
                    "IMGMETA_SHUTDOWN_GRACE_SECS",
                    30,
                    0..=3600,
                )?),
                max_attempts: env.parse_in("IMGMETA_MAX_ATTEMPTS", 5, 1..=100)?,
                cache_max_entries: env.parse_in(
                    "IMGMETA_CACHE_MAX_ENTRIES",
                    100_000,
                    0..=100_000_000,
                )?,
                retry_base: Duration::from_millis(env.parse_in(
                    "IMGMETA_RETRY_BASE_MS",
                    2_000,
                    1..=3_600_000,
                )?),
                test_hooks: TestHooks {
                    crash_on_url_substring: (lookup)("IMGMETA_TEST_CRASH_ON_URL_SUBSTRING")
                        .filter(|s| !s.is_empty()),
                    crash_after_commit: env.bool("IMGMETA_TEST_CRASH_AFTER_COMMIT", false)?,
                },
            },
            reliability: ReliabilitySettings {
                max_outbox_backlog: env.parse_in(
                    "IMGMETA_OUTBOX_MAX_BACKLOG",
                    100_000,
                    1..=100_000_000,
                )?,
                republish_after: Duration::from_secs(env.parse_in(
                    "IMGMETA_REPUBLISH_AFTER_SECS",
                    900,
                    10..=86_400,
                )?),
                republish_idle_after: Duration::from_secs(env.parse_in(
                    "IMGMETA_REPUBLISH_IDLE_SECS",
                    30,
                    5..=86_400,
                )?),
                sweep_period: Duration::from_millis(env.parse_in(
                    "IMGMETA_SWEEP_MS",
                    5_000,
                    100..=600_000,
                )?),
            },
            detector: DetectorSettings {
                model: env.string("IMGMETA_MODEL", "yolov12n"),
                device: {
                    let device = env.string("IMGMETA_DEVICE", "cpu");
                    let valid = device == "cpu"
                        || device == "cuda"
                        || device
                            .strip_prefix("cuda:")
                            .is_some_and(|n| n.parse::<usize>().is_ok());
                    if !valid {
                        return Err(ConfigError {
                            var: "IMGMETA_DEVICE",
                            reason: format!("expected cpu, cuda or cuda:N, got {device:?}"),
                        });
                    }
                    device
                },
                iou_threshold: env.parse_in("IMGMETA_IOU_THRESHOLD", 0.45, 0.0..=1.0)?,
            },
            fetch: FetchSettings {
                allow_private: env.bool("IMGMETA_FETCH_ALLOW_PRIVATE", false)?,
            },
            legacy_wait: Duration::from_millis(env.parse_in(
                "IMGMETA_LEGACY_WAIT_MS",
                30_000,
                0..=300_000,
            )?),
            url_cache: {
                let max_entries: i64 =
                    env.parse_in("IMGMETA_CACHE_MAX_ENTRIES", 100_000, 0..=100_000_000)?;
                let secs =
                    |name: &'static str, default: u64, max: u64| -> Result<Duration, ConfigError> {
                        Ok(Duration::from_secs(env.parse_in(name, default, 0..=max)?))
                    };
                UrlCacheSettings {
                    enabled: max_entries > 0,
                    ttl: secs("IMGMETA_CACHE_TTL", 3_600, 31_536_000)?,
                    max_ttl: secs("IMGMETA_CACHE_MAX_TTL", 86_400, 31_536_000)?,
                    max_stale: secs("IMGMETA_CACHE_MAX_STALE", 3_600, 31_536_000)?,
                    negative_ttl: secs("IMGMETA_CACHE_NEGATIVE_TTL", 60, 86_400)?,
                    max_entries,
                    max_bytes: env.parse_in(
                        "IMGMETA_CACHE_MAX_BYTES",
                        1_073_741_824,
                        0..=1_099_511_627_776,
                    )?,
                    hot: Duration::from_millis(env.parse_in(
                        "IMGMETA_CACHE_HOT_MS",
                        1_000,
                        0..=60_000,
                    )?),
                }
            },
            log_filter: env.optional("RUST_LOG"),
            cargo_home: env.optional("CARGO_HOME").map(PathBuf::from).or_else(|| {
                env.optional("HOME")
                    .map(|h| PathBuf::from(h).join(".cargo"))
            }),
            security: security::from_env(&env)?,
            sessions: sessions::from_env(&env)?,
            traces: traces::from_env(&env)?,
            webhooks: WebhookSettings {
                timeout: Duration::from_millis(env.parse_in(
                    "IMGMETA_WEBHOOK_TIMEOUT_MS",
                    10_000,
                    100..=60_000,
                )?),
                retry_base: Duration::from_millis(env.parse_in(
                    "IMGMETA_WEBHOOK_RETRY_BASE_MS",
                    5_000,
                    10..=3_600_000,
                )?),
                retry_for: Duration::from_secs(env.parse_in(
                    "IMGMETA_WEBHOOK_RETRY_FOR_SECS",
                    86_400,
                    1..=604_800,
                )?),
                secret_overlap: Duration::from_secs(env.parse_in(
                    "IMGMETA_WEBHOOK_SECRET_OVERLAP_SECS",
                    86_400,
                    0..=2_592_000,
                )?),
                concurrency: env.parse_in("IMGMETA_WEBHOOK_CONCURRENCY", 16, 1..=256)?,
            },
            client: ClientSettings {
                api_url: parse_url(
                    "IMGMETA_API_URL",
                    &env.string("IMGMETA_API_URL", "http://127.0.0.1:8080"),
                    &["http", "https"],
                )?
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
                key: env.optional("IMGMETA_KEY").map(SecretString::from),
            },
            log_format: match env.string("IMGMETA_LOG_FORMAT", "auto").as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                "auto" => LogFormat::Auto,
                other => {
                    return Err(ConfigError {
                        var: "IMGMETA_LOG_FORMAT",
                        reason: format!("expected \"auto\", \"text\" or \"json\", got {other:?}"),
                    });
                }
            },
        })
    }
}

fn parse_url(var: &'static str, raw: &str, schemes: &[&str]) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw).map_err(|e| ConfigError {
        var,
        reason: format!("not a URL: {e}"),
    })?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError {
            var,
            reason: format!("scheme must be one of {schemes:?}"),
        });
    }
    Ok(url)
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The trimmed value, `None` when unset or blank.
    fn optional(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn string(&self, var: &str, default: &str) -> String {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: &str,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.string(var, default)
            .parse()
            .map_err(|e: T::Err| ConfigError {
                var,
                reason: e.to_string(),
            })
    }

    fn parse_in<T>(
        &self,
        var: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value: T = self.parse(var, &default.to_string())?;
        if !range.contains(&value) {
            return Err(ConfigError {
                var,
                reason: format!("{value} is outside {}..={}", range.start(), range.end()),
            });
        }
        Ok(value)
    }

    fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self
            .string(var, if default { "true" } else { "false" })
            .to_ascii_lowercase()
            .as_str()
        {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            other => Err(ConfigError {
                var,
                reason: format!("expected true or false, got {other:?}"),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    /// Settings from exactly these variables (shared with the security settings' tests).
    pub(crate) fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn an_empty_environment_gives_localhost_defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert_eq!(s.database.url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(s.amqp_url.expose_secret(), DEFAULT_AMQP_URL);
        assert_eq!(s.queue_prefix, "imgmeta");
        assert_eq!(s.model_dir, PathBuf::from("models"));
        assert!(!s.fetch.allow_private);
        assert_eq!(s.legacy_wait, Duration::from_secs(30));
        assert_eq!(s.log_format, LogFormat::Auto);
        assert_eq!(s.webhooks.timeout, Duration::from_secs(10));
        assert_eq!(s.webhooks.retry_base, Duration::from_secs(5));
        assert_eq!(s.webhooks.retry_for, Duration::from_secs(86_400));
        assert_eq!(s.webhooks.secret_overlap, Duration::from_secs(86_400));
        assert_eq!(s.webhooks.concurrency, 16);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err = settings(&[("IMGMETA_HTTP_ADDR", "nowhere")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_HTTP_ADDR");
        let err = settings(&[("IMGMETA_WORKER_CONCURRENCY", "0")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_WORKER_CONCURRENCY");
        let err = settings(&[("IMGMETA_QUEUE", "bad name")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_QUEUE");
        let err = settings(&[("IMGMETA_AMQP_URL", "http://x")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_AMQP_URL");
        let err = settings(&[("IMGMETA_DEVICE", "tpu")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_DEVICE");
        let err = settings(&[("IMGMETA_IOU_THRESHOLD", "1.5")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_IOU_THRESHOLD");
        let err = settings(&[("IMGMETA_FETCH_ALLOW_PRIVATE", "maybe")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_FETCH_ALLOW_PRIVATE");
        let err = settings(&[("IMGMETA_WEBHOOK_TIMEOUT_MS", "0")]).unwrap_err();
        assert_eq!(err.var, "IMGMETA_WEBHOOK_TIMEOUT_MS");
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let s = settings(&[("IMGMETA_DATABASE_URL", "postgres://u:hunter2@db/x")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
