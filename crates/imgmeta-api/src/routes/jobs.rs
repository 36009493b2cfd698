//! `POST /v1/jobs` and `GET /v1/jobs/{id}`.

use crate::submit::{Accepted, submit as submit_job};
use crate::{ApiError, AppState, JobResource};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use imgmeta_domain::{ErrorCode, ImageUrl, JobId, JobSpec, MinScore, TaskSet};
use imgmeta_store::{Cancelled, Idempotency};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    url: Option<String>,
    tasks: Option<Vec<String>>,
    min_score: Option<f64>,
}

impl SubmitRequest {
    fn into_spec(self) -> Result<JobSpec, ApiError> {
        let url = self.url.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidUrl,
                "url is required",
            )
        })?;
        Ok(JobSpec {
            url: ImageUrl::parse(&url)?,
            tasks: match self.tasks {
                Some(tasks) => TaskSet::parse(&tasks)?,
                None => TaskSet::all(),
            },
            min_score: match self.min_score {
                Some(score) => MinScore::parse(score)?,
                None => MinScore::DEFAULT,
            },
        })
    }
}

pub(super) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            super::payload_too_large()
        } else {
            ApiError::new(
                rejection.status(),
                ErrorCode::InvalidJson,
                rejection.body_text(),
            )
        }
    })?;
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let is_json = content_type
            .to_str()
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the job as application/json",
            ));
        }
    }
    let request: SubmitRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("invalid JSON body: {e}"),
        )
    })?;
    let spec = request.into_spec().inspect_err(|e| {
        tracing::info!(kind = "security", event = "validation_failed", code = %e.code, "submission rejected");
    })?;
    let idempotency = idempotency(&headers, &spec)?;
    let (job, replayed) = match submit_job(&state, spec, idempotency).await? {
        Accepted::Created(job) => (JobResource::from(job), false),
        Accepted::Replayed(job) => (JobResource::from(job), true),
    };
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, job.location())],
        Json(job),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Reads `Idempotency-Key`: 1 to 255 visible ASCII characters. The stored digest covers the
/// validated request, so the same job asked for in a different JSON spelling still matches.
fn idempotency(headers: &HeaderMap, spec: &JobSpec) -> Result<Option<Idempotency>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
    };
    let key = raw.to_str().map_err(|_| invalid())?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    let canonical = serde_json::to_vec(spec).expect("a job spec serialises");
    Ok(Some(Idempotency {
        key: key.to_owned(),
        request_digest: hex::encode(Sha256::digest(&canonical)),
    }))
}

/// `DELETE /v1/jobs/{id}`: cancels a job that has not finished.
pub(super) async fn cancel(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<JobResource>, ApiError> {
    let id = JobId::parse(&raw_id)?;
    match state.store.cancel(id).await? {
        Cancelled::Cancelled(job) => {
            metrics::counter!(imgmeta_telemetry::JOBS_CANCELLED).increment(1);
            tracing::info!(kind = "analytics", event = "job_cancelled", job.id = %id, "job cancelled");
            Ok(Json(job.into()))
        }
        Cancelled::AlreadyFinished(job) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::JobAlreadyFinished,
            format!("job {id} already ended as {}", job.status.as_str()),
        )),
        Cancelled::NotFound => Err(ApiError::not_found(id)),
    }
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<JobResource>, ApiError> {
    let id = JobId::parse(&raw_id)?;
    let job = state
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok(Json(job.into()))
}
