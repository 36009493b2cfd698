//! Starting the long-running roles: `api`, `worker`, and `up` (both in one process).

use imgmeta_api::{AppState, Application};
use imgmeta_config::Settings;
use imgmeta_fetch::{FetchConfig, Fetcher};
use imgmeta_metadata::DecodeLimits;
use imgmeta_pipeline::{Analyzer, DetectObjects};
use imgmeta_queue::{Broker, Publisher, Topology};
use imgmeta_relay::{BrokerHealth, ReconcileConfig};
use imgmeta_store::Store;
use imgmeta_worker::{Worker, WorkerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Connects to PostgreSQL, creating the database if needed, and applies migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<Store> {
    imgmeta_store::ensure_database(&settings.database.url).await?;
    let store = Store::connect_lazy(&settings.database.url, settings.database.max_connections)?;
    store.migrate().await?;
    Ok(store)
}

fn store(settings: &Settings) -> anyhow::Result<Store> {
    Ok(Store::connect_lazy(
        &settings.database.url,
        settings.database.max_connections,
    )?)
}

fn publisher(settings: &Settings) -> anyhow::Result<Arc<Publisher>> {
    Ok(Arc::new(Publisher::new(
        &broker(settings)?,
        Topology::new(&settings.queue_prefix),
    )?))
}

/// The broker as configured: its URL and, for `amqps://`, the operator's CA.
pub fn broker(settings: &Settings) -> anyhow::Result<Broker> {
    let broker = Broker::new(settings.amqp_url.clone());
    Ok(match &settings.amqp_ca_pem {
        Some(pem) => broker.with_ca_pem(pem.clone())?,
        None => broker,
    })
}

/// The fetcher as configured: secure defaults, loosened only by explicit settings.
pub fn fetcher(settings: &Settings) -> anyhow::Result<Fetcher> {
    let config = FetchConfig {
        allow_private: settings.fetch.allow_private,
        domains: crate::security::domain_policy(settings)?,
        ..FetchConfig::default()
    };
    Ok(Fetcher::new(config)?)
}

/// The analyzer, with the object detector loaded once for the whole process, and the
/// deployment's content cache.
pub async fn analyzer(settings: &Settings) -> anyhow::Result<Analyzer> {
    let detector = crate::detector::load(settings).await;
    let analyzer = with_content_cache(analyzer_with(settings, detector)?, settings)?;
    Ok(
        match crate::security::host_gate(settings, store(settings)?) {
            Some(gate) => analyzer.with_host_gate(gate),
            None => analyzer,
        },
    )
}

/// A worker's `analyzer` answering from the deployment's content cache (unless
/// `IMGMETA_CACHE_MAX_ENTRIES` is 0); the worker keeps each fresh analysis there in the
/// statement that completes its job.
pub fn with_content_cache(analyzer: Analyzer, settings: &Settings) -> anyhow::Result<Analyzer> {
    Ok(
        match crate::content_cache::shared(store(settings)?, settings.worker.cache_max_entries) {
            Some(cache) => analyzer.with_cache(cache).caller_keeps_analyses(),
            None => analyzer,
        },
    )
}

/// The URL cache's rules for workers, or `None` when the cache is off.
pub fn url_cache_policy(settings: &Settings) -> Option<imgmeta_worker::UrlCachePolicy> {
    let c = &settings.url_cache;
    c.enabled.then_some(imgmeta_worker::UrlCachePolicy {
        lifetimes: imgmeta_pipeline::Lifetimes {
            default_ttl: c.ttl,
            max_ttl: c.max_ttl,
        },
        negative_ttl: c.negative_ttl,
        bounds: imgmeta_store::UrlCacheBounds {
            max_entries: c.max_entries,
            max_bytes: c.max_bytes,
            max_stale: c.max_stale,
        },
    })
}

/// The analyzer around an already loaded detector (or the reason there is none).
pub fn analyzer_with(
    settings: &Settings,
    detector: Result<Arc<dyn DetectObjects>, String>,
) -> anyhow::Result<Analyzer> {
    Ok(
        Analyzer::new(fetcher(settings)?, DecodeLimits::default(), detector)
            .with_infer_batch(settings.worker.infer_batch),
    )
}

/// Most hot URL cache entries an API process holds (each lives `IMGMETA_CACHE_HOT_MS`).
const HOT_ENTRIES: u64 = 1_000;

/// How often an API writes the URL cache hits it counted.
const HIT_WRITE_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// How often an API deletes ended sessions and login failures past the throttle's window.
const SESSION_SWEEP_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

/// A running API, for `up` and for tests.
pub struct RunningApi {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds and starts the API on `settings.http_addr`.
pub async fn start_api(
    settings: &Settings,
    store: Store,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningApi> {
    imgmeta_telemetry::install();
    let publisher = publisher(settings)?;
    let broker = start_relay(settings, store.clone(), publisher.clone(), shutdown.clone());
    let url_cache = settings.url_cache.enabled.then(|| {
        let hits = imgmeta_api::HitTally::default();
        tokio::spawn(imgmeta_api::write_hits(
            store.clone(),
            hits.clone(),
            HIT_WRITE_PERIOD,
            shutdown.clone(),
        ));
        let hot = imgmeta_api::HotEntries::new(HOT_ENTRIES, settings.url_cache.hot);
        if let Some(hot) = &hot {
            tokio::spawn(imgmeta_api::forget_purged(
                store.clone(),
                hot.clone(),
                shutdown.clone(),
            ));
        }
        imgmeta_api::UrlCacheAdmission {
            max_stale: settings.url_cache.max_stale,
            hits,
            hot,
            answered: imgmeta_api::AnsweredWriter::spawn(store.clone()),
        }
    });
    let state = AppState {
        store,
        publisher,
        broker,
        max_outbox_backlog: settings.reliability.max_outbox_backlog,
        legacy_wait: settings.legacy_wait,
        job_waits: imgmeta_api::JobWaits::default(),
        fetch_allows_private: settings.fetch.allow_private,
        security: crate::security::api_security(settings)?,
        sessions: imgmeta_api::SessionPolicy::new(&settings.sessions, settings.http_addr),
        url_cache,
        webhook_secret_overlap: settings.webhooks.secret_overlap,
    };
    tokio::spawn(imgmeta_api::forget_leases_on_change(
        state.store.clone(),
        state.security.token_leases.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(imgmeta_api::watch_jobs(
        state.store.clone(),
        state.job_waits.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(imgmeta_api::sweep_sessions(
        state.store.clone(),
        settings.sessions.login_window,
        SESSION_SWEEP_PERIOD,
        shutdown.clone(),
    ));
    let w = &settings.webhooks;
    tokio::spawn(imgmeta_api::send_webhooks(
        state.store.clone(),
        crate::security::webhook_transport(settings)?,
        imgmeta_api::WebhookPolicy {
            timeout: w.timeout,
            retry_base: w.retry_base,
            retry_for: w.retry_for,
            concurrency: w.concurrency,
        },
        shutdown.clone(),
    ));
    let app = Application::build(settings.http_addr, state).await?;
    let addr = app.local_addr();
    let task = tokio::spawn(app.run_until_stopped(async move { shutdown.cancelled().await }));
    Ok(RunningApi { addr, task })
}

/// Starts a worker with `concurrency` job slots.
pub fn start_worker(
    settings: &Settings,
    store: Store,
    analyzer: Arc<Analyzer>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let config = WorkerConfig {
        broker: broker(settings)?,
        topology: Topology::new(&settings.queue_prefix),
        concurrency: settings.worker.concurrency,
        lease: settings.worker.lease,
        shutdown_grace: settings.worker.shutdown_grace,
        max_attempts: settings.worker.max_attempts,
        retry_base: settings.worker.retry_base,
        test_hooks: settings.worker.test_hooks.clone(),
        url_cache: url_cache_policy(settings),
        content_cache_max_entries: (settings.worker.cache_max_entries > 0)
            .then_some(settings.worker.cache_max_entries),
    };
    imgmeta_telemetry::install();
    start_relay(
        settings,
        store.clone(),
        publisher(settings)?,
        shutdown.clone(),
    );
    let worker = Worker::new(config, store, analyzer);
    Ok(tokio::spawn(worker.run_until_stopped(shutdown)))
}

/// Starts the outbox relay and the reconciler, which every API and worker process runs.
pub fn start_relay(
    settings: &Settings,
    store: Store,
    publisher: Arc<Publisher>,
    shutdown: CancellationToken,
) -> BrokerHealth {
    let health = BrokerHealth::default();
    tokio::spawn(imgmeta_relay::relay(
        store.clone(),
        publisher.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    let config = ReconcileConfig {
        period: settings.reliability.sweep_period,
        max_attempts: settings.worker.max_attempts,
        republish_after: settings.reliability.republish_after,
        republish_idle_after: settings.reliability.republish_idle_after,
    };
    tokio::spawn(imgmeta_relay::reconcile(store, publisher, config, shutdown));
    health
}

/// `/metrics`, `/healthz` and `/readyz` on `IMGMETA_METRICS_ADDR`, when it is set: every
/// process honours it (the API also serves them on its own port).
pub async fn serve_own_port(
    settings: &Settings,
    store: Store,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = settings.metrics_addr else {
        return Ok(None);
    };
    let health = imgmeta_api::ProcessHealth {
        store,
        publisher: publisher(settings)?,
        fetch_allows_private: settings.fetch.allow_private,
    };
    Ok(Some(
        imgmeta_api::serve_metrics(addr, health, shutdown).await?,
    ))
}

/// `imgmeta api`.
pub async fn api(settings: Settings) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal();
    let store = store(&settings)?;
    serve_own_port(&settings, store.clone(), shutdown.clone()).await?;
    let running = start_api(&settings, store, shutdown).await?;
    running.task.await??;
    Ok(())
}

/// `imgmeta worker`.
pub async fn worker(settings: Settings) -> anyhow::Result<()> {
    warn_if_private(&settings);
    let shutdown = shutdown_on_signal();
    let store = store(&settings)?;
    serve_own_port(&settings, store.clone(), shutdown.clone()).await?;
    let analyzer = Arc::new(analyzer(&settings).await?);
    start_worker(&settings, store, analyzer, shutdown)?.await?;
    Ok(())
}

/// `imgmeta up`: migrate, then the API and one worker in this process.
pub async fn up(settings: Settings) -> anyhow::Result<()> {
    warn_if_private(&settings);
    let store = migrate(&settings).await?;
    let shutdown = shutdown_on_signal();
    serve_own_port(&settings, store.clone(), shutdown.clone()).await?;
    let analyzer = Arc::new(analyzer(&settings).await?);
    let worker = start_worker(&settings, store.clone(), analyzer, shutdown.clone())?;
    crate::security::ensure_first_key(&settings, &store).await?;
    let api = start_api(&settings, store, shutdown).await?;
    eprintln!("imgmeta is up: http://{}  (Ctrl-C to stop)", api.addr);
    let (api, worker) = tokio::join!(api.task, worker);
    api??;
    worker?;
    Ok(())
}

fn warn_if_private(settings: &Settings) {
    if settings.fetch.allow_private {
        tracing::warn!(
            kind = "security",
            "IMGMETA_FETCH_ALLOW_PRIVATE is on: workers may fetch loopback and private addresses; never use this in production"
        );
    }
}

/// A token cancelled by Ctrl-C or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}
