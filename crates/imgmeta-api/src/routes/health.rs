//! Liveness (`/healthz`) and readiness (`/readyz`: can we reach PostgreSQL and RabbitMQ?).

use crate::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use imgmeta_queue::Publisher;
use imgmeta_store::Store;
use serde::Serialize;

/// The liveness answer: the process serves.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// The readiness answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    checks: Checks,
    /// Settings an operator should know are on (development-only ones).
    warnings: Vec<&'static str>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReadinessChecks)]
struct Checks {
    database: Check,
    broker: Check,
}

/// One dependency's check: `ok`, and why not.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReadinessCheck)]
struct Check {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<String>,
}

impl From<Result<(), String>> for Check {
    fn from(result: Result<(), String>) -> Self {
        Self {
            ok: result.is_ok(),
            error: result.err(),
        }
    }
}

/// Whether the process serves at all (it never looks at its dependencies).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    operation_id = "healthz",
    responses((status = 200, description = "The process serves.", body = Health))
)]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Whether the process reaches PostgreSQL (with the schema it needs) and RabbitMQ.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "service",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready: each failing check's error names the fix.", body = Readiness),
    )
)]
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    readiness(&state.store, &state.publisher, state.fetch_allows_private).await
}

/// Whether this process reaches PostgreSQL (with the schema it needs) and RabbitMQ: `200`
/// with `"status": "ready"`, else `503` with each failing check's error, which names the fix
/// ("run `imgmeta migrate`", a TLS failure, a refused connection).
pub(crate) async fn readiness(
    store: &Store,
    publisher: &Publisher,
    fetch_allows_private: bool,
) -> (StatusCode, Json<Readiness>) {
    let (database, broker) = tokio::join!(store.ping(), publisher.ping());
    let ready = database.is_ok() && broker.is_ok();
    let mut warnings = Vec::new();
    if fetch_allows_private {
        warnings.push(
            "IMGMETA_FETCH_ALLOW_PRIVATE is on: workers may fetch loopback and private addresses (development only)",
        );
    }
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        checks: Checks {
            database: database.map_err(|e| e.to_string()).into(),
            broker: broker.map_err(|e| e.to_string()).into(),
        },
        warnings,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
