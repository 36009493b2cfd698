//! Submit → queue → worker → store → poll, for successes and failures.

use crate::helpers::{TestApp, fixtures_dir};
use serde_json::{Value, json};
use std::time::Duration;

fn expected(name: &str) -> Value {
    let path = fixtures_dir().join(format!("{name}.expected.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jpeg_with_exif_succeeds_with_its_dimensions_format_and_exif() {
    let app = TestApp::spawn().await;
    let name = "camera_orientation6.jpg";

    let response = app
        .submit(json!({ "url": app.image_url(name), "tasks": ["metadata"] }))
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let submitted: Value = response.json().await.unwrap();
    let id = submitted["id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(submitted["status"], "queued");
    assert_eq!(submitted["tasks"], json!(["metadata"]));
    let job = app.wait_terminal(id).await;

    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(job["attempts"], 1);
    assert!(job["error"].is_null());
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());
    let image = &job["result"]["image"];
    let want = expected(name);
    for key in [
        "width",
        "height",
        "oriented_width",
        "oriented_height",
        "mime",
        "sha256",
        "frames",
    ] {
        assert_eq!(image[key], want[key], "{key}");
    }
    assert_eq!(image["format"], "jpeg");
    assert_eq!(
        image["bytes"],
        std::fs::metadata(fixtures_dir().join(name)).unwrap().len()
    );
    let (exif, want_exif) = (&image["exif"], &want["exif"]);
    for key in [
        "make",
        "model",
        "lens",
        "orientation",
        "iso",
        "datetime_original",
    ] {
        assert_eq!(exif[key], want_exif[key], "exif.{key}");
    }
    for key in ["exposure_time_s", "f_number", "focal_length_mm"] {
        let (got, want) = (
            exif[key].as_f64().unwrap(),
            want_exif[key].as_f64().unwrap(),
        );
        assert!((got - want).abs() < 1e-6, "exif.{key}: {got} vs {want}");
    }
    for key in ["latitude", "longitude", "altitude_m"] {
        let (got, want) = (
            exif["gps"][key].as_f64().unwrap(),
            want_exif["gps"][key].as_f64().unwrap(),
        );
        assert!((got - want).abs() < 5e-5, "gps.{key}: {got} vs {want}");
    }
    assert_eq!(image["phash"].as_str().unwrap().len(), 16);
    assert!(
        job["result"]["objects"].is_null(),
        "objects were not asked for"
    );
    let timings = &job["result"]["timings_ms"];
    assert!(
        timings["fetch"].as_f64().unwrap() >= 0.0 && timings["decode"].as_f64().unwrap() >= 0.0
    );
    assert!(timings["metadata"].as_f64().is_some());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_gif_webp_bmp_and_tiff_are_decoded() {
    let app = TestApp::spawn().await;
    let cases = [
        ("alpha.png", "png"),
        ("animated.gif", "gif"),
        ("animated.webp", "webp"),
        ("plain.bmp", "bmp"),
        ("plain.tiff", "tiff"),
    ];
    let mut ids = Vec::new();
    for (name, _) in cases {
        ids.push(
            app.submit_ok(json!({ "url": app.image_url(name), "tasks": ["metadata"] }))
                .await,
        );
    }
    for ((name, format), id) in cases.iter().zip(ids) {
        let job = app.wait_terminal(&id).await;
        assert_eq!(job["status"], "succeeded", "{name}: {job:#}");
        let image = &job["result"]["image"];
        let want = expected(name);
        assert_eq!(image["format"], *format, "{name}");
        assert_eq!(image["width"], want["width"], "{name}");
        assert_eq!(image["height"], want["height"], "{name}");
        assert_eq!(image["frames"], want["frames"], "{name}");
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_url_fails_with_fetch_failed() {
    let app = TestApp::spawn().await;
    // Nothing listens on port 1 of loopback: the connection is refused.
    let id = app
        .submit_ok(json!({ "url": "http://127.0.0.1:1/x.jpg", "tasks": ["metadata"] }))
        .await;
    let job = app.wait_terminal(&id).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "fetch_failed", "{job:#}");
    assert!(job["result"].is_null());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_image_fails_with_not_an_image_and_a_missing_one_with_http_status() {
    let app = TestApp::spawn().await;
    let html = app
        .submit_ok(json!({ "url": app.image_url("page.html"), "tasks": ["metadata"] }))
        .await;
    let truncated = app
        .submit_ok(json!({ "url": app.image_url("truncated.jpg"), "tasks": ["metadata"] }))
        .await;
    let gone = app
        .submit_ok(json!({ "url": format!("{}/gone", app.images), "tasks": ["metadata"] }))
        .await;
    let bomb = app
        .submit_ok(json!({ "url": app.image_url("bomb_100000x100000.png"), "tasks": ["metadata"] }))
        .await;

    let cases = [
        (html, "not_an_image"),
        (truncated, "decode_failed"),
        (gone, "http_status"),
        (bomb, "image_too_large"),
    ];
    for (id, code) in cases {
        let job = app.wait_terminal(&id).await;
        assert_eq!(job["status"], "failed");
        assert_eq!(job["error"]["code"], code, "{job:#}");
        assert!(!job["error"]["message"].as_str().unwrap().is_empty());
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_delivered_twice_runs_the_job_once() {
    let mut app = TestApp::spawn_with(crate::helpers::Options {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let id = app
        .submit_ok(json!({ "url": app.image_url("alpha.png"), "tasks": ["metadata"] }))
        .await;
    app.publish_duplicate(&id).await;
    app.publish_duplicate(&id).await;
    // The relay publishes the original message from the outbox shortly after the commit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.ready_messages().await < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never published the job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.ready_messages().await, 3);

    app.start_worker();
    let job = app.wait_terminal(&id).await;
    // Wait until the broker has handed out every copy, then stop the worker, which waits for
    // the copies it holds to be settled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.ready_messages().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "duplicates never consumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop_worker().await;

    let after: Value = app.get_job(&id).await.json().await.unwrap();
    assert_eq!(after["status"], "succeeded");
    assert_eq!(
        after["attempts"], 1,
        "the job ran more than once: {after:#}"
    );
    assert_eq!(after["finished_at"], job["finished_at"]);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_the_broker() {
    let app = TestApp::spawn().await;
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert!(
        body["warnings"][0]
            .as_str()
            .unwrap()
            .contains("IMGMETA_FETCH_ALLOW_PRIVATE")
    );
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    app.cleanup().await;

    // A broker nobody listens for: the API still starts, but is not ready. (Submissions are
    // still accepted into the outbox: see the reliability tests.)
    let app = TestApp::spawn_with(crate::helpers::Options {
        start_worker: false,
        amqp_url: Some("amqp://guest:guest@127.0.0.1:1/%2f".into()),
        ..Default::default()
    })
    .await;
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["ok"], true);
    assert_eq!(body["checks"]["broker"]["ok"], false);
    app.cleanup().await;
}

fn iou(a: &Value, b: &Value) -> f64 {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
    let ix = (f(a, "x_max").min(f(b, "x_max")) - f(a, "x_min").max(f(b, "x_min"))).max(0.0);
    let iy = (f(a, "y_max").min(f(b, "y_max")) - f(a, "y_min").max(f(b, "y_min"))).max(0.0);
    let area = |v: &Value| (f(v, "x_max") - f(v, "x_min")) * (f(v, "y_max") - f(v, "y_min"));
    let inter = ix * iy;
    inter / (area(a) + area(b) - inter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_objects_task_returns_the_reference_runtimes_boxes() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for name in ["chelsea", "motorcycle"] {
        let url = app.photo_url(&format!("{name}.png"));
        ids.push((
            name,
            app.submit_ok(json!({ "url": url, "tasks": ["objects"], "min_score": 0.25 }))
                .await,
        ));
    }
    for (name, id) in ids {
        let job = app.wait_terminal(&id).await;
        assert_eq!(job["status"], "succeeded", "{job:#}");
        assert!(
            job["result"]["image"].is_null(),
            "metadata was not asked for"
        );
        let objects = &job["result"]["objects"];
        assert_eq!(objects["model"]["name"], "yolov12n");
        assert_eq!(objects["model"]["input_size"], 640);
        let golden: Value = serde_json::from_slice(
            &std::fs::read(crate::helpers::photos_dir().join(format!("{name}.golden.json")))
                .unwrap(),
        )
        .unwrap();
        let (got, want) = (
            objects["detections"].as_array().unwrap(),
            golden["detections"].as_array().unwrap(),
        );
        assert_eq!(got.len(), want.len(), "{name}: {got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g["label"], w["label"], "{name}");
            assert!(
                (g["score"].as_f64().unwrap() - w["score"].as_f64().unwrap()).abs() <= 0.005,
                "{name}"
            );
            assert!(iou(&g["box"], &w["box"]) >= 0.99, "{name}: {g} vs {w}");
        }
        assert!(job["result"]["timings_ms"]["objects"].as_f64().unwrap() > 0.0);
    }
    app.cleanup().await;
}
