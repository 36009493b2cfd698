//! Signed webhooks through the real API, PostgreSQL, RabbitMQ and a worker, to a local receiver
//! that answers each path its own way: signatures checked by our code and independently by the
//! `standardwebhooks` reference package; retries after failures with one `webhook-id` and one
//! body; `410` stops; a redirect is not followed; the secret's rotation overlap; a batch told
//! once; the destination policy at submission and again at delivery; the deliveries list.

use crate::helpers::{Options, TestApp, authorized_client, key_in, own_account};
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    at: tokio::time::Instant,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Hit>>>);

impl Receiver {
    fn hits(&self, prefix: &str) -> Vec<Hit> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// A webhook receiver on a free loopback port: `/ok/…` answers 204, `/flaky/N/…` 500 to its
/// first N requests then 200, `/gone/…` 410, `/redirect/…` 302 to `/ok/redirected`, `/slow/…`
/// after 10 s.
async fn spawn_receiver() -> (SocketAddr, Receiver) {
    let receiver = Receiver::default();
    let seen = receiver.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::post(
            move |Path(path): Path<String>, headers: HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let path = format!("/{path}");
                    let count = {
                        let mut hits = seen.0.lock().unwrap();
                        hits.push(Hit {
                            path: path.clone(),
                            id: header("webhook-id"),
                            timestamp: header("webhook-timestamp"),
                            signature: header("webhook-signature"),
                            body,
                            at: tokio::time::Instant::now(),
                        });
                        hits.iter().filter(|h| h.path == path).count()
                    };
                    let parts: Vec<&str> = path.split('/').collect();
                    match parts.get(1).copied() {
                        Some("ok") => (StatusCode::NO_CONTENT, HeaderMap::new()),
                        Some("flaky") => {
                            let failures: usize = parts[2].parse().unwrap();
                            match count <= failures {
                                true => (StatusCode::INTERNAL_SERVER_ERROR, HeaderMap::new()),
                                false => (StatusCode::OK, HeaderMap::new()),
                            }
                        }
                        Some("gone") => (StatusCode::GONE, HeaderMap::new()),
                        Some("slow") => {
                            tokio::time::sleep(Duration::from_secs(10)).await;
                            (StatusCode::OK, HeaderMap::new())
                        }
                        Some("redirect") => {
                            let mut h = HeaderMap::new();
                            h.insert("location", "/ok/redirected".parse().unwrap());
                            (StatusCode::FOUND, h)
                        }
                        _ => (StatusCode::NOT_FOUND, HeaderMap::new()),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, receiver)
}

async fn webhook_app() -> TestApp {
    TestApp::spawn_with(Options {
        env: vec![
            ("IMGMETA_WEBHOOK_RETRY_BASE_MS", "200".to_owned()),
            ("IMGMETA_WEBHOOK_TIMEOUT_MS", "2000".to_owned()),
        ],
        ..Options::default()
    })
    .await
}

async fn post_json(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Creates or rotates the signing secret of the app's account, with a key that may manage its
/// credentials (`keys:manage`; the app's own key may not, which is checked first).
async fn new_secret(app: &TestApp) -> (String, Value) {
    let url = format!("{}/v1/webhooks/secret", app.base);
    let refused = app.client.post(&url).send().await.unwrap();
    assert_eq!(refused.status(), 403, "jobs keys do not manage secrets");
    let manager =
        authorized_client(&key_in(app, Some(own_account(app).await), "keys:manage").await);
    let response = manager.post(&url).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer: Value = response.json().await.unwrap();
    let secret = answer["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (secret, answer)
}

async fn deliveries(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app
        .client
        .get(format!("{}/v1/webhooks/deliveries{query}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    list["deliveries"].as_array().unwrap().clone()
}

/// Polls the job's delivery until `done` holds for it.
async fn wait_delivery(app: &TestApp, job: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = deliveries(app, &format!("?job={job}")).await;
        if let Some(d) = list.first().filter(|d| done(d)) {
            return d.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery of job {job}: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ended(d: &Value) -> bool {
    d["status"] != "pending"
}

fn verify(secret: &str, hit: &Hit) -> bool {
    let key = imgmeta_auth::parse_webhook_secret(secret).unwrap();
    imgmeta_auth::verify_webhook(
        &key,
        &hit.id,
        hit.timestamp.parse().unwrap(),
        hit.body.as_bytes(),
        &hit.signature,
    )
}

/// Checks the deliveries with the Standard Webhooks reference implementation (Python).
fn verify_independently(secrets: &[&str], deliveries: &[(&Hit, Vec<&str>)]) {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::process::Command::new("bash")
        .arg(root.join("scripts/dev_python.sh"))
        .output()
        .expect("running scripts/dev_python.sh");
    assert!(
        python.status.success(),
        "scripts/dev_python.sh: {}",
        String::from_utf8_lossy(&python.stderr)
    );
    let python = String::from_utf8(python.stdout).unwrap().trim().to_owned();
    let recorded = json!({
        "secrets": secrets,
        "deliveries": deliveries.iter().map(|(hit, expect)| json!({
            "headers": {
                "webhook-id": hit.id,
                "webhook-timestamp": hit.timestamp,
                "webhook-signature": hit.signature,
            },
            "body": hit.body,
            "expect": expect,
        })).collect::<Vec<_>>(),
    });
    let file = std::env::temp_dir().join(format!("webhooks-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, recorded.to_string()).unwrap();
    let out = std::process::Command::new(python)
        .arg(root.join("scripts/verify_webhooks.py"))
        .arg(&file)
        .output()
        .expect("running scripts/verify_webhooks.py");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "standardwebhooks disagrees:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let checked = String::from_utf8_lossy(&out.stdout)
        .matches(" checked")
        .count();
    assert_eq!(checked, deliveries.len(), "every delivery was checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_webhooks_are_signed_retried_with_one_id_stopped_by_410_and_listed() {
    let app = webhook_app().await;
    let (hooks, receiver) = spawn_receiver().await;
    let hook = |path: &str| format!("http://{hooks}{path}");
    let image = app.image_url("camera_north_east.jpg");

    // No secret yet: refused before anything is recorded.
    let (status, body) = post_json(
        &app.client,
        format!("{}/v1/jobs", app.base),
        json!({"url": image, "webhook_url": hook("/ok/early")}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("webhook_secret_missing"))
    );
    let (secret, answer) = new_secret(&app).await;
    assert!(answer["previous_valid_until"].is_null());
    for bad in [
        "ftp://hooks.example/x",
        "not a url",
        "http://user:pw@hooks.example/",
    ] {
        let (status, body) = post_json(
            &app.client,
            format!("{}/v1/jobs", app.base),
            json!({"url": image, "webhook_url": bad}),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_webhook_url")),
            "{bad}"
        );
    }

    let submit = |url: String, webhook: String| {
        let app = &app;
        async move {
            let (status, job) = post_json(
                &app.client,
                format!("{}/v1/jobs", app.base),
                json!({"url": url, "tasks": ["metadata"], "webhook_url": webhook}),
            )
            .await;
            assert_eq!(status, 202, "{job:#}");
            assert_eq!(job["webhook_url"], webhook, "shown on the job");
            job["id"].as_str().unwrap().to_owned()
        }
    };
    let flaky = submit(image.clone(), hook("/flaky/2/a")).await;
    let gone = submit(format!("{image}?b"), hook("/gone/b")).await;
    let failed = submit(app.image_url("not-there.jpg"), hook("/ok/c")).await;
    let redirected = submit(format!("{image}?d"), hook("/redirect/d")).await;

    let d = wait_delivery(&app, &flaky, ended).await;
    assert_eq!(d["status"], "delivered", "{d:#}");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["last_status"], 200);
    assert_eq!(d["type"], "job.succeeded");
    let hits = receiver.hits("/flaky/2/a");
    assert_eq!(hits.len(), 3, "two failures, then the delivery");
    assert!(
        hits.iter()
            .all(|h| h.id == hits[0].id && h.body == hits[0].body),
        "every attempt is the same message"
    );
    assert_eq!(d["id"], hits[0].id, "the list names the webhook-id");
    assert!(hits.iter().all(|h| verify(&secret, h)));
    let event: Value = serde_json::from_str(&hits[0].body).unwrap();
    assert_eq!(event["type"], "job.succeeded");
    assert!(event["timestamp"].is_string());
    assert_eq!(event["data"]["id"], flaky.as_str());
    assert_eq!(event["data"]["status"], "succeeded");
    assert!(event["data"]["result"]["image"]["width"].as_u64().is_some());

    let d = wait_delivery(&app, &gone, ended).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("gone"), Some(1))
    );
    assert_eq!(d["last_status"], 410);
    let d = wait_delivery(&app, &failed, ended).await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["type"], "job.failed");
    let failed_hit = receiver.hits("/ok/c").remove(0);
    let event: Value = serde_json::from_str(&failed_hit.body).unwrap();
    assert_eq!(event["type"], "job.failed");
    assert_eq!(event["data"]["error"]["code"], "http_status");
    // A redirect is an answer, not a place to go: retried, never followed.
    let d = wait_delivery(&app, &redirected, |d| d["attempts"].as_i64() >= Some(2)).await;
    assert_eq!(d["status"], "pending");
    assert_eq!(d["last_status"], 302);
    assert!(d["next_attempt_at"].is_string());
    assert!(receiver.hits("/ok/redirected").is_empty());

    // Rotation: the replaced secret keeps signing beside the new one.
    let (rotated, answer) = new_secret(&app).await;
    assert!(answer["previous_valid_until"].is_string());
    let after = submit(format!("{image}?e"), hook("/ok/e")).await;
    wait_delivery(&app, &after, ended).await;
    let rotated_hit = receiver.hits("/ok/e").remove(0);
    assert_eq!(rotated_hit.signature.split(' ').count(), 2);
    assert!(verify(&secret, &rotated_hit) && verify(&rotated, &rotated_hit));

    // The same messages, checked by the reference implementation.
    let stranger = imgmeta_auth::format_webhook_secret(&imgmeta_auth::generate_webhook_secret());
    verify_independently(
        &[&secret, &rotated, &stranger],
        &[
            (&hits[0], vec![secret.as_str()]),
            (&hits[2], vec![secret.as_str()]),
            (&failed_hit, vec![secret.as_str()]),
            (&rotated_hit, vec![secret.as_str(), rotated.as_str()]),
        ],
    );

    // The list: filters, pages, and nothing of another account.
    let all = deliveries(&app, "").await;
    assert_eq!(all.len(), 5);
    assert_eq!(deliveries(&app, "?status=gone").await.len(), 1);
    assert_eq!(deliveries(&app, "?type=job.failed").await.len(), 1);
    let first = app.get_value("/v1/webhooks/deliveries?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = deliveries(&app, &format!("?cursor={cursor}")).await;
    assert_eq!(rest.len(), 3);
    let response = app
        .client
        .get(format!("{}/v1/webhooks/deliveries?cursor=abc", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let other = TestApp::spawn_with(Options {
        start_worker: false,
        database: Some(app.db_name.clone()),
        ..Options::default()
    })
    .await;
    assert!(deliveries(&other, "").await.is_empty());
    assert_eq!(
        post_json(
            &other.client,
            format!("{}/v1/jobs", other.base),
            json!({"url": image, "webhook_url": hook("/ok/x")}),
        )
        .await
        .0,
        409,
        "a secret is per account"
    );
    other.cleanup().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_holds_one_sending_slot_not_the_others() {
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("IMGMETA_WEBHOOK_TIMEOUT_MS", "5000".to_owned()),
            ("IMGMETA_WEBHOOK_CONCURRENCY", "2".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let (hooks, receiver) = spawn_receiver().await;
    new_secret(&app).await;
    let image = app.image_url("camera_north_east.jpg");
    let jobs = format!("{}/v1/jobs", app.base);
    let submit = |query: &str, path: &str| {
        post_json(
            &app.client,
            jobs.clone(),
            json!({"url": format!("{image}?{query}"), "tasks": ["metadata"],
                   "webhook_url": format!("http://{hooks}{path}")}),
        )
    };
    assert_eq!(submit("hang", "/slow/hang").await.0, 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while receiver.hits("/slow/hang").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow delivery never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hung_at = receiver.hits("/slow/hang")[0].at;
    // While that attempt waits out its 5 s, the other slot delivers the next event.
    assert_eq!(submit("quick", "/ok/quick").await.0, 202);
    while receiver.hits("/ok/quick").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the quick delivery never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let quick_at = receiver.hits("/ok/quick")[0].at;
    assert!(
        quick_at < hung_at + Duration::from_secs(5),
        "the quick delivery waited for the hanging one: {:?} after it",
        quick_at - hung_at
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_webhook_reports_batch_completed_once() {
    let app = webhook_app().await;
    let (hooks, receiver) = spawn_receiver().await;
    let (secret, _) = new_secret(&app).await;
    let image = app.image_url("camera_north_east.jpg");
    let body = (1..=3)
        .map(|i| json!({"url": format!("{image}?batch={i}")}).to_string())
        .chain(["{not json".to_owned()])
        .collect::<Vec<_>>()
        .join("\n");
    let webhook = format!("http://{hooks}/ok/batch");
    let response = app
        .client
        .post(
            reqwest::Url::parse_with_params(
                &format!("{}/v1/batches", app.base),
                [("tasks", "metadata"), ("webhook_url", webhook.as_str())],
            )
            .unwrap(),
        )
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let batch: Value = response.json().await.unwrap();
    assert_eq!(batch["webhook_url"], webhook);
    let id = batch["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while receiver.hits("/ok/batch").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no batch.completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Items are not told one by one, and the batch is told once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hits = receiver.hits("/");
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert!(verify(&secret, &hits[0]));
    let event: Value = serde_json::from_str(&hits[0].body).unwrap();
    assert_eq!(event["type"], "batch.completed");
    assert_eq!(event["data"]["id"], id);
    assert_eq!(event["data"]["status"], "completed");
    assert_eq!(event["data"]["counts"]["succeeded"], 3);
    assert_eq!(event["data"]["counts"]["rejected"], 1);
    let listed = deliveries(&app, &format!("?batch={id}")).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "delivered");

    // A JSON batch gives it in the body, checked the same way.
    let (status, refused) = post_json(
        &app.client,
        format!("{}/v1/batches", app.base),
        json!({"items": [{"url": image}], "webhook_url": "gopher://x.example/"}),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("invalid_webhook_url"))
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_destinations_pass_the_fetch_policy_at_submission_and_again_at_delivery() {
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("IMGMETA_FETCH_ALLOW_PRIVATE", "false".to_owned()),
            ("IMGMETA_BLOCKED_DOMAINS", "evil.example".to_owned()),
            ("IMGMETA_WEBHOOK_RETRY_BASE_MS", "200".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let (hooks, receiver) = spawn_receiver().await;
    new_secret(&app).await;
    let jobs = format!("{}/v1/jobs", app.base);
    let image = "http://images.example/a.jpg";
    for (webhook, code) in [
        (format!("http://{hooks}/ok/literal"), "blocked_destination"),
        (
            "http://169.254.169.254/latest/meta-data".to_owned(),
            "blocked_destination",
        ),
        ("http://hooks.evil.example/x".to_owned(), "blocked_domain"),
    ] {
        let (status, body) = post_json(
            &app.client,
            jobs.clone(),
            json!({"url": image, "webhook_url": webhook}),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some(code)),
            "{webhook}"
        );
    }
    // A name is resolved only when the webhook is sent: `localhost` passes submission, and its
    // loopback addresses are refused before any connection (the image too, so the job fails).
    let port = hooks.port();
    let (status, job) = post_json(
        &app.client,
        jobs.clone(),
        json!({"url": format!("http://localhost:{port}/images/x.jpg"),
               "webhook_url": format!("http://localhost:{port}/ok/named")}),
    )
    .await;
    assert_eq!(status, 202, "{job:#}");
    let id = job["id"].as_str().unwrap();
    let d = wait_delivery(&app, id, ended).await;
    assert_eq!(d["status"], "failed", "{d:#}");
    assert_eq!(d["attempts"], 1, "a refused destination is not retried");
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .starts_with("blocked_destination"),
        "{d:#}"
    );
    assert!(d["last_status"].is_null());
    assert!(receiver.hits("/").is_empty(), "no connection was made");
    // A key that may not read results cannot have them sent anywhere either.
    let writer =
        authorized_client(&key_in(&app, Some(own_account(&app).await), "jobs:write").await);
    let (status, body) = post_json(
        &writer,
        jobs,
        json!({"url": image, "webhook_url": "http://hooks.example/x"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    app.cleanup().await;
}
