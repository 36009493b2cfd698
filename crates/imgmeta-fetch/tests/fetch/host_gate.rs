//! The per-host rate limit on every hop: each hop's host takes a turn at the gate after its
//! address check, under one normalised key, within one wait budget per fetch; a host whose
//! turn is too far away fails the fetch with `host_rate_limited` before any connection to it.

use crate::support::{GIF, Reply, TestServer, dev_config, image_url};
use imgmeta_domain::ErrorCode;
use imgmeta_fetch::{FetchConfig, FetchError, Fetcher, GateFuture, HostBusy, HostGate};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a scripted gate answers for a host.
type Answer = Box<dyn Fn(&str) -> Result<Duration, HostBusy> + Send + Sync>;

/// A gate that records each request and answers with `answer(host)`.
struct ScriptedGate {
    asked: Mutex<Vec<(String, Duration)>>,
    answer: Answer,
}

impl ScriptedGate {
    fn new(
        answer: impl Fn(&str) -> Result<Duration, HostBusy> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            asked: Mutex::new(Vec::new()),
            answer: Box::new(answer),
        })
    }

    fn asked(&self) -> Vec<(String, Duration)> {
        self.asked.lock().unwrap().clone()
    }

    fn hosts(&self) -> Vec<String> {
        self.asked().into_iter().map(|(host, _)| host).collect()
    }
}

impl HostGate for ScriptedGate {
    fn reserve<'a>(
        &'a self,
        host: &'a str,
        max_wait: Duration,
    ) -> GateFuture<'a, Result<Duration, HostBusy>> {
        self.asked.lock().unwrap().push((host.to_owned(), max_wait));
        Box::pin(std::future::ready((self.answer)(host)))
    }
}

fn gated(config: FetchConfig, gate: Arc<ScriptedGate>) -> Fetcher {
    Fetcher::new(config).unwrap().with_host_gate(gate)
}

/// A server on `ip` whose `/r` redirects to `location` and whose `/image` serves a GIF.
async fn server_on(ip: &str, location: String) -> TestServer {
    TestServer::start_on(format!("{ip}:0").parse().unwrap(), move |path| match path {
        "/image" => Reply::ok(GIF, "image/gif"),
        _ => Reply::redirect(location.clone()),
    })
    .await
    .expect("binding a loopback address")
}

#[tokio::test]
async fn every_redirect_hop_takes_a_turn_for_its_own_host_under_its_canonical_name() {
    let victim = server_on("127.0.0.1", String::new()).await;
    // The victim's address spelled as hex: the same host, so the same schedule.
    let redirector = server_on(
        "127.0.0.2",
        format!("http://0x7F.0.0.1:{}/image", victim.port()),
    )
    .await;
    let gate = ScriptedGate::new(|_| Ok(Duration::ZERO));

    let fetched = gated(dev_config(), gate.clone())
        .fetch(&image_url(&format!("http://{}/r", redirector.addr)))
        .await
        .unwrap();

    assert_eq!(&fetched.bytes[..], GIF);
    assert_eq!(gate.hosts(), ["127.0.0.2", "127.0.0.1"]);
}

#[tokio::test]
async fn a_refused_redirect_target_takes_no_turn() {
    // Link-local (cloud metadata) stays refused even with private destinations allowed.
    let redirector = server_on("127.0.0.3", "http://169.254.169.254/latest".to_owned()).await;
    let gate = ScriptedGate::new(|_| Ok(Duration::ZERO));

    let err = gated(dev_config(), gate.clone())
        .fetch(&image_url(&format!("http://{}/r", redirector.addr)))
        .await
        .unwrap_err();

    assert_eq!(err.code(), ErrorCode::BlockedDestination);
    assert_eq!(gate.hosts(), ["127.0.0.3"]);
}

#[tokio::test]
async fn a_busy_redirect_target_fails_the_fetch_as_host_rate_limited_without_reaching_it() {
    let victim = server_on("127.0.0.1", String::new()).await;
    let redirector = server_on(
        "127.0.0.4",
        format!("http://127.0.0.1:{}/image", victim.port()),
    )
    .await;
    let gate = ScriptedGate::new(|host| match host {
        "127.0.0.1" => Err(HostBusy {
            retry_after: Duration::from_millis(8_250),
        }),
        _ => Ok(Duration::ZERO),
    });

    let err = gated(dev_config(), gate)
        .fetch(&image_url(&format!("http://{}/r", redirector.addr)))
        .await
        .unwrap_err();

    assert_eq!(err.code(), ErrorCode::HostRateLimited);
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_millis(8_250)));
    assert!(matches!(err, FetchError::HostRateLimited { ref host, .. } if host == "127.0.0.1"));
    assert_eq!(victim.accepted(), 0, "a busy host must not be contacted");
    assert_eq!(redirector.accepted(), 1);
}

#[tokio::test]
async fn the_wait_budget_is_shared_by_all_hops_of_a_fetch() {
    let victim = server_on("127.0.0.1", String::new()).await;
    let redirector = server_on(
        "127.0.0.5",
        format!("http://127.0.0.1:{}/image", victim.port()),
    )
    .await;
    let gate = ScriptedGate::new(|_| Ok(Duration::from_millis(300)));
    let config = FetchConfig {
        max_host_wait: Duration::from_millis(500),
        ..dev_config()
    };

    gated(config, gate.clone())
        .fetch(&image_url(&format!("http://{}/r", redirector.addr)))
        .await
        .unwrap();

    let asked = gate.asked();
    assert_eq!(asked[0].1, Duration::from_millis(500));
    assert_eq!(asked[1].1, Duration::from_millis(200), "{asked:?}");
}

#[tokio::test]
async fn waiting_for_a_turn_does_not_count_against_the_total_deadline() {
    let server = TestServer::always(Reply::ok(GIF, "image/gif")).await;
    let gate = ScriptedGate::new(|_| Ok(Duration::from_millis(700)));
    let config = FetchConfig {
        total_timeout: Duration::from_millis(500),
        ..dev_config()
    };
    let started = Instant::now();

    let fetched = gated(config, gate)
        .fetch(&server.url("/image.gif"))
        .await
        .unwrap();

    assert_eq!(&fetched.bytes[..], GIF);
    assert!(started.elapsed() >= Duration::from_millis(700));
}

/// A gate whose schedule never answers, like one over a stalled database.
struct StalledGate;

impl HostGate for StalledGate {
    fn reserve<'a>(
        &'a self,
        _host: &'a str,
        _max_wait: Duration,
    ) -> GateFuture<'a, Result<Duration, HostBusy>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_gate_that_does_not_answer_in_time_counts_as_a_busy_host() {
    let server = TestServer::always(Reply::ok(GIF, "image/gif")).await;
    let config = FetchConfig {
        max_host_wait: Duration::from_millis(200),
        ..dev_config()
    };

    let err = Fetcher::new(config)
        .unwrap()
        .with_host_gate(Arc::new(StalledGate))
        .fetch(&server.url("/image.gif"))
        .await
        .unwrap_err();

    assert_eq!(err.code(), ErrorCode::HostRateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_millis(200)));
    assert_eq!(server.accepted(), 0);
}
