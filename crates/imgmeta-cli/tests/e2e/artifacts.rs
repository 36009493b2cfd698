//! The `annotate` task end to end: the worker draws the detections on the upright image and
//! stores `annotated.jpg` with the job; its owner reads it (ETag, immutable caching, 304),
//! nobody else can, and a purge erases it with the result.

use crate::helpers::{TestApp, authorized_client};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn new_key_in_another_account(app: &TestApp) -> String {
    let output = crate::processes::run_cli(&app.settings, &["keys", "create", "--name", "other"]);
    assert!(output.status.success(), "{output:?}");
    let issued: Value = serde_json::from_slice(&output.stdout).unwrap();
    issued["key"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_annotated_image_is_stored_served_to_its_owner_only_and_purged() {
    let app = TestApp::spawn().await;
    let id = app
        .submit_ok(json!({ "url": app.photo_url("chelsea.png"), "tasks": ["annotate"] }))
        .await;
    let job = app.wait_terminal(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = &job["result"];
    let detections = result["objects"]["detections"].as_array().unwrap();
    assert!(
        !detections.is_empty(),
        "annotate reports the objects too: {job}"
    );
    let artifact = &result["artifacts"][0];
    assert_eq!(artifact["name"], "annotated.jpg");
    assert_eq!(artifact["mime"], "image/jpeg");
    let url = format!("{}{}", app.base, artifact["url"].as_str().unwrap());
    assert_eq!(
        artifact["url"],
        format!("/v1/jobs/{id}/artifacts/annotated.jpg")
    );

    // The owner reads it: the bytes the record describes, upright, with the boxes drawn.
    let response = app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("content-type").as_deref(), Some("image/jpeg"));
    let sha = artifact["sha256"].as_str().unwrap().to_owned();
    let etag = format!("\"{sha}\"");
    assert_eq!(header("etag").as_deref(), Some(etag.as_str()));
    assert_eq!(
        header("cache-control").as_deref(),
        Some("private, max-age=31536000, immutable")
    );
    let bytes = response.bytes().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), sha);
    assert_eq!(artifact["bytes"], bytes.len());
    let drawn = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), (451, 300));
    assert_eq!(
        (artifact["width"].clone(), artifact["height"].clone()),
        (json!(451), json!(300))
    );
    // The first detection's left edge is drawn in its class's colour (JPEG blurs it a little).
    let first = &detections[0];
    let colour = imgmeta_render::class_colour(first["class_id"].as_u64().unwrap() as usize);
    let (x, y) = (
        first["box"]["x_min"].as_f64().unwrap().round() as u32 + 1,
        ((first["box"]["y_min"].as_f64().unwrap() + first["box"]["y_max"].as_f64().unwrap()) / 2.0)
            as u32,
    );
    let pixel = drawn.get_pixel(x.min(450), y);
    for channel in 0..3 {
        let diff = (i32::from(pixel[channel]) - i32::from(colour[channel])).abs();
        assert!(diff <= 48, "pixel {pixel:?} at ({x}, {y}) vs {colour:?}");
    }

    // Revalidation: the same ETag is a 304 without a body.
    let cached = app
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert!(cached.bytes().await.unwrap().is_empty());

    // Another account sees no such job; an unknown name is its own 404.
    let stranger = authorized_client(&new_key_in_another_account(&app));
    let refused = stranger.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 404);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "job_not_found");
    let missing = app
        .client
        .get(format!("{}/v1/jobs/{id}/artifacts/dream.jpg", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "artifact_not_found");

    // A purge erases the artifact with the result.
    let purged = app
        .client
        .delete(format!("{}/v1/jobs/{id}?purge=true", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);
    let gone = app.client.get(&url).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    let admin = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(
        &app.settings.database.url,
    ))
    .await
    .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM job_artifacts")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "the purge deleted the artifact's bytes");
    admin.close().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_task_names_the_known_ones() {
    let app = TestApp::spawn().await;
    let response = app
        .submit(json!({ "url": app.photo_url("chelsea.png"), "tasks": ["dream"] }))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_task");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"annotate\""),
        "{body}"
    );
    app.cleanup().await;
}
