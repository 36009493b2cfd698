//! Hostile-client scenarios: floods aimed at the API itself (slow bodies without and with a
//! key, connection storms, invented methods) while the checker, a legitimate client with its
//! own key, submits its background load. They pass only when every one of the checker's
//! submissions was accepted, `/readyz` stayed green, and the API's memory stayed bounded.

use crate::run::{Run, Summary};
use crate::scenarios::{Options, SETTLE, conclude, config, env, two_workers};
use anyhow::Result;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};

/// Peak resident memory of the API process so far (`VmHWM`), in MiB.
fn api_peak_mib(run: &Run) -> Option<f64> {
    let pid = run.api.as_ref()?.pid()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Most memory the API may reach under any flood (it idles around 30 MiB).
const MAX_API_PEAK_MIB: f64 = 300.0;

/// Polls `/readyz` every 200 ms until stopped; the count of answers that were not 200.
fn watch_readiness(
    base: String,
) -> (
    tokio::task::JoinHandle<(u32, u32)>,
    tokio::sync::watch::Sender<bool>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a client builds");
        let (mut probes, mut bad) = (0, 0);
        loop {
            probes += 1;
            let ok = client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            if !ok {
                bad += 1;
            }
            tokio::select! {
                _ = stopped.changed() => return (probes, bad),
                () = sleep(Duration::from_millis(200)) => {}
            }
        }
    });
    (task, stop)
}

/// Opens a connection that sends a `POST /v1/jobs` head announcing 1,000 body bytes, then one.
async fn slow_body(addr: &str, key: Option<&str>) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    Some(stream)
}

fn addr_of(run: &Run) -> String {
    run.api
        .as_ref()
        .map(|a| a.base.trim_start_matches("http://").to_owned())
        .unwrap_or_default()
}

/// The verdict shared by the floods: the checker's every submission accepted, readiness green
/// throughout, the API's peak memory bounded.
fn judge(
    summary: Summary,
    mut notes: Vec<String>,
    run_peak: Option<f64>,
    readiness: (u32, u32),
) -> Summary {
    let (probes, bad) = readiness;
    notes.push(format!(
        "/readyz probes during the flood: {probes}, not 200: {bad}"
    ));
    let peak_ok = match run_peak {
        Some(peak) => {
            notes.push(format!(
                "API peak RSS {peak:.0} MiB (limit {MAX_API_PEAK_MIB:.0})"
            ));
            peak <= MAX_API_PEAK_MIB
        }
        None => {
            notes.push("the API's memory could not be read".into());
            false
        }
    };
    let all_accepted = summary.counts.refused == 0 && summary.counts.no_answer == 0;
    if !all_accepted {
        notes.push(format!(
            "the legitimate client was refused {} times and unanswered {} times",
            summary.counts.refused, summary.counts.no_answer
        ));
    }
    conclude(
        summary,
        notes,
        all_accepted && bad == 0 && peak_ok && probes > 0,
    )
}

/// 2,000 anonymous slow bodies and 500 from another account's key, all held open, while the
/// checker submits its load.
pub(crate) async fn slow_body_flood(opts: &Options) -> Result<Summary> {
    let mut cfg = config(opts, "slow-body-flood", two_workers());
    cfg.env = env(&[
        ("IMGMETA_AUTH", "enabled"),
        ("IMGMETA_BODY_READ_TIMEOUT_MS", "5000"),
    ]);
    let run = Run::start(cfg).await?;
    let addr = addr_of(&run);
    let flooder = run.keys.get(1).cloned();
    let (readiness, stop) = watch_readiness(run.client_base());
    let started = Instant::now();
    let mut held = Vec::new();
    let feed = run.feed("bg", opts.jobs, Duration::from_millis(40));
    for i in 0..2_500 {
        let key = (i >= 2_000).then_some(flooder.as_deref()).flatten();
        held.extend(slow_body(&addr, key).await);
    }
    let opened = held.len();
    let opened_in = started.elapsed();
    feed.await?;
    sleep(Duration::from_secs(1)).await;
    let _ = stop.send(true);
    let readiness = readiness.await.unwrap_or((0, 1));
    drop(held);
    let peak = api_peak_mib(&run);
    let notes = vec![format!(
        "slow-body connections opened: {opened} of 2,500 (2,000 without a key, 500 with another account's) in {:.1} s",
        opened_in.as_secs_f64()
    )];
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    Ok(judge(summary, notes, peak, readiness))
}

/// 20,000 connection attempts in waves of 2,500 held open, with the connection cap at 1,000,
/// while the checker submits its load.
pub(crate) async fn connection_flood(opts: &Options) -> Result<Summary> {
    let mut cfg = config(opts, "connection-flood", two_workers());
    cfg.env = env(&[
        ("IMGMETA_AUTH", "enabled"),
        ("IMGMETA_MAX_CONNECTIONS", "1000"),
    ]);
    let run = Run::start(cfg).await?;
    let addr = addr_of(&run);
    let (readiness, stop) = watch_readiness(run.client_base());
    let feed = run.feed("bg", opts.jobs, Duration::from_millis(40));
    let (mut attempts, mut connected) = (0, 0);
    for _ in 0..8 {
        let mut held = Vec::new();
        for _ in 0..2_500 {
            attempts += 1;
            if let Ok(stream) = TcpStream::connect(&addr).await {
                held.push(stream);
            }
        }
        connected += held.len();
        sleep(Duration::from_millis(250)).await;
        drop(held);
    }
    feed.await?;
    let _ = stop.send(true);
    let readiness = readiness.await.unwrap_or((0, 1));
    let peak = api_peak_mib(&run);
    let notes = vec![format!(
        "connection attempts: {attempts}, connected: {connected} (the API closes the idlest beyond 1,000)"
    )];
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    Ok(judge(summary, notes, peak, readiness))
}

/// 10,000 requests with invented 2,000-character methods while the checker submits its load;
/// `/metrics` must not grow with them.
pub(crate) async fn method_flood(opts: &Options) -> Result<Summary> {
    let mut cfg = config(opts, "method-flood", two_workers());
    cfg.env = env(&[("IMGMETA_AUTH", "enabled")]);
    let run = Run::start(cfg).await?;
    let addr = addr_of(&run);
    let metrics_size = || async {
        reqwest::get(format!("{}/metrics", run.client_base()))
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    // One invented method first, so the `other` series exists before the size is taken.
    let mut warm = TcpStream::connect(&addr).await?;
    warm.write_all(
        format!("WARMUP /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    sleep(Duration::from_millis(300)).await;
    let before = metrics_size().await.unwrap_or_default();
    let (readiness, stop) = watch_readiness(run.client_base());
    let feed = run.feed("bg", opts.jobs, Duration::from_millis(40));
    let mut sent = 0;
    for batch in 0..100 {
        let Ok(mut stream) = TcpStream::connect(&addr).await else {
            continue;
        };
        let mut requests = String::new();
        for i in 0..100 {
            let method = format!("M{batch}X{i}{}", "Z".repeat(2_000));
            requests.push_str(&format!(
                "{method} /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n"
            ));
        }
        if stream.write_all(requests.as_bytes()).await.is_ok() {
            sent += 100;
        }
    }
    feed.await?;
    sleep(Duration::from_secs(1)).await;
    let _ = stop.send(true);
    let readiness = readiness.await.unwrap_or((0, 1));
    let after = metrics_size().await.unwrap_or_default();
    let peak = api_peak_mib(&run);
    let leaked = after.contains("ZZZZZZZZ");
    // The checker's own requests add a handful of series (new statuses, histogram buckets).
    let grew = after.len().saturating_sub(before.len());
    let notes = vec![format!(
        "invented methods sent: {sent}; /metrics {} → {} bytes; an invented method in the labels: {leaked}",
        before.len(),
        after.len()
    )];
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    let mut judged = judge(summary, notes, peak, readiness);
    if leaked || grew > 64 * 1024 || sent < 9_000 {
        judged.pass = false;
    }
    Ok(judged)
}

/// Starts the victim: one loopback image server on 127.0.0.1 that records when each request
/// reached it.
async fn start_victim(
    image: bytes::Bytes,
) -> Result<(
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
)> {
    use axum::http::header;
    let seen: std::sync::Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/victim/{name}",
        axum::routing::get(move || {
            let (log, image) = (log.clone(), image.clone());
            async move {
                log.lock().expect("victim log").push(Instant::now());
                ([(header::CONTENT_TYPE, "image/png")], image)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, seen))
}

/// Starts a redirector on `ip` (a loopback address) whose every path answers 302 to
/// `target_base` + the same path.
async fn start_redirector(ip: [u8; 4], target_base: String) -> Result<std::net::SocketAddr> {
    use axum::http::{StatusCode, Uri, header};
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let target = format!("{target_base}{}", uri.path().replacen("/r/", "/victim/", 1));
        async move { (StatusCode::FOUND, [(header::LOCATION, target)]) }
    });
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::from(ip), 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// The most requests that reached the victim within any one-second window.
fn busiest_second(times: &[Instant]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|t| t.duration_since(sorted[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// 16 jobs for 8 loopback redirectors (127.0.0.2–9) that all send their fetch to one victim on
/// 127.0.0.1, each under another spelling of its address, with the per-host fetch rate at 2/s:
/// the victim must see no more than its rate (plus one for a window's edge), and every job
/// must still succeed.
pub(crate) async fn redirect_fan_in(opts: &Options) -> Result<Summary> {
    const RATE: &str = "2";
    let mut cfg = config(opts, "redirect-fan-in", two_workers());
    cfg.env = env(&[
        ("IMGMETA_HOST_FETCH_RATE_PER_SECOND", RATE),
        ("IMGMETA_WORKER_CONCURRENCY", "8"),
    ]);
    let run = Run::start(cfg).await?;
    let image = std::fs::read(opts.workspace.join("fixtures/images/alpha.png"))?;
    let (victim, seen) = start_victim(image.into()).await?;
    let port = victim.port();
    let spellings = [
        format!("127.0.0.1:{port}"),
        format!("127.1:{port}"),
        format!("0x7f.0.0.1:{port}"),
        format!("2130706433:{port}"),
        format!("127.0.0.1.:{port}"),
        format!("0177.0.0.1:{port}"),
        format!("127.0.1:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
    ];
    let mut redirectors = Vec::new();
    for (i, spelling) in spellings.iter().enumerate() {
        redirectors
            .push(start_redirector([127, 0, 0, 2 + i as u8], format!("http://{spelling}")).await?);
    }
    let submitted = Instant::now();
    for k in 0..16 {
        let via = redirectors[k % redirectors.len()];
        run.submit(
            format!("http://{via}/r/fan-{k}.png"),
            &["metadata"],
            crate::checker::Expect::Succeed,
        )
        .await;
    }
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    let times = seen.lock().expect("victim log").clone();
    let busiest = busiest_second(&times);
    let span = times
        .iter()
        .max()
        .map_or(0.0, |last| last.duration_since(submitted).as_secs_f64());
    let notes = vec![format!(
        "victim requests: {} (16 jobs through 8 redirectors), busiest second: {busiest} (rate {RATE}/s), last {span:.1} s after the first submission",
        times.len()
    )];
    let injected = times.len() >= 16;
    let mut judged = conclude(summary, notes, injected);
    if busiest > 3 {
        judged.pass = false;
    }
    Ok(judged)
}
