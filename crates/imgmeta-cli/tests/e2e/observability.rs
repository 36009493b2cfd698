//! What operators see: `/metrics` on the API and on a worker's own port moves with the jobs.

use crate::helpers::{Options, TestApp};
use serde_json::json;

/// The value of one sample line (`name{labels} value`) in a Prometheus exposition.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The first expected sample that `text` lacks. Counters are process-wide and other tests run
/// beside this one: each must show at least this test's own events.
fn missing(text: &str) -> Option<String> {
    let at_least = |name: &str, n: f64| sample(text, name).is_some_and(|v| v >= n);
    let mut checks: Vec<(String, bool)> = vec![
        ("jobs submitted".into(), at_least("imgmeta_jobs_submitted_total", 2.0)),
        ("jobs succeeded".into(), at_least("imgmeta_jobs_succeeded_total", 1.0)),
        (
            "jobs failed as not_an_image".into(),
            at_least("imgmeta_jobs_failed_total{code=\"not_an_image\"}", 1.0),
        ),
        (
            "requests refused as invalid_url".into(),
            at_least("imgmeta_request_errors_total{code=\"invalid_url\"}", 1.0),
        ),
        (
            "POST /v1/jobs 202 answers".into(),
            at_least(
                "imgmeta_http_requests_total{route=\"/v1/jobs\",method=\"POST\",status=\"202\"}",
                2.0,
            ),
        ),
        ("bytes fetched".into(), at_least("imgmeta_fetched_bytes_total", 1.0)),
        (
            "GET /v1/jobs/{id} latency histogram".into(),
            text.contains(
                "imgmeta_http_request_duration_seconds_bucket{route=\"/v1/jobs/{id}\",method=\"GET\"",
            ),
        ),
        (
            "jobs in flight gauge".into(),
            text.contains("# TYPE imgmeta_jobs_in_flight gauge"),
        ),
    ];
    for stage in ["fetch", "decode", "metadata", "store"] {
        checks.push((
            format!("stage {stage} timing"),
            at_least(
                &format!("imgmeta_stage_duration_seconds_count{{stage=\"{stage}\"}}"),
                1.0,
            ),
        ));
    }
    checks.into_iter().find(|(_, ok)| !ok).map(|(what, _)| what)
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

    let scrape = || async {
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
        response.text().await.unwrap()
    };
    // The worker counts a job just after committing its result, so a scrape right after the
    // job turned terminal may precede the count: scrape until everything shows, or 15 s.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let text = scrape().await;
        match missing(&text) {
            None => break,
            Some(what) if tokio::time::Instant::now() >= deadline => {
                panic!("{what} never showed in /metrics:\n{text}")
            }
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_metrics_and_readiness_on_its_own_port() {
    let app = TestApp::spawn_with(Options {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let mut settings = app.settings.clone();
    settings.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let store = imgmeta_store::Store::connect_lazy(&settings.database.url, 2).unwrap();
    let addr = imgmeta_cli::serve::serve_own_port(&settings, store, shutdown.clone())
        .await
        .unwrap()
        .expect("IMGMETA_METRICS_ADDR is set");
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");
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
    app.cleanup().await;
}
