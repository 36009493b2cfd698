//! The load test: N metadata jobs submitted with bounded concurrency against the local image
//! server and two workers, POST and GET latencies recorded in HDR histograms, optionally with
//! the broker stopped for the whole submit burst; then every job must become terminal.

use crate::checker::{Answer, Expect};
use crate::run::{Run, RunConfig, Summary};
use crate::services::{self, RestoreGuard};
use anyhow::Result;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Options {
    pub workspace: PathBuf,
    pub binary: PathBuf,
    pub jobs: usize,
    pub concurrency: usize,
    /// GET requests kept in flight while the submit burst runs.
    pub readers: usize,
    pub broker_down: bool,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub mode: &'static str,
    pub jobs: usize,
    pub concurrency: usize,
    pub submit_s: f64,
    pub submits_per_s: f64,
    pub post: Latency,
    /// `GET /v1/jobs/{id}` of random accepted jobs, measured during the submit burst.
    pub get: Latency,
    pub get_errors: u64,
    pub drain_s: f64,
    #[serde(flatten)]
    pub summary: Summary,
}

fn histogram() -> Histogram<u64> {
    // Microseconds from 1 µs to 60 s, 3 significant figures.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &Mutex<Histogram<u64>>, took: Duration) {
    let us = u64::try_from(took.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 60_000_000);
    h.lock().expect("histogram lock").saturating_record(us);
}

pub async fn run(opts: &Options) -> Result<LoadReport> {
    let name = if opts.broker_down {
        "load-broker-down"
    } else {
        "load"
    };
    let run = Run::start(RunConfig {
        workspace: opts.workspace.clone(),
        binary: opts.binary.clone(),
        name: name.to_owned(),
        workers: vec![BTreeMap::new(), BTreeMap::new()],
        env: BTreeMap::new(),
        // Reading 10,000 rows is itself load on the 2 cores: poll the table rarely.
        watch_every: Duration::from_secs(3),
    })
    .await?;
    let _restore = RestoreGuard;
    if opts.broker_down {
        services::rabbit_stop_app().await?;
    }

    let post = Arc::new(Mutex::new(histogram()));
    let get = Arc::new(Mutex::new(histogram()));
    let done = Arc::new(AtomicBool::new(false));
    let get_errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let readers: Vec<_> = (0..opts.readers)
        .map(|seed| {
            let (client, ledger) = (run.client.clone(), run.ledger.clone());
            let (get, done, errors) = (get.clone(), done.clone(), get_errors.clone());
            tokio::spawn(async move {
                let mut i = seed;
                while !done.load(Ordering::Relaxed) {
                    let ids = ledger.accepted_ids();
                    if ids.is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    // A cheap spread over the accepted ids without a random generator.
                    i = (i * 7919 + 13) % ids.len().max(1);
                    let (code, _, took) = client.get(ids[i]).await;
                    if code == Some(200) {
                        record(&get, took);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    let urls: Vec<String> = (0..opts.jobs)
        .map(|i| run.images.ok_url(&format!("load-{i}")))
        .collect();
    futures::stream::iter(urls)
        .map(|url| {
            let (client, ledger, post) = (run.client.clone(), run.ledger.clone(), post.clone());
            async move {
                let (answer, took) = ledger
                    .submit(&client, url, &["metadata"], Expect::Succeed)
                    .await;
                if matches!(answer, Answer::Accepted(_)) {
                    record(&post, took);
                }
            }
        })
        .buffer_unordered(opts.concurrency)
        .collect::<()>()
        .await;
    let submit_s = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.await;
    }
    if opts.broker_down {
        services::rabbit_start_app().await?;
    }

    let drain_started = Instant::now();
    let accepted = run.ledger.accepted_ids().len();
    let summary = run
        .finish(Duration::from_secs(1200), Duration::from_secs(5))
        .await;
    let post = post.lock().expect("histogram lock");
    let get = get.lock().expect("histogram lock");
    Ok(LoadReport {
        mode: if opts.broker_down {
            "broker_down"
        } else {
            "broker_up"
        },
        jobs: opts.jobs,
        concurrency: opts.concurrency,
        submit_s,
        submits_per_s: accepted as f64 / submit_s,
        post: Latency::of(&post),
        get: Latency::of(&get),
        get_errors: get_errors.load(Ordering::Relaxed),
        drain_s: drain_started.elapsed().as_secs_f64(),
        summary,
    })
}
