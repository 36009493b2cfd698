//! The pipeline benchmark (issue 18): one `imgmeta worker` on a stream of distinct images
//! beside the detector's own rate, measured side by side in one run. The images are made here
//! (crops of the detector's test photos at random sizes, each marked so that no two share a
//! byte pattern, as JPEG), so neither the URL cache nor the content cache can answer any of
//! them. For each worker concurrency: the detector's rate (`imgmeta bench detect` on sample
//! images, same threads), then the worker draining the whole stream, its images/s end to end,
//! the ratio, PostgreSQL statements per job from `pg_stat_statements` (the worker connects as
//! a role of its own, so its statements are told apart from the API's), WAL bytes per job and
//! the worker's resident memory (with the model loaded, idle; and its peak).

use crate::procs::{Workers, free_port};
use crate::run::{Run, RunConfig};
use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;
use image::{ImageEncoder, RgbImage};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sqlx::Row as _;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// The database role the benchmarked worker connects as (spelled out in the `CREATE ROLE`).
const WORKER_ROLE: &str = "imgmeta_bench_worker";
/// Images `imgmeta bench detect` times for the detector's rate, and runs on each.
const DETECTOR_SAMPLES: usize = 3;
const DETECTOR_RUNS: usize = 12;

#[derive(Debug, Clone)]
pub struct Options {
    pub workspace: PathBuf,
    pub binary: PathBuf,
    pub images: usize,
    pub min_side: u32,
    pub max_side: u32,
    pub concurrency: Vec<u16>,
    pub threads: usize,
    pub seed: u64,
}

#[derive(Debug, Serialize)]
pub struct PipelineReport {
    pub machine: String,
    pub cores: usize,
    pub images: usize,
    pub sides_px: (u32, u32),
    pub image_bytes_mean: usize,
    pub inference_threads: usize,
    pub runs: Vec<DrainReport>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct DetectorRate {
    /// Mean over the samples of preprocess + forward + postprocess p50.
    pub per_image_ms: f64,
    pub forward_p50_ms: f64,
    pub images_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct DrainReport {
    pub concurrency: u16,
    /// The detector alone, measured just before and just after this drain (this machine's
    /// speed drifts): the mean of the two rates is the drain's yardstick.
    pub detector: DetectorRate,
    pub detector_after: DetectorRate,
    pub succeeded: usize,
    pub failed: usize,
    /// From the first job's start to the last one's end (the worker was never short of work:
    /// every job was queued before most of the stream had run).
    pub drain_s: f64,
    pub images_per_s: f64,
    /// `images_per_s` over the mean of the two detector rates (target ≥ 0.85).
    pub vs_detector: f64,
    /// Mean stage times of the jobs (`result.timings`), ms.
    pub stages_ms: BTreeMap<String, f64>,
    pub statements: Option<Statements>,
    pub rss_mib: Rss,
    /// CPU seconds spent during the drain, by process (the worker split into its detector
    /// threads and the rest), beside the drain's wall-clock seconds times the cores.
    pub cpu_s: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize)]
pub struct Statements {
    /// Statements (each one round trip; BEGIN and COMMIT included) the worker ran per job
    /// for the jobs it ran (the relay's statements left out: they publish submissions).
    pub worker_per_job: f64,
    /// Statements of the outbox relays (the API's and the worker's) per job.
    pub relay_per_job: f64,
    /// Statements the API ran per job to accept it (the relay's left out).
    pub api_per_job: f64,
    /// WAL bytes written per job, all statements.
    pub wal_bytes_per_job: f64,
    /// The worker's statements, most frequent first: calls per job and the query's start.
    pub worker_queries: Vec<(f64, String)>,
    /// Every role's statements by the server time they took (planning and execution, ms per
    /// job), most expensive first, with their calls per job: where PostgreSQL's CPU goes.
    pub by_time: Vec<(f64, f64, String)>,
}

#[derive(Debug, Serialize)]
pub struct Rss {
    /// With the model loaded, before the first job.
    pub idle: f64,
    /// The worker's high-water mark after the drain.
    pub peak: f64,
}

/// Generates `n` distinct JPEGs from the detector's test photos.
fn generate(opts: &Options) -> Result<Vec<Bytes>> {
    let dir = opts.workspace.join("crates/imgmeta-vision/tests/fixtures");
    let sources: Vec<RgbImage> = ["chelsea.png", "coffee.png", "motorcycle.png"]
        .iter()
        .map(|name| {
            let path = dir.join(name);
            Ok(image::open(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .to_rgb8())
        })
        .collect::<Result<_>>()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let mut out = Vec::with_capacity(opts.images);
    for i in 0..opts.images {
        let source = &sources[i % sources.len()];
        let (sw, sh) = source.dimensions();
        // A crop of at least half of each side, scaled to the target size.
        let cw = rng.random_range(sw / 2..=sw);
        let ch = rng.random_range(sh / 2..=sh);
        let x = rng.random_range(0..=sw - cw);
        let y = rng.random_range(0..=sh - ch);
        let crop = image::imageops::crop_imm(source, x, y, cw, ch).to_image();
        let w = rng.random_range(opts.min_side..=opts.max_side);
        let h = rng.random_range(opts.min_side..=opts.max_side);
        let mut img = image::imageops::resize(&crop, w, h, image::imageops::FilterType::Triangle);
        // The image's number written as a row of black and white squares: distinct bytes.
        for bit in 0..16 {
            let on = (i >> bit) & 1 == 1;
            for dy in 0..4 {
                for dx in 0..4 {
                    let px = image::Rgb(if on { [255, 255, 255] } else { [0, 0, 0] });
                    img.put_pixel((bit * 4 + dx) as u32 % w, dy % h, px);
                }
            }
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 88).write_image(
            img.as_raw(),
            w,
            h,
            image::ExtendedColorType::Rgb8,
        )?;
        out.push(Bytes::from(jpeg));
    }
    Ok(out)
}

/// Serves the generated images at `/gen/{i}.jpg`; returns the base URL.
async fn serve(images: Arc<Vec<Bytes>>) -> Result<String> {
    async fn one(
        State(images): State<Arc<Vec<Bytes>>>,
        Path(name): Path<String>,
    ) -> axum::response::Response {
        let index = name
            .strip_suffix(".jpg")
            .and_then(|n| n.parse::<usize>().ok());
        match index.and_then(|i| images.get(i)) {
            Some(bytes) => ([(header::CONTENT_TYPE, "image/jpeg")], bytes.clone()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = Router::new()
        .route("/gen/{name}", get(one))
        .with_state(images);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// `imgmeta bench detect` on a few of the images, with the worker's thread count.
async fn detector_rate(opts: &Options, samples: &[PathBuf]) -> Result<DetectorRate> {
    let (mut total, mut forward) = (0.0, 0.0);
    for path in samples {
        let report = crate::procs::json_output(
            tokio::process::Command::new(&opts.binary)
                .args(["bench", "detect"])
                .arg(path)
                .args(["--runs", &DETECTOR_RUNS.to_string()])
                .args(["--threads", &opts.threads.to_string()])
                .env(
                    "IMGMETA_MODEL_DIR",
                    opts.workspace.join("models").display().to_string(),
                ),
            "imgmeta bench detect",
        )
        .await?;
        let p50 = |stage: &str| report[stage]["p50_ms"].as_f64().unwrap_or(0.0);
        total += p50("preprocess") + p50("forward") + p50("postprocess");
        forward += p50("forward");
    }
    let n = samples.len() as f64;
    let per_image_ms = total / n;
    Ok(DetectorRate {
        per_image_ms: round(per_image_ms, 2),
        forward_p50_ms: round(forward / n, 2),
        images_per_s: round(1000.0 / per_image_ms, 2),
    })
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// `VmRSS` or `VmHWM` of a process, MiB.
fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round(kib / 1024.0, 1))
}

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ; 100 on every Linux we run on).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user + system) of every process and thread, by group: the worker's detector
/// threads (`imgmeta-vision-*`, `imgmeta-infer`), the worker's other threads, the API,
/// PostgreSQL, RabbitMQ and everything else.
fn cpu_by_group(worker: u32, api: Option<u32>) -> BTreeMap<String, f64> {
    let ticks = |stat: &str| -> Option<(String, f64)> {
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the comm.
        let t = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some((comm, t / TICKS_PER_S))
    };
    let mut groups: BTreeMap<String, f64> = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == worker {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                if let Some((comm, s)) = ticks(&stat) {
                    let group = if comm.starts_with("imgmeta-vision") || comm == "imgmeta-infer" {
                        "worker_detector"
                    } else {
                        "worker_other"
                    };
                    *groups.entry(group.into()).or_default() += s;
                }
            }
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let Some((comm, s)) = ticks(&stat) else {
            continue;
        };
        let group = if Some(pid) == api {
            "api"
        } else if comm.starts_with("postgres") {
            "postgres"
        } else if comm.starts_with("beam") || comm.starts_with("erl") {
            "rabbitmq"
        } else if pid == std::process::id() {
            "harness"
        } else {
            "other"
        };
        *groups.entry(group.into()).or_default() += s;
    }
    groups
}

/// `after - before` by group, rounded.
fn cpu_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                round(v - before.get(k).copied().unwrap_or(0.0), 2),
            )
        })
        .collect()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub async fn run(opts: &Options) -> Result<PipelineReport> {
    eprintln!("bench-pipeline: generating {} images", opts.images);
    let images = {
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || generate(&opts)).await??
    };
    let image_bytes_mean = images.iter().map(Bytes::len).sum::<usize>() / images.len().max(1);
    let sample_dir = std::env::temp_dir().join(format!("imgmeta-bench-pipeline-{}", opts.seed));
    std::fs::create_dir_all(&sample_dir)?;
    let samples: Vec<PathBuf> = (0..DETECTOR_SAMPLES.min(images.len()))
        .map(|i| {
            let path = sample_dir.join(format!("{i}.jpg"));
            std::fs::write(&path, &images[i]).map(|()| path)
        })
        .collect::<std::io::Result<_>>()?;
    let images = Arc::new(images);
    let base = serve(images.clone()).await?;
    let mut notes = Vec::new();
    let mut runs = Vec::new();
    for &concurrency in &opts.concurrency {
        eprintln!(
            "bench-pipeline: the detector alone ({} threads)",
            opts.threads
        );
        let detector = detector_rate(opts, &samples).await?;
        eprintln!("bench-pipeline: one worker at concurrency {concurrency}");
        let (mut drain, note) = drain(opts, concurrency, &base, images.len(), detector).await?;
        drain.detector_after = detector_rate(opts, &samples).await?;
        let yardstick = (drain.detector.images_per_s + drain.detector_after.images_per_s) / 2.0;
        drain.vs_detector = round(drain.images_per_s / yardstick, 3);
        notes.extend(note);
        eprintln!("bench-pipeline: {}", serde_json::to_string(&drain)?);
        runs.push(drain);
    }
    notes.push(
        "RabbitMQ per job: 1 publish with confirm (the relay), 1 delivery and 1 ack (the \
         worker); no other broker operation on the hot path"
            .into(),
    );
    Ok(PipelineReport {
        machine: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        images: images.len(),
        sides_px: (opts.min_side, opts.max_side),
        image_bytes_mean,
        inference_threads: opts.threads,
        runs,
        notes,
    })
}

/// One run: the API with every job queued, then one worker draining them.
async fn drain(
    opts: &Options,
    concurrency: u16,
    base: &str,
    count: usize,
    detector: DetectorRate,
) -> Result<(DrainReport, Option<String>)> {
    let env = BTreeMap::from([
        (
            "IMGMETA_INFERENCE_THREADS".to_owned(),
            opts.threads.to_string(),
        ),
        // Production's lease: the benchmark's jobs never need a renewal.
        ("IMGMETA_LEASE_SECS".to_owned(), "60".to_owned()),
    ]);
    let run = Run::start(RunConfig {
        workspace: opts.workspace.clone(),
        binary: opts.binary.clone(),
        name: format!("bench-pipeline-c{concurrency}"),
        workers: Vec::new(),
        env,
        watch_every: Duration::from_secs(24 * 3600),
    })
    .await?;
    let database_url = run.database_url()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&database_url)
        .await?;
    sqlx::query(
        "DO $$ BEGIN CREATE ROLE imgmeta_bench_worker LOGIN SUPERUSER; \
         EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    )
    .execute(&pool)
    .await?;
    let statements_on = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&pool)
        .await
        .is_ok()
        && sqlx::query("SELECT count(*) FROM pg_stat_statements")
            .fetch_one(&pool)
            .await
            .is_ok();
    let note = (!statements_on).then(|| {
        "pg_stat_statements is not loaded (shared_preload_libraries): statements not counted; \
         scripts/bench_pipeline.sh enables it"
            .to_owned()
    });

    // The worker: its own database role, its metrics address, the concurrency under test.
    let worker_url = database_url.replacen("postgres@", &format!("{WORKER_ROLE}@"), 1);
    let extra = BTreeMap::from([
        ("IMGMETA_DATABASE_URL".to_owned(), worker_url),
        (
            "IMGMETA_WORKER_CONCURRENCY".to_owned(),
            concurrency.to_string(),
        ),
        (
            "IMGMETA_METRICS_ADDR".to_owned(),
            format!("127.0.0.1:{}", free_port()?),
        ),
    ]);
    let workers = Workers::start(&run.procs, vec![extra])?;
    let log = run.log_dir.join("worker-0.log");
    let ready = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("worker started") {
            break;
        }
        if ready.elapsed() > Duration::from_secs(120) {
            bail!(
                "the worker did not start within 2 min (log: {})",
                log.display()
            );
        }
        sleep(Duration::from_millis(100)).await;
    }
    // Let the consumers open; the model is loaded by now.
    sleep(Duration::from_millis(500)).await;
    let pid = workers.pids()[0].context("the worker's pid")?;
    let idle = memory_mib(pid, "VmRSS").unwrap_or(f64::NAN);
    if statements_on {
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&pool)
            .await?;
    }
    let api_pid = run.api.as_ref().and_then(|a| a.pid());
    let cpu_before = cpu_by_group(pid, api_pid);

    futures::stream::iter(0..count)
        .map(|i| {
            let url = format!("{base}/gen/{i}.jpg");
            let run = &run;
            async move {
                run.submit(
                    url,
                    &["metadata", "objects"],
                    crate::checker::Expect::Succeed,
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled')",
        )
        .fetch_one(&pool)
        .await?;
        if done as usize >= count {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {done} of {count} jobs finished within 30 min");
        }
        sleep(Duration::from_millis(100)).await;
    }
    let peak = memory_mib(pid, "VmHWM").unwrap_or(f64::NAN);
    let cpu_s = cpu_delta(&cpu_before, &cpu_by_group(pid, api_pid));
    workers.stop().await;

    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok, \
                count(*) FILTER (WHERE status <> 'succeeded') AS failed, \
                extract(epoch FROM max(finished_at) - min(started_at))::float8 AS span, \
                avg((result->'timings_ms'->>'fetch')::float8) AS fetch, \
                avg((result->'timings_ms'->>'decode')::float8) AS decode, \
                avg((result->'timings_ms'->>'metadata')::float8) AS metadata, \
                avg((result->'timings_ms'->>'objects')::float8) AS objects \
         FROM jobs",
    )
    .fetch_one(&pool)
    .await?;
    let succeeded: i64 = row.try_get("ok")?;
    let failed: i64 = row.try_get("failed")?;
    let drain_s: f64 = row.try_get::<Option<f64>, _>("span")?.unwrap_or(f64::NAN);
    let mut stages_ms = BTreeMap::new();
    for stage in ["fetch", "decode", "metadata", "objects"] {
        if let Some(ms) = row.try_get::<Option<f64>, _>(stage)? {
            stages_ms.insert(stage.to_owned(), round(ms, 2));
        }
    }
    let statements = if statements_on {
        Some(statements(&pool, count).await?)
    } else {
        None
    };
    pool.close().await;
    let images_per_s = count as f64 / drain_s;
    let report = DrainReport {
        concurrency,
        vs_detector: f64::NAN,
        detector,
        detector_after: DetectorRate {
            per_image_ms: f64::NAN,
            forward_p50_ms: f64::NAN,
            images_per_s: f64::NAN,
        },
        succeeded: succeeded as usize,
        failed: failed as usize,
        drain_s: round(drain_s, 2),
        images_per_s: round(images_per_s, 2),
        stages_ms,
        statements,
        rss_mib: Rss { idle, peak },
        cpu_s,
    };
    let summary = run
        .finish(Duration::from_secs(10), Duration::from_millis(100))
        .await;
    if !summary.pass {
        bail!(
            "the run lost or mis-finished jobs: {}",
            serde_json::to_string(&summary)?
        );
    }
    Ok((report, note))
}

/// Statements per job by role, from `pg_stat_statements` (reset before the submissions).
async fn statements(pool: &sqlx::PgPool, count: usize) -> Result<Statements> {
    let rows = sqlx::query(
        "SELECT r.rolname = $1 AS worker, s.calls, s.wal_bytes::float8 AS wal, \
                (s.total_exec_time + s.total_plan_time)::float8 AS ms, \
                left(regexp_replace(s.query, '\\s+', ' ', 'g'), 90) AS query \
         FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid \
         WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND s.query NOT LIKE '%pg_stat_statements%' \
           AND s.query NOT LIKE 'SELECT count(*) FROM jobs WHERE status IN%' \
         ORDER BY s.calls DESC",
    )
    .bind(WORKER_ROLE)
    .fetch_all(pool)
    .await?;
    let n = count as f64;
    let (mut worker, mut relay, mut api, mut wal) = (0i64, 0i64, 0i64, 0.0);
    let mut worker_queries: HashMap<String, i64> = HashMap::new();
    let mut by_time = Vec::new();
    for row in &rows {
        let calls: i64 = row.try_get("calls")?;
        wal += row.try_get::<f64, _>("wal")?;
        let query: String = row.try_get("query")?;
        let ms: f64 = row.try_get("ms")?;
        by_time.push((round(ms / n, 3), round(calls as f64 / n, 3), query.clone()));
        if query.contains("outbox") {
            relay += calls;
        } else if row.try_get::<bool, _>("worker")? {
            worker += calls;
            *worker_queries.entry(query).or_default() += calls;
        } else {
            api += calls;
        }
    }
    let mut worker_queries: Vec<(f64, String)> = worker_queries
        .into_iter()
        .map(|(q, calls)| (round(calls as f64 / n, 3), q))
        .collect();
    worker_queries.sort_by(|a, b| b.0.total_cmp(&a.0));
    by_time.sort_by(|a, b| b.0.total_cmp(&a.0));
    by_time.truncate(12);
    Ok(Statements {
        worker_per_job: round(worker as f64 / n, 2),
        relay_per_job: round(relay as f64 / n, 2),
        api_per_job: round(api as f64 / n, 2),
        wal_bytes_per_job: round(wal / n, 0),
        worker_queries,
        by_time,
    })
}
