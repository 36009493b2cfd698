//! Logs as operators get them: the real `imgmeta` binary with `IMGMETA_LOG_FORMAT=json`.

use crate::helpers::spawn_image_server;
use serde_json::{Value, json};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_and_carry_kind_and_the_job_id_from_api_to_worker() {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (db, queue) = (format!("imgmeta_test_{suffix}"), format!("test-{suffix}"));
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let status = Command::new(env!("CARGO_BIN_EXE_imgmeta"))
        .arg("migrate")
        .env(
            "IMGMETA_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{db}"),
        )
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let images = spawn_image_server().await;
    let mut api = imgmeta(&db, &queue, port, "api", &[]);
    let mut worker = imgmeta(&db, &queue, 0, "worker", &[]);
    let (api_log, worker_log) = (collect(&mut api), collect(&mut worker));

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the api never came up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ids = Vec::new();
    for name in ["alpha.png", "page.html"] {
        let response = client
            .post(format!("{base}/v1/jobs"))
            .json(
                &json!({ "url": format!("http://{images}/images/{name}"), "tasks": ["metadata"] }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let job: Value = response.json().await.unwrap();
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        loop {
            let job: Value = client
                .get(format!("{base}/v1/jobs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if matches!(job["status"].as_str(), Some("succeeded" | "failed")) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} never finished"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // SIGTERM: both stop gracefully and close their logs.
    for child in [&api, &worker] {
        let pid = child.id().unwrap().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), api.wait()).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), worker.wait()).await;
    let api_lines = api_log.await.unwrap();
    let worker_lines = worker_log.await.unwrap();

    let parse = |lines: &[String]| -> Vec<Value> {
        lines
            .iter()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    };
    let (api_events, worker_events) = (parse(&api_lines), parse(&worker_lines));
    let mentions = |e: &Value, id: &str| {
        e["job.id"] == id
            || e["span"]["job.id"] == id
            || e.get("spans").is_some_and(|s| s.to_string().contains(id))
    };
    let kinds = |events: &[Value], kind: &str, event: &str, id: &str| {
        events
            .iter()
            .any(|e| e["kind"] == kind && e["event"] == event && mentions(e, id))
    };
    assert!(
        kinds(&api_events, "analytics", "job_submitted", &ids[0]),
        "{api_lines:#?}"
    );
    assert!(
        kinds(&worker_events, "analytics", "job_succeeded", &ids[0]),
        "{worker_lines:#?}"
    );
    assert!(
        kinds(&worker_events, "analytics", "job_failed", &ids[1]),
        "{worker_lines:#?}"
    );
    // Every worker line about a job names it.
    let about_jobs: Vec<&Value> = worker_events
        .iter()
        .filter(|e| ids.iter().any(|id| e.to_string().contains(id.as_str())))
        .collect();
    assert!(about_jobs.len() >= 4);
    assert!(
        about_jobs
            .iter()
            .all(|e| ids.iter().any(|id| mentions(e, id)))
    );
    // Loud warnings for the development settings.
    assert!(
        worker_lines
            .iter()
            .any(|l| l.contains("IMGMETA_FETCH_ALLOW_PRIVATE"))
    );

    if let Ok(pool) = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
        )))
        .execute(&pool)
        .await;
    }
}
