//! The route table (from which both the router and the OpenAPI document are built), body
//! limits and the JSON fallbacks for unknown routes and methods.

mod account;
pub(crate) mod batches;
mod docs;
pub(crate) mod health;
mod jobs;
mod legacy;
mod metrics;
mod session;
mod upload;
mod webhooks;

use crate::{ApiError, AppState};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use imgmeta_domain::ErrorCode;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::{UtoipaMethodRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// Largest request body accepted anywhere but an image upload (`IMGMETA_MAX_UPLOAD_BYTES`).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// `413 payload_too_large` for a body over `limit` bytes.
pub(crate) fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("request body exceeds {limit} bytes"),
    )
}

/// `413 payload_too_large` for an uploaded image over `max` bytes.
pub(crate) fn upload_too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("the uploaded image exceeds {max} bytes (IMGMETA_MAX_UPLOAD_BYTES)"),
    )
}

/// The request's media type (`Content-Type` without parameters), lowercased; `None` without
/// one (or one that is not text).
pub(crate) fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Whether a media type names newline-delimited JSON (`application/x-ndjson`, or its other
/// spellings `application/jsonl` and `application/jsonlines`).
pub(crate) fn is_ndjson(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/jsonlines"
    )
}

/// Reads a JSON object body: a JSON array (which serde would read field by field into a
/// struct) or any other value is refused with `400 invalid_json`.
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let invalid =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, message);
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("the body must be a JSON object".to_owned()));
    }
    serde_json::from_slice(body).map_err(|e| invalid(format!("invalid JSON body: {e}")))
}

/// Who may call a route, decided from the request head before a byte of its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// An API key (`auth::require_key`: key, rate limit, quota check), then the body reader.
    Key,
    /// The operators' admin token (`keys::require_admin`), then the body reader.
    Admin,
    /// Sign-up and login: refused from another origin, sign-up only while open
    /// (`sessions::guard_entry`), then the body reader.
    Entry,
    /// A live session cookie, with its CSRF token for a state change
    /// (`sessions::require_session`), then the body reader.
    Session,
    /// Nothing: the probes, the metrics, the contract and its reference page.
    Open,
}

/// Every route the API serves, with its guard: the router ([`router`]) and the OpenAPI
/// document ([`document`]) are both built from this one table, and `routes!` takes only
/// handlers annotated with `#[utoipa::path]` (their method and path come from there), so a
/// route cannot be served without being documented.
fn table() -> Vec<(Guard, UtoipaMethodRouter<AppState>)> {
    vec![
        // The body reader has already held a submission to its limit, decided from the head
        // (an image upload may be larger than the default).
        (
            Guard::Key,
            routes!(jobs::submit).layer(DefaultBodyLimit::disable()),
        ),
        (Guard::Key, routes!(jobs::list)),
        (Guard::Key, routes!(jobs::get, jobs::cancel)),
        (Guard::Key, routes!(jobs::artifact)),
        (
            Guard::Key,
            routes!(batches::create).layer(DefaultBodyLimit::disable()),
        ),
        (Guard::Key, routes!(batches::list)),
        (Guard::Key, routes!(batches::get, batches::cancel)),
        (Guard::Key, routes!(batches::results)),
        (Guard::Key, routes!(webhooks::rotate_secret)),
        (Guard::Key, routes!(webhooks::deliveries)),
        (Guard::Key, routes!(account::get)),
        (Guard::Key, routes!(account::list_keys, account::create_key)),
        (Guard::Key, routes!(account::revoke_key)),
        (Guard::Key, routes!(legacy::img)),
        (Guard::Admin, routes!(crate::keys::create)),
        (Guard::Entry, routes!(session::signup)),
        (Guard::Entry, routes!(session::login)),
        (Guard::Session, routes!(session::get, session::logout)),
        (Guard::Session, routes!(session::change_password)),
        (Guard::Open, routes!(health::healthz)),
        (Guard::Open, routes!(health::readyz)),
        (Guard::Open, routes!(metrics::metrics)),
        (Guard::Open, routes!(docs::openapi_json)),
        (Guard::Open, routes!(docs::page)),
        (Guard::Open, routes!(docs::asset)),
        // The web console: a page and its assets (the API calls it makes are guarded).
        (Guard::Open, routes!(crate::console::index)),
        (Guard::Open, routes!(crate::console::asset)),
    ]
}

/// A route of the table: its method (a `GET` route answers `HEAD` too), its path template and
/// its guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub method: &'static str,
    pub path: String,
    pub guard: Guard,
}

/// The routes the API serves, as the table lists them (for tests that hold the served document
/// and the live router to it).
pub fn route_table() -> Vec<RouteEntry> {
    let mut entries = Vec::new();
    for (guard, (_, paths, _)) in table() {
        for (path, item) in paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("OPTIONS", item.options.is_some()),
                ("HEAD", item.head.is_some()),
                ("PATCH", item.patch.is_some()),
                ("TRACE", item.trace.is_some()),
            ];
            for (method, present) in methods {
                if present {
                    entries.push(RouteEntry {
                        method,
                        path: path.clone(),
                        guard,
                    });
                }
            }
        }
    }
    entries
}

/// The OpenAPI 3.1 document of every route in the table.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = crate::openapi::frame();
    for (guard, (schemas, mut paths, _)) in table() {
        crate::openapi::apply_guard(&mut paths, guard);
        document.paths.merge(paths);
        let components = document.components.get_or_insert_with(Default::default);
        for (name, schema) in schemas {
            components.schemas.entry(name).or_insert(schema);
        }
    }
    document
}

pub(crate) fn router(state: AppState) -> Router {
    let mut with_key = Router::new();
    let mut with_admin = Router::new();
    let mut entry = Router::new();
    let mut with_session = Router::new();
    let mut open = Router::new();
    for (guard, (_, paths, method_router)) in table() {
        let group = match guard {
            Guard::Key => &mut with_key,
            Guard::Admin => &mut with_admin,
            Guard::Entry => &mut entry,
            Guard::Session => &mut with_session,
            Guard::Open => &mut open,
        };
        for path in paths.paths.keys() {
            *group = std::mem::take(group).route(path, method_router.clone());
        }
    }
    // Authentication runs on the request head; only then is the body read (route layers run
    // outside in: the last added first).
    let with_key = with_key
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::read_body,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_key,
        ));
    // The operators' key sign-up checks the admin token from the head.
    let with_admin = with_admin
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::read_body,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::keys::require_admin,
        ));
    // Sign-up and login are guarded from the head (origin, sign-up switch); the session routes
    // by the session cookie (and the CSRF token for what changes state).
    let entry = entry
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::read_body,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::sessions::guard_entry,
        ));
    let with_session = with_session
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::read_body,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::sessions::require_session,
        ));
    with_key
        .merge(with_admin)
        .merge(entry)
        .merge(with_session)
        .merge(open)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::guard,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state)
}

/// The policy every answer carries (HTML pages and JSON alike): scripts, styles, images and
/// connections from this origin only, no inline script or style, never framed, forms posted
/// only here.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// The span of a request: method and path only. The query string stays out of every log, since
/// signed image URLs (and the legacy `/img?<url>`) carry secrets there.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        "request",
        http.method = %request.method(),
        http.path = %imgmeta_auth::clean(request.uri().path()),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::RouteNotFound,
        "no such route",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

#[cfg(test)]
mod tests {
    use super::{Guard, route_table};

    /// A route added to the router beside the table would be served undocumented, so the
    /// router takes its routes from the table alone: one `route` call (in the loop over the
    /// table), and nothing merged or nested in but the table's own groups.
    #[test]
    fn the_router_takes_its_routes_from_the_table_alone() {
        let source = include_str!("mod.rs");
        let code = source.split("#[cfg(test)]").next().unwrap();
        assert_eq!(code.matches(".route(").count(), 1);
        // The guard groups, merged into the first (the document's paths merge too).
        let merges = code.matches(".merge(").count() - code.matches("paths.merge(").count();
        assert_eq!(merges, 4);
        for call in [
            ".route_service(",
            ".nest(",
            ".nest_service(",
            ".fallback_service(",
        ] {
            assert!(!code.contains(call), "{call}");
        }
    }

    #[test]
    fn the_table_lists_every_route_once_with_its_guard() {
        let table = route_table();
        let mut seen = std::collections::BTreeSet::new();
        for route in &table {
            assert!(
                seen.insert((route.method, route.path.as_str())),
                "{route:?} twice"
            );
        }
        let guard = |method: &str, path: &str| {
            table
                .iter()
                .find(|r| r.method == method && r.path == path)
                .map(|r| r.guard)
        };
        assert_eq!(guard("POST", "/v1/jobs"), Some(Guard::Key));
        assert_eq!(guard("POST", "/v1/keys"), Some(Guard::Admin));
        assert_eq!(guard("GET", "/openapi.json"), Some(Guard::Open));
        assert_eq!(guard("GET", "/docs"), Some(Guard::Open));
        assert_eq!(guard("POST", "/v1/session"), Some(Guard::Entry));
        assert_eq!(guard("DELETE", "/v1/session"), Some(Guard::Session));
    }
}
