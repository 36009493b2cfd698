//! Running the real `imgmeta` binaries as child processes, for the tests that read what a
//! process writes (its logs, its exported traces): a database and queue of the test's own,
//! the process with its environment, its stderr collected, a SIGTERM, and the clean-up.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The real binary in `role`, on `db` and `queue`, with JSON logs on a pipe and `env` on top.
pub(crate) fn imgmeta(
    db: &str,
    queue: &str,
    port: u16,
    role: &str,
    env: &[(&str, String)],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_imgmeta"))
        .arg(role)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IMGMETA_LOG_FORMAT", "json")
        .env(
            "IMGMETA_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{db}"),
        )
        .env("IMGMETA_QUEUE", queue)
        .env("IMGMETA_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("IMGMETA_FETCH_ALLOW_PRIVATE", "true")
        .env("IMGMETA_AUTH", "disabled")
        .env("IMGMETA_MODEL_DIR", crate::helpers::model_dir())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the imgmeta binary")
}

/// Runs the real `imgmeta ARGS` to completion against the database of `settings` (the CLI's
/// administrative commands), with quiet logs.
pub(crate) fn run_cli(settings: &imgmeta_config::Settings, args: &[&str]) -> std::process::Output {
    use secrecy::ExposeSecret;
    std::process::Command::new(env!("CARGO_BIN_EXE_imgmeta"))
        .args(args)
        .env(
            "IMGMETA_DATABASE_URL",
            settings.database.url.expose_secret(),
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("running imgmeta")
}

/// Collects a child's stderr lines in the background.
pub(crate) fn collect(child: &mut Child) -> tokio::task::JoinHandle<Vec<String>> {
    let stderr = child.stderr.take().unwrap();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut out = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            out.push(line);
        }
        out
    })
}

/// A fresh, migrated database and a queue prefix of the test's own.
pub(crate) async fn fresh_database() -> (String, String) {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (db, queue) = (format!("imgmeta_test_{suffix}"), format!("test-{suffix}"));
    let status = Command::new(env!("CARGO_BIN_EXE_imgmeta"))
        .arg("migrate")
        .env_clear()
        .env(
            "IMGMETA_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{db}"),
        )
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "migrating {db}");
    (db, queue)
}

/// Removes what a test made: its database and its queues.
pub(crate) async fn clean_up(db: &str, queue: &str) {
    let publisher = imgmeta_queue::Publisher::new(
        &imgmeta_queue::Broker::new(imgmeta_config::DEFAULT_AMQP_URL.to_owned().into()),
        imgmeta_queue::Topology::new(queue),
    );
    if let Ok(publisher) = publisher {
        let _ = publisher.delete_topology().await;
    }

    if let Ok(pool) = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
        )))
        .execute(&pool)
        .await;
    }
}

pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `GET {base}/readyz`: its status and JSON body.
pub(crate) async fn readiness(base: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{base}/readyz")).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

pub(crate) async fn wait_until_up(base: &str) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the api never came up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM, then how long the process took to exit and whether it exited cleanly (`None` if
/// it was still running after `limit`).
pub(crate) async fn terminate(child: &mut Child, limit: Duration) -> Option<(Duration, bool)> {
    let pid = child.id().unwrap().to_string();
    let started = tokio::time::Instant::now();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => Some((started.elapsed(), status.unwrap().success())),
        Err(_) => None,
    }
}

/// Polls `GET /v1/jobs/{id}` until the job has succeeded or failed; fails the test at
/// `deadline`.
pub(crate) async fn wait_terminal(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    deadline: tokio::time::Instant,
) -> serde_json::Value {
    loop {
        let job: serde_json::Value = client
            .get(format!("{base}/v1/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if matches!(job["status"].as_str(), Some("succeeded" | "failed")) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
