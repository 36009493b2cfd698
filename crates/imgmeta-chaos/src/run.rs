//! One isolated run: a fresh database and queue prefix, the image server, the API, supervised
//! workers, the ledger, the watcher that snapshots the jobs table, and the final verdict.

use crate::checker::{Counts, Expect, Row, Snapshots, evaluate};
use crate::client::{Client, Ledger};
use crate::images::ImageServer;
use crate::procs::{Api, ProcConfig, Workers, free_port};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep};
use uuid::Uuid;

/// Settings of one run that differ between scenarios.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub workspace: PathBuf,
    pub binary: PathBuf,
    pub name: String,
    /// Extra environment per worker slot (its length is the number of workers).
    pub workers: Vec<BTreeMap<String, String>>,
    /// Environment for the API and every worker, on top of the run's defaults.
    pub env: BTreeMap<String, String>,
    pub watch_every: Duration,
}

pub struct Run {
    pub name: String,
    pub db_name: String,
    pub prefix: String,
    pub images: Arc<ImageServer>,
    pub api: Option<Api>,
    pub workers: Workers,
    pub client: Client,
    /// With `IMGMETA_AUTH=enabled`: the checker's own key, and a second key of another account
    /// for scenarios that play a hostile client.
    pub keys: Vec<String>,
    pub ledger: Ledger,
    pub log_dir: PathBuf,
    /// What the run's processes share, to run the binary's commands against the same
    /// database (more keys for a benchmark).
    pub procs: ProcConfig,
    /// Notes about the environment, made before the run started.
    preface: Vec<String>,
    pool: PgPool,
    snapshots: Arc<tokio::sync::Mutex<Snapshots>>,
    watcher: tokio::task::JoinHandle<()>,
}

/// The one-line JSON a scenario prints.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub pass: bool,
    #[serde(flatten)]
    pub counts: Counts,
    pub deadline_s: f64,
    pub worker_restarts: u32,
    pub notes: Vec<String>,
    /// Attempts of every job at the end, for scenarios that check their target was interrupted.
    #[serde(skip)]
    pub attempts: std::collections::HashMap<Uuid, i32>,
}

fn small_png(workspace: &std::path::Path) -> Result<bytes::Bytes> {
    let path = workspace.join("fixtures/images/alpha.png");
    Ok(std::fs::read(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .into())
}

fn photo_png(workspace: &std::path::Path) -> Result<bytes::Bytes> {
    let path = workspace.join("crates/imgmeta-vision/tests/fixtures/motorcycle.png");
    Ok(std::fs::read(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .into())
}

/// A key (in an account of its own) with limits no scenario reaches, made with the binary's
/// own `imgmeta keys create`.
pub(crate) async fn create_key(procs: &ProcConfig, name: &str) -> Result<String> {
    let created = crate::procs::json_output(
        tokio::process::Command::new(&procs.binary)
            .args([
                "keys",
                "create",
                "--name",
                name,
                "--rate-per-minute",
                "1000000",
                "--daily-quota",
                "1000000000",
            ])
            .envs(&procs.env),
        "imgmeta keys create",
    )
    .await?;
    created["key"]
        .as_str()
        .map(str::to_owned)
        .context("imgmeta keys create printed no key")
}

impl Run {
    pub async fn start(config: RunConfig) -> Result<Self> {
        let repaired = crate::services::repair_degraded_broker().await;
        let suffix = Uuid::new_v4().simple().to_string()[..12].to_owned();
        let db_name = format!("imgmeta_chaos_{suffix}");
        let prefix = format!("chaos-{suffix}");
        let log_dir = std::env::temp_dir()
            .join("imgmeta-chaos")
            .join(format!("{}-{suffix}", config.name));
        std::fs::create_dir_all(&log_dir)?;
        let database_url = format!("postgres://postgres@127.0.0.1:5432/{db_name}");

        let mut env = BTreeMap::new();
        for (k, v) in [
            ("IMGMETA_DATABASE_URL", database_url.as_str()),
            ("IMGMETA_QUEUE", prefix.as_str()),
            ("IMGMETA_FETCH_ALLOW_PRIVATE", "true"),
            ("IMGMETA_LEASE_SECS", "5"),
            ("IMGMETA_SHUTDOWN_GRACE_SECS", "5"),
            ("IMGMETA_WORKER_CONCURRENCY", "2"),
            ("IMGMETA_LOG_FORMAT", "json"),
            ("IMGMETA_INFERENCE_THREADS", "1"),
            // The harness tests delivery, not authentication or per-key rate limits; every job
            // names the same loopback host, which the per-host fetch limit would throttle.
            ("IMGMETA_AUTH", "disabled"),
            ("IMGMETA_HOST_FETCH_RATE_PER_SECOND", "0"),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        env.insert(
            "IMGMETA_MODEL_DIR".to_owned(),
            config.workspace.join("models").display().to_string(),
        );
        env.extend(config.env.clone());
        let procs = ProcConfig {
            binary: config.binary.clone(),
            log_dir: log_dir.clone(),
            env,
        };
        if !procs.binary.exists() {
            bail!(
                "{} is missing: run `cargo build --bin imgmeta` first",
                procs.binary.display()
            );
        }

        let migrate = tokio::process::Command::new(&procs.binary)
            .arg("migrate")
            .envs(&procs.env)
            .output()
            .await
            .context("running imgmeta migrate")?;
        if !migrate.status.success() {
            bail!(
                "imgmeta migrate failed: {}",
                String::from_utf8_lossy(&migrate.stderr)
            );
        }
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&database_url)
            .await
            .context("connecting the checker to the run's database")?;

        let keys = if procs.env.get("IMGMETA_AUTH").map(String::as_str) == Some("enabled") {
            vec![
                create_key(&procs, "chaos checker").await?,
                create_key(&procs, "chaos flooder").await?,
            ]
        } else {
            Vec::new()
        };
        let images =
            ImageServer::start(small_png(&config.workspace)?, photo_png(&config.workspace)?)
                .await?;
        let images = Arc::new(images);
        let addr = format!("127.0.0.1:{}", free_port()?);
        let api = Api::start(&procs, &addr).await?;
        let workers = Workers::start(&procs, config.workers.clone())?;
        let client = Client::new(&api.base, keys.first().map(String::as_str));

        let snapshots: Arc<tokio::sync::Mutex<Snapshots>> = Arc::default();
        let watcher = {
            let (pool, snapshots) = (pool.clone(), snapshots.clone());
            let every = config.watch_every;
            tokio::spawn(async move {
                loop {
                    // While PostgreSQL is down the poll fails; the next one catches up.
                    let _ = poll(&pool, &snapshots).await;
                    sleep(every).await;
                }
            })
        };

        Ok(Self {
            name: config.name,
            db_name,
            prefix,
            images,
            api: Some(api),
            workers,
            client,
            keys,
            ledger: Ledger::default(),
            log_dir,
            procs,
            preface: repaired.into_iter().collect(),
            pool,
            snapshots,
            watcher,
        })
    }

    /// The API's base URL (`http://127.0.0.1:PORT`).
    /// The run's own database, for checks beside the checker's.
    pub fn database_url(&self) -> Result<String> {
        self.procs
            .env
            .get("IMGMETA_DATABASE_URL")
            .cloned()
            .context("the run's database URL")
    }

    pub fn client_base(&self) -> String {
        self.api
            .as_ref()
            .map(|a| a.base.clone())
            .unwrap_or_default()
    }

    /// Submits one job and records it in the ledger.
    pub async fn submit(
        &self,
        url: String,
        tasks: &[&str],
        expect: Expect,
    ) -> crate::checker::Answer {
        self.ledger.submit(&self.client, url, tasks, expect).await.0
    }

    /// Submits `count` metadata jobs for distinct ok images, one every `every`, in the
    /// background; the handle resolves when the last one has been answered.
    pub fn feed(&self, tag: &str, count: usize, every: Duration) -> tokio::task::JoinHandle<()> {
        let (ledger, client) = (self.ledger.clone(), self.client.clone());
        let urls: Vec<String> = (0..count)
            .map(|i| self.images.ok_url(&format!("{tag}-{i}")))
            .collect();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut inflight = tokio::task::JoinSet::new();
            for url in urls {
                tick.tick().await;
                let (ledger, client) = (ledger.clone(), client.clone());
                // Each submission on its own task: a slow answer during an outage must not
                // slow the arrival rate (clients do not wait for each other).
                inflight.spawn(async move {
                    ledger
                        .submit(&client, url, &["metadata"], Expect::Succeed)
                        .await;
                });
            }
            while inflight.join_next().await.is_some() {}
        })
    }

    /// The worker that holds (or last held) job `id`, read now rather than from the last poll.
    pub async fn worker_of(&self, id: Uuid) -> Option<String> {
        sqlx::query("select worker_id from jobs where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .ok()
            .flatten()
            .and_then(|r| r.try_get::<Option<String>, _>("worker_id").ok().flatten())
    }

    /// How many runs job `id` has had, read now.
    pub async fn attempts_of(&self, id: Uuid) -> Option<i32> {
        sqlx::query_scalar("select attempts from jobs where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .ok()
            .flatten()
    }

    /// Waits until every accepted job is terminal or `deadline` has passed, then keeps
    /// watching for `settle` (a second write shows up as a changed snapshot), and judges.
    pub async fn finish(self, deadline: Duration, settle: Duration) -> Summary {
        let started = Instant::now();
        let ids = self.ledger.accepted_ids();
        loop {
            if let Ok(rows) = poll(&self.pool, &self.snapshots).await {
                let terminal = rows.iter().filter(|r| r.is_terminal()).map(|r| r.id);
                let terminal: std::collections::HashSet<Uuid> = terminal.collect();
                if ids.iter().all(|id| terminal.contains(id)) {
                    break;
                }
            }
            if started.elapsed() >= deadline {
                break;
            }
            sleep(Duration::from_millis(250)).await;
        }
        sleep(settle).await;
        self.watcher.abort();
        let rows = loop {
            match poll(&self.pool, &self.snapshots).await {
                Ok(rows) => break rows,
                Err(e) if started.elapsed() < deadline + settle + Duration::from_secs(30) => {
                    eprintln!("chaos: reading the jobs table failed ({e}); retrying");
                    sleep(Duration::from_secs(1)).await;
                }
                Err(_) => break Vec::new(),
            }
        };
        let snapshots = std::mem::take(&mut *self.snapshots.lock().await);
        let (counts, found) = evaluate(&self.ledger.submissions(), &rows, &snapshots, 8);
        let pass = counts.clean();
        let mut notes = self.preface.clone();
        if let Ok(false) = crate::services::rabbit_dlx_supervisor_alive().await {
            // Not the service's doing: say so, so that a failure is read for what it is.
            notes.push(
                "RabbitMQ's rabbit_fifo_dlx_sup died during this run: the run's quorum queue \
                 may have had no leader (consumers get INTERNAL_ERROR)"
                    .into(),
            );
        }
        notes.extend(found);
        notes.push(format!("process logs: {}", self.log_dir.display()));
        let summary = Summary {
            scenario: self.name.clone(),
            pass,
            counts,
            deadline_s: deadline.as_secs_f64(),
            worker_restarts: self.workers.restarts(),
            notes,
            attempts: rows.iter().map(|r| (r.id, r.attempts)).collect(),
        };
        self.teardown(pass).await;
        summary
    }

    async fn teardown(mut self, drop_data: bool) {
        self.workers.clone().stop().await;
        if let Some(api) = self.api.take() {
            api.stop().await;
        }
        self.pool.close().await;
        if drop_data {
            // A passing run leaves only its process logs (in /tmp) behind; a failing one also
            // keeps its database and queues for whoever investigates.
            let _ = crate::services::drop_run_data(&self.db_name, &self.prefix).await;
        }
    }
}

/// Reads the jobs table and feeds the snapshots, holding the lock across both: a slow read
/// that started earlier must not be observed after a newer one (it would look like a terminal
/// job going back to `queued`).
async fn poll(
    pool: &PgPool,
    snapshots: &tokio::sync::Mutex<Snapshots>,
) -> Result<Vec<Row>, sqlx::Error> {
    let mut snapshots = snapshots.lock().await;
    let rows = read_rows(pool).await?;
    snapshots.observe(&rows);
    Ok(rows)
}

async fn read_rows(pool: &PgPool) -> Result<Vec<Row>, sqlx::Error> {
    let rows = sqlx::query(
        // An uploaded image's job has no url: it is known by its input's digest.
        "select id, coalesce(url, 'upload:' || input_sha256) as url, status, error_code, \
         attempts, created_at, finished_at, md5(result::text) as result_md5 from jobs",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Row {
                id: r.try_get("id")?,
                url: r.try_get("url")?,
                status: r.try_get("status")?,
                error_code: r.try_get("error_code")?,
                attempts: r.try_get("attempts")?,
                created_at: r.try_get("created_at")?,
                finished_at: r.try_get("finished_at")?,
                result_md5: r.try_get("result_md5")?,
            })
        })
        .collect()
}
