//! Submissions that carry the image itself: an `image/*` body with the options in the query
//! string (`?tasks=metadata,objects&min_score=0.5&webhook_url=…`), or a `multipart/form-data` body with a
//! `file` part and an optional `options` part holding the JSON body's fields but `url`.

use super::jobs::{form_pairs, invalid_query};
use crate::ApiError;
use crate::multipart::{self, Part};
use axum::body::Bytes;
use axum::http::StatusCode;
use imgmeta_domain::{ErrorCode, JobSpec, MinScore, Source, TaskSet, Upload};
use serde::Deserialize;

/// An upload submission: the job's spec and its image.
pub(super) struct Uploaded {
    pub spec: JobSpec,
    pub input: Upload,
    /// The `webhook_url` asked for, checked by the caller (it needs the store).
    pub webhook_url: Option<String>,
}

/// The options an upload may carry: the JSON body's fields, without `url`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UploadOptions)]
pub(super) struct Options {
    #[schema(value_type = Option<Vec<imgmeta_domain::Task>>)]
    tasks: Option<Vec<String>>,
    min_score: Option<f64>,
    /// Only in a multipart `options` part; a raw `image/*` upload dreams with the defaults.
    #[schema(value_type = Option<imgmeta_domain::RawDream>)]
    dream: Option<serde_json::Value>,
    /// `"bypass"` in a multipart `options` part (a raw upload says `Cache-Control: no-cache`).
    cache: Option<String>,
    webhook_url: Option<String>,
}

impl Options {
    fn with(self, input: Upload) -> Result<Uploaded, ApiError> {
        let tasks = match self.tasks {
            Some(tasks) => TaskSet::parse(&tasks)?,
            None => TaskSet::all(),
        };
        let spec = JobSpec {
            source: Source::Upload(input.digest().clone()),
            dream: super::jobs::dream_options(&tasks, self.dream.as_ref())?,
            bypass_cache: imgmeta_domain::parse_cache_mode(self.cache.as_deref())?,
            webhook_url: None,
            tasks,
            min_score: match self.min_score {
                Some(score) => MinScore::parse(score)?,
                None => MinScore::DEFAULT,
            },
        };
        Ok(Uploaded {
            spec,
            input,
            webhook_url: self.webhook_url,
        })
    }

    /// `tasks` (comma-separated, or repeated) and `min_score` from a query string.
    fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        let mut options = Self::default();
        for (name, value) in form_pairs(query) {
            match name.as_str() {
                "tasks" => options
                    .tasks
                    .get_or_insert_with(Vec::new)
                    .extend(value.split(',').map(|t| t.trim().to_owned())),
                "min_score" if options.min_score.is_none() => {
                    options.min_score = Some(value.trim().parse().map_err(|_| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            ErrorCode::InvalidMinScore,
                            format!(
                                "min_score must be a number between 0 and 1, got {:?}",
                                imgmeta_auth::clean(&value)
                            ),
                        )
                    })?)
                }
                "min_score" => return Err(invalid_query("min_score is given twice".to_owned())),
                "webhook_url" if options.webhook_url.is_none() => options.webhook_url = Some(value),
                "webhook_url" => {
                    return Err(invalid_query("webhook_url is given twice".to_owned()));
                }
                other => {
                    return Err(invalid_query(format!(
                        "unknown parameter {:?}; an image body takes tasks, min_score and webhook_url",
                        imgmeta_auth::clean(other)
                    )));
                }
            }
        }
        Ok(options)
    }
}

/// `Content-Type: image/*`: the body is the image (its format is read from its bytes, never
/// from the header), the options are query parameters.
pub(super) fn from_image_body(body: Bytes, query: Option<&str>) -> Result<Uploaded, ApiError> {
    let options = Options::from_query(query)?;
    options.with(Upload::new(body)?)
}

/// `Content-Type: multipart/form-data`: a `file` part (the image) and at most one `options`
/// part (JSON); any other part, or either of them twice, is refused with `unknown_part`.
pub(super) fn from_multipart(
    body: Bytes,
    content_type: &str,
    query: Option<&str>,
    max_upload_bytes: usize,
) -> Result<Uploaded, ApiError> {
    if query.is_some_and(|q| !q.is_empty()) {
        return Err(invalid_query(
            "a multipart submission takes its options in its options part, not the query"
                .to_owned(),
        ));
    }
    let invalid = |e: multipart::Malformed| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidMultipart,
            format!("malformed multipart/form-data body: {e}"),
        )
    };
    let boundary = multipart::boundary(content_type).map_err(invalid)?;
    let mut file: Option<Part> = None;
    let mut options: Option<Part> = None;
    for part in multipart::parse(&body, &boundary).map_err(invalid)? {
        let slot = match part.name.as_str() {
            "file" => &mut file,
            "options" => &mut options,
            other => {
                return Err(unknown_part(format!(
                    "unknown multipart part {:?}; a submission has a file part and an optional options part",
                    imgmeta_auth::clean(other)
                )));
            }
        };
        if slot.is_some() {
            return Err(unknown_part(format!(
                "the {} part appears more than once",
                part.name
            )));
        }
        *slot = Some(part);
    }
    let file = file.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingFilePart,
            "a multipart submission needs a file part holding the image",
        )
    })?;
    if file.content.len() > max_upload_bytes {
        return Err(super::upload_too_large(max_upload_bytes));
    }
    let options: Options = match options {
        Some(part) => super::json_object(&part.content).map_err(|e| ApiError {
            message: format!("the options part: {}", e.message),
            ..e
        })?,
        None => Options::default(),
    };
    options.with(Upload::new(file.content)?)
}

fn unknown_part(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::UnknownPart, message)
}
