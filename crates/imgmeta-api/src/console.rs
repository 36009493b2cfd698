//! The web console: one HTML page at `/` and its scripts and styles under `/console/{asset}`,
//! embedded in the binary so the service needs no file system or CDN to serve them.
//!
//! Every asset is served with its type, a strong `ETag` (its SHA-256, computed once) and
//! `Cache-Control: no-cache`: the browser keeps a copy but asks each time, and a `304` answers
//! while the binary is the same, so an upgrade is never mixed with cached scripts of the old
//! one. Nothing here needs authentication: the page holds no data; the API it calls does.

use crate::ApiError;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imgmeta_domain::ErrorCode;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::sync::LazyLock;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// The console's files; `index.html` is served at `/`, the others at `/console/<name>`.
static ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../console/index.html"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../console/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../console/favicon.svg"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        bytes: include_bytes!("../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        bytes: include_bytes!("../console/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: JS,
        bytes: include_bytes!("../console/dom.js"),
    },
    Asset {
        name: "auth.js",
        content_type: JS,
        bytes: include_bytes!("../console/auth.js"),
    },
    Asset {
        name: "submit.js",
        content_type: JS,
        bytes: include_bytes!("../console/submit.js"),
    },
    Asset {
        name: "job.js",
        content_type: JS,
        bytes: include_bytes!("../console/job.js"),
    },
    Asset {
        name: "figure.js",
        content_type: JS,
        bytes: include_bytes!("../console/figure.js"),
    },
    Asset {
        name: "result.js",
        content_type: JS,
        bytes: include_bytes!("../console/result.js"),
    },
    Asset {
        name: "jobs.js",
        content_type: JS,
        bytes: include_bytes!("../console/jobs.js"),
    },
    Asset {
        name: "batches.js",
        content_type: JS,
        bytes: include_bytes!("../console/batches.js"),
    },
    Asset {
        name: "keys.js",
        content_type: JS,
        bytes: include_bytes!("../console/keys.js"),
    },
    Asset {
        name: "coco.js",
        content_type: JS,
        bytes: include_bytes!("../console/coco.js"),
    },
];

/// Each asset's `ETag` (`"<sha256 hex>"`), in the order of [`ASSETS`], computed at first use.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let tag = format!("\"{}\"", hex::encode(Sha256::digest(asset.bytes)));
            HeaderValue::from_str(&tag).expect("a hex ETag is a valid header value")
        })
        .collect()
});

/// The name of one of the console's files under `/console/` (the path parameter of
/// `GET /console/{asset}`), listed from the embedded files themselves.
pub(crate) struct AssetName;

impl utoipa::PartialSchema for AssetName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(
                ASSETS
                    .iter()
                    .map(|asset| asset.name)
                    .filter(|name| *name != "index.html"),
            ))
            .into()
    }
}

impl utoipa::ToSchema for AssetName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ConsoleAsset")
    }
}

/// The web console's page (sign up, submit, see the boxes; hash routing, no data in it).
#[utoipa::path(
    get,
    path = "/",
    tag = "console",
    operation_id = "console_page",
    responses(
        (status = 200, description = "The console's page.", content_type = "text/html",
            headers(("ETag" = String, description = "The page's SHA-256; send it as `If-None-Match`."))),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
    )
)]
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(IntoResponse::into_response)
}

/// One of the console's scripts, its stylesheet or its icon (the page itself is only at `/`).
#[utoipa::path(
    get,
    path = "/console/{asset}",
    tag = "console",
    operation_id = "console_asset",
    params(("asset" = inline(AssetName), Path, description = "The file's name.")),
    responses(
        (status = 200, description = "The file.", content(("text/javascript"), ("text/css"), ("image/svg+xml")),
            headers(("ETag" = String, description = "The file's SHA-256; send it as `If-None-Match`."))),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
        (status = 404, description = "`route_not_found`: no such file.", body = crate::error::ErrorEnvelope),
    )
)]
pub(crate) async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    if name == "index.html" {
        return missing(&name).into_response();
    }
    serve(&name, &headers).unwrap_or_else(IntoResponse::into_response)
}

fn serve(name: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let index = ASSETS
        .iter()
        .position(|asset| asset.name == name)
        .ok_or_else(|| missing(name))?;
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let cache = HeaderValue::from_static("no-cache");
    if matches_etag(headers, etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag.clone()), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag.clone()),
            (header::CACHE_CONTROL, cache),
        ],
        asset.bytes,
    )
        .into_response())
}

/// Whether `If-None-Match` names this ETag (or `*`); weak comparison, as RFC 9110 asks of it.
fn matches_etag(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.to_str().unwrap_or_default();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

fn missing(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::RouteNotFound,
        format!("no console asset named {:?}", imgmeta_auth::clean(name)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str) -> &'static str {
        let asset = ASSETS.iter().find(|a| a.name == name).unwrap();
        std::str::from_utf8(asset.bytes).unwrap()
    }

    /// The directory the assets are embedded from: every file there must be served, and
    /// every served file must be there.
    #[test]
    fn every_file_of_the_console_directory_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    /// The Content-Security-Policy forbids inline script and style: the page may not carry
    /// any, or the browser would refuse it (and the console would silently not work).
    #[test]
    fn the_page_has_no_inline_script_style_or_event_handler() {
        let html = text("index.html").to_ascii_lowercase();
        assert!(!html.contains("<style"), "an inline <style> block");
        assert!(!html.contains(" style="), "an inline style attribute");
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            assert!(tag.contains(" src=\"/console/"), "an inline script: {tag}");
        }
        let handler = regex_like_handler(&html);
        assert!(handler.is_none(), "an inline event handler: {handler:?}");
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let js = text(asset.name);
            assert!(!js.contains("innerHTML"), "{} writes innerHTML", asset.name);
            assert!(!js.contains("outerHTML"), "{} writes outerHTML", asset.name);
            assert!(
                !js.contains("insertAdjacentHTML"),
                "{} parses HTML",
                asset.name
            );
            assert!(!js.contains("eval("), "{} evaluates strings", asset.name);
            assert!(
                !js.contains("document.write"),
                "{} writes the document",
                asset.name
            );
            // Styles are set through CSSOM (`el.style.x = …`), never as an attribute.
            assert!(
                !js.contains("'style'") && !js.contains("style:"),
                "{} sets a style attribute",
                asset.name
            );
        }
    }

    /// ` on<letters>=` inside a tag of the page.
    fn regex_like_handler(html: &str) -> Option<String> {
        html.split('<').skip(1).find_map(|tag| {
            let tag = tag.split('>').next().unwrap_or_default();
            tag.split_whitespace()
                .skip(1)
                .find(|attr| {
                    attr.starts_with("on")
                        && attr[2..].split('=').next().is_some_and(|n| {
                            !n.is_empty() && n.chars().all(|c| c.is_ascii_alphabetic())
                        })
                        && attr.contains('=')
                })
                .map(str::to_owned)
        })
    }

    /// Nothing is loaded from another origin: every URL the page and the scripts name is a
    /// path on this service (the one outside link, the map site, is a link the user follows).
    #[test]
    fn no_asset_loads_anything_from_another_origin() {
        let html = text("index.html");
        for attr in ["src=\"", "href=\""] {
            for (i, _) in html.match_indices(attr) {
                let value = &html[i + attr.len()..];
                let value = &value[..value.find('"').unwrap()];
                assert!(
                    value.starts_with('/') || value.starts_with('#'),
                    "index.html names {value}"
                );
                assert!(!value.starts_with("//"), "index.html names {value}");
            }
        }
        for asset in ASSETS
            .iter()
            .filter(|a| a.name.ends_with(".js") || a.name.ends_with(".css"))
        {
            let body = text(asset.name);
            for (i, _) in body.match_indices("://") {
                let start = body[..i].rfind(['\'', '"', '`', '(', ' ']).unwrap_or(0);
                let url = &body[start..(i + 40).min(body.len())];
                let allowed = url.contains("http://www.w3.org/2000/svg")
                    || url.contains("https://www.openstreetmap.org/")
                    || url.contains("https://example.com/");
                assert!(allowed, "{} names another origin: {url}", asset.name);
            }
            assert!(
                !body.contains("@import url(http"),
                "{} imports a remote style",
                asset.name
            );
        }
    }

    /// Every module the scripts import is an embedded asset.
    #[test]
    fn every_imported_module_is_embedded() {
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in text(asset.name)
                .lines()
                .filter(|l| l.starts_with("import "))
            {
                let target = line.rsplit("from '").next().unwrap().trim_end_matches("';");
                let target = target.strip_prefix("./").expect("a relative import");
                assert!(
                    ASSETS.iter().any(|a| a.name == target),
                    "{} imports {target}, which is not embedded",
                    asset.name
                );
            }
        }
    }

    /// The label filter suggests exactly the detector's classes.
    #[test]
    fn the_label_suggestions_are_the_detectors_classes() {
        let js = text("coco.js");
        let body = &js[js.find('[').unwrap() + 1..js.rfind(']').unwrap()];
        let names: Vec<&str> = body
            .split(',')
            .map(|n| n.trim().trim_matches('\''))
            .filter(|n| !n.is_empty())
            .collect();
        assert_eq!(names, imgmeta_domain::COCO_CLASSES);
    }

    #[test]
    fn etags_are_the_sha256_of_each_asset() {
        let index = ASSETS.iter().position(|a| a.name == "app.css").unwrap();
        let want = format!("\"{}\"", hex::encode(Sha256::digest(ASSETS[index].bytes)));
        assert_eq!(ETAGS[index].to_str().unwrap(), want);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("W/{want}")).unwrap(),
        );
        assert!(matches_etag(&headers, &ETAGS[index]));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!matches_etag(&headers, &ETAGS[index]));
    }
}
