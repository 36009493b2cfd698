//! `POST /v1/jobs` (a JSON body naming a URL, or the image itself: see `upload`),
//! `GET /v1/jobs` (the account's jobs), `GET /v1/jobs/{id}` and
//! `DELETE /v1/jobs/{id}` (cancel, or `?purge=true` to erase the result). Every lookup is
//! within the caller's account: another account's id is answered exactly as a missing one.

use crate::auth::Caller;
use crate::resource::JobSummary;
use crate::submit::{Accepted, submit as submit_job};
use crate::{ApiError, AppState, JobResource};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use imgmeta_domain::{
    COCO_CLASSES, DreamOptions, ErrorCode, ImageUrl, JobId, JobSpec, JobStatus, MinScore, Scope,
    Source, Task, TaskSet, parse_cache_mode,
};
use imgmeta_store::{
    ArtifactLookup, ArtifactStore, Cancelled, Idempotency, JobFilter, JobLookup, PurgeOutcome,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A job for an image at a URL. Unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SubmitRequest {
    /// The image's absolute http(s) URL.
    #[schema(value_type = String)]
    url: Option<String>,
    /// The analyses to run; all of `metadata` and `objects` when absent.
    #[schema(value_type = Option<Vec<imgmeta_domain::Task>>)]
    tasks: Option<Vec<String>>,
    /// The lowest detection score reported, 0 to 1 (default 0.25).
    min_score: Option<f64>,
    /// DeepDream's parameters, only with the `dream` task.
    #[schema(value_type = Option<imgmeta_domain::RawDream>)]
    dream: Option<serde_json::Value>,
    /// `use` (default) or `bypass`: analyse afresh rather than answer from the caches.
    cache: Option<String>,
    /// Where the job's end is reported (the account needs a signing secret first).
    webhook_url: Option<String>,
}

/// An image upload as a `multipart/form-data` form.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Read by `upload::from_multipart`; this type only describes the form.
pub(super) struct UploadForm {
    /// The image's bytes (its format is read from them).
    #[schema(content_media_type = "application/octet-stream", value_type = String)]
    file: Vec<u8>,
    /// The JSON body's fields but `url`, as a JSON object.
    #[schema(value_type = Option<super::upload::Options>)]
    options: Option<String>,
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
        let tasks = match self.tasks {
            Some(tasks) => TaskSet::parse(&tasks)?,
            None => TaskSet::all(),
        };
        Ok(JobSpec {
            source: Source::Url(ImageUrl::parse(&url)?),
            dream: dream_options(&tasks, self.dream.as_ref())?,
            bypass_cache: parse_cache_mode(self.cache.as_deref())?,
            webhook_url: None,
            tasks,
            min_score: match self.min_score {
                Some(score) => MinScore::parse(score)?,
                None => MinScore::DEFAULT,
            },
        })
    }
}

/// A job's `"dream"` options, which only a job with the `dream` task may give.
pub(super) fn dream_options(
    tasks: &TaskSet,
    raw: Option<&serde_json::Value>,
) -> Result<Option<DreamOptions>, ApiError> {
    match raw {
        None => Ok(None),
        Some(_) if !tasks.contains(Task::Dream) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidDream,
            "\"dream\" options need the dream task in \"tasks\"",
        )),
        Some(raw) => Ok(Some(DreamOptions::parse(raw)?)),
    }
}

/// `Cache-Control: no-cache` (or `no-store`) on a submission: analyse afresh.
fn asks_no_cache(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store")
        })
}

/// Submits a job: an image URL as JSON, or the image itself (`image/*` with the options in the
/// query, or a `multipart/form-data` form). Scope `jobs:write`.
///
/// A job the URL cache answers is created finished (`201`); otherwise it is queued (`202`) and
/// `GET /v1/jobs/{id}` tells when it ends. With `Idempotency-Key`, a retry answers the first
/// job (`Idempotent-Replayed: true`).
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "submit_job",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key and request answers the same job."),
        ("Cache-Control" = Option<String>, Header, description = "`no-cache` or `no-store`: analyse afresh (as `\"cache\": \"bypass\"`)."),
        ("tasks" = Option<String>, Query, description = "An `image/*` upload only: comma-separated tasks (or repeated)."),
        ("min_score" = Option<f64>, Query, description = "An `image/*` upload only: the lowest detection score reported, 0 to 1."),
        ("webhook_url" = Option<String>, Query, description = "An `image/*` upload only: where the job's end is reported."),
    ),
    request_body(
        description = "The job: JSON naming a URL, the image's bytes, or a form with the image.",
        content(
            (SubmitRequest = "application/json"),
            ("image/*"),
            (UploadForm = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "Answered at once from the URL cache: the job has ended.", body = JobResource,
            headers(("Location" = String, description = "The job's URL."))),
        (status = 202, description = "Accepted and queued (or a replay of an earlier submission).", body = JobResource,
            headers(
                ("Location" = String, description = "The job's URL."),
                ("Idempotent-Replayed" = String, description = "`true` when this answers an earlier submission with the same `Idempotency-Key`."),
            )),
        (status = 400, description = "`invalid_json`, `invalid_url`, `invalid_task`, `invalid_min_score`, `invalid_dream`, `invalid_cache_mode`, `invalid_webhook_url`, `invalid_idempotency_key`, `invalid_query`, `empty_upload`, `missing_file_part`, `unknown_part`, `invalid_multipart`.", body = crate::error::ErrorEnvelope),
        (status = 403, description = "`blocked_destination` or `blocked_domain`: the fetch policy refuses the URL (or the webhook's); `insufficient_scope`.", body = crate::error::ErrorEnvelope),
        (status = 409, description = "`webhook_secret_missing`: a `webhook_url` before the account has a signing secret.", body = crate::error::ErrorEnvelope),
        (status = 413, description = "`payload_too_large`: the body (or the image) is over its limit.", body = crate::error::ErrorEnvelope),
        (status = 415, description = "`unsupported_media_type`.", body = crate::error::ErrorEnvelope),
        (status = 422, description = "`idempotency_key_reused`: the key was used with a different request.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn submit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Scope::JobsWrite)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            super::payload_too_large(super::MAX_BODY_BYTES)
        } else {
            ApiError::new(
                rejection.status(),
                ErrorCode::InvalidJson,
                rejection.body_text(),
            )
        }
    })?;
    let content_type = match headers.get(header::CONTENT_TYPE) {
        Some(value) => Some(value.to_str().map_err(|_| unsupported_media_type())?),
        None => None,
    };
    let (spec, input, webhook_url) = match super::media_type(&headers).as_deref() {
        None | Some("application/json") => {
            let mut request: SubmitRequest = super::json_object(&body)?;
            let webhook_url = request.webhook_url.take();
            (request.into_spec(), None, webhook_url)
        }
        Some(t) if t.starts_with("image/") => {
            match super::upload::from_image_body(body, query.as_deref()) {
                Ok(uploaded) => (
                    Ok(uploaded.spec),
                    Some(uploaded.input),
                    uploaded.webhook_url,
                ),
                Err(e) => (Err(e), None, None),
            }
        }
        Some("multipart/form-data") => {
            match super::upload::from_multipart(
                body,
                content_type.unwrap_or_default(),
                query.as_deref(),
                state.security.inbound.max_upload_bytes,
            ) {
                Ok(uploaded) => (
                    Ok(uploaded.spec),
                    Some(uploaded.input),
                    uploaded.webhook_url,
                ),
                Err(e) => (Err(e), None, None),
            }
        }
        Some(_) => return Err(unsupported_media_type()),
    };
    let mut spec = spec.inspect_err(|e| {
        tracing::info!(kind = "security", event = "validation_failed", code = %e.code, "submission rejected");
    })?;
    spec.bypass_cache |= asks_no_cache(&headers);
    if let Some(raw) = webhook_url {
        spec.webhook_url = Some(super::webhooks::checked_webhook_url(&state, &caller, &raw).await?);
    }
    let idempotency = idempotency(&headers, &spec)?;
    let (job, replayed) = match submit_job(&state, &caller, spec, input, idempotency).await? {
        Accepted::Created(job) => (JobResource::from(job), false),
        Accepted::Replayed(job) => (JobResource::from(job), true),
    };
    // A replay answers with the original job, perhaps finished by now: its result is shown
    // only to a key that may read results.
    let job = if caller.scopes.contains(Scope::JobsRead) {
        job
    } else {
        JobResource {
            result: None,
            ..job
        }
    };
    // A job the URL cache answered is created already finished: 201, not 202.
    let status = match !replayed && job.status.is_terminal() {
        true => StatusCode::CREATED,
        false => StatusCode::ACCEPTED,
    };
    let mut response = (status, [(header::LOCATION, job.location())], Json(job)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        "send the job as application/json, or the image itself as image/* or multipart/form-data",
    )
}

/// `Idempotency-Key`, when sent: 1 to 255 visible ASCII characters, else
/// `400 invalid_idempotency_key`. Jobs and batches read it alike.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()));
    match key {
        Some(key) => Ok(Some(key.to_owned())),
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// A job's `Idempotency-Key` with the digest it is checked against. The stored digest covers
/// the validated request, so the same job asked for in a different JSON spelling still
/// matches; for an upload it covers the image's sha256, so the same key with another image is
/// refused.
pub(super) fn idempotency(
    headers: &HeaderMap,
    spec: &JobSpec,
) -> Result<Option<Idempotency>, ApiError> {
    let Some(key) = idempotency_key(headers)? else {
        return Ok(None);
    };
    let canonical = serde_json::to_vec(spec).expect("a job spec serialises");
    Ok(Some(Idempotency {
        key,
        request_digest: hex::encode(Sha256::digest(&canonical)),
    }))
}

/// Cancels a job that has not ended, or with `purge=true` erases its result and keeps a
/// tombstone (cancelling it first if it is live). Scope `jobs:write`.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "cancel_job",
    params(
        ("id" = imgmeta_domain::JobId, Path, description = "The job's id."),
        ("purge" = Option<bool>, Query, description = "`true`: erase the result (and any artifacts and uploaded image)."),
    ),
    responses(
        (status = 200, description = "The job, cancelled or purged.", body = JobResource),
        (status = 400, description = "`invalid_job_id`, `invalid_query`.", body = crate::error::ErrorEnvelope),
        (status = 404, description = "`job_not_found`: no such job in the caller's account.", body = crate::error::ErrorEnvelope),
        (status = 409, description = "`job_already_finished`: it ended; `purge=true` erases its result.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<JobResource>, ApiError> {
    caller.require(Scope::JobsWrite)?;
    let purge = purge_requested(query.as_deref())?;
    let id = JobId::parse(&raw_id)?;
    if purge {
        return match state.store.purge(caller.account, id).await? {
            PurgeOutcome::Purged(job) => {
                metrics::counter!(imgmeta_telemetry::JOBS_PURGED, "reason" => "request")
                    .increment(1);
                tracing::info!(
                    kind = "security",
                    event = "results_purged",
                    reason = "request",
                    key.prefix = %caller.key_prefix(),
                    account.id = %caller.account,
                    job.id = %id,
                    jobs = 1,
                    "job result purged on request"
                );
                Ok(Json(job.into()))
            }
            PurgeOutcome::NotFound { foreign } => Err(not_found(&caller, id, foreign)),
        };
    }
    match state.store.cancel(caller.account, id).await? {
        Cancelled::Cancelled(job) => {
            metrics::counter!(imgmeta_telemetry::JOBS_CANCELLED).increment(1);
            tracing::info!(kind = "analytics", event = "job_cancelled", job.id = %id, "job cancelled");
            Ok(Json(job.into()))
        }
        Cancelled::AlreadyFinished(job) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::JobAlreadyFinished,
            format!(
                "job {id} already ended as {}; DELETE with ?purge=true erases its result",
                job.status.as_str()
            ),
        )),
        Cancelled::NotFound { foreign } => Err(not_found(&caller, id, foreign)),
    }
}

/// `purge=true|false` is the only query parameter `DELETE` takes.
fn purge_requested(query: Option<&str>) -> Result<bool, ApiError> {
    let mut purge = false;
    for (name, value) in form_pairs(query) {
        match (name.as_str(), value.as_str()) {
            ("purge", "true" | "1") => purge = true,
            ("purge", "false" | "0") => purge = false,
            _ => {
                return Err(invalid_query(
                    "DELETE takes only purge=true or purge=false".to_owned(),
                ));
            }
        }
    }
    Ok(purge)
}

/// A job of the caller's account, with its result once it ended. Scope `jobs:read`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "get_job",
    params(("id" = imgmeta_domain::JobId, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job.", body = JobResource),
        (status = 400, description = "`invalid_job_id`.", body = crate::error::ErrorEnvelope),
        (status = 404, description = "`job_not_found`: no such job in the caller's account.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw_id): Path<String>,
) -> Result<Json<JobResource>, ApiError> {
    caller.require(Scope::JobsRead)?;
    let id = JobId::parse(&raw_id)?;
    match state.store.get_job(caller.account, id).await? {
        JobLookup::Found(job) => Ok(Json(job.into())),
        JobLookup::NotFound { foreign } => Err(not_found(&caller, id, foreign)),
    }
}

/// An image the job made, to its account only. Scope `jobs:read`.
///
/// The names are listed in `result.artifacts` (`annotated.jpg`, `dream.jpg`, ...). The bytes
/// never change (a name is written once per successful run), so the answer is cacheable for a
/// year by the client alone, with the sha256 as its `ETag`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/artifacts/{name}",
    tag = "jobs",
    operation_id = "get_artifact",
    params(
        ("id" = imgmeta_domain::JobId, Path, description = "The job's id."),
        ("name" = String, Path, description = "The artifact's name, e.g. `annotated.jpg`."),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` already held: `304` if it matches."),
    ),
    responses(
        (status = 200, description = "The image; private and immutable (`Cache-Control: private, max-age=31536000, immutable`).",
            content(("image/jpeg"), ("image/png")),
            headers(
                ("ETag" = String, description = "The image's sha256, quoted."),
                ("Cache-Control" = String, description = "`private, max-age=31536000, immutable`."),
            )),
        (status = 304, description = "Unchanged: the `ETag` sent matches.", headers(("ETag" = String))),
        (status = 400, description = "`invalid_job_id`.", body = crate::error::ErrorEnvelope),
        (status = 404, description = "`job_not_found`, or `artifact_not_found`: the job made no such image (or it was purged).", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn artifact(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((raw_id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    caller.require(Scope::JobsRead)?;
    let id = JobId::parse(&raw_id)?;
    let store: &dyn ArtifactStore = &state.store;
    match store.artifact(caller.account, id, &name).await? {
        ArtifactLookup::Found(artifact) => {
            let etag = format!("\"{}\"", artifact.sha256);
            let cache = "private, max-age=31536000, immutable";
            let matches = headers
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == etag || tag == "*");
            if matches {
                return Ok((
                    StatusCode::NOT_MODIFIED,
                    [
                        (header::ETAG, etag),
                        (header::CACHE_CONTROL, cache.to_owned()),
                    ],
                )
                    .into_response());
            }
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, artifact.mime),
                    (header::ETAG, etag),
                    (header::CACHE_CONTROL, cache.to_owned()),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                ],
                artifact.bytes,
            )
                .into_response())
        }
        ArtifactLookup::NoSuchArtifact => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ArtifactNotFound,
            format!(
                "job {id} has no artifact named {:?}",
                imgmeta_auth::clean(&name)
            ),
        )),
        ArtifactLookup::NoSuchJob { foreign } => Err(not_found(&caller, id, foreign)),
    }
}

/// The one answer for a job the caller may not see, whether it exists elsewhere or nowhere.
pub(crate) fn not_found(caller: &Caller, id: JobId, foreign: bool) -> ApiError {
    if foreign {
        caller.cross_account_miss("job", &id);
    }
    ApiError::not_found(id)
}

/// Most entries one page of `GET /v1/jobs` or `GET /v1/batches` holds.
const MAX_PAGE: u32 = 100;

/// A list's `limit` parameter: 1 to [`MAX_PAGE`].
pub(super) fn page_limit(value: &str) -> Result<u32, ApiError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| invalid_query(format!("limit must be 1 to {MAX_PAGE}")))
}

/// A page of the account's jobs, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct JobList {
    jobs: Vec<JobSummary>,
    /// The `cursor` of the next page; `null` on the last one.
    next_cursor: Option<JobId>,
    /// The same, under its older name (`before`).
    #[schema(deprecated)]
    next_before: Option<JobId>,
}

/// The account's jobs, newest first, without their results. Scope `jobs:read`.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "list_jobs",
    params(
        ("status" = Option<JobStatus>, Query, description = "Only jobs in this status."),
        ("batch" = Option<imgmeta_domain::BatchId>, Query, description = "Only the items of this batch."),
        ("label" = Option<String>, Query, description = "Only jobs with a detection of this COCO class, e.g. `dog`."),
        ("created_after" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Only jobs created after this RFC 3339 instant."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Jobs per page (default 20)."),
        ("cursor" = Option<JobId>, Query, description = "A `next_cursor` of the previous page."),
        ("before" = Option<JobId>, Query, deprecated, description = "`cursor`'s older name."),
    ),
    responses(
        (status = 200, description = "A page of jobs.", body = JobList),
        (status = 400, description = "`invalid_query`, `invalid_cursor`, `invalid_batch_id`.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Json<JobList>, ApiError> {
    caller.require(Scope::JobsRead)?;
    let mut filter = JobFilter::default();
    let mut limit = 20;
    for (name, value) in form_pairs(query.as_deref()) {
        match name.as_str() {
            "status" => filter.status = Some(JobStatus::parse(&value).ok_or_else(|| {
                invalid_query(format!(
                    "unknown status {value:?}; one of queued, running, succeeded, failed, cancelled"
                ))
            })?),
            "label" => {
                if !COCO_CLASSES.contains(&value.as_str()) {
                    return Err(invalid_query(format!(
                        "unknown label {:?}; one of the detector's 80 COCO class names, e.g. dog",
                        imgmeta_auth::clean(&value)
                    )));
                }
                filter.label = Some(value);
            }
            "created_after" => {
                filter.created_after = Some(
                    chrono::DateTime::parse_from_rfc3339(&value)
                        .map_err(|_| {
                            invalid_query(
                            "created_after must be an RFC 3339 instant, e.g. 2026-12-01T00:00:00Z"
                                .to_owned(),
                        )
                        })?
                        .with_timezone(&chrono::Utc),
                )
            }
            "before" | "cursor" => {
                filter.before = Some(JobId::parse(&value).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidCursor,
                        format!("{name} must be a next_cursor this list handed out"),
                    )
                })?)
            }
            "batch" => filter.batch = Some(imgmeta_domain::BatchId::parse(&value)?),
            "limit" => limit = page_limit(&value)?,
            other => {
                return Err(invalid_query(format!(
                    "unknown parameter {:?}; known: status, batch, label, created_after, cursor, limit",
                    imgmeta_auth::clean(other)
                )));
            }
        }
    }
    let page = state
        .store
        .list_jobs(caller.account, &filter, limit)
        .await?;
    Ok(Json(JobList {
        jobs: page.jobs.into_iter().map(JobSummary::from).collect(),
        next_cursor: page.next_before,
        next_before: page.next_before,
    }))
}

pub(super) fn form_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) fn invalid_query(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, message)
}
