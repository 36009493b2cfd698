//! Uploaded images end to end: `POST /v1/jobs` with the image as an `image/*` body or a
//! multipart form, stored as the job's input and analysed by the worker as fetched images are;
//! the upload limit from the head and from a streamed body; hostile files refused as fetched
//! ones are; malformed forms; other accounts; purges; Idempotency-Key.

use crate::helpers::{Options, TestApp, authorized_client, fixtures_dir, photos_dir};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(photos_dir().join(name)).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A `multipart/form-data` body of `(name, filename, content)` parts, and its content type.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "imgmeta-test-Boundary-7d1f";
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n").as_bytes());
        if filename.is_some() {
            body.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl TestApp {
    async fn upload(&self, content_type: &str, query: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/jobs{query}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST /v1/jobs")
    }

    /// Sends `parts` as a multipart form.
    async fn upload_form(&self, parts: &[(&str, Option<&str>, &[u8])]) -> reqwest::Response {
        let (content_type, body) = form(parts);
        self.upload(&content_type, "", body).await
    }
}

/// Expects 202 and returns the job.
async fn accepted(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    response.json().await.unwrap()
}

/// Expects `status` and returns the error code.
async fn refused(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert!(
        !body["error"]["message"].as_str().unwrap().is_empty(),
        "{body}"
    );
    body["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_body_and_a_multipart_form_are_analysed_as_uploads() {
    let app = TestApp::spawn().await;
    let image = photo("chelsea.png");
    let sha = sha256_hex(&image);

    let raw = accepted(
        app.upload("image/png", "?tasks=metadata&min_score=0.5", image.clone())
            .await,
    )
    .await;
    assert_eq!(raw["url"], Value::Null);
    assert_eq!(
        raw["source"],
        json!({"kind": "upload", "bytes": image.len(), "sha256": sha})
    );
    assert_eq!(raw["tasks"], json!(["metadata"]));
    assert_eq!(raw["min_score"], 0.5);
    let options = br#"{"tasks": ["metadata", "objects"], "min_score": 0.3}"#;
    let multipart = accepted(
        app.upload_form(&[
            ("options", None, options),
            ("file", Some("chelsea.png"), &image),
        ])
        .await,
    )
    .await;
    assert_eq!(multipart["source"], raw["source"]);
    assert_eq!(multipart["tasks"], json!(["metadata", "objects"]));

    for job in [&raw, &multipart] {
        let done = app.wait_terminal(job["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "succeeded", "{done:#}");
        assert_eq!(done["url"], Value::Null);
        assert_eq!(done["source"]["kind"], "upload");
        let described = &done["result"]["image"];
        assert_eq!(described["sha256"], sha.as_str());
        assert_eq!(described["bytes"], image.len());
        assert_eq!(
            (described["width"].clone(), described["height"].clone()),
            (json!(451), json!(300))
        );
        assert_eq!(described["format"], "png");
    }
    let done = app.wait_terminal(multipart["id"].as_str().unwrap()).await;
    let labels: Vec<&str> = done["result"]["objects"]["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"cat"), "{labels:?}");

    // A URL job keeps its url, and says so in its source too; lists show sources.
    let by_url = app
        .submit_ok(json!({ "url": app.photo_url("chelsea.png"), "tasks": ["metadata"] }))
        .await;
    let job: Value = app.get_job(&by_url).await.json().await.unwrap();
    assert_eq!(
        job["source"],
        json!({"kind": "url", "url": app.photo_url("chelsea.png")})
    );
    assert_eq!(job["url"], app.photo_url("chelsea.png"));
    let list = app.get_value("/v1/jobs").await;
    let kinds: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["source"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["url", "upload", "upload"]);
    app.cleanup().await;
}

/// Sends a request head (and no body) on a new connection; the answer it gets.
async fn head_only(app: &TestApp, head: &str) -> String {
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_20_mib_are_refused_whether_declared_or_streamed() {
    let app = TestApp::spawn().await;
    let limit = 20 * MIB;

    // Declared: refused from the head, before a byte of the body is sent.
    let answer = head_only(
        &app,
        &format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            app.api_key,
            limit + 1
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    assert!(answer.contains(&limit.to_string()), "{answer}");
    // A JSON submission keeps its own, smaller limit.
    let answer = head_only(
        &app,
        &format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            app.api_key, MIB
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Streamed (chunked, no length): cut at the limit.
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n",
                app.api_key
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Exactly one byte more than the limit, and no closing chunk: the answer cannot wait for
    // the end of the body.
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < limit {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        stream.write_all(&frame).await.unwrap();
        sent += chunk.len();
    }
    stream.write_all(b"1\r\nX\r\n").await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");

    // A multipart form's file part is held to the same limit.
    let big = vec![7u8; limit + 1];
    let code = refused(
        app.upload_form(&[("file", Some("big.png"), &big)]).await,
        413,
    )
    .await;
    assert_eq!(code, "payload_too_large");

    // Exactly at the limit is accepted, stored and analysed: a PNG padded to 20 MiB.
    let mut padded = photo("chelsea.png");
    padded.resize(limit, 0);
    let job = accepted(
        app.upload("image/png", "?tasks=metadata", padded.clone())
            .await,
    )
    .await;
    let done = app.wait_terminal(job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["result"]["image"]["bytes"], limit);
    assert_eq!(done["result"]["image"]["sha256"], sha256_hex(&padded));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_fail_exactly_as_the_same_files_fetched() {
    let app = TestApp::spawn().await;
    let cases = [
        ("bomb_100000x100000.png", "image_too_large"),
        ("page.html", "not_an_image"),
        ("truncated.jpg", "decode_failed"),
    ];
    let mut jobs = Vec::new();
    for (name, _) in cases {
        let uploaded = accepted(
            app.upload("image/jpeg", "?tasks=metadata", fixture(name))
                .await,
        )
        .await;
        let fetched = app
            .submit_ok(json!({ "url": app.image_url(name), "tasks": ["metadata"] }))
            .await;
        jobs.push((uploaded["id"].as_str().unwrap().to_owned(), fetched));
    }
    for ((name, code), (uploaded, fetched)) in cases.iter().zip(jobs) {
        let uploaded = app.wait_terminal(&uploaded).await;
        let fetched = app.wait_terminal(&fetched).await;
        assert_eq!(uploaded["status"], "failed", "{name}: {uploaded:#}");
        assert_eq!(uploaded["error"]["code"], *code, "{name}: {uploaded:#}");
        assert_eq!(uploaded["error"], fetched["error"], "{name}");
        assert_eq!(uploaded["attempts"], 1, "{name}: not retried");
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_uploads_are_refused_with_stable_codes_and_record_nothing() {
    let app = TestApp::spawn_with(Options {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let image = fixture("alpha.png");
    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (
            app.upload_form(&[("options", None, br#"{"tasks": ["metadata"]}"#)])
                .await,
            400,
            "missing_file_part",
        ),
        (
            app.upload_form(&[("file", Some("a.png"), &image), ("extra", None, b"x")])
                .await,
            400,
            "unknown_part",
        ),
        (
            app.upload_form(&[
                ("file", Some("a.png"), &image),
                ("file", Some("b.png"), &image),
            ])
            .await,
            400,
            "unknown_part",
        ),
        (
            app.upload_form(&[
                ("file", Some("a.png"), &image),
                ("options", None, b"{not json"),
            ])
            .await,
            400,
            "invalid_json",
        ),
        (
            app.upload_form(&[
                ("file", Some("a.png"), &image),
                ("options", None, br#"{"url": "https://example.com/a.png"}"#),
            ])
            .await,
            400,
            "invalid_json",
        ),
        (
            app.upload_form(&[
                ("file", Some("a.png"), &image),
                ("options", None, br#"{"tasks": ["faces"]}"#),
            ])
            .await,
            400,
            "invalid_task",
        ),
        (
            app.upload_form(&[("file", Some("a.png"), b"")]).await,
            400,
            "empty_upload",
        ),
        (
            app.upload("multipart/form-data", "", image.clone()).await,
            400,
            "invalid_multipart",
        ),
        (
            app.upload(
                "multipart/form-data; boundary=zz",
                "",
                b"--zz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end".to_vec(),
            )
            .await,
            400,
            "invalid_multipart",
        ),
        (
            app.upload("image/png", "", Vec::new()).await,
            400,
            "empty_upload",
        ),
        (
            app.upload("image/png", "?url=x", image.clone()).await,
            400,
            "invalid_query",
        ),
        (
            app.upload("image/png", "?min_score=2", image.clone()).await,
            400,
            "invalid_min_score",
        ),
        (
            app.upload("text/plain", "", image.clone()).await,
            415,
            "unsupported_media_type",
        ),
    ];
    for (i, (response, status, code)) in cases.into_iter().enumerate() {
        assert_eq!(refused(response, status).await, code, "case {i}");
    }
    let list: Value = app
        .client
        .get(format!("{}/v1/jobs", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"], json!([]));
    app.cleanup().await;
}

fn new_key_in_another_account(app: &TestApp) -> String {
    let output = crate::processes::run_cli(&app.settings, &["keys", "create", "--name", "other"]);
    assert!(output.status.success(), "{output:?}");
    let issued: Value = serde_json::from_slice(&output.stdout).unwrap();
    issued["key"].as_str().unwrap().to_owned()
}

async fn stored_inputs(app: &TestApp) -> i64 {
    let admin = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(
        &app.settings.database.url,
    ))
    .await
    .unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM job_inputs")
        .fetch_one(&admin)
        .await
        .unwrap();
    admin.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_its_accounts_alone_and_a_purge_erases_its_bytes() {
    let app = TestApp::spawn().await;
    let image = fixture("alpha.png");
    let job = accepted(
        app.upload("image/png", "?tasks=metadata", image.clone())
            .await,
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_terminal(&id).await["status"], "succeeded");
    assert_eq!(stored_inputs(&app).await, 1);

    let stranger = authorized_client(&new_key_in_another_account(&app));
    let url = format!("{}/v1/jobs/{id}", app.base);
    let code = refused(stranger.get(&url).send().await.unwrap(), 404).await;
    assert_eq!(code, "job_not_found");
    let code = refused(
        stranger
            .delete(format!("{url}?purge=true"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(code, "job_not_found");
    assert_eq!(
        stored_inputs(&app).await,
        1,
        "a stranger's purge erased nothing"
    );

    let purged = app
        .client
        .delete(format!("{url}?purge=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);
    let tombstone: Value = purged.json().await.unwrap();
    assert_eq!(tombstone["result"], Value::Null);
    assert_eq!(tombstone["source"]["sha256"], sha256_hex(&image));
    assert_eq!(
        stored_inputs(&app).await,
        0,
        "the purge erased the uploaded bytes"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_same_upload_and_refuses_another_image() {
    let app = TestApp::spawn_with(Options {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let image = fixture("alpha.png");
    let send = |content_type: &'static str, query: &'static str, body: Vec<u8>| {
        app.client
            .post(format!("{}/v1/jobs{query}", app.base))
            .header("content-type", content_type)
            .header("idempotency-key", "upload-1")
            .body(body)
            .send()
    };
    let first = send("image/png", "?tasks=metadata", image.clone())
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let again = send("image/png", "?tasks=metadata", image.clone())
        .await
        .unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    // The same image and options as a form are the same request.
    let (content_type, body) = form(&[
        ("file", Some("alpha.png"), &image),
        ("options", None, br#"{"tasks": ["metadata"]}"#),
    ]);
    let as_form = app
        .client
        .post(format!("{}/v1/jobs", app.base))
        .header("content-type", content_type)
        .header("idempotency-key", "upload-1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(as_form.status(), 202);
    let as_form: Value = as_form.json().await.unwrap();
    assert_eq!(as_form["id"], first["id"]);

    // Another image under the same key is another request.
    let other = send("image/png", "?tasks=metadata", fixture("grey1.png"))
        .await
        .unwrap();
    assert_eq!(refused(other, 422).await, "idempotency_key_reused");
    assert_eq!(stored_inputs(&app).await, 1);
    app.cleanup().await;
}
