//! The batch benchmark (issue 15): in one run, single `POST /v1/jobs` at C connections beside
//! one NDJSON batch of N lines (acceptance rates, the API's memory while the batch streams in),
//! the outbox relay publishing the batch's messages beside a bare lapin publisher with pipelined
//! confirms on a queue of the same kind; then, with workers, the time from the upload of a batch
//! of M items to its last result, and the rate at which its results stream back.

use crate::run::{Run, RunConfig};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Options {
    pub workspace: PathBuf,
    pub binary: PathBuf,
    /// Lines of the NDJSON batch accepted beside the single submissions.
    pub lines: usize,
    /// Single submissions, and the connections they use.
    pub singles: usize,
    pub concurrency: usize,
    /// Items of the batch run to the end by workers.
    pub items: usize,
}

#[derive(Debug, Serialize)]
pub struct BatchReport {
    pub singles: usize,
    pub concurrency: usize,
    pub single_per_s: f64,
    pub lines: usize,
    pub upload_s: f64,
    pub batch_lines_per_s: f64,
    /// `batch_lines_per_s / single_per_s` (target ≥ 10).
    pub batch_vs_single: f64,
    /// The API's resident memory before the upload and its highest sample (every 20 ms)
    /// during it, MiB.
    pub api_rss_before_mib: f64,
    pub api_rss_peak_mib: f64,
    pub api_rss_growth_mib: f64,
    /// Seconds from the upload's answer until the outbox held none of its messages.
    pub relay_s: f64,
    pub relay_per_s: f64,
    /// A bare lapin publisher, persistent messages, confirms pipelined (awaited 1,000 at a
    /// time), to a quorum queue of its own.
    pub bare_publish_per_s: f64,
    /// `relay_per_s / bare_publish_per_s` (target ≥ 0.5).
    pub relay_vs_bare: f64,
    pub items: usize,
    pub items_tasks: &'static str,
    /// Seconds from the start of the upload to the batch's `completed_at`.
    pub upload_to_last_result_s: f64,
    pub items_per_s: f64,
    pub results_lines: usize,
    pub results_mib: f64,
    pub results_per_s: f64,
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The batch's NDJSON body as a stream of 64 KiB chunks, made as it is sent.
fn ndjson_stream(url: String, lines: usize) -> reqwest::Body {
    let chunks = futures::stream::iter(0..lines.div_ceil(1000)).map(move |c| {
        let mut chunk = String::with_capacity(1000 * (url.len() + 40));
        for i in c * 1000..((c + 1) * 1000).min(lines) {
            chunk.push_str(&format!(
                "{{\"url\":\"{url}?n={i}\",\"external_id\":\"{i}\"}}\n"
            ));
        }
        Ok::<_, std::io::Error>(chunk.into_bytes())
    });
    reqwest::Body::wrap_stream(chunks)
}

/// Whether the outbox still holds a message. Polled every half second only: the relay being
/// measured shares the two cores with the database, and a `count(*)` of a 100,000-row outbox
/// every 50 ms took a fifth of one of them.
async fn outbox_empty(pool: &sqlx::PgPool) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM outbox)")
            .fetch_one(pool)
            .await?,
    )
}

/// Waits until the bulk queue `queue` holds `n` ready messages (nothing consumes it: the
/// acceptance part runs without workers); seconds since `since`. Read from the broker with a
/// passive declare every 20 ms, which costs the database nothing.
async fn bulk_queue_reaches(queue: &str, n: u32, since: Instant) -> Result<f64> {
    let connection = Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        ConnectionProperties::default(),
    )
    .await?;
    let channel = connection.create_channel().await?;
    let deadline = since + Duration::from_secs(3600);
    loop {
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        if declared.message_count() >= n {
            let took = since.elapsed().as_secs_f64();
            connection.close(200, "done".into()).await?;
            return Ok(took);
        }
        if Instant::now() > deadline {
            bail!(
                "the relay published {} of {n} messages",
                declared.message_count()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes `n` persistent messages to a fresh quorum queue with confirms awaited 1,000 at a
/// time; messages per second.
async fn bare_publish(n: usize) -> Result<f64> {
    let connection = Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        ConnectionProperties::default(),
    )
    .await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let queue = format!("bench-bare-{}", uuid::Uuid::new_v4().simple());
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
    let started = Instant::now();
    let mut pending = Vec::with_capacity(1000);
    for i in 0..n {
        let payload = format!("{{\"job_id\":\"{}\",\"n\":{i}}}", uuid::Uuid::now_v7());
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                payload.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
        pending.push(confirm);
        if pending.len() == 1000 || i + 1 == n {
            for confirm in pending.drain(..) {
                if !confirm.await?.is_ack() {
                    bail!("the broker refused a message");
                }
            }
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    connection.close(200, "done".into()).await?;
    Ok(rate)
}

async fn start(opts: &Options, name: &str, workers: usize) -> Result<Run> {
    Run::start(RunConfig {
        workspace: opts.workspace.clone(),
        binary: opts.binary.clone(),
        name: name.to_owned(),
        workers: vec![BTreeMap::new(); workers],
        env: BTreeMap::from([
            // Items may name the same loopback host as often as they like.
            (
                "IMGMETA_HOST_FETCH_RATE_PER_SECOND".to_owned(),
                "0".to_owned(),
            ),
        ]),
        watch_every: Duration::from_secs(5),
    })
    .await
}

pub async fn run(opts: &Options) -> Result<BatchReport> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3600))
        .pool_max_idle_per_host(256)
        .build()?;

    // Acceptance, memory and the relay: no workers, so nothing competes with the API.
    let run = start(opts, "bench-batch", 0).await?;
    let base = run.client_base();
    let image = run.images.photo_url("batch");
    let database_url = run.database_url()?;
    let pool = sqlx::PgPool::connect(&database_url).await?;
    let api_pid = run
        .api
        .as_ref()
        .and_then(|a| a.pid())
        .context("the API's pid")?;

    let started = Instant::now();
    let failures = Arc::new(AtomicU64::new(0));
    futures::stream::iter(0..opts.singles)
        .map(|i| {
            let (client, failures) = (client.clone(), failures.clone());
            let url = format!("{base}/v1/jobs");
            let body = serde_json::json!({"url": format!("{image}?single={i}")});
            async move {
                let ok = client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 202);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .buffer_unordered(opts.concurrency)
        .collect::<()>()
        .await;
    let single_s = started.elapsed().as_secs_f64();
    if failures.load(Ordering::Relaxed) > 0 {
        bail!(
            "{} single submissions failed",
            failures.load(Ordering::Relaxed)
        );
    }
    // The singles' messages leave the outbox before the batch is measured.
    while !outbox_empty(&pool).await? {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let rss_before = rss_mib(api_pid).unwrap_or(0.0);
    let peak = Arc::new(std::sync::Mutex::new(rss_before));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = rss_mib(api_pid) {
                    let mut p = peak.lock().expect("lock");
                    *p = p.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let answer = client
        .post(format!("{base}/v1/batches?tasks=metadata"))
        .header("content-type", "application/x-ndjson")
        .body(ndjson_stream(image.clone(), opts.lines))
        .send()
        .await?;
    let upload_answered = Instant::now();
    let upload_s = started.elapsed().as_secs_f64();
    sampling.abort();
    let status = answer.status();
    let batch: serde_json::Value = answer.json().await?;
    if status.as_u16() != 202 || batch["counts"]["queued"].as_u64() != Some(opts.lines as u64) {
        bail!("the batch was not accepted whole: {status} {batch}");
    }
    // The relay starts when the upload commits, just before the answer arrived; it is done
    // when the bulk queue holds every item's message.
    let relay_s = bulk_queue_reaches(
        &format!("{}.bulk", run.prefix),
        u32::try_from(opts.lines)?,
        upload_answered,
    )
    .await?;
    pool.close().await;
    let bare = bare_publish(opts.lines).await?;
    let rss_peak = *peak.lock().expect("lock");
    run.finish(Duration::from_secs(1), Duration::from_secs(0))
        .await;

    // Upload to last result with workers, then the results stream.
    let run = start(opts, "bench-batch-items", 2).await?;
    let base = run.client_base();
    let image = run.images.photo_url("items");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let batch: serde_json::Value = client
        .post(format!("{base}/v1/batches?tasks=metadata"))
        .header("content-type", "application/x-ndjson")
        .body(ndjson_stream(image, opts.items))
        .send()
        .await?
        .json()
        .await?;
    let id = batch["id"].as_str().context("a batch id")?.to_owned();
    let upload_to_last = loop {
        let now: serde_json::Value = client
            .get(format!("{base}/v1/batches/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if now["completed_at"].is_string() {
            break started.elapsed().as_secs_f64();
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("the batch did not finish within an hour: {now}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let started = Instant::now();
    let mut stream = client
        .get(format!("{base}/v1/batches/{id}/results"))
        .send()
        .await?
        .bytes_stream();
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let results_s = started.elapsed().as_secs_f64();
    run.finish(Duration::from_secs(1), Duration::from_secs(0))
        .await;

    let single_per_s = opts.singles as f64 / single_s;
    let batch_lines_per_s = opts.lines as f64 / upload_s;
    let relay_per_s = opts.lines as f64 / relay_s;
    Ok(BatchReport {
        singles: opts.singles,
        concurrency: opts.concurrency,
        single_per_s,
        lines: opts.lines,
        upload_s,
        batch_lines_per_s,
        batch_vs_single: batch_lines_per_s / single_per_s,
        api_rss_before_mib: rss_before,
        api_rss_peak_mib: rss_peak,
        api_rss_growth_mib: rss_peak - rss_before,
        relay_s,
        relay_per_s,
        bare_publish_per_s: bare,
        relay_vs_bare: relay_per_s / bare,
        items: opts.items,
        items_tasks: "metadata",
        upload_to_last_result_s: upload_to_last,
        items_per_s: opts.items as f64 / upload_to_last,
        results_lines: lines,
        results_mib: bytes as f64 / 1048576.0,
        results_per_s: lines as f64 / results_s,
    })
}
