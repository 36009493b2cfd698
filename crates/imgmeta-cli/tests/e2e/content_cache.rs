//! The content cache end to end: the same bytes, whichever URL or upload brings them and
//! whichever account asks, are decoded and run through the detector once; later jobs take
//! the analysis from the cache, filtered to their own `min_score`.

use crate::helpers::{TestApp, photos_dir};
use serde_json::{Value, json};

fn labels_and_scores(job: &Value) -> Vec<(String, f64)> {
    job["result"]["objects"]["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["label"].as_str().unwrap().to_owned(),
                d["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_by_another_url_or_by_upload_are_answered_from_the_cache() {
    let app = TestApp::spawn().await;
    let first_id = app
        .submit_ok(json!({"url": app.photo_url("chelsea.png")}))
        .await;
    let first = app.wait_terminal(&first_id).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(
        first["cache"],
        json!({"status": "miss", "key": "content", "age_s": 0.0})
    );
    assert!(
        first["result"].get("cache").is_none(),
        "shown once, on the job"
    );

    // Another URL for the same bytes: no decode, no detector, the same answer.
    let second_id = app
        .submit_ok(json!({"url": format!("{}?copy=2", app.photo_url("chelsea.png"))}))
        .await;
    let second = app.wait_terminal(&second_id).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["cache"]["status"], "hit", "{second}");
    assert_eq!(second["cache"]["key"], "content");
    assert!(second["cache"]["age_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(second["result"]["timings_ms"]["decode"], 0.0);
    assert!(second["result"]["timings_ms"]["objects"].is_null());
    assert_eq!(second["result"]["image"], first["result"]["image"]);
    assert_eq!(second["result"]["objects"], first["result"]["objects"]);

    // A higher min_score is the same analysis filtered (a third URL, so the URL cache, which
    // would answer the first one at submission, has nothing to say).
    let strict_id = app
        .submit_ok(
            json!({"url": format!("{}?copy=3", app.photo_url("chelsea.png")), "min_score": 0.8}),
        )
        .await;
    let strict = app.wait_terminal(&strict_id).await;
    assert_eq!(strict["cache"]["status"], "hit");
    let expected: Vec<_> = labels_and_scores(&first)
        .into_iter()
        .filter(|(_, s)| *s >= 0.8)
        .collect();
    assert_eq!(labels_and_scores(&strict), expected);
    assert_eq!(strict["result"]["objects"]["model"]["min_score"], 0.8);

    // An upload of the same bytes is a hit too.
    let bytes = std::fs::read(photos_dir().join("chelsea.png")).unwrap();
    let uploaded = app
        .client
        .post(format!("{}/v1/jobs", app.base))
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 202);
    let uploaded: Value = uploaded.json().await.unwrap();
    let upload = app.wait_terminal(uploaded["id"].as_str().unwrap()).await;
    assert_eq!(upload["cache"]["status"], "hit", "{upload}");
    assert_eq!(upload["result"]["objects"], first["result"]["objects"]);

    // What the caches cannot hold runs in full: a threshold under their floor.
    let low_id = app
        .submit_ok(json!({"url": app.photo_url("chelsea.png"), "min_score": 0.01}))
        .await;
    let low = app.wait_terminal(&low_id).await;
    assert_eq!(
        low["cache"],
        json!({"status": "bypass", "key": null, "age_s": 0.0})
    );
    assert!(low["result"]["timings_ms"]["objects"].is_number());

    // Operators see the entry and the hits it served, and can forget it.
    let cli = |args: &[&str]| -> Value {
        let output = crate::processes::run_cli(&app.settings, args);
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let stats = cli(&["cache", "stats"]);
    assert_eq!(
        (
            stats["content"]["entries"].clone(),
            stats["content"]["hits"].clone()
        ),
        (json!(1), json!(3))
    );
    // One URL entry per URL that was analysed or answered from the content (not the upload).
    assert_eq!(stats["url"]["entries"], 3, "{stats}");
    assert_eq!(
        cli(&["cache", "purge", "--all"]),
        json!({"removed": 4, "url_entries": 3, "content_entries": 1})
    );
    let again_id = app
        .submit_ok(json!({"url": app.photo_url("chelsea.png")}))
        .await;
    assert_eq!(
        app.wait_terminal(&again_id).await["cache"]["status"],
        "miss"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_bypasses_the_cache_by_field_or_by_cache_control() {
    let app = TestApp::spawn().await;
    let url = app.photo_url("chelsea.png");
    let first_id = app.submit_ok(json!({"url": url})).await;
    assert_eq!(
        app.wait_terminal(&first_id).await["cache"]["status"],
        "miss"
    );

    let by_field = app.submit_ok(json!({"url": url, "cache": "bypass"})).await;
    let by_field = app.wait_terminal(&by_field).await;
    assert_eq!(by_field["cache"]["status"], "bypass", "{by_field}");
    assert!(by_field["result"]["timings_ms"]["objects"].is_number());

    let by_header = app
        .client
        .post(format!("{}/v1/jobs", app.base))
        .header("cache-control", "max-age=0, no-cache")
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 202);
    let by_header: Value = by_header.json().await.unwrap();
    let by_header = app.wait_terminal(by_header["id"].as_str().unwrap()).await;
    assert_eq!(by_header["cache"]["status"], "bypass", "{by_header}");

    // Without either, the entry is still there (the URL's, answering at submission).
    let again = app.submit(json!({"url": url, "cache": "use"})).await;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["cache"]["status"], "hit", "{again}");
    assert_eq!(again["cache"]["key"], "url");

    let refused = app.submit(json!({"url": url, "cache": "sometimes"})).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_cache_mode");
    app.cleanup().await;
}
