//! Batches under faults: a batch's items keep running while workers are SIGKILLed (or the
//! broker restarts); at the end every item is terminal, the batch is completed, and its
//! counters equal a recount of its items (the triggers never drift under concurrent
//! completions, redeliveries and retries).

use crate::checker::Expect;
use crate::run::Run;
use crate::scenarios::{Options, SETTLE, conclude, config, two_workers};
use crate::services::{self, RestoreGuard};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// Items of the batch (and two bad lines).
const ITEMS: usize = 150;

/// Which fault the batch runs through.
#[derive(Debug, Clone, Copy)]
pub enum BatchFault {
    KillWorkers,
    RabbitRestart,
}

async fn upload(run: &Run) -> Result<String> {
    let mut body = String::new();
    for i in 0..ITEMS {
        body.push_str(&format!(
            "{{\"url\": \"{}\", \"external_id\": \"{i}\"}}\n",
            run.images.ok_url(&format!("batch-{i}"))
        ));
        if i == ITEMS / 2 {
            body.push_str("not json\n{\"url\": \"ftp://nowhere.example/x\"}\n");
        }
    }
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/batches?tasks=metadata", run.client_base()))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?;
    let status = answer.status();
    let batch: Value = answer.json().await?;
    if status.as_u16() != 202 {
        bail!("the batch was refused: {status} {batch}");
    }
    batch["id"]
        .as_str()
        .map(str::to_owned)
        .context("a batch id")
}

/// The batch's counters beside a recount of its items and rejections.
async fn recount(pool: &sqlx::PgPool, id: &str) -> Result<(Vec<i32>, Vec<i64>, String)> {
    let (status, q, r, s, f, c, rej, total): (String, i32, i32, i32, i32, i32, i32, i32) =
        sqlx::query_as(
            "SELECT status, queued, running, succeeded, failed, cancelled, rejected, total
             FROM batches WHERE id = $1::uuid",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
    let counted: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'running'),
                count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'),
                count(*) FILTER (WHERE status = 'cancelled'),
                (SELECT count(*) FROM batch_rejections WHERE batch_id = $1::uuid),
                count(*) + (SELECT count(*) FROM batch_rejections WHERE batch_id = $1::uuid)
         FROM jobs WHERE batch_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    Ok((
        vec![q, r, s, f, c, rej, total],
        vec![
            counted.0, counted.1, counted.2, counted.3, counted.4, counted.5, counted.6,
        ],
        status,
    ))
}

pub async fn batch_under_fault(
    opts: &Options,
    name: &str,
    fault: BatchFault,
) -> Result<crate::run::Summary> {
    let run = Run::start(config(opts, name, two_workers())).await?;
    let feed = run.feed("bg", opts.jobs.min(60), Duration::from_millis(100));
    let database_url = run.database_url()?;
    // The batch is accepted once the API has migrated its database.
    let id = upload(&run).await?;
    let pool = sqlx::PgPool::connect(&database_url).await?;
    // The batch's items are jobs the run accepted: the checker holds each to "succeeds once".
    let items: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, url FROM jobs WHERE batch_id = $1::uuid ORDER BY batch_line")
            .bind(&id)
            .fetch_all(&pool)
            .await?;
    for (job, url) in items {
        run.ledger.record(url, Expect::Succeed, job);
    }
    let mut notes = vec![format!("batch {id}: {ITEMS} items, 2 bad lines")];
    let injected = match fault {
        BatchFault::KillWorkers => {
            let mut kills = 0;
            for round in 0..6usize {
                sleep(Duration::from_millis(1200)).await;
                kills += usize::from(run.workers.kill(round % 2).is_some());
            }
            notes.push(format!("{kills} workers SIGKILLed while the batch ran"));
            kills >= 6
        }
        BatchFault::RabbitRestart => {
            let _restore = RestoreGuard;
            sleep(Duration::from_secs(2)).await;
            let stopped = services::rabbit_stop_app().await;
            sleep(Duration::from_secs(5)).await;
            let started = services::rabbit_start_app().await;
            notes.push(format!(
                "RabbitMQ stop_app: {stopped:?}, start_app: {started:?}"
            ));
            stopped.is_ok() && started.is_ok()
        }
    };
    feed.await?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = None;
    let complete = loop {
        let now = recount(&pool, &id).await?;
        if now.2 == "completed" {
            break true;
        }
        if Instant::now() > deadline {
            last = Some(now);
            break false;
        }
        sleep(Duration::from_millis(250)).await;
    };
    // Late writes (a killed worker's redelivered message, a stale lease) land within the
    // settle time; recount after it, before the run ends (and drops its database).
    sleep(SETTLE).await;
    let (counters, recounted, status) = match last {
        Some(last) => last,
        None => recount(&pool, &id).await?,
    };
    pool.close().await;
    let mut summary = run.finish(Duration::from_secs(120), SETTLE).await;
    let matches = counters
        .iter()
        .map(|&c| i64::from(c))
        .eq(recounted.iter().copied());
    notes.push(format!(
        "batch {status}; counters [queued, running, succeeded, failed, cancelled, rejected, total] = {counters:?}, recount = {recounted:?}"
    ));
    let all_succeeded = recounted[2] == ITEMS as i64 && recounted[5] == 2;
    if !(complete && matches && all_succeeded) {
        summary.pass = false;
        notes.push("the batch did not end complete with counters equal to a recount".into());
    }
    Ok(conclude(summary, notes, injected))
}
