//! `POST /v1/webhooks/secret` (create or rotate the account's signing secret, shown once),
//! `GET /v1/webhooks/deliveries` (the account's deliveries and how each attempt went), and the
//! check every `webhook_url` passes at submission.

use super::jobs::{form_pairs, invalid_query, page_limit};
use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use imgmeta_domain::{BatchId, DeliveryStatus, ErrorCode, JobId, Scope, WebhookEvent, WebhookUrl};
use imgmeta_store::{DeliveryFilter, DeliveryRecord};
use serde::Serialize;

/// A submission's `webhook_url`: a valid http(s) URL (`400 invalid_webhook_url`) that the
/// fetch policy would reach (`403 blocked_domain` / `blocked_destination`, as an image URL),
/// from a key that may read results (a webhook carries them: `403 insufficient_scope`), of an
/// account that has a signing secret (`409 webhook_secret_missing`).
pub(crate) async fn checked_webhook_url(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<WebhookUrl, ApiError> {
    let url = WebhookUrl::parse(raw)?;
    caller.require(Scope::JobsRead)?;
    state.security.check_destination(url.as_image_url())?;
    if !state.store.has_webhook_secret(caller.account).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::WebhookSecretMissing,
            "the account has no webhook signing secret yet: create one with POST /v1/webhooks/secret, then submit again",
        ));
    }
    Ok(url)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SecretCreated {
    /// `whsec_…`: shown this once; receivers verify signatures with it.
    secret: String,
    /// Until when the secret this one replaced still signs too (`null` for a first secret).
    previous_valid_until: Option<DateTime<Utc>>,
}

/// Creates or rotates the account's webhook signing secret. Scope `keys:manage`.
///
/// The secret is shown this once. The one it replaces keeps signing beside it for
/// `IMGMETA_WEBHOOK_SECRET_OVERLAP_SECS`, so receivers can switch without a gap. Deliveries are
/// signed as Standard Webhooks.
#[utoipa::path(
    post,
    path = "/v1/webhooks/secret",
    tag = "webhooks",
    operation_id = "rotate_webhook_secret",
    responses(
        (status = 201, description = "The new secret (`Cache-Control: no-store`).", body = SecretCreated),
    )
)]
pub(super) async fn rotate_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Scope::KeysManage)?;
    let bytes = imgmeta_auth::generate_webhook_secret();
    let previous_valid_until = state
        .store
        .rotate_webhook_secret(caller.account, &bytes, state.webhook_secret_overlap)
        .await?;
    tracing::info!(
        kind = "security",
        event = "webhook_secret_rotated",
        key.prefix = %caller.key_prefix(),
        account.id = %caller.account,
        rotation = previous_valid_until.is_some(),
        "webhook signing secret created"
    );
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(SecretCreated {
            secret: imgmeta_auth::format_webhook_secret(&bytes),
            previous_valid_until,
        }),
    ))
}

/// A webhook delivery and how its attempts went.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Delivery)]
pub(super) struct DeliveryView {
    /// The `webhook-id` every attempt carried.
    id: String,
    #[serde(rename = "type")]
    event: WebhookEvent,
    job_id: Option<JobId>,
    batch_id: Option<BatchId>,
    url: String,
    status: DeliveryStatus,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's status at the last attempt (`null`: no answer).
    last_status: Option<u16>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            id: d.webhook_id(),
            event: d.event,
            job_id: d.job,
            batch_id: d.batch,
            url: d.url,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            finished_at: d.finished_at,
        }
    }
}

/// A page of the account's deliveries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct DeliveryList {
    deliveries: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// The account's webhook deliveries, newest first. Scope `jobs:read`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/deliveries",
    tag = "webhooks",
    operation_id = "list_deliveries",
    params(
        ("status" = Option<DeliveryStatus>, Query, description = "Only deliveries in this status."),
        ("type" = Option<WebhookEvent>, Query, description = "Only deliveries of this event."),
        ("job" = Option<JobId>, Query, description = "Only the deliveries about this job."),
        ("batch" = Option<BatchId>, Query, description = "Only the deliveries about this batch."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Deliveries per page (default 20)."),
        ("cursor" = Option<String>, Query, description = "A `next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of deliveries.", body = DeliveryList),
        (status = 400, description = "`invalid_query`, `invalid_cursor`, `invalid_job_id`, `invalid_batch_id`.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Json<DeliveryList>, ApiError> {
    caller.require(Scope::JobsRead)?;
    let mut filter = DeliveryFilter::default();
    let mut limit = 20;
    for (name, value) in form_pairs(query.as_deref()) {
        match name.as_str() {
            "status" => {
                filter.status = Some(DeliveryStatus::parse(&value).ok_or_else(|| {
                    invalid_query(
                        "status must be one of pending, delivered, failed, gone".to_owned(),
                    )
                })?)
            }
            "type" => {
                filter.event = Some(WebhookEvent::parse(&value).ok_or_else(|| {
                    invalid_query(
                        "type must be one of job.succeeded, job.failed, batch.completed".to_owned(),
                    )
                })?)
            }
            "job" => filter.job = Some(JobId::parse(&value)?),
            "batch" => filter.batch = Some(BatchId::parse(&value)?),
            "limit" => limit = page_limit(&value)?,
            "cursor" => {
                filter.before = Some(value.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(
                    || {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            ErrorCode::InvalidCursor,
                            "cursor must be a next_cursor this list handed out",
                        )
                    },
                )?)
            }
            other => {
                return Err(invalid_query(format!(
                    "unknown parameter {:?}; known: status, type, job, batch, limit, cursor",
                    imgmeta_auth::clean(other)
                )));
            }
        }
    }
    let rows = state
        .store
        .list_deliveries(caller.account, &filter, i64::from(limit))
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|d| d.seq.to_string()))
        .flatten();
    Ok(Json(DeliveryList {
        deliveries: rows.into_iter().map(DeliveryView::from).collect(),
        next_cursor,
    }))
}
