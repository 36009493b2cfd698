//! Batches: `POST /v1/batches` (a JSON body of at most 10,000 items, or NDJSON of at most
//! 1,000,000 lines streamed into PostgreSQL as it arrives), `GET /v1/batches`,
//! `GET /v1/batches/{id}` (progress from counters), `GET /v1/batches/{id}/results` (NDJSON in
//! line order, streamed page by page) and `DELETE /v1/batches/{id}` (cancel what has not
//! started). Every lookup is within the caller's account.

use super::jobs::{form_pairs, idempotency_key, invalid_query, page_limit};
use crate::auth::Caller;
use crate::limits::{BodyPace, MAX_JSON_BATCH_BYTES, is_length_limit, is_malformed};
use crate::{ApiError, AppState, JobResource};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use imgmeta_domain::{
    BatchDefaults, BatchId, BatchItem, BatchStatus, ErrorCode, JobStatus, MAX_JSON_ITEMS,
    MAX_LINE_BYTES, MAX_NDJSON_LINES, MinScore, Rejected, Scope, TaskSet, ValidationError,
    WebhookUrl,
};
use imgmeta_store::{
    BatchBegun, BatchCancelled, BatchCounts, BatchFinished, BatchLine, BatchRecord, BatchUpload,
    LineFilter, NewBatch,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Lines of results read from PostgreSQL per query while streaming.
const RESULTS_PAGE: u32 = 500;

/// A batch as clients see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BatchResource {
    id: BatchId,
    status: BatchStatus,
    #[schema(value_type = Vec<imgmeta_domain::Task>)]
    tasks: Vec<&'static str>,
    min_score: f32,
    counts: Counts,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    /// Items ended per second since the batch was created.
    rate_per_s: Option<f64>,
    /// Seconds until every item has ended at that rate; `null` before the first ended or once
    /// none is left.
    eta_s: Option<f64>,
    /// Where `batch.completed` is reported, only for batches that gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    webhook_url: Option<String>,
    links: Links,
}

/// How many of a batch's lines stand where (always equal to a count of its items).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Counts {
    queued: i64,
    running: i64,
    succeeded: i64,
    failed: i64,
    cancelled: i64,
    /// Lines that never became a job (their errors are in the results).
    rejected: i64,
    total: i64,
}

impl From<BatchCounts> for Counts {
    fn from(c: BatchCounts) -> Self {
        Self {
            queued: c.queued,
            running: c.running,
            succeeded: c.succeeded,
            failed: c.failed,
            cancelled: c.cancelled,
            rejected: c.rejected,
            total: c.total,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BatchLinks)]
struct Links {
    #[serde(rename = "self")]
    this: String,
    results: String,
}

impl From<BatchRecord> for BatchResource {
    fn from(b: BatchRecord) -> Self {
        let ended = b.counts.ended();
        let left = b.counts.queued + b.counts.running;
        let rate = (ended > 0 && b.age_s > 0.0).then(|| ended as f64 / b.age_s);
        Self {
            links: Links {
                this: format!("/v1/batches/{}", b.id),
                results: format!("/v1/batches/{}/results", b.id),
            },
            id: b.id,
            webhook_url: b.webhook_url.map(|w| w.to_string()),
            status: b.status,
            tasks: b.tasks.as_strs(),
            min_score: b.min_score.value(),
            counts: b.counts.into(),
            created_at: b.created_at,
            completed_at: b.completed_at,
            rate_per_s: rate.map(|r| (r * 1000.0).round() / 1000.0),
            eta_s: rate
                .filter(|_| left > 0 && b.status != BatchStatus::Cancelled)
                .map(|r| (left as f64 / r).ceil()),
        }
    }
}

/// A JSON batch: at most 10,000 items, with options every item may override.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct JsonBatch {
    /// The items; a bad one is rejected alone (its error is in the results), the rest run.
    #[schema(value_type = Vec<imgmeta_domain::RawItem>)]
    items: Vec<serde_json::Value>,
    #[schema(value_type = Option<Vec<imgmeta_domain::Task>>)]
    tasks: Option<Vec<String>>,
    min_score: Option<f64>,
    /// Where `batch.completed` is reported.
    webhook_url: Option<String>,
}

fn not_found(caller: &Caller, id: BatchId, foreign: bool) -> ApiError {
    if foreign {
        caller.cross_account_miss("batch", &id);
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::BatchNotFound,
        format!("no batch with id {id}"),
    )
}

fn too_many_items(message: String) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::TooManyItems,
        message,
    )
}

/// The batch options an NDJSON upload gives in its query: `tasks` (comma-separated),
/// `min_score` and `webhook_url` (checked by the caller).
fn query_defaults(query: Option<&str>) -> Result<(BatchDefaults, Option<String>), ApiError> {
    let mut defaults = BatchDefaults::default();
    let mut webhook_url = None;
    for (name, value) in form_pairs(query) {
        match name.as_str() {
            "tasks" => {
                let tasks: Vec<&str> = value.split(',').map(str::trim).collect();
                defaults.tasks = TaskSet::parse(&tasks)?;
            }
            "min_score" => {
                let score = value.trim().parse::<f64>().map_err(|_| {
                    ValidationError::new(ErrorCode::InvalidMinScore, "min_score must be a number")
                })?;
                defaults.min_score = MinScore::parse(score)?;
            }
            "webhook_url" => webhook_url = Some(value),
            other => {
                return Err(invalid_query(format!(
                    "unknown parameter {:?}; a batch's query may give tasks, min_score and webhook_url",
                    imgmeta_auth::clean(other)
                )));
            }
        }
    }
    Ok((defaults, webhook_url))
}

/// Lines of one upload as they become items or rejections, with the tallies for its log line.
struct Intake<'a> {
    state: &'a AppState,
    upload: BatchUpload,
    defaults: BatchDefaults,
    /// Items refused by the destination policy, by code.
    refused: BTreeMap<&'static str, u64>,
}

impl Intake<'_> {
    async fn line(&mut self, line: i32, raw: &[u8]) -> Result<(), ApiError> {
        let parsed = BatchItem::from_json(raw, &self.defaults);
        self.take(line, parsed).await
    }

    async fn take(
        &mut self,
        line: i32,
        parsed: Result<BatchItem, Rejected>,
    ) -> Result<(), ApiError> {
        let verdict =
            parsed.and_then(
                |item| match self.state.security.destination_refusal(&item.url) {
                    None => Ok(item),
                    Some(refusal) => {
                        *self.refused.entry(refusal.code.as_str()).or_default() += 1;
                        Err(Rejected {
                            error: ValidationError::new(refusal.code, refusal.message),
                            external_id: item.external_id,
                        })
                    }
                },
            );
        match verdict {
            Ok(item) => self.upload.item(line, item).await?,
            Err(rejected) => self.upload.reject(line, rejected).await?,
        }
        Ok(())
    }
}

/// The digest an `Idempotency-Key` is checked against: the batch options and the body as sent.
fn digest_start(defaults: &BatchDefaults, webhook_url: Option<&WebhookUrl>) -> Sha256 {
    let mut hasher = Sha256::new();
    hasher.update(defaults.tasks.as_strs().join(",").as_bytes());
    hasher.update([0]);
    hasher.update(defaults.min_score.value().to_le_bytes());
    if let Some(url) = webhook_url {
        hasher.update([1]);
        hasher.update(url.as_str().as_bytes());
    }
    hasher
}

/// What reading a streamed body failed on.
fn body_error(error: &axum::Error) -> ApiError {
    if is_length_limit(error) {
        return too_many_items(format!(
            "an NDJSON batch may hold at most {} bytes",
            crate::limits::MAX_NDJSON_BATCH_BYTES
        ));
    }
    if is_malformed(error) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "malformed request body (its chunked encoding is broken)",
        );
    }
    ApiError::new(
        StatusCode::from_u16(499).expect("a valid status"),
        ErrorCode::ClientClosed,
        "the client closed the connection mid-body",
    )
}

fn too_slow(pace: &BodyPace) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        ErrorCode::RequestTimeout,
        format!(
            "the batch arrived too slowly: after {} s of grace it must average {} bytes/s",
            pace.grace.as_secs(),
            pace.min_bytes_per_s
        ),
    )
}

/// Reads an NDJSON body line by line into `intake` as it arrives, holding the client to `pace`
/// and at most [`MAX_NDJSON_LINES`] lines; the body's digest.
async fn read_ndjson(
    body: Body,
    pace: BodyPace,
    mut hasher: Sha256,
    mut intake: Option<&mut Intake<'_>>,
) -> Result<String, ApiError> {
    let started = tokio::time::Instant::now();
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    let mut partial: Vec<u8> = Vec::new();
    // In a line longer than MAX_LINE_BYTES: its bytes are dropped until its end.
    let mut overlong = false;
    let mut line: i32 = 0;
    loop {
        let left = pace.allowed(received).saturating_sub(started.elapsed());
        let chunk: Bytes = match tokio::time::timeout(left, stream.next()).await {
            Err(_) => {
                tracing::warn!(
                    kind = "security",
                    event = "body_read_timeout",
                    received,
                    "batch body too slow"
                );
                return Err(too_slow(&pace));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(body_error(&e)),
            Ok(Some(Ok(chunk))) => chunk,
        };
        received += chunk.len() as u64;
        hasher.update(&chunk);
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let end = memchr::memchr(b'\n', rest);
            let (piece, ended) = match end {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = match end {
                Some(i) => &rest[i + 1..],
                None => &[],
            };
            if !overlong {
                partial.extend_from_slice(piece);
                if partial.len() > MAX_LINE_BYTES {
                    overlong = true;
                    partial.clear();
                }
            }
            if !ended {
                continue;
            }
            line = next_line(line)?;
            if let Some(intake) = intake.as_deref_mut() {
                finish_line(intake, line, &partial, overlong).await?;
            }
            partial.clear();
            overlong = false;
        }
    }
    if !partial.is_empty() || overlong {
        line = next_line(line)?;
        if let Some(intake) = intake {
            finish_line(intake, line, &partial, overlong).await?;
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

fn next_line(line: i32) -> Result<i32, ApiError> {
    if line as usize >= MAX_NDJSON_LINES {
        return Err(too_many_items(format!(
            "an NDJSON batch may hold at most {MAX_NDJSON_LINES} lines"
        )));
    }
    Ok(line + 1)
}

/// One complete line: blank lines are skipped (their numbers still count).
async fn finish_line(
    intake: &mut Intake<'_>,
    line: i32,
    raw: &[u8],
    overlong: bool,
) -> Result<(), ApiError> {
    if overlong {
        let rejected = Rejected {
            error: ValidationError::new(
                ErrorCode::LineTooLong,
                format!("a line may hold at most {MAX_LINE_BYTES} bytes"),
            ),
            external_id: None,
        };
        return intake.take(line, Err(rejected)).await;
    }
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    intake.line(line, raw).await
}

/// Submits a batch of image URLs. Scope `jobs:write`.
///
/// As `application/json` (`{"items": [...]}`, at most 10,000 items) or
/// `application/x-ndjson` (one item per line, at most 1,000,000 lines, streamed into the store
/// as it arrives, the options in the query). Each good line becomes a queued job; each bad one
/// is rejected alone. The whole batch is charged to the daily quotas at once.
#[utoipa::path(
    post,
    path = "/v1/batches",
    tag = "batches",
    operation_id = "create_batch",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key and body answers the same batch."),
        ("tasks" = Option<String>, Query, description = "NDJSON only: comma-separated default tasks."),
        ("min_score" = Option<f64>, Query, description = "NDJSON only: the default lowest detection score, 0 to 1."),
        ("webhook_url" = Option<String>, Query, description = "NDJSON only: where `batch.completed` is reported."),
    ),
    request_body(
        description = "The batch.",
        content(
            (JsonBatch = "application/json"),
            (imgmeta_domain::RawItem = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 202, description = "Accepted (or a replay of an earlier upload).", body = BatchResource,
            headers(
                ("Location" = String, description = "The batch's URL."),
                ("Idempotent-Replayed" = String, description = "`true` when this answers an earlier upload with the same `Idempotency-Key`."),
            )),
        (status = 400, description = "`invalid_json`, `invalid_task`, `invalid_min_score`, `invalid_webhook_url`, `invalid_idempotency_key`, `invalid_query`, `bad_request`.", body = crate::error::ErrorEnvelope),
        (status = 403, description = "`blocked_destination` or `blocked_domain` (the webhook's); `insufficient_scope`.", body = crate::error::ErrorEnvelope),
        (status = 408, description = "`request_timeout`: an NDJSON body arrived too slowly.", body = crate::error::ErrorEnvelope),
        (status = 409, description = "`webhook_secret_missing`.", body = crate::error::ErrorEnvelope),
        (status = 413, description = "`too_many_items` or `payload_too_large`.", body = crate::error::ErrorEnvelope),
        (status = 415, description = "`unsupported_media_type`.", body = crate::error::ErrorEnvelope),
        (status = 422, description = "`idempotency_key_reused`.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    pace: Option<Extension<BodyPace>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::JobsWrite)?;
    let idempotency_key = idempotency_key(&headers)?;
    let media_type = super::media_type(&headers);
    let streamed = match (media_type.as_deref(), pace) {
        (Some(t), Some(Extension(pace))) if super::is_ndjson(t) => Some(pace),
        (None | Some("application/json"), _) => None,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send a batch as application/json ({\"items\": [...]}) or application/x-ndjson (one item per line)",
            ));
        }
    };
    // A JSON batch is already in memory (its limit is 16 MiB); an NDJSON one is read below.
    let (defaults, json_items, body, raw_webhook) = match streamed {
        Some(_) => {
            let (defaults, raw_webhook) = query_defaults(query.as_deref())?;
            (defaults, None, Some(body), raw_webhook)
        }
        None => {
            if query.as_deref().is_some_and(|q| !q.is_empty()) {
                return Err(invalid_query(
                    "a JSON batch gives its options in the body, not the query".to_owned(),
                ));
            }
            let bytes = axum::body::to_bytes(body, MAX_JSON_BATCH_BYTES)
                .await
                .map_err(|_| super::payload_too_large(MAX_JSON_BATCH_BYTES))?;
            let batch: JsonBatch = super::json_object(&bytes)?;
            if batch.items.len() > MAX_JSON_ITEMS {
                return Err(too_many_items(format!(
                    "a JSON batch may hold at most {MAX_JSON_ITEMS} items; send larger ones as application/x-ndjson"
                )));
            }
            let defaults = BatchDefaults {
                tasks: match &batch.tasks {
                    Some(t) => TaskSet::parse(t)?,
                    None => TaskSet::all(),
                },
                min_score: match batch.min_score {
                    Some(s) => MinScore::parse(s)?,
                    None => MinScore::DEFAULT,
                },
            };
            // The body holds the webhook URL, so the body's bytes cover it.
            let mut hasher = digest_start(&defaults, None);
            hasher.update(&bytes);
            let digest = hex::encode(hasher.finalize());
            (
                defaults,
                Some((batch.items, digest)),
                None,
                batch.webhook_url,
            )
        }
    };
    let webhook_url = match raw_webhook {
        Some(raw) => Some(super::webhooks::checked_webhook_url(&state, &caller, &raw).await?),
        None => None,
    };
    // A streamed batch's digest covers its query's webhook URL.
    let ndjson_webhook = webhook_url.as_ref().filter(|_| streamed.is_some());
    let new = NewBatch {
        id: BatchId::new(),
        owner: caller.owner(),
        defaults: defaults.clone(),
        idempotency_key,
        webhook_url: webhook_url.clone(),
    };
    let upload = match state.store.begin_batch(&new).await? {
        BatchBegun::Started(upload) => upload,
        BatchBegun::Existing {
            batch,
            request_digest,
        } => {
            let digest = match (json_items, body, streamed) {
                (Some((_, digest)), _, _) => digest,
                (None, Some(body), Some(pace)) => {
                    read_ndjson(body, pace, digest_start(&defaults, ndjson_webhook), None).await?
                }
                _ => unreachable!("a batch is either JSON or NDJSON"),
            };
            if request_digest.as_deref() != Some(digest.as_str()) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was already used with a different batch",
                ));
            }
            let mut response = accepted(BatchResource::from(batch));
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
    };
    let mut intake = Intake {
        state: &state,
        upload,
        defaults: defaults.clone(),
        refused: BTreeMap::new(),
    };
    let digest = match (json_items, body, streamed) {
        (Some((items, digest)), _, _) => {
            for (i, value) in items.into_iter().enumerate() {
                let line = i32::try_from(i + 1).expect("at most 10,000 items");
                let parsed = BatchItem::from_value(value, &defaults);
                intake.take(line, parsed).await?;
            }
            digest
        }
        (None, Some(body), Some(pace)) => {
            read_ndjson(
                body,
                pace,
                digest_start(&defaults, ndjson_webhook),
                Some(&mut intake),
            )
            .await?
        }
        _ => unreachable!("a batch is either JSON or NDJSON"),
    };
    let Intake {
        upload, refused, ..
    } = intake;
    let (id, accepted_items, rejected) = (upload.id(), upload.accepted(), upload.rejected());
    for (code, lines) in &refused {
        tracing::warn!(
            kind = "security",
            event = %code,
            batch.id = %id,
            lines,
            "batch lines refused by the destination policy"
        );
    }
    match upload.finish(Some(&digest)).await? {
        BatchFinished::Created(batch) => {
            metrics::counter!(imgmeta_telemetry::JOBS_SUBMITTED)
                .increment(u64::try_from(accepted_items).unwrap_or(0));
            tracing::info!(
                kind = "analytics",
                event = "batch_submitted",
                batch.id = %id,
                items = accepted_items,
                rejected,
                "batch accepted"
            );
            Ok(accepted(BatchResource::from(batch)))
        }
        BatchFinished::QuotaExceeded { items } => {
            tracing::warn!(
                kind = "security",
                event = "quota_exceeded",
                key.prefix = %caller.key_prefix(),
                account.id = %caller.account,
                items,
                "batch refused: its items do not fit in the daily quota"
            );
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::QuotaExceeded,
                format!(
                    "the batch's {items} items do not fit in the daily quota (of the key or its account); nothing was recorded"
                ),
            )
            .with_retry_after(crate::submit::secs_to_utc_midnight()))
        }
    }
}

fn accepted(batch: BatchResource) -> Response {
    let location = batch.links.this.clone();
    let mut response = (StatusCode::ACCEPTED, Json(batch)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A batch of the caller's account, with its progress. Scope `jobs:read`.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}",
    tag = "batches",
    operation_id = "get_batch",
    params(("id" = BatchId, Path, description = "The batch's id.")),
    responses(
        (status = 200, description = "The batch.", body = BatchResource),
        (status = 400, description = "`invalid_batch_id`.", body = crate::error::ErrorEnvelope),
        (status = 404, description = "`batch_not_found`: no such batch in the caller's account.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw_id): Path<String>,
) -> Result<Json<BatchResource>, ApiError> {
    caller.require(Scope::JobsRead)?;
    let id = BatchId::parse(&raw_id)?;
    match state.store.get_batch(caller.account, id).await? {
        Ok(batch) => Ok(Json(batch.into())),
        Err(foreign) => Err(not_found(&caller, id, foreign)),
    }
}

/// A page of the account's batches, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct BatchList {
    batches: Vec<BatchResource>,
    /// The `before` cursor of the next page; `null` on the last one.
    next_before: Option<BatchId>,
}

/// The account's batches, newest first. Scope `jobs:read`.
#[utoipa::path(
    get,
    path = "/v1/batches",
    tag = "batches",
    operation_id = "list_batches",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Batches per page (default 20)."),
        ("before" = Option<BatchId>, Query, description = "A `next_before` of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of batches.", body = BatchList),
        (status = 400, description = "`invalid_query`.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Json<BatchList>, ApiError> {
    caller.require(Scope::JobsRead)?;
    let (mut before, mut limit) = (None, 20);
    for (name, value) in form_pairs(query.as_deref()) {
        match name.as_str() {
            "before" => {
                before = Some(
                    BatchId::parse(&value)
                        .map_err(|_| invalid_query("before must be a batch id".to_owned()))?,
                )
            }
            "limit" => limit = page_limit(&value)?,
            other => {
                return Err(invalid_query(format!(
                    "unknown parameter {:?}; known: before, limit",
                    imgmeta_auth::clean(other)
                )));
            }
        }
    }
    let (batches, next_before) = state
        .store
        .list_batches(caller.account, before, limit)
        .await?;
    Ok(Json(BatchList {
        batches: batches.into_iter().map(BatchResource::from).collect(),
        next_before,
    }))
}

/// Cancels every item of a batch that has not started; running ones finish. Scope
/// `jobs:write`.
#[utoipa::path(
    delete,
    path = "/v1/batches/{id}",
    tag = "batches",
    operation_id = "cancel_batch",
    params(("id" = BatchId, Path, description = "The batch's id.")),
    responses(
        (status = 200, description = "The batch, cancelled.", body = BatchResource),
        (status = 400, description = "`invalid_batch_id`.", body = crate::error::ErrorEnvelope),
        (status = 404, description = "`batch_not_found`.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw_id): Path<String>,
) -> Result<Json<BatchResource>, ApiError> {
    caller.require(Scope::JobsWrite)?;
    let id = BatchId::parse(&raw_id)?;
    match state.store.cancel_batch(caller.account, id).await? {
        BatchCancelled::Cancelled { batch, items } => {
            metrics::counter!(imgmeta_telemetry::JOBS_CANCELLED).increment(items);
            tracing::info!(
                kind = "analytics",
                event = "batch_cancelled",
                batch.id = %id,
                items,
                "batch cancelled"
            );
            Ok(Json(batch.into()))
        }
        BatchCancelled::NotFound { foreign } => Err(not_found(&caller, id, foreign)),
    }
}

/// One line of a batch's results: its job, or the error that rejected it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = BatchResultLine)]
enum ResultLine {
    Job {
        line: i32,
        external_id: Option<String>,
        job: Box<JobResource>,
    },
    Rejected {
        line: i32,
        external_id: Option<String>,
        error: imgmeta_domain::ErrorBody,
    },
}

/// A batch's results as NDJSON, one line per item in line order. Scope `jobs:read`.
///
/// Each line is `{"line", "external_id", "job"}`, or `{"line", "external_id", "error"}` for a
/// rejected line. Read from PostgreSQL a page at a time while it is sent, so memory stays
/// bounded whatever the batch's size; `after` resumes after a line already received.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}/results",
    tag = "batches",
    operation_id = "batch_results",
    params(
        ("id" = BatchId, Path, description = "The batch's id."),
        ("status" = Option<String>, Query, description = "Only lines whose job is in this status, or `rejected`."),
        ("after" = Option<u32>, Query, description = "Only lines after this line number."),
    ),
    responses(
        (status = 200, description = "The lines, as NDJSON: each line one `BatchResultLine`.",
            body = ResultLine, content_type = "application/x-ndjson"),
        (status = 400, description = "`invalid_batch_id`, `invalid_query`.", body = crate::error::ErrorEnvelope),
        (status = 404, description = "`batch_not_found`.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn results(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Scope::JobsRead)?;
    let id = BatchId::parse(&raw_id)?;
    let (mut filter, mut after) = (LineFilter::All, 0_i32);
    for (name, value) in form_pairs(query.as_deref()) {
        match name.as_str() {
            "status" => {
                filter = match value.as_str() {
                    "rejected" => LineFilter::Rejected,
                    other => LineFilter::Status(JobStatus::parse(other).ok_or_else(|| {
                        invalid_query(format!(
                            "unknown status {:?}; one of queued, running, succeeded, failed, cancelled, rejected",
                            imgmeta_auth::clean(other)
                        ))
                    })?),
                }
            }
            "after" => {
                after = value
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| invalid_query("after must be a line number".to_owned()))?
            }
            other => {
                return Err(invalid_query(format!(
                    "unknown parameter {:?}; known: status, after",
                    imgmeta_auth::clean(other)
                )));
            }
        }
    }
    if let Err(foreign) = state.store.get_batch(caller.account, id).await? {
        return Err(not_found(&caller, id, foreign));
    }
    let store = state.store.clone();
    let pages = futures::stream::unfold(Some(after), move |cursor| {
        let store = store.clone();
        async move {
            let after = cursor?;
            match store.batch_lines(id, after, filter, RESULTS_PAGE).await {
                Err(e) => {
                    tracing::warn!(kind = "error", error = %e, batch.id = %id, "batch results stream cut");
                    Some((Err(std::io::Error::other(e)), None))
                }
                Ok(lines) => {
                    let next = (lines.len() == RESULTS_PAGE as usize)
                        .then(|| lines.last().map(BatchLine::line))
                        .flatten();
                    if lines.is_empty() {
                        return None;
                    }
                    Some((Ok(ndjson(lines)), next))
                }
            }
        }
    });
    let mut response = Response::new(Body::from_stream(pages));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

fn ndjson(lines: Vec<BatchLine>) -> Bytes {
    let mut out = Vec::with_capacity(lines.len() * 512);
    for line in lines {
        let line = match line {
            BatchLine::Job {
                line,
                external_id,
                job,
            } => ResultLine::Job {
                line,
                external_id,
                job: Box::new(JobResource::from(*job)),
            },
            BatchLine::Rejected {
                line,
                external_id,
                error,
            } => ResultLine::Rejected {
                line,
                external_id,
                error,
            },
        };
        serde_json::to_writer(&mut out, &line).expect("a result line serialises");
        out.push(b'\n');
    }
    Bytes::from(out)
}
