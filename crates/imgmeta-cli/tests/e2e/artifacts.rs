//! The `annotate` and `preview` tasks end to end: the worker draws the detections on the upright
//! image (or scales it down for a viewer to draw them) and
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
        .submit(json!({ "url": app.photo_url("chelsea.png"), "tasks": ["faces"] }))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_task");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"annotate\"") && message.contains("\"dream\""),
        "{body}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dream_is_stored_as_large_as_the_image_changed_and_for_its_owner_only() {
    let app = TestApp::spawn().await;
    let dream = json!({"octaves": 2, "steps": 3, "max_side": 160, "seed": 3});
    let id = app
        .submit_ok(json!({
            "url": app.photo_url("chelsea.png"), "tasks": ["dream"], "dream": dream
        }))
        .await;
    let job = app.wait_terminal(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["dream"]["steps"], 3, "the job shows its options: {job}");
    let result = &job["result"];
    assert!(
        result["objects"].is_null(),
        "dream alone detects nothing: {job}"
    );
    let report = &result["dream"];
    assert_eq!(report["parameters"]["seed"], 3);
    assert_eq!(
        report["parameters"]["layers"],
        json!(["model.4", "model.6"])
    );
    assert_eq!(report["working_size"], json!({"width": 160, "height": 96}));
    let octaves = report["octaves"].as_array().unwrap();
    assert_eq!(octaves.len(), 2);
    assert_eq!(octaves[1]["objective"].as_array().unwrap().len(), 3);
    let artifact = &result["artifacts"][0];
    assert_eq!(artifact["name"], "dream.jpg");

    let url = format!("{}{}", app.base, artifact["url"].as_str().unwrap());
    let response = app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), artifact["sha256"]);
    let dreamed = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let original = image::open(crate::helpers::photos_dir().join("chelsea.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(dreamed.dimensions(), original.dimensions());
    let mean_change = original
        .as_raw()
        .iter()
        .zip(dreamed.as_raw())
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .sum::<f64>()
        / original.as_raw().len() as f64;
    assert!(
        mean_change > 3.0,
        "mean change {mean_change:.2} grey levels"
    );

    let stranger = authorized_client(&new_key_in_another_account(&app));
    assert_eq!(stranger.get(&url).send().await.unwrap().status(), 404);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dream_options_out_of_bounds_or_without_the_task_are_refused() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"url": app.photo_url("chelsea.png"), "tasks": ["dream"], "dream": {"max_side": 4096}}),
        json!({"url": app.photo_url("chelsea.png"), "tasks": ["dream"], "dream": {"class": "unicorn"}}),
        json!({"url": app.photo_url("chelsea.png"), "tasks": ["dream"], "dream": {"steps": 100, "octaves": 4}}),
        json!({"url": app.photo_url("chelsea.png"), "tasks": ["objects"], "dream": {"steps": 2}}),
    ] {
        let response = app.submit(body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_dream", "{body}");
    }
    app.cleanup().await;
}

/// The artifact of a finished job named `name`, read by its owner: its record and its pixels.
async fn read_artifact(app: &TestApp, job: &Value, name: &str) -> (Value, image::RgbImage) {
    let record = job["result"]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {job}"))
        .clone();
    let url = format!("{}{}", app.base, record["url"].as_str().unwrap());
    let response = app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), record["sha256"]);
    (record, image::load_from_memory(&bytes).unwrap().to_rgb8())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_is_the_upright_image_in_the_boxes_coordinates_and_at_most_1280_px() {
    let app = TestApp::spawn().await;
    // Stored 288 x 432 and turned by its orientation: the boxes, and so the preview, are in the
    // upright 432 x 288 image.
    let id = app
        .submit_ok(json!({
            "url": app.image_url("motorcycle_orientation6.heic"),
            "tasks": ["metadata", "objects", "preview"],
        }))
        .await;
    let job = app.wait_terminal(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["result"]["timings_ms"]["preview"].is_number(), "{job}");
    let image = &job["result"]["image"];
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(288), Some(432))
    );
    let (record, preview) = read_artifact(&app, &job, "preview.jpg").await;
    assert_eq!(record["mime"], "image/jpeg");
    assert_eq!(preview.dimensions(), (432, 288));
    assert_eq!(
        (record["width"].clone(), record["height"].clone()),
        (json!(432), json!(288))
    );
    let detections = job["result"]["objects"]["detections"].as_array().unwrap();
    assert!(!detections.is_empty(), "{job}");
    for detection in detections {
        let b = &detection["box"];
        assert!(b["x_max"].as_f64().unwrap() <= 432.0 && b["y_max"].as_f64().unwrap() <= 288.0);
    }

    // A large upload (left half red, right half blue) comes back scaled to 1280 px, its shape
    // and halves kept; a preview alone runs no detector and reports no objects.
    let big = image::RgbImage::from_fn(2400, 1800, |x, _| {
        if x < 1200 {
            image::Rgb([230, 20, 20])
        } else {
            image::Rgb([20, 20, 230])
        }
    });
    let mut png = Vec::new();
    big.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let response = app
        .client
        .post(format!("{}/v1/jobs?tasks=preview", app.base))
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = app.wait_terminal(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["result"]["objects"].is_null(), "{job}");
    assert_eq!(job["cache"]["status"], "bypass", "{job}");
    let (_, preview) = read_artifact(&app, &job, "preview.jpg").await;
    assert_eq!(preview.dimensions(), (1280, 960));
    let (left, right) = (preview.get_pixel(200, 480), preview.get_pixel(1080, 480));
    assert!(left[0] > 190 && left[2] < 60, "{left:?}");
    assert!(right[2] > 190 && right[0] < 60, "{right:?}");
    app.cleanup().await;
}
