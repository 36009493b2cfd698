//! Bad requests get a status, a stable code and a message, and leave nothing behind.

use crate::helpers::TestApp;
use serde_json::{Value, json};

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error bodies are JSON");
    let error = &body["error"];
    (
        status,
        error["code"].as_str().expect("error.code").to_owned(),
        error["message"].as_str().expect("error.message").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_submissions_are_rejected_with_documented_codes() {
    let app = TestApp::spawn_with(crate::helpers::Options {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let long_url = format!("http://example.com/{}", "a".repeat(2048));
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({}), 400, "invalid_url"),
        (json!({ "url": "not a url" }), 400, "invalid_url"),
        (
            json!({ "url": "ftp://example.com/a.jpg" }),
            400,
            "invalid_url",
        ),
        (json!({ "url": "file:///etc/passwd" }), 400, "invalid_url"),
        (json!({ "url": long_url }), 400, "invalid_url"),
        (
            json!({ "url": "http://u:p@example.com/a.jpg" }),
            400,
            "invalid_url",
        ),
        (
            json!({ "url": "http://example.com/a.jpg", "tasks": ["faces"] }),
            400,
            "invalid_task",
        ),
        (
            json!({ "url": "http://example.com/a.jpg", "tasks": [] }),
            400,
            "invalid_task",
        ),
        (
            json!({ "url": "http://example.com/a.jpg", "min_score": 1.5 }),
            400,
            "invalid_min_score",
        ),
        (
            json!({ "url": "http://example.com/a.jpg", "min_score": -0.1 }),
            400,
            "invalid_min_score",
        ),
        (
            json!({ "url": "http://example.com/a.jpg", "min_score": "high" }),
            400,
            "invalid_json",
        ),
        (
            json!({ "url": "http://example.com/a.jpg", "colour": true }),
            400,
            "invalid_json",
        ),
        (json!(["http://example.com/a.jpg"]), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let got = error_of(app.submit(body.clone()).await).await;
        assert_eq!((got.0, got.1.as_str()), (status, code), "{body}");
        assert!(!got.2.is_empty());
    }

    let not_json = app
        .client
        .post(format!("{}/v1/jobs", app.base))
        .header("content-type", "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(not_json).await.1, "invalid_json");

    let wrong_type = app
        .client
        .post(format!("{}/v1/jobs", app.base))
        .header("content-type", "text/plain")
        .body("http://example.com/a.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(wrong_type).await.0, 415);

    let huge = format!(
        "{{\"url\": \"http://example.com/{}\"}}",
        "a".repeat(70 * 1024)
    );
    let too_large = app
        .client
        .post(format!("{}/v1/jobs", app.base))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(too_large).await,
        (
            413,
            "payload_too_large".into(),
            "request body exceeds 65536 bytes".into()
        )
    );

    // Nothing was queued by any of these.
    assert_eq!(app.ready_messages().await, 0);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_lookups_distinguish_malformed_and_unknown_ids() {
    let app = TestApp::spawn_with(crate::helpers::Options {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let (status, code, _) = error_of(app.get_job("not-a-uuid").await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_job_id"));
    let (status, code, _) = error_of(app.get_job(&uuid::Uuid::now_v7().to_string()).await).await;
    assert_eq!((status, code.as_str()), (404, "job_not_found"));
    let (status, code, _) = error_of(
        app.client
            .get(format!("{}/v2/nothing", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "route_not_found"));
    let (status, code, _) = error_of(
        app.client
            .delete(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
    app.cleanup().await;
}
