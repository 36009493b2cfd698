//! The fault scenarios: each starts an isolated run, submits a background load of ok jobs plus
//! the jobs the fault is aimed at, injects the fault, restores everything, and judges the run.

use crate::checker::{Answer, Expect};
use crate::procs::{pid_of_worker_id, signal};
use crate::run::{Run, RunConfig, Summary};
use crate::services::{self, RestoreGuard};
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::sleep;

pub const ALL: &[&str] = &[
    "kill-during-fetch",
    "kill-during-inference",
    "kill-after-commit",
    "rabbit-stop-app",
    "rabbit-kill",
    "rabbit-memory-alarm",
    "postgres-restart",
    "postgres-terminate",
    "poison",
    "never-answers",
    "publish-twice",
    "kill-api",
    "kill-workers-repeatedly",
    "sigterm-workers",
    "freeze-worker",
    "queue-purged",
    "queue-deleted",
    "garbage-messages",
    "slow-body-flood",
    "connection-flood",
    "method-flood",
    "redirect-fan-in",
    "batch-kill-workers",
    "batch-rabbit-restart",
];

/// The scenarios that leave the shared RabbitMQ and PostgreSQL alone and finish in about a
/// minute each: what a CI run on a shared machine can afford.
pub const CI: &[&str] = &[
    "kill-during-fetch",
    "kill-during-inference",
    "kill-after-commit",
    "poison",
    "publish-twice",
    "kill-api",
    "kill-workers-repeatedly",
    "sigterm-workers",
    "freeze-worker",
    "queue-purged",
    "queue-deleted",
    "garbage-messages",
    "slow-body-flood",
    "connection-flood",
    "method-flood",
    "redirect-fan-in",
    "batch-kill-workers",
];

#[derive(Debug, Clone)]
pub struct Options {
    pub workspace: PathBuf,
    pub binary: PathBuf,
    /// Background ok jobs per scenario.
    pub jobs: usize,
}

/// After every job is terminal, how long to keep watching for a second write: long enough for
/// a stale lease (5 s in these runs) to expire and be reconciled, and for redelivered messages to be handled.
pub(crate) const SETTLE: Duration = Duration::from_secs(12);
/// How long the background submissions of an outage scenario last (the outage starts at 2 s).
const OUTAGE_FEED_SPAN: Duration = Duration::from_secs(15);

pub(crate) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) fn config(
    opts: &Options,
    name: &str,
    workers: Vec<BTreeMap<String, String>>,
) -> RunConfig {
    RunConfig {
        workspace: opts.workspace.clone(),
        binary: opts.binary.clone(),
        name: name.to_owned(),
        workers,
        env: BTreeMap::new(),
        watch_every: Duration::from_millis(250),
    }
}

pub(crate) fn two_workers() -> Vec<BTreeMap<String, String>> {
    vec![BTreeMap::new(), BTreeMap::new()]
}

pub async fn run(name: &str, opts: &Options) -> Result<Summary> {
    match name {
        "kill-during-fetch" => kill_during_fetch(opts).await,
        "kill-during-inference" => kill_during_inference(opts).await,
        "kill-after-commit" => kill_after_commit(opts).await,
        "rabbit-stop-app" => broker_outage(opts, name, BrokerFault::StopApp).await,
        "rabbit-kill" => broker_outage(opts, name, BrokerFault::KillServer).await,
        "rabbit-memory-alarm" => broker_outage(opts, name, BrokerFault::MemoryAlarm).await,
        "postgres-restart" => postgres_fault(opts, name, PgFault::Restart).await,
        "postgres-terminate" => postgres_fault(opts, name, PgFault::Terminate).await,
        "poison" => poison(opts).await,
        "never-answers" => never_answers(opts).await,
        "publish-twice" => publish_twice(opts).await,
        "kill-api" => kill_api(opts).await,
        "kill-workers-repeatedly" => kill_workers_repeatedly(opts).await,
        "sigterm-workers" => sigterm_workers(opts).await,
        "freeze-worker" => freeze_worker(opts).await,
        "queue-purged" => lose_queued_messages(opts, name, QueueFault::Purge).await,
        "queue-deleted" => lose_queued_messages(opts, name, QueueFault::Delete).await,
        "garbage-messages" => garbage_messages(opts).await,
        "slow-body-flood" => crate::floods::slow_body_flood(opts).await,
        "connection-flood" => crate::floods::connection_flood(opts).await,
        "method-flood" => crate::floods::method_flood(opts).await,
        "redirect-fan-in" => crate::floods::redirect_fan_in(opts).await,
        "batch-kill-workers" => {
            crate::batch_faults::batch_under_fault(
                opts,
                name,
                crate::batch_faults::BatchFault::KillWorkers,
            )
            .await
        }
        "batch-rabbit-restart" => {
            crate::batch_faults::batch_under_fault(
                opts,
                name,
                crate::batch_faults::BatchFault::RabbitRestart,
            )
            .await
        }
        other => bail!("unknown scenario {other:?}; known: {}", ALL.join(", ")),
    }
}

/// Adds the scenario's own observations; a fault that could not be injected fails the run
/// (a scenario that did not test anything must not pass).
pub(crate) fn conclude(mut summary: Summary, notes: Vec<String>, injected: bool) -> Summary {
    summary.notes.extend(notes);
    if !injected {
        summary.pass = false;
        summary
            .notes
            .push("the fault was not injected as intended".into());
    }
    summary
}

/// A killed job that still finished in one attempt was not interrupted: the kill came too
/// late (or hit the wrong worker), so the scenario did not test what it claims.
fn check_interrupted(summary: &Summary, targets: &[uuid::Uuid], notes: &mut Vec<String>) -> bool {
    let mut all = true;
    for id in targets {
        let attempts = summary.attempts.get(id).copied().unwrap_or(0);
        if attempts < 2 {
            notes.push(format!(
                "job {id} finished in {attempts} attempt(s): the kill did not interrupt it"
            ));
            all = false;
        }
    }
    all
}

/// SIGKILLs the worker that holds job `id` (read from its claim); false if it cannot be found.
async fn kill_owner(run: &Run, id: uuid::Uuid, notes: &mut Vec<String>) -> bool {
    let owner = run.worker_of(id).await;
    match owner.as_deref().and_then(pid_of_worker_id) {
        Some(pid) if run.workers.kill_pid(pid) => {
            notes.push(format!("SIGKILLed worker pid {pid} holding job {id}"));
            true
        }
        _ => {
            notes.push(format!(
                "could not find the worker of job {id} (worker_id {owner:?})"
            ));
            false
        }
    }
}

async fn kill_during_fetch(opts: &Options) -> Result<Summary> {
    let run = Run::start(config(opts, "kill-during-fetch", two_workers())).await?;
    let feed = run.feed("bg", opts.jobs, Duration::from_millis(40));
    let mut notes = Vec::new();
    let mut injected = true;
    let mut targets = Vec::new();
    for k in 0..2 {
        let name = format!("held-{k}");
        run.images.hold_again();
        let answer = run
            .submit(run.images.held_url(&name), &["metadata"], Expect::Succeed)
            .await;
        let Answer::Accepted(id) = answer else {
            notes.push(format!("held job {k} was not accepted: {answer:?}"));
            injected = false;
            continue;
        };
        if !run.images.wait_held(&name, Duration::from_secs(30)).await {
            notes.push(format!("no worker fetched held job {id} within 30 s"));
            injected = false;
            continue;
        }
        injected &= kill_owner(&run, id, &mut notes).await;
        targets.push(id);
        // The redelivered job is fetched again; let that fetch through after a moment.
        sleep(Duration::from_secs(1)).await;
        run.images.release_held();
    }
    feed.await?;
    let images = run.images.clone();
    let summary = run.finish(Duration::from_secs(90), SETTLE).await;
    injected &= check_interrupted(&summary, &targets, &mut notes);
    for k in 0..2 {
        notes.push(format!(
            "held image held-{k} was requested {} times",
            images.hits(&format!("held-{k}.png"))
        ));
    }
    Ok(conclude(summary, notes, injected))
}

async fn kill_during_inference(opts: &Options) -> Result<Summary> {
    let run = Run::start(config(opts, "kill-during-inference", two_workers())).await?;
    let feed = run.feed("bg", opts.jobs, Duration::from_millis(40));
    let mut notes = Vec::new();
    let mut injected = true;
    let mut targets = Vec::new();
    for k in 0..2 {
        let name = format!("photo-{k}");
        let answer = run
            .submit(run.images.photo_url(&name), &["objects"], Expect::Succeed)
            .await;
        let Answer::Accepted(id) = answer else {
            notes.push(format!("photo job {k} was not accepted: {answer:?}"));
            injected = false;
            continue;
        };
        if !run
            .images
            .wait_photo_sent(&name, Duration::from_secs(60))
            .await
        {
            notes.push(format!("photo job {id} was not fetched within 60 s"));
            injected = false;
            continue;
        }
        // The last byte is on the socket: decoding a 640-pixel photo takes a few ms, and the
        // detector then runs for 100+ ms on one thread. 40 ms lands in or just before it.
        sleep(Duration::from_millis(40)).await;
        injected &= kill_owner(&run, id, &mut notes).await;
        targets.push(id);
    }
    feed.await?;
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    injected &= check_interrupted(&summary, &targets, &mut notes);
    Ok(conclude(summary, notes, injected))
}

async fn kill_after_commit(opts: &Options) -> Result<Summary> {
    // Slot 0 aborts right after committing each result and before acking it (the lead's test
    // hook); the supervisor restarts it with the hook still armed. Slot 1 is an ordinary worker.
    let workers = vec![
        env(&[("IMGMETA_TEST_CRASH_AFTER_COMMIT", "1")]),
        BTreeMap::new(),
    ];
    let run = Run::start(config(opts, "kill-after-commit", workers)).await?;
    let feed = run.feed("bg", (opts.jobs / 2).max(10), Duration::from_millis(100));
    feed.await?;
    let workers = run.workers.clone();
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    // Read after the run: crashes go on while the last jobs finish.
    let crashed = workers.restarts_of(0);
    let notes = vec![format!(
        "the hooked worker crashed and was restarted {crashed} times, the ordinary one {}",
        workers.restarts_of(1)
    )];
    if crashed == 0 {
        let mut s = conclude(summary, notes, false);
        s.notes.push(
            "IMGMETA_TEST_CRASH_AFTER_COMMIT had no effect: the hook is missing from the worker"
                .into(),
        );
        return Ok(s);
    }
    Ok(conclude(summary, notes, true))
}

enum BrokerFault {
    StopApp,
    KillServer,
    /// The broker's memory alarm: it stays up and delivers, but blocks every connection that
    /// publishes (the relay's confirms stop coming) until the alarm clears.
    MemoryAlarm,
}

async fn broker_outage(opts: &Options, name: &str, fault: BrokerFault) -> Result<Summary> {
    let run = Run::start(config(opts, name, two_workers())).await?;
    let _restore = RestoreGuard;
    // Submissions span the whole outage and the recovery after it.
    let feed = run.feed(
        "bg",
        opts.jobs.max(100),
        OUTAGE_FEED_SPAN / opts.jobs.max(100) as u32,
    );
    sleep(Duration::from_secs(2)).await;
    let mut notes = Vec::new();
    let injected = match fault {
        BrokerFault::StopApp => {
            let stopped = services::rabbit_stop_app().await;
            sleep(Duration::from_secs(5)).await;
            let started = services::rabbit_start_app().await;
            notes.push(format!("stop_app: {stopped:?}, start_app: {started:?}"));
            stopped.is_ok() && started.is_ok()
        }
        BrokerFault::MemoryAlarm => match services::rabbit_memory_watermark().await {
            Ok(original) => {
                let restore = services::WatermarkGuard(original.clone());
                let raised = services::rabbit_set_memory_watermark("0.000001").await;
                sleep(Duration::from_secs(2)).await;
                let alarms = services::rabbit_alarms().await;
                sleep(Duration::from_secs(10)).await;
                drop(restore);
                notes.push(format!(
                        "memory watermark {original} -> 0.000001 for 12 s: {raised:?}, alarms: {alarms:?}"
                    ));
                raised.is_ok() && alarms.is_ok_and(|a| a.contains("memory"))
            }
            Err(e) => {
                notes.push(format!("reading the memory watermark: {e:#}"));
                false
            }
        },
        BrokerFault::KillServer => {
            let killed = services::rabbit_kill().await;
            sleep(Duration::from_secs(2)).await;
            let started = services::rabbit_start_server().await;
            notes.push(format!(
                "kill -9 of beam pid: {killed:?}, restart: {started:?}"
            ));
            killed.is_ok() && started.is_ok()
        }
    };
    feed.await?;
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    Ok(conclude(summary, notes, injected))
}

enum PgFault {
    Restart,
    Terminate,
}

async fn postgres_fault(opts: &Options, name: &str, fault: PgFault) -> Result<Summary> {
    let run = Run::start(config(opts, name, two_workers())).await?;
    let _restore = RestoreGuard;
    // Submissions span the whole outage and the recovery after it.
    let feed = run.feed(
        "bg",
        opts.jobs.max(100),
        OUTAGE_FEED_SPAN / opts.jobs.max(100) as u32,
    );
    sleep(Duration::from_secs(2)).await;
    let mut notes = Vec::new();
    let injected = match fault {
        PgFault::Restart => {
            let restarted = services::postgres_restart().await;
            notes.push(format!("pg_ctlcluster restart: {restarted:?}"));
            restarted.is_ok()
        }
        PgFault::Terminate => {
            let mut ok = true;
            for _ in 0..3 {
                let killed = services::postgres_terminate(&run.db_name).await;
                notes.push(format!("pg_terminate_backend: {killed:?} backends"));
                ok &= killed.is_ok_and(|n| n > 0);
                sleep(Duration::from_millis(1500)).await;
            }
            ok
        }
    };
    feed.await?;
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    Ok(conclude(summary, notes, injected))
}

async fn poison(opts: &Options) -> Result<Summary> {
    let hook = env(&[(
        "IMGMETA_TEST_CRASH_ON_URL_SUBSTRING",
        crate::images::POISON_MARK,
    )]);
    let run = Run::start(config(opts, "poison", vec![hook.clone(), hook])).await?;
    let feed = run.feed("bg", (opts.jobs / 2).max(10), Duration::from_millis(100));
    let answer = run
        .submit(
            run.images.poison_url("poison-0"),
            &["metadata"],
            Expect::Fail("poison"),
        )
        .await;
    feed.await?;
    let summary = run.finish(Duration::from_secs(180), SETTLE).await;
    let crashes = summary.worker_restarts;
    let mut notes = Vec::new();
    let mut over_claimed = false;
    if let Answer::Accepted(id) = answer {
        // Every claim of a poison job kills a worker and the jobs it holds, so the job may be
        // claimed at most IMGMETA_MAX_ATTEMPTS (5 here) times: a claim of a used-up job whose
        // lease expired fails it as `poison` instead of running it again.
        let runs = summary.attempts.get(&id).copied().unwrap_or(0);
        over_claimed = runs > 5;
        notes.push(format!(
            "the poison job was claimed {runs} times (IMGMETA_MAX_ATTEMPTS defaults to 5)"
        ));
    }
    notes.push(format!(
        "poison job answer: {answer:?}; worker crashes: {crashes}"
    ));
    let injected = matches!(answer, Answer::Accepted(_)) && crashes > 0;
    let mut s = conclude(summary, notes, injected);
    if over_claimed {
        s.pass = false;
        s.notes
            .push("the poison job ran more often than its attempts allow".into());
    }
    if crashes == 0 {
        s.notes
            .push("IMGMETA_TEST_CRASH_ON_URL_SUBSTRING had no effect: the hook is missing".into());
    }
    Ok(s)
}

async fn never_answers(opts: &Options) -> Result<Summary> {
    let run = Run::start(config(opts, "never-answers", two_workers())).await?;
    let feed = run.feed("bg", (opts.jobs / 4).max(10), Duration::from_millis(100));
    for k in 0..2 {
        run.submit(
            run.images.never_url(&format!("never-{k}")),
            &["metadata"],
            Expect::Fail("timeout"),
        )
        .await;
    }
    feed.await?;
    // The fetch deadline is 15 s; five attempts with back-off between them.
    let summary = run.finish(Duration::from_secs(300), SETTLE).await;
    Ok(conclude(summary, Vec::new(), true))
}

async fn publish_twice(opts: &Options) -> Result<Summary> {
    let run = Run::start(config(opts, "publish-twice", two_workers())).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    run.ledger.on_accept(tx);
    let (publisher, confirmed) = crate::duplicate::start(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        format!("{}.jobs", run.prefix),
        rx,
    )
    .await?;
    let feed = run.feed("bg", opts.jobs, Duration::from_millis(40));
    feed.await?;
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    publisher.abort();
    let dups = confirmed.load(std::sync::atomic::Ordering::Relaxed);
    let injected = dups == summary.counts.accepted;
    let notes = vec![format!(
        "duplicates published and confirmed: {dups} for {} accepted jobs",
        summary.counts.accepted
    )];
    Ok(conclude(summary, notes, injected))
}

async fn kill_api(opts: &Options) -> Result<Summary> {
    let mut run = Run::start(config(opts, "kill-api", two_workers())).await?;
    let count = opts.jobs.max(100);
    let feed = run.feed("bg", count, OUTAGE_FEED_SPAN / count as u32);
    let mut notes = Vec::new();
    let mut injected = true;
    // Twice, SIGKILL the API in the middle of the burst (requests in flight die with it) and
    // start it again on the same address a second later.
    for _ in 0..2 {
        sleep(Duration::from_secs(3)).await;
        let api = run.api.as_mut().expect("the api runs");
        let restarted = api.crash_and_restart(Duration::from_secs(1)).await;
        notes.push(format!("api SIGKILLed and restarted: {restarted:?}"));
        injected &= restarted.is_ok();
    }
    feed.await?;
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    Ok(conclude(summary, notes, injected))
}

async fn kill_workers_repeatedly(opts: &Options) -> Result<Summary> {
    let run = Run::start(config(opts, "kill-workers-repeatedly", two_workers())).await?;
    let count = opts.jobs.max(100);
    let feed = run.feed("bg", count, OUTAGE_FEED_SPAN / count as u32);
    let mut kills = 0;
    // Every 1.5 s for 12 s, SIGKILL one worker, alternating, and once both at the same time.
    for round in 0..8usize {
        sleep(Duration::from_millis(1500)).await;
        if round == 4 {
            kills += usize::from(run.workers.kill(0).is_some());
            kills += usize::from(run.workers.kill(1).is_some());
        } else {
            kills += usize::from(run.workers.kill(round % 2).is_some());
        }
    }
    feed.await?;
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    let notes = vec![format!("{kills} workers SIGKILLed")];
    Ok(conclude(summary, notes, kills >= 8))
}

async fn sigterm_workers(opts: &Options) -> Result<Summary> {
    let run = Run::start(config(opts, "sigterm-workers", two_workers())).await?;
    let count = opts.jobs.max(100);
    let feed = run.feed("bg", count, OUTAGE_FEED_SPAN / count as u32);
    let mut notes = Vec::new();
    // A rolling deploy: each worker gets SIGTERM (graceful: finish or hand back what it holds)
    // and is replaced by the supervisor once it has exited.
    for slot in 0..run.workers.slots() {
        sleep(Duration::from_secs(3)).await;
        notes.push(format!(
            "SIGTERM to worker {slot}: pid {:?}",
            run.workers.terminate(slot)
        ));
    }
    feed.await?;
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    let injected = summary.worker_restarts >= 2;
    Ok(conclude(summary, notes, injected))
}

/// A worker stops dead (SIGSTOP: a long GC-like pause, a frozen VM, a laptop lid) in the middle
/// of a job and wakes up after its lease expired and another worker finished the job. The
/// sleeper's late result and its late lease renewals must change nothing.
async fn freeze_worker(opts: &Options) -> Result<Summary> {
    let run = Run::start(config(opts, "freeze-worker", two_workers())).await?;
    let feed = run.feed("bg", opts.jobs, Duration::from_millis(40));
    let mut notes = Vec::new();
    let mut injected = false;
    let mut targets = Vec::new();
    run.images.hold_again();
    let answer = run
        .submit(
            run.images.held_url("held-0"),
            &["metadata"],
            Expect::Succeed,
        )
        .await;
    if let Answer::Accepted(id) = answer {
        targets.push(id);
        let owner = if run
            .images
            .wait_held("held-0", Duration::from_secs(30))
            .await
        {
            run.worker_of(id)
                .await
                .as_deref()
                .and_then(pid_of_worker_id)
        } else {
            None
        };
        match owner {
            Some(pid) if signal(pid, "STOP") => {
                notes.push(format!("SIGSTOPped worker pid {pid} holding job {id}"));
                // The lease (5 s) runs out, a sweep (every 5 s) re-queues the job and the other
                // worker fetches it again; then the held image is answered for both fetches.
                sleep(Duration::from_secs(14)).await;
                run.images.release_held();
                let attempts = probe_until(
                    Duration::from_secs(30),
                    Duration::from_millis(100),
                    || run.attempts_of(id),
                    |a| a.is_some_and(|a| a >= 2),
                )
                .await;
                let taken_over = attempts.is_some_and(|a| a >= 2);
                sleep(Duration::from_secs(2)).await;
                let woke = signal(pid, "CONT");
                notes.push(format!(
                    "job taken over by another run: {taken_over}; SIGCONT sent: {woke}"
                ));
                injected = taken_over && woke;
            }
            _ => notes.push(format!("could not find the worker holding job {id}")),
        }
    } else {
        notes.push(format!("held job was not accepted: {answer:?}"));
    }
    run.images.release_held();
    feed.await?;
    let summary = run.finish(Duration::from_secs(120), SETTLE).await;
    injected &= check_interrupted(&summary, &targets, &mut notes);
    Ok(conclude(summary, notes, injected))
}

/// Probes every `every` until `done` holds for what `probe` returns or `within` has passed;
/// returns the last value probed (a scenario reports it either way).
async fn probe_until<T, F: std::future::Future<Output = T>>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let value = probe().await;
        if done(&value) || tokio::time::Instant::now() >= deadline {
            return value;
        }
        sleep(every).await;
    }
}

enum QueueFault {
    Purge,
    Delete,
}

/// Messages of queued jobs vanish from the broker (an operator purges or deletes the queue):
/// PostgreSQL still knows the jobs, so they must all be published again and finish.
async fn lose_queued_messages(opts: &Options, name: &str, fault: QueueFault) -> Result<Summary> {
    let run = Run::start(config(opts, name, two_workers())).await?;
    let queue = format!("{}.jobs", run.prefix);
    let mut notes = Vec::new();
    // Once both workers consume, freeze them so that a backlog builds up in the queue (and
    // their prefetch holds a few messages), then lose the backlog.
    let consuming = probe_until(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async { crate::broker::consumers(&queue).await.unwrap_or(0) },
        |n| *n >= 2,
    )
    .await;
    let pids: Vec<u32> = run.workers.pids().into_iter().flatten().collect();
    let frozen = pids.iter().all(|pid| signal(*pid, "STOP"));
    run.feed("before", opts.jobs.max(40), Duration::from_millis(10))
        .await?;
    // Let the relay publish what was just accepted.
    let ready = probe_until(
        Duration::from_secs(10),
        Duration::from_millis(200),
        || async { crate::broker::ready(&queue).await.unwrap_or(0) },
        |n| *n as usize + 4 >= opts.jobs.max(40),
    )
    .await;
    let lost = match fault {
        QueueFault::Purge => crate::broker::purge(&queue).await,
        QueueFault::Delete => crate::broker::delete(&queue).await,
    };
    notes.push(format!(
        "{consuming} consumers; {} workers frozen: {frozen}; {ready} messages ready; lost: {lost:?}",
        pids.len()
    ));
    let woke = pids.iter().all(|pid| signal(*pid, "CONT"));
    // New work keeps flowing while the lost messages are replaced.
    let feed = run.feed("after", opts.jobs / 2, Duration::from_millis(40));
    feed.await?;
    let summary = run.finish(Duration::from_secs(150), SETTLE).await;
    let injected = consuming >= 2 && frozen && woke && lost.as_ref().is_ok_and(|n| *n > 0);
    Ok(conclude(summary, notes, injected))
}

/// Messages that no submission made land on the jobs queue: not JSON, the wrong shape, an id
/// that is not a UUID, a job that does not exist, an empty body, a large junk body. Each is
/// dropped with an error log; no worker crashes or loops on them, and real jobs keep flowing.
async fn garbage_messages(opts: &Options) -> Result<Summary> {
    let run = Run::start(config(opts, "garbage-messages", two_workers())).await?;
    let queue = format!("{}.jobs", run.prefix);
    let feed = run.feed("bg", opts.jobs, Duration::from_millis(40));
    let bodies: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        b"{}".to_vec(),
        br#"{"job_id": "not-a-uuid"}"#.to_vec(),
        serde_json::to_vec(&serde_json::json!({ "job_id": uuid::Uuid::now_v7() }))?,
        serde_json::to_vec(&serde_json::json!({ "job_id": 42, "extra": [1, 2, 3] }))?,
        Vec::new(),
        vec![0xff; 1 << 20],
    ];
    let mut published = 0;
    for _ in 0..3 {
        sleep(Duration::from_millis(700)).await;
        published += crate::broker::publish_raw(&queue, &bodies).await?;
    }
    feed.await?;
    // Every garbage message is consumed and dropped, not requeued round and round.
    let left = probe_until(
        Duration::from_secs(20),
        Duration::from_millis(500),
        || async { crate::broker::ready(&queue).await.ok() },
        |n| *n == Some(0),
    )
    .await;
    let workers = run.workers.clone();
    let mut summary = run.finish(Duration::from_secs(120), SETTLE).await;
    let mut notes = vec![format!(
        "{published} garbage messages published; ready in the queue once the feed ended: \
         {left:?}; worker restarts: {}",
        workers.restarts()
    )];
    let injected = published == 3 * bodies.len();
    if workers.restarts() > 0 {
        notes.push("a worker exited while garbage was on the queue".into());
        summary.pass = false;
    }
    if left != Some(0) {
        notes.push("garbage stayed on the queue".into());
        summary.pass = false;
    }
    Ok(conclude(summary, notes, injected))
}
