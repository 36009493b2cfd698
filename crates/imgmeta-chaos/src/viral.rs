//! The viral burst (issue 14's benchmark): N `POST /img?<same url>` from K keys at C concurrent
//! connections against the API and two workers, the image served by the run's image server,
//! which counts its requests. Reports origin requests, inference runs (the workers' objects
//! stage histogram count), status codes, latency percentiles (all, and once the first result
//! existed), throughput, whether every answer carried the same result, and in the same run
//! the throughput of `GET /v1/jobs/{id}` at the same concurrency for comparison.

use crate::procs::free_port;
use crate::run::{Run, RunConfig};
use anyhow::Result;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Options {
    pub workspace: PathBuf,
    pub binary: PathBuf,
    pub requests: usize,
    pub keys: usize,
    pub concurrency: usize,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn latency(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

#[derive(Debug, Serialize)]
pub struct ViralReport {
    pub requests: usize,
    pub keys: usize,
    pub concurrency: usize,
    /// Requests the image's origin received.
    pub origin_requests: u32,
    /// The workers' `imgmeta_stage_duration_seconds_count{stage="objects"}`, summed.
    pub inference_runs: f64,
    /// HTTP status → count.
    pub statuses: BTreeMap<u16, usize>,
    /// Distinct analyses (`result.image` and `result.objects`) among the 200 answers (1:
    /// everyone got the same).
    pub distinct_results: usize,
    /// `cache.status` → count.
    pub cache: BTreeMap<String, usize>,
    pub burst_s: f64,
    pub burst_per_s: f64,
    pub latency: Latency,
    /// Requests sent after the first answer with a result came back.
    pub latency_after_first_result: Latency,
    /// Those requests per second of the time from the first result to the burst's end (the
    /// burst's rate once there is something to answer from).
    pub after_first_result_per_s: f64,
    /// `GET /v1/jobs/{id}` at the same concurrency, in the same run, each job read with the
    /// key that submitted it.
    pub status_per_s: f64,
    /// Their HTTP statuses → count (all 200 when the comparison is fair).
    pub status_statuses: BTreeMap<u16, usize>,
    pub status_latency: Latency,
    /// `burst_per_s / status_per_s`.
    pub burst_vs_status: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &Mutex<Histogram<u64>>, took: Duration) {
    let us = u64::try_from(took.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 120_000_000);
    h.lock().expect("histogram lock").saturating_record(us);
}

/// One HTTP client per key, each with its Bearer token.
fn clients(keys: &[String]) -> Result<Vec<reqwest::Client>> {
    keys.iter()
        .map(|key| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))?,
            );
            Ok(reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(256)
                .default_headers(headers)
                .build()?)
        })
        .collect()
}

/// The sum of `imgmeta_stage_duration_seconds_count{stage="objects"}` over `addrs`.
async fn inference_runs(addrs: &[String]) -> f64 {
    let mut total = 0.0;
    for addr in addrs {
        let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        total += text
            .lines()
            .filter(|l| {
                l.starts_with("imgmeta_stage_duration_seconds_count")
                    && l.contains("stage=\"objects\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    total
}

pub async fn run(opts: &Options) -> Result<ViralReport> {
    let metrics_addrs: Vec<String> = (0..2)
        .map(|_| free_port().map(|p| format!("127.0.0.1:{p}")))
        .collect::<Result<_>>()?;
    let workers = metrics_addrs
        .iter()
        .map(|addr| BTreeMap::from([("IMGMETA_METRICS_ADDR".to_owned(), addr.clone())]))
        .collect();
    let env = BTreeMap::from([
        ("IMGMETA_AUTH".to_owned(), "enabled".to_owned()),
        // One client address sends everything; the per-address share is for anonymous floods.
        (
            "IMGMETA_MAX_IN_FLIGHT_PER_ADDRESS".to_owned(),
            "4096".to_owned(),
        ),
        ("IMGMETA_LEGACY_WAIT_MS".to_owned(), "60000".to_owned()),
    ]);
    let run = Run::start(RunConfig {
        workspace: opts.workspace.clone(),
        binary: opts.binary.clone(),
        name: "viral".to_owned(),
        workers,
        env,
        watch_every: Duration::from_secs(5),
    })
    .await?;
    let mut keys = Vec::new();
    for i in 0..opts.keys {
        keys.push(crate::run::create_key(&run.procs, &format!("viral {i}")).await?);
    }
    let clients = clients(&keys)?;
    let base = run.client_base();
    let image = run.images.photo_url("viral");
    let encoded = percent_encoding::utf8_percent_encode(&image, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    // Workers announce their model when they start; give them the moment it takes.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let all = Arc::new(Mutex::new(histogram()));
    let after_first = Arc::new(Mutex::new(histogram()));
    let first_result: Arc<Mutex<Option<Instant>>> = Arc::default();
    // (the client that asked, the status, the job resource)
    let answers: Arc<Mutex<Vec<(usize, u16, serde_json::Value)>>> = Arc::default();
    let started = Instant::now();
    futures::stream::iter(0..opts.requests)
        .map(|i| {
            let clients = &clients;
            let client = clients[i % clients.len()].clone();
            let url = format!("{base}/img?{encoded}");
            let (all, after_first, first_result, answers) = (
                all.clone(),
                after_first.clone(),
                first_result.clone(),
                answers.clone(),
            );
            async move {
                let sent = Instant::now();
                let had_result = first_result
                    .lock()
                    .expect("lock")
                    .is_some_and(|t| t <= sent);
                let response = client.post(url).send().await;
                let took = sent.elapsed();
                let (status, body) = match response {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        (
                            status,
                            r.json::<serde_json::Value>().await.unwrap_or_default(),
                        )
                    }
                    Err(_) => (0, serde_json::Value::Null),
                };
                record(&all, took);
                if had_result {
                    record(&after_first, took);
                }
                if status == 200 {
                    first_result
                        .lock()
                        .expect("lock")
                        .get_or_insert_with(Instant::now);
                }
                answers
                    .lock()
                    .expect("lock")
                    .push((i % clients.len(), status, body));
            }
        })
        .buffer_unordered(opts.concurrency)
        .collect::<()>()
        .await;
    let burst_s = started.elapsed().as_secs_f64();
    eprintln!("viral: burst of {} done in {burst_s:.2} s", opts.requests);
    let since_first_s = first_result
        .lock()
        .expect("lock")
        .map_or(0.0, |t| t.elapsed().as_secs_f64());

    let answers = std::mem::take(&mut *answers.lock().expect("lock"));
    let mut statuses = BTreeMap::new();
    let mut cache = BTreeMap::new();
    let mut results = HashSet::new();
    let mut ids = Vec::new();
    for (asker, status, body) in &answers {
        *statuses.entry(*status).or_default() += 1;
        if *status == 200 {
            // The analysis; timings differ between the run that made it and the answers cut
            // from it.
            results.insert(format!(
                "{}{}",
                body["result"]["image"], body["result"]["objects"]
            ));
            let label = body["cache"]["status"]
                .as_str()
                .unwrap_or("none")
                .to_owned();
            *cache.entry(label).or_default() += 1;
            if let Some(id) = body["id"].as_str() {
                ids.push((*asker, id.to_owned()));
            }
        }
    }

    // The status endpoint at the same concurrency, as many requests, same run.
    let status_latency = Arc::new(Mutex::new(histogram()));
    let status_codes: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
    anyhow::ensure!(
        !ids.is_empty(),
        "no job was answered, so no status can be read"
    );
    let started = Instant::now();
    futures::stream::iter(0..opts.requests)
        .map(|i| {
            // Each job is read with the key that submitted it (a job of its own account).
            let (asker, id) = &ids[i % ids.len()];
            let client = clients[*asker].clone();
            let url = format!("{base}/v1/jobs/{id}");
            let (status_latency, status_codes) = (status_latency.clone(), status_codes.clone());
            async move {
                let sent = Instant::now();
                // The body is read and parsed as the burst's are, so both phases cost the
                // client the same.
                let code = match client.get(url).send().await {
                    Ok(r) => {
                        let code = r.status().as_u16();
                        match r.json::<serde_json::Value>().await {
                            Ok(_) => code,
                            Err(_) => 0,
                        }
                    }
                    Err(_) => 0,
                };
                let took = sent.elapsed();
                if code == 200 {
                    record(&status_latency, took);
                }
                *status_codes.lock().expect("lock").entry(code).or_default() += 1;
            }
        })
        .buffer_unordered(opts.concurrency)
        .collect::<()>()
        .await;
    let status_s = started.elapsed().as_secs_f64();
    eprintln!("viral: status reads done in {status_s:.2} s");

    let origin_requests = run.images.hits("viral.png");
    let inference_runs = inference_runs(&metrics_addrs).await;
    let burst_per_s = opts.requests as f64 / burst_s;
    // One guard at a time: a struct literal keeps its temporaries (and so a lock) to its end.
    let (latency_after_first_result, after_first_result_per_s) = {
        let after_first = after_first.lock().expect("lock");
        let per_s = after_first.len() as f64 / since_first_s.max(f64::EPSILON);
        (latency(&after_first), per_s)
    };
    let status_per_s = opts.requests as f64 / status_s;
    let report = ViralReport {
        requests: opts.requests,
        keys: opts.keys,
        concurrency: opts.concurrency,
        origin_requests,
        inference_runs,
        statuses,
        distinct_results: results.len(),
        cache,
        burst_s,
        burst_per_s,
        latency: latency(&all.lock().expect("lock")),
        latency_after_first_result,
        after_first_result_per_s,
        status_per_s,
        status_statuses: std::mem::take(&mut *status_codes.lock().expect("lock")),
        status_latency: latency(&status_latency.lock().expect("lock")),
        burst_vs_status: burst_per_s / status_per_s,
    };
    eprintln!("viral: waiting for every accepted job to be terminal");
    run.finish(Duration::from_secs(60), Duration::from_secs(1))
        .await;
    Ok(report)
}
