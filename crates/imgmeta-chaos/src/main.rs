//! `imgmeta-chaos`: the black-box fault-injection suite and load test. It starts real
//! `imgmeta api` / `imgmeta worker` processes, faults them and the machine's RabbitMQ and
//! PostgreSQL, and prints one JSON line of counts per scenario; exit 1 if any count is wrong.

mod batch_faults;
mod bench_batch;
mod bench_fairness;
mod bench_pipeline;
mod broker;
mod checker;
mod client;
mod duplicate;
mod floods;
mod images;
mod load;
mod procs;
mod run;
mod scenarios;
mod services;
mod viral;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Fault-injection scenarios and load test against real imgmeta processes")]
struct Cli {
    /// The workspace root (holds target/debug/imgmeta, models/ and fixtures/).
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
    /// The imgmeta binary to run (default: <workspace>/target/debug/imgmeta).
    #[arg(long, env = "IMGMETA_CHAOS_BINARY")]
    binary: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one scenario, or `all` of them in turn.
    Scenario {
        /// A scenario name, `all`, or `ci` (those that leave RabbitMQ and PostgreSQL running);
        /// `list` prints the names.
        name: String,
        /// Background ok jobs submitted during each scenario.
        #[arg(long, default_value_t = 100)]
        jobs: usize,
    },
    /// Submits N jobs with bounded concurrency and reports throughput and latencies.
    Load {
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// GET requests kept in flight during the submit burst.
        #[arg(long, default_value_t = 4)]
        readers: usize,
        /// Stop RabbitMQ (stop_app) for the whole submit burst, start it after.
        #[arg(long)]
        broker_down: bool,
    },
    /// The batch benchmark: single submissions beside one NDJSON batch (acceptance rates, the
    /// API's memory), the relay beside a bare publisher, then a batch run to its last result.
    BenchBatch {
        #[arg(long, default_value_t = 100_000)]
        lines: usize,
        #[arg(long, default_value_t = 10_000)]
        singles: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 10_000)]
        items: usize,
    },
    /// Fairness: while one account's batch of N items runs on two workers, another account's
    /// single jobs (one every `--every-ms`) and how long each waits to start (p95 ≤ 2 s).
    BenchFairness {
        #[arg(long, default_value_t = 20_000)]
        items: usize,
        #[arg(long, default_value_t = 500)]
        every_ms: u64,
    },
    /// The pipeline benchmark: one worker on a stream of distinct generated images, its rate
    /// end to end beside the detector's own, statements per job and memory, per concurrency.
    BenchPipeline {
        #[arg(long, default_value_t = 300)]
        images: usize,
        #[arg(long, default_value_t = 300)]
        min_side: u32,
        #[arg(long, default_value_t = 1000)]
        max_side: u32,
        /// Worker concurrencies to run, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        concurrency: Vec<u16>,
        /// Inference threads for the worker and the detector alone (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, default_value_t = 18)]
        seed: u64,
    },
    /// The viral burst: N `POST /img?<same url>` from K keys, then the status endpoint at
    /// the same concurrency; origin requests, inference runs, latencies, throughputs.
    Viral {
        #[arg(long, default_value_t = 2_000)]
        requests: usize,
        #[arg(long, default_value_t = 20)]
        keys: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let workspace = std::fs::canonicalize(&cli.workspace)?;
    let binary = cli
        .binary
        .unwrap_or_else(|| workspace.join("target/debug/imgmeta"));
    // Services left down by an earlier, interrupted run are brought back before anything.
    tokio::task::spawn_blocking(services::RestoreGuard::restore_now).await?;
    let ok = match cli.command {
        Command::Scenario { name, jobs } => {
            if name == "list" {
                println!("{}", scenarios::ALL.join("\n"));
                return Ok(());
            }
            let names: Vec<&str> = if name == "all" {
                scenarios::ALL.to_vec()
            } else if name == "ci" {
                scenarios::CI.to_vec()
            } else {
                vec![name.as_str()]
            };
            let opts = scenarios::Options {
                workspace,
                binary,
                jobs,
            };
            let mut all_ok = true;
            for name in names {
                match scenarios::run(name, &opts).await {
                    Ok(summary) => {
                        all_ok &= summary.pass;
                        println!("{}", serde_json::to_string(&summary)?);
                    }
                    Err(e) => {
                        all_ok = false;
                        println!(
                            "{}",
                            serde_json::json!({"scenario": name, "pass": false, "error": format!("{e:#}")})
                        );
                    }
                }
            }
            all_ok
        }
        Command::Load {
            jobs,
            concurrency,
            readers,
            broker_down,
        } => {
            let opts = load::Options {
                workspace,
                binary,
                jobs,
                concurrency,
                readers,
                broker_down,
            };
            let report = load::run(&opts).await?;
            println!("{}", serde_json::to_string(&report)?);
            report.summary.pass
        }
        Command::BenchBatch {
            lines,
            singles,
            concurrency,
            items,
        } => {
            let opts = bench_batch::Options {
                workspace,
                binary,
                lines,
                singles,
                concurrency,
                items,
            };
            let report = bench_batch::run(&opts).await?;
            println!("{}", serde_json::to_string(&report)?);
            true
        }
        Command::BenchFairness { items, every_ms } => {
            let opts = bench_fairness::Options {
                workspace,
                binary,
                items,
                every: std::time::Duration::from_millis(every_ms),
            };
            let report = bench_fairness::run(&opts).await?;
            println!("{}", serde_json::to_string(&report)?);
            report.pass
        }
        Command::BenchPipeline {
            images,
            min_side,
            max_side,
            concurrency,
            threads,
            seed,
        } => {
            anyhow::ensure!(
                images > 0 && min_side >= 64 && min_side <= max_side,
                "need at least one image and 64 <= --min-side <= --max-side"
            );
            let opts = bench_pipeline::Options {
                workspace,
                binary,
                images,
                min_side,
                max_side,
                concurrency,
                threads: threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                seed,
            };
            let report = bench_pipeline::run(&opts).await?;
            println!("{}", serde_json::to_string(&report)?);
            true
        }
        Command::Viral {
            requests,
            keys,
            concurrency,
        } => {
            let opts = viral::Options {
                workspace,
                binary,
                requests,
                keys: keys.max(1),
                concurrency,
            };
            let report = viral::run(&opts).await?;
            println!("{}", serde_json::to_string(&report)?);
            report.origin_requests == 1
                && report.statuses.keys().all(|s| *s == 200)
                && report.distinct_results == 1
        }
    };
    tokio::task::spawn_blocking(services::RestoreGuard::restore_now).await?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
