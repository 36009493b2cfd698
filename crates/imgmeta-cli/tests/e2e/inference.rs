//! Batched inference through a real worker: with `IMGMETA_INFER_BATCH` the jobs waiting for the
//! detector share forward passes, and each still gets exactly the objects its image gets alone.

use crate::helpers::{Options, TestApp, photos_dir};
use serde_json::json;

/// Forward passes this process ran with more than one image (other tests run one at a time).
fn multi_image_passes() -> f64 {
    let text = imgmeta_telemetry::render();
    let value = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    value("imgmeta_inference_batch_images_count")
        - value("imgmeta_inference_batch_images_bucket{le=\"1\"}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_waiting_together_share_forward_passes_and_get_their_own_objects() {
    let before = multi_image_passes();
    let mut app = TestApp::spawn_with(Options {
        start_worker: false,
        env: vec![
            ("IMGMETA_INFER_BATCH", "4".into()),
            ("IMGMETA_WORKER_CONCURRENCY", "4".into()),
        ],
        ..Options::default()
    })
    .await;
    // Six jobs queued before the worker starts (distinct URLs, caches bypassed, so each one
    // reaches the detector), at two minimum scores.
    let mut ids = Vec::new();
    for (copy, min_score) in [(0, 0.25), (1, 0.5)] {
        for name in ["chelsea", "coffee", "motorcycle"] {
            let url = app.photo_url(&format!("{name}.png?copy={copy}"));
            let body = json!({"url": url, "tasks": ["objects"], "min_score": min_score, "cache": "bypass"});
            ids.push((name, min_score, app.submit_ok(body).await));
        }
    }
    app.start_worker();
    let detector = app.detector.clone().expect("the detector loads");
    for (name, min_score, id) in ids {
        let job = app.wait_terminal(&id).await;
        assert_eq!(job["status"], "succeeded", "{job:#}");
        let bytes = std::fs::read(photos_dir().join(format!("{name}.png"))).unwrap();
        let decoded = imgmeta_metadata::decode(&bytes, &Default::default()).unwrap();
        let alone = detector.detect(decoded.image(), min_score as f32).unwrap();
        assert_eq!(
            job["result"]["objects"]["detections"], alone["detections"],
            "{name} at {min_score}: the batched job's objects are its image's own"
        );
    }
    assert!(
        multi_image_passes() > before,
        "no forward pass took more than one of the waiting images"
    );
    app.cleanup().await;
}
