//! The fairness benchmark (issue 15): while one account's batch of N items runs on two workers,
//! another account submits a single job every `every`; how long each single job waits to start
//! (`started_at − created_at`, both set by the database) is reported as p50 / p95 / max, beside
//! the batch's own rate in the same window. Target: p95 ≤ 2 s.

use crate::run::{Run, RunConfig};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Options {
    pub workspace: PathBuf,
    pub binary: PathBuf,
    /// Items of the batch.
    pub items: usize,
    /// Time between two single jobs of the other account.
    pub every: Duration,
}

#[derive(Debug, Serialize)]
pub struct FairnessReport {
    pub items: usize,
    pub workers: usize,
    pub concurrency_per_worker: usize,
    /// Single jobs submitted while the batch ran, and how long they waited to start.
    pub singles: usize,
    pub start_delay_p50_ms: f64,
    pub start_delay_p95_ms: f64,
    pub start_delay_max_ms: f64,
    /// Batch items that ended per second while the singles were measured.
    pub batch_items_per_s: f64,
    /// Items still queued when the last single was submitted (the batch was still running).
    pub batch_queued_at_end: i64,
    pub target_p95_ms: f64,
    pub pass: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn counts(client: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    Ok(client.get(url).send().await?.json().await?)
}

pub async fn run(opts: &Options) -> Result<FairnessReport> {
    let workers = 2;
    let run = Run::start(RunConfig {
        workspace: opts.workspace.clone(),
        binary: opts.binary.clone(),
        name: "bench-fairness".to_owned(),
        workers: vec![BTreeMap::new(); workers],
        env: BTreeMap::from([
            ("IMGMETA_AUTH".to_owned(), "enabled".to_owned()),
            // Items may name the same loopback host as often as they like.
            (
                "IMGMETA_HOST_FETCH_RATE_PER_SECOND".to_owned(),
                "0".to_owned(),
            ),
        ]),
        watch_every: Duration::from_secs(5),
    })
    .await?;
    let base = run.client_base();
    let bulk = crate::client::Client::new(&base, run.keys.first().map(String::as_str));
    let other = crate::client::Client::new(&base, run.keys.get(1).map(String::as_str));
    let mut body = String::new();
    for i in 0..opts.items {
        body.push_str(&format!(
            "{{\"url\": \"{}\"}}\n",
            run.images.photo_url(&format!("item-{i}"))
        ));
    }
    let answer = bulk
        .http()
        .post(format!("{base}/v1/batches?tasks=metadata"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?;
    let status = answer.status();
    let batch: serde_json::Value = answer.json().await?;
    if status.as_u16() != 202 {
        bail!("the batch was refused: {status} {batch}");
    }
    let batch_url = format!(
        "{base}/v1/batches/{}",
        batch["id"].as_str().context("a batch id")?
    );
    // Let the batch fill every worker's bulk slots before the first single job.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start_counts = counts(bulk.http(), &batch_url).await?;
    let started = Instant::now();
    let mut singles = Vec::new();
    let queued_at_end = loop {
        let answer = other
            .http()
            .post(format!("{base}/v1/jobs"))
            .json(&serde_json::json!({
                "url": run.images.photo_url(&format!("single-{}", singles.len())),
                "tasks": ["metadata"],
            }))
            .send()
            .await?;
        let job: serde_json::Value = answer.json().await?;
        singles.push(job["id"].as_str().context("a job id")?.to_owned());
        let now = counts(bulk.http(), &batch_url).await?;
        let queued = now["counts"]["queued"].as_i64().unwrap_or(0);
        // Stop while the batch still has work queued, so every single job met a busy fleet.
        if queued < 200 || singles.len() >= 400 {
            break queued;
        }
        tokio::time::sleep(opts.every).await;
    };
    let window = started.elapsed().as_secs_f64();
    let end_counts = counts(bulk.http(), &batch_url).await?;
    let ended = |c: &serde_json::Value| {
        ["succeeded", "failed", "cancelled"]
            .iter()
            .map(|k| c["counts"][k].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    let batch_items_per_s = (ended(&end_counts) - ended(&start_counts)) as f64 / window;
    // Every single job's start delay, once each has started.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut delays = Vec::with_capacity(singles.len());
    for id in &singles {
        loop {
            let job: serde_json::Value = other
                .http()
                .get(format!("{base}/v1/jobs/{id}"))
                .send()
                .await?
                .json()
                .await?;
            let at = |k: &str| {
                job[k]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            };
            if let (Some(created), Some(started)) = (at("created_at"), at("started_at")) {
                delays.push((started - created).num_microseconds().unwrap_or(0) as f64 / 1e3);
                break;
            }
            if Instant::now() > deadline {
                bail!("single job {id} never started: {job}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    delays.sort_by(f64::total_cmp);
    run.finish(Duration::from_secs(1), Duration::from_secs(0))
        .await;
    let p95 = percentile(&delays, 95.0);
    let target = 2_000.0;
    Ok(FairnessReport {
        items: opts.items,
        workers,
        concurrency_per_worker: 2,
        singles: delays.len(),
        start_delay_p50_ms: percentile(&delays, 50.0),
        start_delay_p95_ms: p95,
        start_delay_max_ms: delays.last().copied().unwrap_or(f64::NAN),
        batch_items_per_s,
        batch_queued_at_end: queued_at_end,
        target_p95_ms: target,
        pass: p95 <= target,
    })
}
