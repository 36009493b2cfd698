//! Security through the real API: API keys, rate limits and quotas, the in-flight cap, the
//! domain and destination policy, inbound limits, and the shared per-host fetch schedule.

use crate::helpers::{Options, TestApp, authorized_client};
use imgmeta_api::{KeyRequest, issue_key};
use imgmeta_store::Store;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

fn options(env: &[(&'static str, &str)]) -> Options {
    Options {
        start_worker: false,
        env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        ..Default::default()
    }
}

fn store_of(app: &TestApp) -> Store {
    Store::connect_lazy(&app.settings.database.url, 2).unwrap()
}

async fn key_with(app: &TestApp, rate_per_minute: u32, daily_quota: u32) -> String {
    let request = KeyRequest::in_new_account(
        imgmeta_domain::Name::parse("security test").unwrap(),
        rate_per_minute,
        daily_quota,
        30,
    );
    issue_key(&store_of(app), &request, "test")
        .await
        .unwrap()
        .key
}

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error bodies are JSON");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn unknown_job(app: &TestApp) -> String {
    format!("{}/v1/jobs/{}", app.base, uuid::Uuid::now_v7())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_malformed_unknown_and_revoked_keys_all_get_the_same_401() {
    let app = TestApp::spawn_with(options(&[])).await;
    let revoked = key_with(&app, 100, 100).await;
    let prefix = &revoked[..12];
    assert!(
        store_of(&app)
            .revoke_api_key(prefix)
            .await
            .unwrap()
            .is_some()
    );
    let unknown = imgmeta_auth::ApiKey::generate().expose().to_owned();
    let anonymous = reqwest::Client::new();
    let clients = [
        ("missing", anonymous.clone()),
        ("malformed", authorized_client("imk_not-a-key")),
        ("unknown", authorized_client(&unknown)),
        ("revoked", authorized_client(&revoked)),
    ];

    let mut answers = Vec::new();
    for (what, client) in &clients {
        let submit = client
            .post(format!("{}/v1/jobs", app.base))
            .json(&json!({ "url": app.image_url("camera_orientation6.jpg") }))
            .send()
            .await
            .unwrap();
        assert_eq!(submit.headers()["www-authenticate"], "Bearer", "{what}");
        let submit = error_of(submit).await;
        let legacy = error_of(
            client
                .post(format!("{}/img?http%3A%2F%2Fexample.com%2Fa.jpg", app.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let poll = error_of(client.get(unknown_job(&app)).send().await.unwrap()).await;
        assert_eq!(submit, legacy, "{what}");
        assert_eq!(submit, poll, "{what}");
        answers.push(submit);
    }

    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!((answers[0].0, answers[0].1.as_str()), (401, "unauthorized"));
    let health = anonymous
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let with_key = authorized_client(&app.api_key)
        .get(unknown_job(&app))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(with_key).await.1, "job_not_found");
    assert_eq!(app.ready_messages().await, 0);
    app.cleanup().await;
}

/// The API remembers keys it has verified (no lookup on their next requests), but revocation
/// is read by the admission of a key sending one request at a time on each of them: a key
/// revoked while in use is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_while_in_use_is_refused_on_its_next_request() {
    let app = TestApp::spawn_with(options(&[])).await;
    let key = key_with(&app, 100, 100).await;
    let client = authorized_client(&key);
    for _ in 0..3 {
        let answer = client.get(unknown_job(&app)).send().await.unwrap();
        assert_eq!(error_of(answer).await.1, "job_not_found");
    }
    assert!(
        store_of(&app)
            .revoke_api_key(&key[..12])
            .await
            .unwrap()
            .is_some()
    );
    let poll = error_of(client.get(unknown_job(&app)).send().await.unwrap()).await;
    assert_eq!((poll.0, poll.1.as_str()), (401, "unauthorized"));
    let submit = client
        .post(format!("{}/v1/jobs", app.base))
        .json(&json!({ "url": app.image_url("camera_orientation6.jpg") }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(submit).await.0, 401);
    assert_eq!(app.ready_messages().await, 0);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_ratelimit_headers() {
    let app = TestApp::spawn_with(options(&[])).await;
    let client = authorized_client(&key_with(&app, 2, 1000).await);

    let first = client.get(unknown_job(&app)).send().await.unwrap();
    let second = client.get(unknown_job(&app)).send().await.unwrap();
    let third = client.get(unknown_job(&app)).send().await.unwrap();

    assert_eq!(first.status(), 404);
    assert_eq!(first.headers()["ratelimit-limit"], "2");
    assert_eq!(first.headers()["ratelimit-remaining"], "1");
    assert_eq!(second.status(), 404);
    assert_eq!(second.headers()["ratelimit-remaining"], "0");
    assert_eq!(third.status(), 429);
    let retry_after: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(third.headers()["ratelimit-remaining"], "0");
    let reset: u64 = third.headers()["ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset >= retry_after && reset <= 60, "{reset}");
    assert_eq!(error_of(third).await.1, "rate_limited");
    // Another key is not affected.
    let other = app.client.get(unknown_job(&app)).send().await.unwrap();
    assert_eq!(other.status(), 404);
    app.cleanup().await;
}

/// Statuses of `n` reads of unknown jobs sent `concurrency` at a time, alternately to each of
/// `bases`.
async fn burst(client: &reqwest::Client, bases: &[&str], n: usize, concurrency: usize) -> Vec<u16> {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|i| {
            let url = format!(
                "{}/v1/jobs/{}",
                bases[i % bases.len()],
                uuid::Uuid::now_v7()
            );
            async move { client.get(url).send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_key_through_two_api_processes_is_admitted_no_more_than_its_bucket_holds() {
    let first = TestApp::spawn_with(options(&[])).await;
    let second = TestApp::spawn_with(Options {
        database: Some(first.db_name.clone()),
        ..options(&[])
    })
    .await;
    // 64 a minute: each process takes up to 8 tokens ahead for this key's next requests.
    let client = authorized_client(&key_with(&first, 64, 100_000).await);
    let started = Instant::now();
    let statuses = burst(&client, &[&first.base, &second.base], 300, 32).await;
    let refilled = (64.0 * started.elapsed().as_secs_f64() / 60.0).ceil() as usize;
    let admitted = statuses.iter().filter(|s| **s == 404).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(admitted + refused, 300, "{statuses:?}");
    // Never more than the bucket held plus what it refilled meanwhile; at most the tokens the
    // two processes' last leases took and did not use (7 each) go unused.
    assert!(
        admitted <= 64 + refilled,
        "{admitted} admitted, {refilled} refilled"
    );
    assert!(admitted >= 64 - 14, "{admitted} admitted");
    first.cleanup().await;
    second.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_key_revoked_elsewhere_is_refused_within_moments() {
    let app = TestApp::spawn_with(options(&[])).await;
    let key = key_with(&app, 6_000, 100_000).await;
    let client = authorized_client(&key);
    // Busy enough that its requests are admitted from tokens taken ahead.
    let statuses = burst(&client, &[&app.base], 100, 16).await;
    assert!(statuses.iter().all(|s| *s == 404), "{statuses:?}");
    // Revoked by another process (as `imgmeta keys revoke` does): PostgreSQL announces it, and
    // the API drops the tokens the key took ahead; a lease lives 250 ms in any case.
    store_of(&app).revoke_api_key(&key[..12]).await.unwrap();
    let refused_by = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client.get(unknown_job(&app)).send().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 404);
        assert!(
            Instant::now() < refused_by,
            "the revocation never took effect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_daily_quota_gets_429_for_submissions_but_may_still_poll() {
    let app = TestApp::spawn_with(options(&[])).await;
    let client = authorized_client(&key_with(&app, 1000, 1).await);
    let submit = || {
        client
            .post(format!("{}/v1/jobs", app.base))
            .json(
                &json!({ "url": app.image_url("camera_orientation6.jpg"), "tasks": ["metadata"] }),
            )
            .send()
    };

    let first = submit().await.unwrap();
    assert_eq!(first.status(), 202);
    let job: Value = first.json().await.unwrap();
    let second = submit().await.unwrap();

    assert_eq!(second.status(), 429);
    let retry_after: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    assert_eq!(error_of(second).await.1, "quota_exceeded");
    let poll = client
        .get(format!(
            "{}/v1/jobs/{}",
            app.base,
            job["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status(), 200);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_domains_and_private_addresses_are_refused_at_submission_with_403() {
    let app = TestApp::spawn_with(options(&[
        ("IMGMETA_BLOCKED_DOMAINS", "blocked.test, *.evil.test"),
        ("IMGMETA_FETCH_ALLOW_PRIVATE", "false"),
    ]))
    .await;
    let cases = [
        ("http://blocked.test/a.jpg", 403, "blocked_domain"),
        ("https://cdn.Blocked.TEST./a.jpg", 403, "blocked_domain"),
        ("http://x.evil.test/a.jpg", 403, "blocked_domain"),
        ("http://10.0.0.1/a.jpg", 403, "blocked_destination"),
        (
            "http://169.254.169.254/latest/meta-data",
            403,
            "blocked_destination",
        ),
        ("http://[::1]/a.jpg", 403, "blocked_destination"),
    ];
    for (url, status, code) in cases {
        let got = error_of(app.submit(json!({ "url": url })).await).await;
        assert_eq!((got.0, got.1.as_str()), (status, code), "{url}");
        let legacy = app
            .client
            .post(format!(
                "{}/img?{}",
                app.base,
                url.replace(':', "%3A").replace('/', "%2F")
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(legacy).await.1, code, "/img {url}");
    }
    let allowed = app
        .submit(json!({ "url": "http://notblocked.test/a.jpg" }))
        .await;
    assert_eq!(allowed.status(), 202);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_into_a_blocked_domain_fails_the_job() {
    let app = TestApp::spawn_with(Options {
        start_worker: true,
        ..options(&[("IMGMETA_BLOCKED_DOMAINS", "blocked.test")])
    })
    .await;
    let redirector = spawn_redirector("http://img.blocked.test/a.jpg").await;

    let id = app
        .submit_ok(json!({ "url": format!("http://{redirector}/r"), "tasks": ["metadata"] }))
        .await;
    let job = app.wait_terminal(&id).await;

    assert_eq!(job["status"], "failed", "{job:#}");
    assert_eq!(job["error"]["code"], "blocked_domain");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_sign_up_keys_with_the_admin_token_only() {
    let token = "an-admin-token-for-tests";
    let app = TestApp::spawn_with(options(&[("IMGMETA_ADMIN_TOKEN", token)])).await;
    let keys_url = format!("{}/v1/keys", app.base);
    let body = json!({ "name": "partner", "rate_per_minute": 30, "daily_quota": 500 });

    let anonymous = reqwest::Client::new()
        .post(&keys_url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let with_api_key = app.client.post(&keys_url).json(&body).send().await.unwrap();
    let created = authorized_client(token)
        .post(&keys_url)
        .json(&body)
        .send()
        .await
        .unwrap();

    assert_eq!(error_of(anonymous).await.1, "unauthorized");
    assert_eq!(error_of(with_api_key).await.1, "unauthorized");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["rate_per_minute"], 30);
    assert_eq!(created["daily_quota"], 500);
    let used = authorized_client(key)
        .get(unknown_job(&app))
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 404);
    assert_eq!(used.headers()["ratelimit-limit"], "30");
    let bad = authorized_client(token)
        .post(&keys_url)
        .json(&json!({ "name": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(bad).await.0, 400);
    // The stored row holds the key's SHA-256 and its prefix, never the key itself.
    let pool = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(
        &app.settings.database.url,
    ))
    .await
    .unwrap();
    let (hashed, leaked): (bool, bool) = sqlx::query_as(
        "SELECT key_hash = sha256(convert_to($1, 'UTF8')),
                strpos(prefix || name || key_hash::text, $1) > 0
         FROM api_keys WHERE prefix = $2",
    )
    .bind(key)
    .bind(created["prefix"].as_str().unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(hashed && !leaked);
    pool.close().await;
    app.cleanup().await;

    let without_admin = TestApp::spawn_with(options(&[])).await;
    let refused = authorized_client(token)
        .post(format!("{}/v1/keys", without_admin.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(refused).await.0, 403);
    without_admin.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_disabled_requests_need_no_key() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_AUTH", "disabled")])).await;
    let anonymous = reqwest::Client::new()
        .get(unknown_job(&app))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(anonymous).await.1, "job_not_found");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_cap_get_503_and_liveness_still_answers() {
    let app = TestApp::spawn_with(options(&[
        ("IMGMETA_MAX_IN_FLIGHT", "1"),
        ("IMGMETA_LEGACY_WAIT_MS", "10000"),
    ]))
    .await;
    // With no worker, a legacy request holds its slot for the whole legacy wait.
    let spawn_holder = || {
        let (client, url) = (
            app.client.clone(),
            format!(
                "{}/img?{}",
                app.base,
                urlencode(&app.image_url("camera_orientation6.jpg"))
            ),
        );
        tokio::spawn(async move { client.post(url).send().await.unwrap().status() })
    };
    let mut holder = spawn_holder();

    let deadline = Instant::now() + Duration::from_secs(8);
    let refused = loop {
        if holder.is_finished() {
            // The holder itself met the cap (one of our probes held the slot): try again.
            assert_eq!(holder.await.unwrap(), 503, "the holder finished early");
            holder = spawn_holder();
        }
        let response = app.client.get(unknown_job(&app)).send().await.unwrap();
        if response.status() == 503 {
            break response;
        }
        assert!(Instant::now() < deadline, "the cap never applied");
        tokio::task::yield_now().await;
    };

    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(error_of(refused).await.1, "too_many_requests_in_flight");
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(holder.await.unwrap(), 202);
    let after = app.client.get(unknown_job(&app)).send().await.unwrap();
    assert_eq!(after.status(), 404);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_targets_and_headers_are_refused() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_MAX_URL_BYTES", "1024")])).await;
    let long = app
        .client
        .get(format!("{}/v1/jobs/{}", app.base, "a".repeat(1100)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(long).await,
        (
            414,
            "uri_too_long".into(),
            "the request target exceeds 1024 bytes".into()
        )
    );

    let mut many = app.client.get(unknown_job(&app));
    for i in 0..100 {
        many = many.header(format!("x-filler-{i}"), "1");
    }
    assert_eq!(many.send().await.unwrap().status(), 431);
    let huge = app
        .client
        .get(unknown_job(&app))
        .header("x-filler", "a".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 431);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_headers_one_byte_at_a_time_is_disconnected_at_the_timeout() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_HEADER_READ_TIMEOUT_MS", "1000")])).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}",
        "a".repeat(100)
    );

    // One byte every 100 ms: the headers would take over 10 s to arrive.
    let mut closed_after = None;
    let mut buf = [0u8; 1024];
    for byte in request.as_bytes() {
        tokio::select! {
            read = stream.read(&mut buf) => {
                if matches!(read, Ok(0) | Err(_)) {
                    closed_after = Some(started.elapsed());
                    break;
                }
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if stream.write_all(&[*byte]).await.is_err() {
                    closed_after = Some(started.elapsed());
                    break;
                }
            }
        }
    }

    let closed_after = closed_after.expect("the server kept the slow connection open");
    assert!(
        // Dripping the whole request would take over 10 s: closing well before that is the
        // deadline at work, however slow this machine is.
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(8),
        "{closed_after:?}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dripping_its_body_gets_408_at_the_body_deadline_and_others_are_unaffected() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_BODY_READ_TIMEOUT_MS", "1000")])).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = format!(r#"{{"url": "http://example.com/{}.jpg"}}"#, "a".repeat(150));
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        app.api_key,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();

    // One body byte every 100 ms: the body would take about 20 s to arrive.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    for byte in body.as_bytes() {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
            }
        }
    }
    let answered_after = started.elapsed();

    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(
        // The whole body would take about 20 s to arrive.
        answered_after >= Duration::from_millis(900) && answered_after < Duration::from_secs(10),
        "{answered_after:?}"
    );
    // A client sending its body at once is served as usual.
    let ok = app
        .submit(json!({"url": "http://example.com/cat.jpg"}))
        .await;
    assert_eq!(ok.status(), 202);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_from_one_host_are_spaced_at_the_shared_rate_across_processes() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_HOST_FETCH_RATE_PER_SECOND", "5")])).await;
    // Two gates over two connection pools stand for two worker processes.
    let gates: Vec<_> = (0..2)
        .map(|_| imgmeta_cli::security::host_gate(&app.settings, store_of(&app)).unwrap())
        .collect();
    let started = Instant::now();

    let mut turns = Vec::new();
    for i in 0..6 {
        let gate = gates[i % 2].clone();
        turns.push(tokio::spawn(async move {
            gate.wait_turn("images.example").await;
            started.elapsed()
        }));
    }
    let mut times = Vec::new();
    for turn in turns {
        times.push(turn.await.unwrap());
    }
    let other_host = Instant::now();
    gates[0].wait_turn("other.example").await;

    times.sort();
    // 5 per second: one slot every 200 ms, whichever process asks. Each task notes its time
    // a database round trip after its slot was given, so neighbours may look closer than
    // 200 ms on a loaded machine; the sixth slot cannot come before 1 s.
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(80), "{times:?}");
    }
    assert!(times[5] >= Duration::from_millis(950), "{times:?}");
    assert!(
        other_host.elapsed() < Duration::from_millis(800),
        "another host waits for nobody"
    );
    // Hosts idle for long are forgotten; busy ones keep their schedule.
    let store = store_of(&app);
    let pool = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(
        &app.settings.database.url,
    ))
    .await
    .unwrap();
    sqlx::query(
        "UPDATE host_slots SET next_at = now() - interval '2 hours' WHERE host = 'other.example'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        store
            .forget_idle_hosts(Duration::from_secs(3600))
            .await
            .unwrap(),
        1
    );
    let left: Vec<String> = sqlx::query_scalar("SELECT host FROM host_slots")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["images.example"]);
    pool.close().await;
    app.cleanup().await;
}

fn urlencode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A loopback server whose `/r` answers 302 to `target`.
async fn spawn_redirector(target: &'static str) -> std::net::SocketAddr {
    use axum::http::{StatusCode, header};
    let app = axum::Router::new().route(
        "/r",
        axum::routing::get(
            move || async move { (StatusCode::FOUND, [(header::LOCATION, target)]) },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_created_listed_and_revoked_with_the_cli_work_against_the_api() {
    let app = TestApp::spawn_with(options(&[])).await;
    let imgmeta = |args: &[&str]| {
        let output = crate::processes::run_cli(&app.settings, args);
        assert!(output.status.success(), "imgmeta {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };

    let created: Value = serde_json::from_str(&imgmeta(&[
        "keys",
        "create",
        "--name",
        "cli key",
        "--rate-per-minute",
        "7",
    ]))
    .unwrap();
    let (key, prefix) = (
        created["key"].as_str().unwrap().to_owned(),
        created["prefix"].as_str().unwrap().to_owned(),
    );
    let client = authorized_client(&key);
    let before = client.get(unknown_job(&app)).send().await.unwrap();
    imgmeta(&["keys", "revoke", &prefix]);
    let after = client.get(unknown_job(&app)).send().await.unwrap();
    let listed: Vec<Value> = imgmeta(&["keys", "list"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();

    assert_eq!(before.status(), 404);
    assert_eq!(before.headers()["ratelimit-limit"], "7");
    assert_eq!(error_of(after).await.0, 401);
    let row = listed
        .iter()
        .find(|k| k["prefix"] == prefix.as_str())
        .unwrap();
    assert_eq!(row["name"], "cli key");
    assert!(row["revoked_at"].is_string());
    assert!(listed.iter().all(|k| k.get("key").is_none()));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_creates_a_key_only_when_no_usable_key_exists() {
    let app = TestApp::spawn_with(options(&[])).await;
    let store = store_of(&app);
    imgmeta_cli::security::ensure_first_key(&app.settings, &store)
        .await
        .unwrap();
    assert_eq!(
        store.list_api_keys().await.unwrap().len(),
        1,
        "the test key was usable"
    );

    store
        .revoke_api_key(&app.api_key[..12])
        .await
        .unwrap()
        .unwrap();
    imgmeta_cli::security::ensure_first_key(&app.settings, &store)
        .await
        .unwrap();

    let keys = store.list_api_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(store.count_active_api_keys().await.unwrap(), 1);
    assert_eq!(keys[1].name, "first key (imgmeta up)");
    app.cleanup().await;
}
