//! The `imgmeta` binary: parses arguments and calls the library.

use clap::{Parser, Subcommand};
use imgmeta_config::Settings;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "imgmeta",
    version,
    about = "Image analysis service: metadata and objects for image URLs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, then run the API and one worker in this process (the local default).
    Up,
    /// Run the HTTP API only.
    Api,
    /// Run a worker only.
    Worker {
        /// Jobs run at once (default: IMGMETA_WORKER_CONCURRENCY).
        #[arg(long)]
        concurrency: Option<u16>,
    },
    /// Create the database if missing and apply migrations.
    Migrate,
    /// Submit a file of image URLs (or JSON items), one per line, as one batch; `-` reads
    /// standard input. Re-running with the same file and options does not submit it twice.
    Submit {
        input: String,
        /// The API's base URL (default: IMGMETA_API_URL).
        #[arg(long)]
        api: Option<String>,
        /// The API key (default: IMGMETA_KEY).
        #[arg(long)]
        key: Option<String>,
        /// Comma-separated tasks for items that name none.
        #[arg(long)]
        tasks: Option<String>,
        #[arg(long)]
        min_score: Option<f64>,
        /// Where the signed `batch.completed` webhook goes (the account needs a signing
        /// secret: POST /v1/webhooks/secret).
        #[arg(long)]
        webhook_url: Option<String>,
        /// Follow the batch with a progress bar and write its results as they finish.
        #[arg(long)]
        wait: bool,
        /// Where `--wait` writes the results (NDJSON; default: standard output).
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// The account's batches: list, show, cancel, results.
    Batches {
        #[command(subcommand)]
        command: BatchesCommand,
        #[arg(long, global = true)]
        api: Option<String>,
        #[arg(long, global = true)]
        key: Option<String>,
    },
    /// The caches (by URL and by content): `stats`, or `purge --all | --url U | --sha256 HEX`.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Manage API keys: create (prints the key once), list, revoke.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Make sure FILE holds the operators' admin token: keep one that is there, else write
    /// IMGMETA_ADMIN_TOKEN, else generate one and print it once (for Compose and Kubernetes).
    AdminToken {
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Manage accounts, which own keys and jobs: create, list, set.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Analyse one image file or URL in-process and print the result JSON.
    Analyze {
        /// A file path or an http(s) URL.
        target: String,
        /// Comma-separated tasks: metadata, objects, annotate, dream, preview.
        #[arg(long, value_delimiter = ',', default_value = "metadata,objects")]
        tasks: Vec<String>,
        /// Minimum detection score, 0..1.
        #[arg(long, default_value_t = 0.25)]
        min_score: f64,
        /// The dream task's options as a JSON object, e.g. '{"class": "dog", "steps": 5}'.
        #[arg(long)]
        dream: Option<String>,
        /// Write the images the analysis makes (annotate's, dream's, preview's) into this directory.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Manage the detector's model files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it; only its hash is stored, so it cannot be shown again.
    Create {
        #[arg(long)]
        name: String,
        /// Requests per minute (default: IMGMETA_RATE_PER_MINUTE).
        #[arg(long)]
        rate_per_minute: Option<u32>,
        /// Submissions per UTC day (default: IMGMETA_DAILY_QUOTA).
        #[arg(long)]
        daily_quota: Option<u32>,
        /// The account (id or name) the key joins; without it, a new account named after the key.
        #[arg(long)]
        account: Option<String>,
        /// Space- or comma-separated scopes: jobs:write, jobs:read, keys:manage
        /// (default: "jobs:write jobs:read").
        #[arg(long)]
        scopes: Option<String>,
    },
    /// List keys by prefix, revoked ones included.
    List,
    /// Revoke the key with this prefix (e.g. imk_AbCd1234).
    Revoke { prefix: String },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Create an account and print it as JSON (with its id).
    Create {
        #[arg(long)]
        name: String,
        /// Accepted submissions per UTC day, all keys together (default: IMGMETA_DAILY_QUOTA).
        #[arg(long)]
        daily_quota: Option<u32>,
        /// Days a finished job's result is kept (default: IMGMETA_RETENTION_DAYS).
        #[arg(long)]
        retention_days: Option<u32>,
        /// Store no GPS coordinates of this account's images.
        #[arg(long)]
        redact_gps: bool,
    },
    /// List accounts, one JSON object per line.
    List,
    /// Change an account's settings.
    Set {
        /// The account's id or name.
        account: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        daily_quota: Option<u32>,
        #[arg(long)]
        retention_days: Option<u32>,
        /// true: store no GPS coordinates; false: store them.
        #[arg(long)]
        redact_gps: Option<bool>,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Fetch a model (default: IMGMETA_MODEL), verify it and convert it to safetensors.
    Fetch {
        name: Option<String>,
        /// Fetch and convert again even if valid files are present.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum BatchesCommand {
    /// The newest 100 batches, one JSON line each.
    List,
    /// One batch with its counts.
    Show { id: String },
    /// Cancel every item that has not started.
    Cancel { id: String },
    /// The results as NDJSON, in line order.
    Results {
        id: String,
        /// Only lines of this status (a job status, or `rejected`).
        #[arg(long)]
        status: Option<String>,
        /// Start after this line.
        #[arg(long)]
        after: Option<i64>,
    },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Entries, their bytes and the hits they served (URL and content caches), flights under
    /// way and jobs waiting on them, as one JSON line.
    Stats,
    /// Forget everything (`--all`), one URL's entries and the analyses of the bytes it served
    /// (`--url`), or the analyses of one image's bytes (`--sha256`).
    Purge {
        #[arg(long, conflicts_with_all = ["sha256", "url"], required_unless_present_any = ["sha256", "url"])]
        all: bool,
        #[arg(long, conflicts_with = "sha256")]
        url: Option<String>,
        #[arg(long)]
        sha256: Option<String>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Time preprocessing, the forward pass and postprocessing on one image.
    Detect {
        image: std::path::PathBuf,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Images per forward pass (copies of the image), as IMGMETA_INFER_BATCH batches.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Also time each module of the network (the device synchronised after each).
        #[arg(long)]
        modules: bool,
    },
    /// Time a dream's gradient steps (forward + backward) beside the fast forward pass.
    Dream {
        image: std::path::PathBuf,
        #[arg(long, default_value_t = 512)]
        max_side: u32,
        #[arg(long, default_value_t = 4)]
        octaves: u32,
        #[arg(long, default_value_t = 10)]
        steps: u32,
        /// Amplify this COCO class instead of the default layers.
        #[arg(long)]
        class: Option<String>,
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("imgmeta: {e}");
            return ExitCode::from(2);
        }
    };
    // Traces name the process after its role unless OTEL_SERVICE_NAME says otherwise.
    let service_name = match &cli.command {
        Command::Api => "imgmeta-api",
        Command::Worker { .. } => "imgmeta-worker",
        _ => "imgmeta",
    };
    let traces = imgmeta_cli::logging::init_with_traces(
        settings.log_format,
        settings.log_filter.as_deref(),
        settings.traces.as_ref(),
        service_name,
    );
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    let code = runtime.block_on(async move {
        let outcome = match cli.command {
            Command::Up => imgmeta_cli::serve::up(settings).await,
            Command::Api => imgmeta_cli::serve::api(settings).await,
            Command::Worker { concurrency } => {
                if let Some(n) = concurrency {
                    settings.worker.concurrency = n.max(1);
                }
                imgmeta_cli::serve::worker(settings).await
            }
            Command::Migrate => imgmeta_cli::serve::migrate(&settings).await.map(|_| ()),
            Command::Submit { input, api, key, tasks, min_score, webhook_url, wait, output } => {
                match imgmeta_cli::batches::Client::new(&settings, api, key) {
                    Ok(client) => {
                        let args = imgmeta_cli::batches::Submit { input, tasks, min_score, webhook_url, wait, output };
                        imgmeta_cli::batches::submit(&client, &args).await
                    }
                    Err(e) => Err(e),
                }
            }
            Command::Batches { command, api, key } => {
                match imgmeta_cli::batches::Client::new(&settings, api, key) {
                    Ok(client) => match command {
                        BatchesCommand::List => imgmeta_cli::batches::list(&client).await,
                        BatchesCommand::Show { id } => imgmeta_cli::batches::show(&client, &id).await,
                        BatchesCommand::Cancel { id } => imgmeta_cli::batches::cancel(&client, &id).await,
                        BatchesCommand::Results { id, status, after } => {
                            imgmeta_cli::batches::results(&client, &id, status.as_deref(), after).await
                        }
                    },
                    Err(e) => Err(e),
                }
            }
            Command::Cache { command } => match command {
                CacheCommand::Stats => imgmeta_cli::content_cache::stats(&settings).await,
                CacheCommand::Purge { sha256, url, .. } => {
                    let target = match (url, sha256) {
                        (Some(url), _) => imgmeta_cli::content_cache::Purge::Url(url),
                        (None, Some(sha)) => imgmeta_cli::content_cache::Purge::Sha256(sha),
                        (None, None) => imgmeta_cli::content_cache::Purge::All,
                    };
                    imgmeta_cli::content_cache::purge(&settings, target).await
                }
            },
            Command::Keys { command } => match command {
                KeysCommand::Create { name, rate_per_minute, daily_quota, account, scopes } => {
                    let args = imgmeta_cli::keys::CreateKey { name, rate_per_minute, daily_quota, account, scopes };
                    imgmeta_cli::keys::create(&settings, &args).await
                }
                KeysCommand::List => imgmeta_cli::keys::list(&settings).await,
                KeysCommand::Revoke { prefix } => imgmeta_cli::keys::revoke(&settings, &prefix).await,
            },
            Command::AdminToken { file } => imgmeta_cli::keys::ensure_admin_token(&settings, &file).map(|_| ()),
            Command::Accounts { command } => match command {
                AccountsCommand::Create { name, daily_quota, retention_days, redact_gps } => {
                    imgmeta_cli::keys::create_account(&settings, &name, daily_quota, retention_days, redact_gps).await
                }
                AccountsCommand::List => imgmeta_cli::keys::list_accounts(&settings).await,
                AccountsCommand::Set { account, name, daily_quota, retention_days, redact_gps } => {
                    let changes = imgmeta_cli::keys::AccountChangesArgs { name, daily_quota, retention_days, redact_gps };
                    imgmeta_cli::keys::set_account(&settings, &account, changes).await
                }
            },
            Command::Models {
                command: ModelsCommand::Fetch { name, force },
            } => tokio::task::spawn_blocking(move || imgmeta_cli::models::fetch(&settings, name.as_deref(), force))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r),
            Command::Bench {
                command: BenchCommand::Detect { image, runs, threads, batch, modules },
            } => tokio::task::spawn_blocking(move || imgmeta_cli::models::bench_detect(&settings, image, runs, threads, batch, modules))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r),
            Command::Bench {
                command: BenchCommand::Dream { image, max_side, octaves, steps, class, threads },
            } => {
                let bench = imgmeta_cli::models::DreamBench { image, max_side, octaves, steps, class, threads };
                tokio::task::spawn_blocking(move || imgmeta_cli::models::bench_dream(&settings, bench))
                    .await
                    .map_err(anyhow::Error::from)
                    .and_then(|r| r)
            }
            Command::Analyze { target, tasks, min_score, dream, out } => {
                return match imgmeta_cli::analyze::run(&settings, &target, &tasks, min_score, dream.as_deref(), out.as_deref()).await {
                    Ok(result) => {
                        println!("{result}");
                        ExitCode::SUCCESS
                    }
                    Err(envelope) => {
                        println!("{envelope}");
                        ExitCode::FAILURE
                    }
                };
            }
        };
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(kind = "error", error = %format!("{e:#}"), "imgmeta stopped with an error");
                eprintln!("imgmeta: {e:#}");
                ExitCode::FAILURE
            }
        }
    });
    // Tasks still running end with the runtime, closing their spans; then the spans are sent.
    drop(runtime);
    if let Some(traces) = traces {
        traces.shutdown();
    }
    code
}
