//! The URL cache end to end, against an origin on loopback that counts what it serves: the
//! origin's freshness headers (`max-age`, `no-store`, `no-cache` with `ETag` → `304`, the
//! `Last-Modified` heuristic), jobs answered at submission, negative entries, bypass, purge,
//! the API's hot copies of entries (forgotten when a purge is announced), and the single
//! flight across two API processes and two worker processes, with its leader's worker killed
//! mid-run.

use crate::helpers::{TestApp, photos_dir};
use crate::processes::{clean_up, free_port, fresh_database, imgmeta, wait_until_up};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the origin saw for one path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Every request.
    pub requests: u32,
    /// Requests answered with the image's bytes.
    pub bodies: u32,
    /// Requests answered `304 Not Modified`.
    pub not_modified: u32,
}

/// An image origin whose first path segment picks its caching headers:
/// `/{rule}/{photo}` with rule `maxage` (`max-age=600`), `nostore`, `nocache` (`no-cache`
/// and an `ETag`), `expired` (`max-age=0` and an `ETag`), `lastmod` (`Last-Modified` ten
/// hours before `Date`), `plain` (no caching headers), `slow` (`max-age=600`, the body after
/// `delay_ms` from the query) and `missing` (404). Conditional requests matching the `ETag`
/// get `304`.
#[derive(Clone, Default)]
pub(crate) struct Origin {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

impl Origin {
    pub async fn spawn() -> (Self, SocketAddr) {
        let origin = Self::default();
        let app = axum::Router::new()
            .route("/{rule}/{name}", axum::routing::get(serve))
            .with_state(origin.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (origin, addr)
    }

    pub fn seen(&self, rule: &str, name: &str) -> Seen {
        let key = format!("/{rule}/{name}");
        self.seen
            .lock()
            .unwrap()
            .get(&key)
            .copied()
            .unwrap_or_default()
    }
}

async fn serve(
    State(origin): State<Origin>,
    Path((rule, name)): Path<(String, String)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    let key = format!("/{rule}/{name}");
    let count = |f: fn(&mut Seen)| f(origin.seen.lock().unwrap().entry(key.clone()).or_default());
    count(|s| s.requests += 1);
    if rule == "missing" || name.contains("..") || name.contains('/') {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(bytes) = tokio::fs::read(photos_dir().join(&name)).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = "\"v1\"";
    let mut out = HeaderMap::new();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    let cache_control = match rule.as_str() {
        "maxage" | "slow" => Some("public, max-age=600"),
        "nostore" => Some("no-store"),
        "nocache" => Some("no-cache"),
        "expired" => Some("max-age=0"),
        _ => None,
    };
    if let Some(cc) = cache_control {
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cc));
    }
    if matches!(rule.as_str(), "nocache" | "expired") {
        out.insert(header::ETAG, HeaderValue::from_static(etag));
        if headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            == Some(etag)
        {
            count(|s| s.not_modified += 1);
            return (StatusCode::NOT_MODIFIED, out).into_response();
        }
    }
    if rule == "lastmod" {
        let now = std::time::SystemTime::now();
        out.insert(
            header::DATE,
            HeaderValue::from_str(&httpdate::fmt_http_date(now)).unwrap(),
        );
        let modified = now - Duration::from_secs(10 * 3600);
        out.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&httpdate::fmt_http_date(modified)).unwrap(),
        );
    }
    if rule == "slow" {
        let delay_ms = query
            .as_deref()
            .and_then(|q| q.strip_prefix("delay_ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    count(|s| s.bodies += 1);
    (out, bytes).into_response()
}

/// Submits `body`; the HTTP status and the job resource.
async fn submit(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app.submit(body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_entry_answers_at_submission_without_a_fetch_for_every_min_score_and_task_set() {
    let app = TestApp::spawn().await;
    let (origin, addr) = Origin::spawn().await;
    let url = format!("http://{addr}/maxage/chelsea.png");

    let (status, first) = submit(&app, json!({"url": url})).await;
    assert_eq!(status, 202, "{first}");
    let first = app.wait_terminal(first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["cache"]["status"], "miss");

    // Answered at once: created already succeeded, no message, no fetch.
    let (status, hit) = submit(&app, json!({"url": format!("{url}#fragment")})).await;
    assert_eq!(status, 201, "an answered job is created finished: {hit}");
    assert_eq!(hit["status"], "succeeded");
    assert_eq!(hit["cache"]["status"], "hit");
    assert_eq!(hit["cache"]["key"], "url");
    assert_eq!(hit["result"]["image"], first["result"]["image"]);
    assert_eq!(hit["result"]["objects"], first["result"]["objects"]);
    assert_ne!(hit["id"], first["id"], "a job of its own");

    // Another min_score and task subset: the same entry, cut for the job.
    let (_, strict) = submit(
        &app,
        json!({"url": url, "min_score": 0.8, "tasks": ["objects"]}),
    )
    .await;
    assert_eq!(strict["cache"]["status"], "hit");
    assert!(strict["result"]["image"].is_null());
    let expected: Vec<&Value> = first["result"]["objects"]["detections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["score"].as_f64().unwrap() >= 0.8)
        .collect();
    let got: Vec<&Value> = strict["result"]["objects"]["detections"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(got, expected);
    // The legacy interface answers 200 at once from the entry.
    let legacy = app
        .client
        .post(format!(
            "{}/img?{}",
            app.base,
            percent_encoding::utf8_percent_encode(&url, percent_encoding::NON_ALPHANUMERIC)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    let legacy: Value = legacy.json().await.unwrap();
    assert_eq!(legacy["cache"]["status"], "hit");

    assert_eq!(origin.seen("maxage", "chelsea.png").requests, 1);
    app.cleanup().await;
}

/// A job admitted under a URL's flight just as that flight ended (its lookup saw the flight,
/// its join found none and so leads a new one) is answered by its worker from the fresh entry
/// the ended flight left: the origin is not asked again, nothing is analysed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_leading_a_flight_after_the_entry_appeared_is_answered_from_it() {
    let app = TestApp::spawn().await;
    let (origin, addr) = Origin::spawn().await;
    let url = format!("http://{addr}/maxage/chelsea.png");
    let (_, first) = submit(&app, json!({"url": url})).await;
    let first = app.wait_terminal(first["id"].as_str().unwrap()).await;
    assert_eq!(first["cache"]["status"], "miss", "{first}");

    // What the race leaves: a new leader, with its message, while a fresh entry exists.
    let image_url = imgmeta_domain::ImageUrl::parse(&url).unwrap();
    let job = imgmeta_store::NewJob {
        id: imgmeta_domain::JobId::new(),
        owner: imgmeta_store::Owner {
            account: crate::helpers::own_account(&app).await,
            key_id: None,
        },
        spec: imgmeta_domain::JobSpec {
            source: imgmeta_domain::Source::Url(image_url.clone()),
            tasks: imgmeta_domain::TaskSet::all(),
            min_score: imgmeta_domain::MinScore::DEFAULT,
            dream: None,
            bypass_cache: false,
            webhook_url: None,
        },
        input: None,
        idempotency: None,
        trace_parent: None,
        admission: imgmeta_store::JobAdmission::Flight(image_url.cache_key()),
    };
    let store = crate::helpers::store_of(&app);
    assert!(matches!(
        store.insert_job(&job).await.unwrap(),
        imgmeta_store::Submitted::Created(_)
    ));
    let led = app.wait_terminal(&job.id.to_string()).await;
    assert_eq!(led["status"], "succeeded", "{led}");
    assert_eq!(led["cache"]["status"], "hit", "{led}");
    assert_eq!(led["result"]["objects"], first["result"]["objects"]);
    assert_eq!(origin.seen("maxage", "chelsea.png").requests, 1);
    store.close().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_is_fetched_every_time_and_no_cache_is_revalidated_with_its_etag() {
    let app = TestApp::spawn().await;
    let (origin, addr) = Origin::spawn().await;
    for rule in ["nostore", "nocache"] {
        let url = format!("http://{addr}/{rule}/chelsea.png");
        for _ in 0..2 {
            let (status, job) = submit(&app, json!({"url": url})).await;
            assert_eq!(
                status, 202,
                "{rule}: never answered without the origin: {job}"
            );
            let job = app.wait_terminal(job["id"].as_str().unwrap()).await;
            assert_eq!(job["status"], "succeeded", "{job}");
        }
    }
    let no_store = origin.seen("nostore", "chelsea.png");
    assert_eq!((no_store.requests, no_store.bodies), (2, 2));
    // The second no-cache job sent If-None-Match and got 304: no download, no inference.
    let no_cache = origin.seen("nocache", "chelsea.png");
    assert_eq!(
        no_cache,
        Seen {
            requests: 2,
            bodies: 1,
            not_modified: 1
        }
    );
    let (_, again) = submit(
        &app,
        json!({"url": format!("http://{addr}/nocache/chelsea.png")}),
    )
    .await;
    let again = app.wait_terminal(again["id"].as_str().unwrap()).await;
    assert_eq!(again["cache"]["status"], "revalidated", "{again}");
    assert_eq!(again["cache"]["key"], "url");
    assert!(again["result"]["timings_ms"]["objects"].is_null());
    assert!(
        !again["result"]["objects"]["detections"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_entry_is_revalidated_once_and_served_stale_while_that_runs() {
    let app = TestApp::spawn().await;
    let (origin, addr) = Origin::spawn().await;
    let url = format!("http://{addr}/expired/chelsea.png");
    let (_, first) = submit(&app, json!({"url": url})).await;
    app.wait_terminal(first["id"].as_str().unwrap()).await;

    // Stale at once (max-age=0): the next job revalidates; while its flight runs, another
    // submission is answered from the stale entry.
    let (status, reval) = submit(&app, json!({"url": url})).await;
    assert_eq!(status, 202, "{reval}");
    let (status, stale) = submit(&app, json!({"url": url})).await;
    if status == 201 {
        assert_eq!(stale["cache"]["status"], "stale", "{stale}");
        assert!(
            stale["result"]["objects"]["detections"]
                .as_array()
                .is_some()
        );
    } else {
        // The revalidation already ended: nothing was under way to serve stale beside.
        assert_eq!(status, 202);
    }
    let reval = app.wait_terminal(reval["id"].as_str().unwrap()).await;
    assert_eq!(reval["cache"]["status"], "revalidated", "{reval}");
    let seen = origin.seen("expired", "chelsea.png");
    assert_eq!(seen.bodies, 1, "{seen:?}");
    assert!(seen.not_modified >= 1, "{seen:?}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_modified_gives_a_heuristic_lifetime_and_plain_responses_the_default() {
    let app = TestApp::spawn().await;
    let (origin, addr) = Origin::spawn().await;
    for rule in ["lastmod", "plain"] {
        let url = format!("http://{addr}/{rule}/chelsea.png");
        let (_, first) = submit(&app, json!({"url": url})).await;
        app.wait_terminal(first["id"].as_str().unwrap()).await;
        let (status, second) = submit(&app, json!({"url": url})).await;
        assert_eq!(status, 201, "{rule}: fresh for a while: {second}");
        assert_eq!(second["cache"]["status"], "hit");
        assert_eq!(origin.seen(rule, "chelsea.png").requests, 1);
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_link_is_remembered_briefly_and_bypass_and_purge_go_to_the_origin() {
    let app = TestApp::spawn().await;
    let (origin, addr) = Origin::spawn().await;
    let missing = format!("http://{addr}/missing/chelsea.png");
    let (_, first) = submit(&app, json!({"url": missing})).await;
    let first = app.wait_terminal(first["id"].as_str().unwrap()).await;
    assert_eq!(first["error"]["code"], "http_status", "{first}");
    let (status, second) = submit(&app, json!({"url": missing})).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["status"], "failed");
    assert_eq!(second["error"], first["error"]);
    assert_eq!(second["cache"]["status"], "hit");
    assert!(second["result"].is_null(), "{second}");
    assert_eq!(origin.seen("missing", "chelsea.png").requests, 1);

    let url = format!("http://{addr}/maxage/chelsea.png");
    let (_, first) = submit(&app, json!({"url": url})).await;
    app.wait_terminal(first["id"].as_str().unwrap()).await;
    // The client's bypass: in the body, or as Cache-Control on the request.
    let (status, bypass) = submit(&app, json!({"url": url, "cache": "bypass"})).await;
    assert_eq!(status, 202);
    let bypass = app.wait_terminal(bypass["id"].as_str().unwrap()).await;
    assert_eq!(bypass["cache"]["status"], "bypass", "{bypass}");
    let header_bypass = app
        .client
        .post(format!("{}/v1/jobs", app.base))
        .header("cache-control", "no-cache")
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(header_bypass.status(), 202);
    let header_bypass: Value = header_bypass.json().await.unwrap();
    app.wait_terminal(header_bypass["id"].as_str().unwrap())
        .await;
    assert_eq!(origin.seen("maxage", "chelsea.png").requests, 3);

    // An operator's purge of the URL: the next job goes to the origin again.
    let purged = crate::processes::run_cli(&app.settings, &["cache", "purge", "--url", &url]);
    assert!(purged.status.success(), "{purged:?}");
    let printed: Value = serde_json::from_slice(&purged.stdout).unwrap();
    assert_eq!(printed["url_entries"], 1, "{printed}");
    let (status, after) = submit(&app, json!({"url": url})).await;
    assert_eq!(status, 202, "{after}");
    let after = app.wait_terminal(after["id"].as_str().unwrap()).await;
    assert_eq!(
        after["cache"]["status"], "miss",
        "content purged with the URL: {after}"
    );
    assert_eq!(origin.seen("maxage", "chelsea.png").requests, 4);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_entry_answers_without_being_read_again_until_a_purge_is_announced() {
    // Copies held for a minute, so only the purge's announcement can end this one's.
    let app = TestApp::spawn_with(crate::helpers::Options {
        env: vec![("IMGMETA_CACHE_HOT_MS", "60000".into())],
        ..Default::default()
    })
    .await;
    let (origin, addr) = Origin::spawn().await;
    let url = format!("http://{addr}/maxage/chelsea.png");
    let (_, first) = submit(&app, json!({"url": url})).await;
    let first = app.wait_terminal(first["id"].as_str().unwrap()).await;
    assert_eq!(first["cache"]["status"], "miss", "{first}");
    let (status, hit) = submit(&app, json!({"url": url})).await;
    assert_eq!((status, &hit["cache"]["status"]), (201, &json!("hit")));

    // The entries removed behind the API's back (no announcement): the process still answers
    // from the copy it read, the entry's age moving on with the clock.
    let pool = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(
        &app.settings.database.url,
    ))
    .await
    .unwrap();
    sqlx::query("DELETE FROM url_cache")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM content_cache")
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, hot) = submit(&app, json!({"url": url, "tasks": ["objects"]})).await;
    assert_eq!(status, 201, "{hot}");
    assert_eq!(hot["cache"]["status"], "hit");
    assert_eq!(hot["result"]["objects"], first["result"]["objects"]);
    assert!(
        hot["cache"]["age_s"].as_f64().unwrap() >= hit["cache"]["age_s"].as_f64().unwrap() + 0.05,
        "{} then {}",
        hit["cache"],
        hot["cache"]
    );
    assert_eq!(origin.seen("maxage", "chelsea.png").requests, 1);

    // An operator's purge is announced by PostgreSQL to every API process, which forgets its
    // copy: within milliseconds (10 s allowed for a loaded machine), where the copy would
    // live a minute.
    let purged = crate::processes::run_cli(&app.settings, &["cache", "purge", "--url", &url]);
    assert!(purged.status.success(), "{purged:?}");
    let heard_by = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let (status, after) = submit(&app, json!({"url": url})).await;
        if status == 202 {
            break after;
        }
        assert_eq!(status, 201, "{after}");
        assert!(
            std::time::Instant::now() < heard_by,
            "the purge never reached the API's copy: {after}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let after = app.wait_terminal(after["id"].as_str().unwrap()).await;
    assert_eq!(after["cache"]["status"], "miss", "{after}");
    assert_eq!(origin.seen("maxage", "chelsea.png").requests, 2);

    // The account's GPS setting is read with the key, and a change is announced by PostgreSQL
    // to every API process (which drops the rate-limit tokens its busy keys took ahead with the
    // setting), so a hot answer follows a change within milliseconds (10 s allowed for a
    // loaded machine).
    let gps = json!({"url": app.image_url("camera_north_east.jpg"), "tasks": ["metadata"]});
    let (_, located) = submit(&app, gps.clone()).await;
    let located = app.wait_terminal(located["id"].as_str().unwrap()).await;
    assert!(
        located["result"]["image"]["exif"]["gps"]["latitude"].is_number(),
        "{located}"
    );
    let (_, hit) = submit(&app, gps.clone()).await;
    assert_eq!(hit["cache"]["status"], "hit");
    assert!(hit["result"]["image"]["exif"]["gps"]["latitude"].is_number());
    crate::helpers::store_of(&app)
        .update_account(
            crate::helpers::own_account(&app).await,
            &imgmeta_store::AccountChanges {
                redact_gps: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let heard_by = std::time::Instant::now() + Duration::from_secs(10);
    let redacted = loop {
        let (_, answer) = submit(&app, gps.clone()).await;
        assert_eq!(answer["cache"]["status"], "hit", "{answer}");
        if answer["result"]["image"]["exif"]["gps"].is_null() {
            break answer;
        }
        assert!(
            std::time::Instant::now() < heard_by,
            "the GPS setting never reached the API: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        redacted["result"]["image"]["exif"]["make"],
        located["result"]["image"]["exif"]["make"]
    );
    pool.close().await;
    app.cleanup().await;
}

/// The coalescing test's deployment: two API processes and two worker processes on one
/// database and queue.
struct Deployment {
    db: String,
    queue: String,
    apis: Vec<(String, tokio::process::Child)>,
    workers: Vec<tokio::process::Child>,
}

impl Deployment {
    async fn start() -> Self {
        let (db, queue) = fresh_database().await;
        let env = [
            ("IMGMETA_LEASE_SECS", "5".to_owned()),
            ("IMGMETA_SWEEP_MS", "500".to_owned()),
            ("IMGMETA_RETRY_BASE_MS", "50".to_owned()),
        ];
        let mut apis = Vec::new();
        for _ in 0..2 {
            let port = free_port();
            let child = imgmeta(&db, &queue, port, "api", &env);
            apis.push((format!("http://127.0.0.1:{port}"), child));
        }
        for (base, _) in &apis {
            wait_until_up(base).await;
        }
        let mut deployment = Self {
            db,
            queue,
            apis,
            workers: Vec::new(),
        };
        deployment.start_workers(2).await;
        deployment
    }

    async fn start_workers(&mut self, n: usize) {
        let env = [
            ("IMGMETA_LEASE_SECS", "5".to_owned()),
            ("IMGMETA_SWEEP_MS", "500".to_owned()),
        ];
        for _ in 0..n {
            let port = free_port();
            let child = imgmeta(
                &self.db,
                &self.queue,
                port,
                "worker",
                &[
                    &env[..],
                    &[("IMGMETA_METRICS_ADDR", format!("127.0.0.1:{port}"))],
                ]
                .concat(),
            );
            self.workers.push(child);
        }
        // A worker announces its model once started; until then the API has no entry to
        // answer from, which only makes jobs miss.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    async fn kill_workers(&mut self) {
        for mut worker in self.workers.drain(..) {
            worker.kill().await.unwrap();
        }
    }

    /// Submits `n` jobs for `url` at once, alternating between the API processes.
    async fn burst(&self, url: &str, n: usize) -> Vec<String> {
        let client = reqwest::Client::new();
        let submissions = (0..n).map(|i| {
            let base = &self.apis[i % self.apis.len()].0;
            let client = client.clone();
            async move {
                let response = client
                    .post(format!("{base}/v1/jobs"))
                    .json(&json!({"url": url, "min_score": if i % 2 == 0 { 0.25 } else { 0.5 }}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                let job: Value = response.json().await.unwrap();
                job["id"].as_str().unwrap().to_owned()
            }
        });
        futures::future::join_all(submissions).await
    }

    async fn wait_all(&self, ids: &[String]) -> Vec<Value> {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let mut out = Vec::new();
        for id in ids {
            out.push(crate::processes::wait_terminal(&client, &self.apis[0].0, id, deadline).await);
        }
        out
    }

    async fn stop(mut self) {
        self.kill_workers().await;
        for (_, mut api) in self.apis.drain(..) {
            api.kill().await.unwrap();
        }
        clean_up(&self.db, &self.queue).await;
    }
}

fn assert_one_analysis(jobs: &[Value]) {
    for job in jobs {
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    // Every job's detections are the leader's, cut at its own min_score.
    let widest = jobs
        .iter()
        .filter(|j| j["min_score"] == 0.25)
        .map(|j| &j["result"]["objects"]["detections"])
        .next()
        .unwrap()
        .clone();
    for job in jobs {
        let min = job["min_score"].as_f64().unwrap();
        let expected: Vec<&Value> = widest
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["score"].as_f64().unwrap() >= min)
            .collect();
        let got: Vec<&Value> = job["result"]["objects"]["detections"]
            .as_array()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(got, expected, "{job}");
        assert_eq!(job["result"]["image"], jobs[0]["result"]["image"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_submissions_through_two_apis_and_two_workers_cost_one_fetch_and_survive_a_killed_leader()
 {
    let (origin, addr) = Origin::spawn().await;
    let mut deployment = Deployment::start().await;

    // 50 at once for one uncached URL: one fetch, one inference, 49 completed in its commit.
    let url = format!("http://{addr}/slow/chelsea.png?delay_ms=1500");
    let ids = deployment.burst(&url, 50).await;
    let jobs = deployment.wait_all(&ids).await;
    assert_one_analysis(&jobs);
    let statuses: Vec<&str> = jobs
        .iter()
        .map(|j| j["cache"]["status"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "miss").count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| matches!(*s, "miss" | "coalesced" | "hit")),
        "{statuses:?}"
    );
    assert_eq!(origin.seen("slow", "chelsea.png").requests, 1);

    // The leader's worker dies mid-fetch: its lease expires, the job runs again elsewhere,
    // and its followers complete with it; none is stranded.
    let url = format!("http://{addr}/slow/coffee.png?delay_ms=4000");
    let ids = deployment.burst(&url, 20).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while origin.seen("slow", "coffee.png").requests == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader never fetched"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deployment.kill_workers().await;
    deployment.start_workers(2).await;
    let jobs = deployment.wait_all(&ids).await;
    assert_one_analysis(&jobs);
    // One request per run of the leading job: the killed one and the one that finished.
    let seen = origin.seen("slow", "coffee.png");
    assert_eq!(seen.requests, 2, "{seen:?}");
    deployment.stop().await;
}
