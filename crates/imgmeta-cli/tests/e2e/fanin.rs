//! Redirect fan-in under the per-host fetch rate, through the real API and a worker with the
//! shared host gate: many hosts that each redirect to one victim, under different spellings of
//! its address, reach it no faster than the victim's own rate, and every job still succeeds.

use crate::helpers::{Options, TestApp, fixtures_dir};
use imgmeta_store::Store;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Fetches per second allowed from one host.
const RATE: f64 = 2.0;
/// More jobs than fit in the fetcher's 5 s wait budget at `RATE`, so some are deferred.
const JOBS: usize = 16;
/// Spellings of 127.0.0.1 that the URL parser accepts: hex, octal, short and decimal forms
/// and a trailing dot, each on its own redirector.
const SPELLINGS: [&str; 8] = [
    "127.0.0.1",
    "127.1",
    "0x7f.0.0.1",
    "2130706433",
    "0177.0.0.1",
    "127.0.0.1.",
    "0x7F000001",
    "127.0.1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_from_many_hosts_reach_one_victim_no_faster_than_its_host_rate() {
    // Arrange: a victim counting its requests, eight redirectors on other loopback addresses,
    // and a worker that runs every job at once if the gate lets it.
    let app = TestApp::spawn_with(Options {
        start_worker: false,
        env: vec![
            ("IMGMETA_HOST_FETCH_RATE_PER_SECOND", RATE.to_string()),
            ("IMGMETA_WORKER_CONCURRENCY", JOBS.to_string()),
        ],
        ..Default::default()
    })
    .await;
    let victim = Victim::start().await;
    let mut redirectors = Vec::new();
    for (i, spelling) in SPELLINGS.iter().enumerate() {
        let location = format!("http://{spelling}:{}/victim.png", victim.addr.port());
        redirectors.push(spawn_redirector(&format!("127.0.0.{}", i + 2), location).await);
    }
    let store = Store::connect_lazy(&app.settings.database.url, 4).unwrap();
    let gate = imgmeta_cli::security::host_gate(&app.settings, store.clone()).unwrap();
    let analyzer = imgmeta_cli::serve::analyzer_with(&app.settings, Err("not needed".into()))
        .unwrap()
        .with_host_gate(gate);
    let stop_worker = CancellationToken::new();
    let worker = imgmeta_cli::serve::start_worker(
        &app.settings,
        store,
        Arc::new(analyzer),
        stop_worker.clone(),
    )
    .unwrap();

    // Act
    let mut ids = Vec::new();
    for i in 0..JOBS {
        let redirector = redirectors[i % redirectors.len()];
        let url = format!("http://{redirector}/r/{i}");
        ids.push(
            app.submit_ok(json!({ "url": url, "tasks": ["metadata"] }))
                .await,
        );
    }
    for id in &ids {
        let job = app.wait_terminal(id).await;
        assert_eq!(job["status"], "succeeded", "{job:#}");
    }

    // Assert: one request per job reached the victim, no faster than its rate. The gate hands
    // out turns `1 / RATE` apart; a worker connects a database round trip (or, on a loaded
    // machine, a scheduling hiccup) after its turn, so a late request may land close to the
    // next one. Hence no window of the arrivals holds more requests than its length at `RATE`
    // plus one second of such lateness (and the first); unpaced, all 16 would land within a
    // few milliseconds.
    let times = victim.times();
    assert_eq!(times.len(), JOBS, "one victim request per job");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let lateness = Duration::from_secs(1);
    for (i, first) in times.iter().enumerate() {
        for (j, last) in times.iter().enumerate().skip(i + 1) {
            let allowed = ((*last - *first + lateness).as_secs_f64() * RATE).floor() as usize + 1;
            assert!(
                j - i < allowed,
                "requests {i}..={j} arrived faster than {RATE}/s: {gaps:?}"
            );
        }
    }
    // The jobs past the wait budget were deferred rather than parked on a worker slot, and
    // the deferrals spent none of their attempts.
    let pool = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(
        &app.settings.database.url,
    ))
    .await
    .unwrap();
    let (deferred, most_attempts): (i64, i32) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE last_error_code = 'host_rate_limited'), max(attempts)
         FROM jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(deferred >= 1, "no job was deferred");
    assert_eq!(most_attempts, 1, "a deferral spent an attempt");
    pool.close().await;
    stop_worker.cancel();
    worker.await.unwrap();
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_further_away_than_the_bound_is_refused_and_takes_no_slot() {
    let app = TestApp::spawn_with(Options {
        start_worker: false,
        env: vec![("IMGMETA_HOST_FETCH_RATE_PER_SECOND", "1".into())],
        ..Default::default()
    })
    .await;
    let store = Store::connect_lazy(&app.settings.database.url, 2).unwrap();
    let gate = imgmeta_cli::security::host_gate(&app.settings, store).unwrap();
    let bound = Duration::from_secs(5);

    // One turn a second: turns 0 s to 5 s away fit the bound, whatever the spelling.
    let mut waits = Vec::new();
    for spelling in ["victim.example", "Victim.Example.", "VICTIM.EXAMPLE"].repeat(2) {
        waits.push(
            gate.reserve(&imgmeta_fetch::host_key(spelling), bound)
                .await,
        );
    }
    let refused = gate.reserve("victim.example", bound).await;
    let after_refusal = gate
        .reserve("victim.example", Duration::from_secs(60))
        .await;

    for (i, wait) in waits.iter().enumerate() {
        let wait = wait.expect("within the bound");
        let expected = Duration::from_secs(i as u64);
        assert!(
            wait <= expected && wait + Duration::from_millis(500) > expected,
            "turn {i}: {waits:?}"
        );
    }
    let free_in = refused
        .expect_err("six seconds away is past the bound")
        .retry_after;
    assert!(free_in > Duration::from_millis(5500) && free_in <= Duration::from_secs(6));
    // The refused caller took no turn: the next one is the sixth second, not the seventh.
    let wait = after_refusal.expect("within a 60 s bound");
    assert!(wait > Duration::from_millis(5500) && wait <= Duration::from_secs(6));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferral_for_a_busy_host_spends_no_attempt_until_the_job_is_old() {
    let app = TestApp::spawn_with(Options {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let store = Store::connect_lazy(&app.settings.database.url, 2).unwrap();
    let id = app
        .submit_ok(json!({ "url": app.image_url("alpha.png"), "tasks": ["metadata"] }))
        .await;
    let id = imgmeta_domain::JobId::parse(&id).unwrap();
    let busy = imgmeta_domain::ErrorBody::new(
        imgmeta_domain::ErrorCode::HostRateLimited,
        "victim.example is busy",
    );
    let lease = Duration::from_secs(30);
    let claim = |store: Store| async move {
        match store.claim(id, "fanin-test", lease, 5).await.unwrap() {
            imgmeta_store::Claim::Claimed { attempt, .. } => attempt,
            other => panic!("expected a claim, got {other:?}"),
        }
    };

    let first = claim(store.clone()).await;
    let young = Duration::from_secs(3600);
    assert!(
        store
            .defer_for_host(id, first, &busy, Duration::from_millis(1), young)
            .await
            .unwrap()
    );
    let again = claim(store.clone()).await;
    // A job older than the free window pays for each deferral.
    assert!(
        store
            .defer_for_host(id, again, &busy, Duration::from_millis(1), Duration::ZERO)
            .await
            .unwrap()
    );
    let counted = claim(store.clone()).await;

    assert_eq!((first, again, counted), (1, 1, 2));
    app.cleanup().await;
}

/// An image server on 127.0.0.1 that notes when each request arrived.
struct Victim {
    addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Victim {
    async fn start() -> Self {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let noted = arrivals.clone();
        let image = tokio::fs::read(fixtures_dir().join("alpha.png"))
            .await
            .unwrap();
        let app = axum::Router::new().route(
            "/victim.png",
            axum::routing::get(move || {
                noted.lock().unwrap().push(Instant::now());
                let image = image.clone();
                async move { image }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, arrivals }
    }

    /// Arrival times, in order.
    fn times(&self) -> Vec<Instant> {
        let mut times = self.arrivals.lock().unwrap().clone();
        times.sort();
        times
    }
}

/// A server on `ip` (a loopback address) that answers every path with a 302 to `location`.
async fn spawn_redirector(ip: &str, location: String) -> SocketAddr {
    use axum::http::{StatusCode, header};
    let app = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move { (StatusCode::FOUND, [(header::LOCATION, location)]) }
    });
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
