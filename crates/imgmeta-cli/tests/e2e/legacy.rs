//! `POST /img?<url>`: the old service's interface.

use crate::helpers::TestApp;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_img_answers_with_the_finished_job_and_its_result() {
    let app = TestApp::spawn().await;
    let target = app.photo_url("chelsea.png");
    let encoded: String = target
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();

    let response = app
        .client
        .post(format!("{}/img?{encoded}", app.base))
        .send()
        .await
        .unwrap();

    // Objects are part of the legacy default; until a detector is configured that task fails
    // cleanly, and either way the answer is a finished job.
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["url"], target);
    assert!(
        matches!(job["status"].as_str(), Some("succeeded" | "failed")),
        "{job:#}"
    );
    assert_eq!(job["tasks"], serde_json::json!(["metadata", "objects"]));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_img_without_a_url_is_a_clear_error() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(format!("{}/img", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_url");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_img_honours_idempotency_keys_and_takes_unencoded_urls_with_their_own_query() {
    let app = TestApp::spawn().await;
    // Sent unencoded, as old clients do: everything after the first `?` is the image URL,
    // its own `&` included.
    let target = format!("{}?size=small&v=2", app.image_url("alpha.png"));
    let call = || {
        app.client
            .post(format!("{}/img?{target}", app.base))
            .header("Idempotency-Key", "legacy-1")
            .send()
    };

    let first = call().await.unwrap();
    let second = call().await.unwrap();

    assert!(first.headers().get("idempotent-replayed").is_none());
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let (first, second): (Value, Value) =
        (first.json().await.unwrap(), second.json().await.unwrap());
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["url"], target.as_str());
    app.cleanup().await;
}
