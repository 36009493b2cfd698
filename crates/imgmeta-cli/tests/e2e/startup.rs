//! Processes that start before the database is ready say so: `imgmeta api` on a database that
//! does not exist, or exists without its schema, answers `/readyz` 503 naming the fix and
//! refuses submissions with `503 service_unavailable`, never `500`; once migrated, it serves.

use crate::processes::{clean_up, free_port, imgmeta, readiness, terminate, wait_until_up};
use serde_json::{Value, json};
use std::time::Duration;

async fn submission(client: &reqwest::Client, base: &str) -> (u16, Value) {
    let response = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({ "url": "http://127.0.0.1:9/a.png", "tasks": ["metadata"] }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_on_a_missing_or_unmigrated_database_says_so_and_never_answers_500() {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (db, queue) = (format!("imgmeta_test_{suffix}"), format!("test-{suffix}"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    // The database does not exist yet.
    let mut api = imgmeta(&db, &queue, port, "api", &[]);
    wait_until_up(&base).await;
    let (status, body) = readiness(&base).await;
    assert_eq!(status, 503, "{body}");
    let detail = body["checks"]["database"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("imgmeta migrate"), "{body}");
    let (status, body) = submission(&client, &base).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("service_unavailable")),
        "{body}"
    );

    // It exists, but empty.
    let admin = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
        .execute(&admin)
        .await
        .unwrap();
    let (status, body) = readiness(&base).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["checks"]["database"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no migrations applied"),
        "{body}"
    );
    let (status, body) = submission(&client, &base).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("service_unavailable")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("imgmeta migrate"),
        "{body}"
    );

    // Migrated: the same process serves.
    let migrated = tokio::process::Command::new(env!("CARGO_BIN_EXE_imgmeta"))
        .arg("migrate")
        .env(
            "IMGMETA_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{db}"),
        )
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(migrated.success());
    let (status, body) = readiness(&base).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = submission(&client, &base).await;
    assert_eq!(status, 202, "{body}");
    terminate(&mut api, Duration::from_secs(30)).await;
    admin.close().await;
    clean_up(&db, &queue).await;
}
