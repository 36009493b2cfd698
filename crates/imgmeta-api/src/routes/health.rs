//! Liveness (`/healthz`) and readiness (`/readyz`: can we reach PostgreSQL and RabbitMQ?).

use crate::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use imgmeta_queue::Publisher;
use imgmeta_store::Store;
use serde_json::{Value, json};

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    readiness(&state.store, &state.publisher, state.fetch_allows_private).await
}

/// Whether this process reaches PostgreSQL (with the schema it needs) and RabbitMQ: `200`
/// with `"status": "ready"`, else `503` with each failing check's error, which names the fix
/// ("run `imgmeta migrate`", a TLS failure, a refused connection).
pub(crate) async fn readiness(
    store: &Store,
    publisher: &Publisher,
    fetch_allows_private: bool,
) -> (StatusCode, Json<Value>) {
    let (database, broker) = tokio::join!(store.ping(), publisher.ping());
    let check = |r: Result<(), String>| match r {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e }),
    };
    let ready = database.is_ok() && broker.is_ok();
    let mut warnings = Vec::new();
    if fetch_allows_private {
        warnings.push(
            "IMGMETA_FETCH_ALLOW_PRIVATE is on: workers may fetch loopback and private addresses (development only)",
        );
    }
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": {
            "database": check(database.map_err(|e| e.to_string())),
            "broker": check(broker.map_err(|e| e.to_string())),
        },
        "warnings": warnings,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
