//! The OpenAPI 3.1 contract's frame: the document's info, tags and security schemes, and what
//! each route's guard adds to its operations (who may call it, and the refusals every guarded
//! route can answer). The operations themselves are the handlers' `#[utoipa::path]`
//! annotations, gathered by the route table in `routes/mod.rs`, from which the router is built
//! too: a route cannot be served without being documented.

use crate::error::ErrorEnvelope;
use crate::routes::Guard;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{HttpMethod, Operation, PathItem, Paths};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi};

/// The security schemes' names, as operations' requirements refer to them.
const API_KEY: &str = "api_key";
const SESSION: &str = "session";
const CSRF: &str = "csrf";
const ADMIN_TOKEN: &str = "admin_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "imgmeta",
        description = "Image metadata and object detection as a service: submit an image by URL \
            or upload, one at a time or in batches, and read each job's metadata, detections and \
            artifacts.\n\nEvery error answer is `{\"error\": {\"code\", \"message\"}}` \
            (`ErrorEnvelope`); `code` is one of the stable codes of `ErrorCode`, which are never \
            renamed. Routes that take an API key also take the console's session cookie; a \
            state-changing request made with a session must carry its `X-CSRF-Token`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    components(schemas(ErrorEnvelope)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "jobs", description = "One image per job: submit by URL or upload, poll, cancel, purge, artifacts."),
        (name = "batches", description = "Many URLs at once, as JSON or streamed NDJSON; results streamed as NDJSON."),
        (name = "webhooks", description = "The account's signing secret and its webhook deliveries."),
        (name = "account", description = "The caller's account: limits, usage and its API keys."),
        (name = "sessions", description = "Sign-up and the console's sessions: log in, log out, change the password."),
        (name = "operators", description = "Routes for the service's operators (admin token)."),
        (name = "legacy", description = "The old service's interface, kept for its clients."),
        (name = "service", description = "Probes and metrics, for orchestrators and scrapers."),
        (name = "reference", description = "This contract and its reference page."),
        (name = "console", description = "The web console's page and its scripts and styles (no data in them: the page calls the routes above with its session)."),
    )
)]
struct Frame;

/// The document's frame, before any operation is added.
pub(crate) fn frame() -> Document {
    let mut document = Frame::openapi();
    // The crate version is the service's, not the contract's: clients compare contracts by
    // their content, and every release documents itself.
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("imk_…")
                    .description(Some(
                        "An API key, `Authorization: Bearer imk_…`. Each key holds scopes \
                         (`jobs:write`, `jobs:read`, `keys:manage`), a rate limit and a daily \
                         quota; answers carry `RateLimit-Limit`, `RateLimit-Remaining` and \
                         `RateLimit-Reset`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "imgmeta_session",
                "The console's session cookie (`HttpOnly; SameSite=Strict`), set by \
                 `POST /v1/signup` and `POST /v1/session`. A session acts as an API key of its \
                 account holding every scope. Every request made with it whose method is not \
                 GET, HEAD or OPTIONS must also send `X-CSRF-Token` (the `csrf` scheme).",
            ))),
        );
        components.add_security_scheme(
            CSRF,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's `csrf_token`, as sign-up, log-in and `GET /v1/session` return it; \
                 without it a state-changing request made with a session is refused with \
                 `403 csrf_failed`. Requests made with an API key need none.",
            ))),
        );
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operators' token (`IMGMETA_ADMIN_TOKEN`), \
                         `Authorization: Bearer <token>`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds to every operation of `paths` what its guard decides: its security requirements and
/// the refusals the guard answers before the handler runs. What an operation's own annotation
/// already says is kept.
pub(crate) fn apply_guard(paths: &mut Paths, guard: Guard) {
    for item in paths.paths.values_mut() {
        for (method, operation) in operations(item) {
            let safe = matches!(method, HttpMethod::Get | HttpMethod::Head);
            match guard {
                Guard::Key => {
                    let session = if safe {
                        SecurityRequirement::new(SESSION, Vec::<String>::new())
                    } else {
                        SecurityRequirement::new(SESSION, Vec::<String>::new())
                            .add(CSRF, Vec::<String>::new())
                    };
                    operation.security = Some(vec![
                        SecurityRequirement::new(API_KEY, Vec::<String>::new()),
                        session,
                    ]);
                    add_error(
                        operation,
                        "401",
                        "`unauthorized`: no valid API key or session. Carries `WWW-Authenticate: Bearer`.",
                    );
                    add_error(
                        operation,
                        "403",
                        "`insufficient_scope`: the key lacks the scope this route needs; \
                         `csrf_failed`: a session request without its `X-CSRF-Token`.",
                    );
                    add_error(
                        operation,
                        "429",
                        "`rate_limited` (the key's rate limit) or `quota_exceeded` (a daily \
                         quota, for submissions). Carries `Retry-After`.",
                    );
                    rate_limit_headers(operation);
                }
                Guard::Admin => {
                    operation.security = Some(vec![SecurityRequirement::new(
                        ADMIN_TOKEN,
                        Vec::<String>::new(),
                    )]);
                    add_error(
                        operation,
                        "401",
                        "`unauthorized`: the admin token is missing or wrong.",
                    );
                    add_error(
                        operation,
                        "403",
                        "`forbidden`: no admin token is configured (IMGMETA_ADMIN_TOKEN).",
                    );
                }
                Guard::Entry => {
                    // No credentials: sign-up and login hand them out.
                    operation.security = Some(Vec::new());
                    add_error(
                        operation,
                        "403",
                        "`csrf_failed`: the request came from another origin's page.",
                    );
                }
                Guard::Session => {
                    operation.security = Some(vec![if safe {
                        SecurityRequirement::new(SESSION, Vec::<String>::new())
                    } else {
                        SecurityRequirement::new(SESSION, Vec::<String>::new())
                            .add(CSRF, Vec::<String>::new())
                    }]);
                    add_error(
                        operation,
                        "401",
                        "`unauthorized`: no live session (none, expired or logged out).",
                    );
                    if !safe {
                        add_error(
                            operation,
                            "403",
                            "`csrf_failed`: the `X-CSRF-Token` is missing or wrong.",
                        );
                    }
                }
                // An empty list: no credentials needed (and none read).
                Guard::Open => operation.security = Some(Vec::new()),
            }
            add_error(
                operation,
                "default",
                "Any other refusal or failure, e.g. `uri_too_long`, `duplicate_header`, \
                 `too_many_requests_in_flight` and `service_unavailable` (503 with \
                 `Retry-After`), `internal`.",
            );
        }
    }
}

/// The operations a path item holds, with their methods.
fn operations(item: &mut PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, &mut item.get),
        (HttpMethod::Put, &mut item.put),
        (HttpMethod::Post, &mut item.post),
        (HttpMethod::Delete, &mut item.delete),
        (HttpMethod::Options, &mut item.options),
        (HttpMethod::Head, &mut item.head),
        (HttpMethod::Patch, &mut item.patch),
        (HttpMethod::Trace, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|o| (method, o)))
    .collect()
}

/// An error answer: the envelope, described.
pub(crate) fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        )
        .build()
}

/// Documents `status` as an error answer, unless the operation's own annotation already does.
fn add_error(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::T(error_response(description)));
}

fn integer_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some(description))
        .build()
}

/// The `RateLimit-*` fields every answer to a key carries, on each success response.
fn rate_limit_headers(operation: &mut Operation) {
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !status.starts_with('2') {
            continue;
        }
        for (name, description) in [
            ("RateLimit-Limit", "Requests the key's bucket holds."),
            ("RateLimit-Remaining", "Whole requests left in it now."),
            ("RateLimit-Reset", "Seconds until it is full again."),
        ] {
            response
                .headers
                .entry(name.to_owned())
                .or_insert_with(|| integer_header(description));
        }
    }
}
