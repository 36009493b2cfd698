//! The contract, `GET /openapi.json`, and its reference page, `GET /docs` with its script and
//! style under `/docs/…`: all embedded in the binary (no CDN), nothing inline, so the page
//! renders under the Content-Security-Policy every answer carries. None needs a key.

use crate::ApiError;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imgmeta_domain::ErrorCode;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::sync::LazyLock;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};

/// The page's files besides itself: name under `/docs/`, media type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "docs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/docs/docs.js"),
    ),
    (
        "docs.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/docs/docs.css"),
    ),
];

const PAGE: &[u8] = include_bytes!("../../assets/docs/index.html");

/// The document, serialised once: it depends on nothing but the code.
static DOCUMENT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    super::document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
        .into_bytes()
});

/// The name of one of the page's files (the path parameter of `GET /docs/{file}`), listed
/// from the embedded files themselves.
pub(super) struct AssetName;

impl utoipa::PartialSchema for AssetName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ASSETS.iter().map(|(name, _, _)| *name)))
            .into()
    }
}

impl utoipa::ToSchema for AssetName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DocsAsset")
    }
}

/// Answers `bytes` as `content_type`, revalidated by the client every time (`no-cache`) against
/// an `ETag` of their digest, so a new release is never hidden behind a stale copy.
fn cached(headers: &HeaderMap, content_type: &'static str, bytes: &'static [u8]) -> Response {
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(bytes))[..32]);
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim().trim_start_matches("W/") == etag);
    let head = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, head).into_response();
    }
    let mut response = (head, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The OpenAPI 3.1 document of this API.
///
/// Built from the handlers' own types and annotations by the route table the router is built
/// from, so every route it serves is here.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "reference",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json",
            body = Object,
            headers(("ETag" = String, description = "The document's digest; send it as `If-None-Match`."))),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
    )
)]
pub(super) async fn openapi_json(headers: HeaderMap) -> Response {
    cached(&headers, "application/json", DOCUMENT.as_slice())
}

/// The API's reference page: renders `/openapi.json` in the browser.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "reference",
    operation_id = "docs_page",
    responses(
        (status = 200, description = "The reference page.", content_type = "text/html"),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
    )
)]
pub(super) async fn page(headers: HeaderMap) -> Response {
    cached(&headers, "text/html; charset=utf-8", PAGE)
}

/// A file of the reference page (its script or its style).
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "reference",
    operation_id = "docs_asset",
    params(("file" = inline(AssetName), Path, description = "The file's name.")),
    responses(
        (status = 200, description = "The file.", content(("text/javascript"), ("text/css"))),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
        (status = 404, description = "`route_not_found`: no such file.", body = crate::error::ErrorEnvelope),
    )
)]
pub(super) async fn asset(
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::RouteNotFound,
                "no such file of the reference page",
            )
        })?;
    Ok(cached(&headers, content_type, bytes))
}
