//! The submit API: validates requests, records jobs in PostgreSQL, wakes workers through
//! RabbitMQ, and reports job status. Only this crate knows HTTP.
//!
//! It never fetches or analyses an image itself, so it stays fast and cheap to replicate.

mod announcements;
mod answered_writer;
mod auth;
mod connection;
mod console;
mod error;
mod hit_tally;
mod hot_entries;
mod job_waits;
mod keys;
mod known_keys;
mod limits;
mod multipart;
mod openapi;
mod resource;
mod routes;
mod security;
mod server;
mod sessions;
mod shares;
mod state;
mod submit;
mod token_leases;
mod webhooks;

pub use answered_writer::AnsweredWriter;
pub use auth::{AuthenticatedKey, Caller};
pub use error::{ApiError, ErrorEnvelope};
pub use hit_tally::{HitTally, write_hits};
pub use hot_entries::{HotEntries, forget_purged};
pub use job_waits::{JobWaits, watch as watch_jobs};
pub use keys::{IssuedKey, KeyRequest, KeyView, issue_key, log_key_event, resolve_account};
pub use resource::{JobResource, JobSummary, SourceView};
pub use routes::{Guard, RouteEntry, document, route_table};
pub use security::{DestinationPolicy, InboundLimits, Security};
pub use sessions::{SessionPolicy, sweep_sessions};
pub use state::{AppState, UrlCacheAdmission};
pub use token_leases::{TokenLeases, forget_on_change as forget_leases_on_change};
pub use webhooks::{WebhookPolicy, WebhookTransport, send_webhooks};

use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// What a process without the API (a worker) reports on its own port: `/readyz` checks the
/// database and broker it uses, as the API's does.
#[derive(Clone)]
pub struct ProcessHealth {
    pub store: imgmeta_store::Store,
    pub publisher: std::sync::Arc<imgmeta_queue::Publisher>,
    pub fetch_allows_private: bool,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` (a worker's own port, or the
/// API's second one when `IMGMETA_METRICS_ADDR` is set) until `shutdown` is cancelled;
/// returns the bound address. Here so that only this crate knows HTTP serving.
pub async fn serve_metrics(
    addr: SocketAddr,
    health: ProcessHealth,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<SocketAddr> {
    imgmeta_telemetry::install();
    let app = Router::new()
        .route(
            "/metrics",
            axum::routing::get(|| async { imgmeta_telemetry::render() }),
        )
        .route(
            "/healthz",
            axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route(
            "/readyz",
            axum::routing::get(move || {
                let health = health.clone();
                async move {
                    routes::health::readiness(
                        &health.store,
                        &health.publisher,
                        health.fetch_allows_private,
                    )
                    .await
                }
            }),
        );
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    });
    tracing::info!(addr = %bound, "metrics and health listening");
    Ok(bound)
}

/// A bound, ready-to-serve API.
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: InboundLimits,
}

impl Application {
    /// Binds `addr` (port 0 picks a free port, as tests do) and assembles the routes.
    pub async fn build(addr: SocketAddr, state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        if !state.security.auth_enabled {
            tracing::warn!(
                kind = "security",
                event = "auth_disabled",
                "IMGMETA_AUTH=disabled: the API accepts requests without an API key"
            );
        }
        Ok(Self {
            listener,
            limits: state.security.inbound,
            router: routes::router(state),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets requests in flight finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), "api listening");
        server::serve(self.listener, self.router, self.limits, shutdown).await
    }
}
