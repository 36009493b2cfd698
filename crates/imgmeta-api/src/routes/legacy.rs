//! `POST /img?<url-encoded image URL>`: the old Flask service's interface, kept for its clients.
//!
//! It submits a job like `/v1/jobs` and then waits, up to the configured time, for the job to
//! end: `200` with the finished job, or `202` with the job still in progress.

use crate::auth::Caller;
use crate::submit::{Accepted, submit as submit_job};
use crate::{ApiError, AppState, JobResource};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use imgmeta_domain::{ErrorCode, ImageUrl, JobSpec, MinScore, Scope, Source, TaskSet};
use imgmeta_store::JobLookup;

/// The old service's interface: submits a job for the URL and waits for it to end.
///
/// The whole query string is the percent-encoded image URL (`POST /img?https%3A%2F%2F…`);
/// `url=<…>` is accepted too. Answers `200` with the ended job, or `202` with the job still in
/// progress once `IMGMETA_LEGACY_WAIT_MS` has passed. Scopes `jobs:write` and `jobs:read`.
#[utoipa::path(
    post,
    path = "/img",
    tag = "legacy",
    operation_id = "legacy_img",
    params(
        ("url" = String, Query, description = "The image's URL, percent-encoded; or the whole query string is the URL."),
        ("Idempotency-Key" = Option<String>, Header, description = "As on `POST /v1/jobs`."),
    ),
    responses(
        (status = 200, description = "The job has ended.", body = JobResource,
            headers(("Location" = String, description = "The job's URL."))),
        (status = 202, description = "Still in progress: poll its `Location`.", body = JobResource,
            headers(("Location" = String, description = "The job's URL."))),
        (status = 400, description = "`invalid_url`, `invalid_idempotency_key`.", body = crate::error::ErrorEnvelope),
        (status = 403, description = "`blocked_destination`, `blocked_domain`, `insufficient_scope`.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn img(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    // It submits and answers with the result: both scopes.
    caller.require(Scope::JobsWrite)?;
    caller.require(Scope::JobsRead)?;
    let raw = legacy_url(uri.query().unwrap_or(""))?;
    let spec = JobSpec {
        source: Source::Url(ImageUrl::parse(&raw)?),
        tasks: TaskSet::all(),
        min_score: MinScore::DEFAULT,
        dream: None,
        bypass_cache: false,
        webhook_url: None,
    };
    // An Idempotency-Key makes a retried legacy call find its first job, as on /v1/jobs.
    let idempotency = super::jobs::idempotency(&headers, &spec)?;
    let (mut job, replayed) = match submit_job(&state, &caller, spec, None, idempotency).await? {
        Accepted::Created(job) => (job, false),
        Accepted::Replayed(job) => (job, true),
    };
    if !job.status.is_terminal() {
        // Handed the job by the process's watcher once it ends; read as it is at the deadline
        // otherwise.
        job = match state.job_waits.wait(job.id, state.legacy_wait).await {
            Some(ended) => ended,
            None => match state.store.get_job(caller.account, job.id).await? {
                JobLookup::Found(job) => job,
                // Job rows are never deleted (a purge keeps a tombstone), so this is a race
                // with an operator removing rows by hand.
                JobLookup::NotFound { .. } => return Err(ApiError::not_found(job.id)),
            },
        };
    }
    let status = if job.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let job = JobResource::from(job);
    let mut response = (status, [(header::LOCATION, job.location())], Json(job)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The old service took the whole query string as the URL, percent-encoded; `url=<...>` is
/// accepted too.
fn legacy_url(query: &str) -> Result<String, ApiError> {
    let query = query.strip_prefix("url=").unwrap_or(query);
    if query.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidUrl,
            "put the url-encoded image URL in the query string: POST /img?<url>",
        ));
    }
    let decoded = percent_encoding::percent_decode_str(query)
        .decode_utf8()
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidUrl,
                "url is not valid UTF-8",
            )
        })?;
    Ok(decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::legacy_url;

    #[test]
    fn encoded_and_url_prefixed_queries_give_the_same_url() {
        let a = legacy_url("https%3A%2F%2Fexample.com%2Fa.jpg%3Fx%3D1").unwrap();
        let b = legacy_url("url=https%3A%2F%2Fexample.com%2Fa.jpg%3Fx%3D1").unwrap();
        assert_eq!(a, "https://example.com/a.jpg?x=1");
        assert_eq!(a, b);
    }

    #[test]
    fn an_empty_query_is_an_invalid_url() {
        assert!(legacy_url("").is_err());
    }
}
