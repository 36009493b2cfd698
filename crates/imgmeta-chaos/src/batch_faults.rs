//! Batches under faults: a batch's items keep running while workers are SIGKILLed (or the
//! broker restarts); at the end every item is terminal, the batch is completed, its counters
//! equal a recount of its items (the triggers never drift under concurrent completions,
//! redeliveries and retries), and its signed `batch.completed` webhook arrived under exactly
//! one `webhook-id` (at least once), its signature checked here with an HMAC of our own.

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

/// `batch.completed` messages a local receiver got: (webhook-id, batch id, signature valid).
#[derive(Clone, Default)]
struct Hooks(std::sync::Arc<std::sync::Mutex<Vec<(String, String, bool)>>>);

/// A receiver on a free loopback port that checks each message's Standard Webhooks signature
/// with `secret` (the bytes behind `whsec_`) and answers 204.
async fn spawn_receiver(secret: Vec<u8>) -> Result<(std::net::SocketAddr, Hooks)> {
    use axum::http::HeaderMap;
    use base64::Engine;
    use hmac::Mac;
    let hooks = Hooks::default();
    let seen = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            let secret = secret.clone();
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let (id, ts) = (header("webhook-id"), header("webhook-timestamp"));
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).expect("any key length");
                mac.update(format!("{id}.{ts}.{body}").as_bytes());
                let expected = format!(
                    "v1,{}",
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
                );
                let valid = header("webhook-signature")
                    .split(' ')
                    .any(|s| s == expected);
                let event: Value = serde_json::from_str(&body).unwrap_or_default();
                if event["type"] == "batch.completed" {
                    let batch = event["data"]["id"].as_str().unwrap_or_default().to_owned();
                    seen.0.lock().unwrap().push((id, batch, valid));
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, hooks))
}

/// Creates the account's webhook secret; its bytes.
async fn webhook_secret(run: &Run) -> Result<Vec<u8>> {
    use base64::Engine;
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/secret", run.client_base()))
        .send()
        .await?
        .json()
        .await?;
    let secret = answer["secret"]
        .as_str()
        .and_then(|s| s.strip_prefix("whsec_"))
        .context("a whsec_ secret")?;
    Ok(base64::engine::general_purpose::STANDARD.decode(secret)?)
}

async fn upload(run: &Run, webhook: &str) -> Result<String> {
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
        .post(reqwest::Url::parse_with_params(
            &format!("{}/v1/batches", run.client_base()),
            [("tasks", "metadata"), ("webhook_url", webhook)],
        )?)
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
    let (hook_addr, hooks) = spawn_receiver(webhook_secret(&run).await?).await?;
    let id = upload(&run, &format!("http://{hook_addr}/hook")).await?;
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
    // settle time; recount after it, before the run ends (and drops its database). The
    // webhook is sent within a second of completion when the receiver answers at once.
    sleep(SETTLE.max(Duration::from_secs(3))).await;
    let told = hooks.0.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<&str> = told.iter().map(|(i, _, _)| i.as_str()).collect();
    let told_once = ids.len() == 1 && told.iter().all(|(_, batch, valid)| *valid && batch == &id);
    notes.push(format!(
        "batch.completed received {} time(s) under {} webhook-id(s), signatures valid: {}",
        told.len(),
        ids.len(),
        told.iter().all(|(_, _, v)| *v)
    ));
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
    if !told_once {
        summary.pass = false;
        notes.push("batch.completed was not received signed under exactly one webhook-id".into());
    }
    Ok(conclude(summary, notes, injected))
}
