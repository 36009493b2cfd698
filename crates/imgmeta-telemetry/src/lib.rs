//! Prometheus metrics: the one list of metric names (so dashboards and code agree), the
//! process-wide recorder, and the text served on `/metrics`; and the trace-context hooks that
//! carry a job's trace across the queue ([`context`]).
//!
//! Crates record through the `metrics` facade with the names below; only this crate knows the
//! exporter.

pub mod context;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Counter: HTTP requests, by `route`, `method` and `status`.
pub const HTTP_REQUESTS: &str = "imgmeta_http_requests_total";
/// Histogram (seconds): HTTP request latency, by `route` and `method`.
pub const HTTP_DURATION: &str = "imgmeta_http_request_duration_seconds";
/// Counter: jobs accepted.
pub const JOBS_SUBMITTED: &str = "imgmeta_jobs_submitted_total";
/// Counter: jobs that succeeded.
pub const JOBS_SUCCEEDED: &str = "imgmeta_jobs_succeeded_total";
/// Counter: jobs that failed, by error `code`.
pub const JOBS_FAILED: &str = "imgmeta_jobs_failed_total";
/// Counter: runs that ended in a scheduled retry, by error `code`.
pub const JOBS_RETRIED: &str = "imgmeta_jobs_retried_total";
/// Counter: jobs cancelled by their clients.
pub const JOBS_CANCELLED: &str = "imgmeta_jobs_cancelled_total";
/// Gauge: requests this API process is serving now (saturation, for alerts and autoscaling).
pub const HTTP_IN_FLIGHT: &str = "imgmeta_http_requests_in_flight";
/// Gauge: open client connections of this API process.
pub const CONNECTIONS_OPEN: &str = "imgmeta_http_connections_open";
/// Counter: client connections closed by the server, by `reason` (`idle`, `shed`).
pub const CONNECTIONS_CLOSED: &str = "imgmeta_http_connections_closed_total";
/// Counter: client connections refused at accept, by `reason` (`cap`: all busy at the cap).
pub const CONNECTIONS_REFUSED: &str = "imgmeta_http_connections_refused_total";
/// Counter: requests refused because the in-flight cap or a holder's share of it was full,
/// by `share` (`global`, `key`, `address`, and `uploads` for the cap on uploads being read).
pub const IN_FLIGHT_REFUSED: &str = "imgmeta_http_in_flight_refused_total";
/// Counter: job results erased, by `reason` (`request`, `retention`).
pub const JOBS_PURGED: &str = "imgmeta_jobs_purged_total";
/// Counter: requests naming an object (`object`: job, key) that exists only in another account,
/// answered as if it did not exist.
pub const CROSS_ACCOUNT_MISSES: &str = "imgmeta_cross_account_misses_total";
/// Counter: requests refused because the key lacks a scope, by the missing `scope`.
pub const INSUFFICIENT_SCOPE: &str = "imgmeta_insufficient_scope_total";
/// Counter: requests answered with an error (refused submissions among them), by error `code`.
pub const REQUEST_ERRORS: &str = "imgmeta_request_errors_total";
/// Gauge: jobs running in this worker process.
pub const JOBS_IN_FLIGHT: &str = "imgmeta_jobs_in_flight";
/// Histogram (seconds): time per pipeline stage, by `stage` (fetch, decode, metadata, objects, store).
pub const STAGE_DURATION: &str = "imgmeta_stage_duration_seconds";
/// Counter: image bytes downloaded.
pub const BYTES_FETCHED: &str = "imgmeta_fetched_bytes_total";
/// Gauge: messages ready in the jobs queue, as last seen by this process.
pub const QUEUE_DEPTH: &str = "imgmeta_queue_depth";
/// Counter: cache lookups by `result`: the API's URL lookups (`hit`, `stale`, `negative`,
/// `miss`, `revalidate`, `bypass`), the workers' content lookups (`hit`, `miss`, `bypass`),
/// revalidations answered `304` (`revalidated`) and jobs completed by another's run
/// (`coalesced`).
pub const CACHE_LOOKUPS: &str = "imgmeta_cache_lookups_total";
/// Gauge: URL cache entries by `kind` (`positive`, `negative`), as last swept.
pub const CACHE_ENTRIES: &str = "imgmeta_cache_entries";
/// Gauge: bytes of JSON the URL cache holds, as last swept.
pub const CACHE_BYTES: &str = "imgmeta_cache_bytes";
/// Gauge: jobs waiting on another job's run of the same URL (single flight), as last swept.
pub const CACHE_WAITERS: &str = "imgmeta_cache_coalesced_waiters";
/// Gauge: messages waiting in the outbox, as last seen by this process.
pub const OUTBOX_BACKLOG: &str = "imgmeta_outbox_backlog";
/// Counter: webhook delivery attempts by `event` and `outcome` (`delivered`, `retry`, `gone`,
/// `failed`).
pub const WEBHOOK_ATTEMPTS: &str = "imgmeta_webhook_attempts_total";
/// Histogram (seconds): time from a webhook's event to its delivery (2xx), by `event`.
pub const WEBHOOK_DELAY: &str = "imgmeta_webhook_delivery_delay_seconds";
/// Gauge (seconds): how long loading the detector took.
pub const MODEL_LOAD: &str = "imgmeta_model_load_seconds";
/// Histogram: images per forward pass of the detector (at most `IMGMETA_INFER_BATCH`).
pub const INFER_BATCH: &str = "imgmeta_inference_batch_images";

/// Installs the process-wide recorder (once; later calls return the same handle).
pub fn install() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let seconds = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .expect("static buckets are valid")
            .set_buckets_for_metric(
                Matcher::Full(INFER_BATCH.into()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
            )
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (several apps in one test process); the
        // handle then renders only what this recorder saw, which is still well-formed.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// The Prometheus text exposition of everything recorded so far.
pub fn render() -> String {
    install().render()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route, method and status");
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency"
    );
    describe_counter!(JOBS_SUBMITTED, "jobs accepted");
    describe_counter!(
        CACHE_LOOKUPS,
        "cache lookups by result (hit, stale, negative, miss, revalidate, revalidated, coalesced, bypass)"
    );
    describe_gauge!(CACHE_ENTRIES, "URL cache entries by kind, as last swept");
    describe_gauge!(CACHE_BYTES, "bytes of JSON in the URL cache, as last swept");
    describe_gauge!(
        CACHE_WAITERS,
        "jobs waiting on another job's run of the same URL, as last swept"
    );
    describe_counter!(JOBS_PURGED, "job results erased, by reason");
    describe_counter!(
        WEBHOOK_ATTEMPTS,
        "webhook delivery attempts by event and outcome"
    );
    describe_histogram!(
        WEBHOOK_DELAY,
        metrics::Unit::Seconds,
        "time from a webhook's event to its delivery"
    );
    describe_gauge!(HTTP_IN_FLIGHT, "requests being served now");
    describe_gauge!(CONNECTIONS_OPEN, "open client connections");
    describe_counter!(
        CONNECTIONS_CLOSED,
        "client connections closed by the server, by reason"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "client connections refused at accept, by reason"
    );
    describe_counter!(
        IN_FLIGHT_REFUSED,
        "requests refused for a full in-flight cap or share, by share"
    );
    describe_counter!(
        CROSS_ACCOUNT_MISSES,
        "requests for another account's object, answered as not found"
    );
    describe_counter!(
        INSUFFICIENT_SCOPE,
        "requests refused for a missing key scope, by scope"
    );
    describe_counter!(JOBS_SUCCEEDED, "jobs that succeeded");
    describe_counter!(JOBS_FAILED, "jobs that failed, by error code");
    describe_counter!(
        JOBS_RETRIED,
        "runs that ended in a scheduled retry, by error code"
    );
    describe_counter!(JOBS_CANCELLED, "jobs cancelled by their clients");
    describe_counter!(
        REQUEST_ERRORS,
        "requests answered with an error, by error code"
    );
    describe_gauge!(JOBS_IN_FLIGHT, "jobs running in this worker");
    describe_histogram!(
        STAGE_DURATION,
        metrics::Unit::Seconds,
        "time per pipeline stage"
    );
    describe_counter!(
        BYTES_FETCHED,
        metrics::Unit::Bytes,
        "image bytes downloaded"
    );
    describe_gauge!(QUEUE_DEPTH, "messages ready in the jobs queue");
    describe_gauge!(OUTBOX_BACKLOG, "messages waiting in the outbox");
    describe_gauge!(MODEL_LOAD, metrics::Unit::Seconds, "detector load time");
    describe_histogram!(INFER_BATCH, "images per forward pass of the detector");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_metrics_appear_in_the_exposition() {
        install();
        metrics::counter!(JOBS_FAILED, "code" => "not_an_image").increment(2);
        metrics::histogram!(STAGE_DURATION, "stage" => "fetch").record(0.02);
        let text = render();
        assert!(
            text.contains("imgmeta_jobs_failed_total{code=\"not_an_image\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("imgmeta_stage_duration_seconds_bucket{stage=\"fetch\",le=\"0.025\"} 1"),
            "{text}"
        );
    }
}
