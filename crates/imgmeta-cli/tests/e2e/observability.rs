//! What operators see: `/metrics` on the API and on a worker's own port moves with the jobs.

use crate::helpers::TestApp;
use serde_json::json;

/// The value of one sample line (`name{labels} value`) in a Prometheus exposition.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_when_jobs_succeed_fail_and_are_refused() {
    let app = TestApp::spawn().await;
    let ok = app
        .submit_ok(json!({ "url": app.image_url("alpha.png"), "tasks": ["metadata"] }))
        .await;
    let bad = app
        .submit_ok(json!({ "url": app.image_url("page.html"), "tasks": ["metadata"] }))
        .await;
    assert_eq!(app.wait_terminal(&ok).await["status"], "succeeded");
    assert_eq!(app.wait_terminal(&bad).await["status"], "failed");
    let refused = app
        .submit(json!({ "url": "ftp://example.com/a.jpg" }))
        .await;
    assert_eq!(refused.status(), 400);

    let response = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();

    // Counters are process-wide and other tests run beside this one: at least ours.
    assert!(
        sample(&text, "imgmeta_jobs_submitted_total").unwrap() >= 2.0,
        "{text}"
    );
    assert!(sample(&text, "imgmeta_jobs_succeeded_total").unwrap() >= 1.0);
    assert!(sample(&text, "imgmeta_jobs_failed_total{code=\"not_an_image\"}").unwrap() >= 1.0);
    assert!(sample(&text, "imgmeta_request_errors_total{code=\"invalid_url\"}").unwrap() >= 1.0);
    assert!(
        sample(
            &text,
            "imgmeta_http_requests_total{route=\"/v1/jobs\",method=\"POST\",status=\"202\"}"
        )
        .unwrap()
            >= 2.0
    );
    for stage in ["fetch", "decode", "metadata", "store"] {
        let count = sample(
            &text,
            &format!("imgmeta_stage_duration_seconds_count{{stage=\"{stage}\"}}"),
        );
        assert!(count.unwrap_or(0.0) >= 1.0, "stage {stage} not timed");
    }
    assert!(sample(&text, "imgmeta_fetched_bytes_total").unwrap() > 0.0);
    assert!(text.contains(
        "imgmeta_http_request_duration_seconds_bucket{route=\"/v1/jobs/{id}\",method=\"GET\""
    ));
    assert!(text.contains("# TYPE imgmeta_jobs_in_flight gauge"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_metrics_on_its_own_port() {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let addr = imgmeta_cli::serve::start_metrics("127.0.0.1:0".parse().unwrap(), shutdown.clone())
        .await
        .unwrap();
    metrics::counter!(imgmeta_telemetry::JOBS_RETRIED, "code" => "timeout").increment(1);
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        sample(&text, "imgmeta_jobs_retried_total{code=\"timeout\"}").unwrap() >= 1.0,
        "{text}"
    );
    shutdown.cancel();
}
