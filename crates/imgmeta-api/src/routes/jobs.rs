//! `POST /v1/jobs` and `GET /v1/jobs/{id}`.

use crate::routes::MAX_BODY_BYTES;
use crate::submit::submit as submit_job;
use crate::{ApiError, AppState, JobResource};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use imgmeta_domain::{ErrorCode, ImageUrl, JobId, JobSpec, MinScore, TaskSet};
use serde::Deserialize;

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
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            )
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
    let job = JobResource::from(submit_job(&state, spec).await?);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, job.location())],
        Json(job),
    ))
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
