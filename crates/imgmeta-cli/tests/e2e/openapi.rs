//! The OpenAPI contract and its reference page, against the running app: `/openapi.json`
//! documents exactly the routes of the table the router is built from (`imgmeta_api::
//! route_table`), the live router answers each of them and no other method on their paths, an
//! independent validator (`openapi-spec-validator`, PyPI) accepts the document, its error codes
//! are every code `ErrorCode` has, and `/docs` with its assets comes from this origin only.

use crate::helpers::{Options, TestApp};
use imgmeta_api::Guard;
use serde_json::Value;
use std::collections::BTreeSet;

async fn app() -> TestApp {
    TestApp::spawn_with(Options {
        start_worker: false,
        ..Options::default()
    })
    .await
}

/// The served document, fetched without credentials.
async fn contract(app: &TestApp) -> Value {
    let response = reqwest::get(format!("{}/openapi.json", app.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    response.json().await.unwrap()
}

/// A path template with its parameters filled: ids that exist nowhere, and the first value a
/// parameter's enumeration allows (the reference page's file names).
fn concrete(path: &str, operation: &Value) -> String {
    let mut filled = path.to_owned();
    for param in operation["parameters"].as_array().into_iter().flatten() {
        if param["in"] != "path" {
            continue;
        }
        let name = param["name"].as_str().unwrap();
        let value = match param["schema"]["enum"].get(0) {
            Some(first) => first.as_str().unwrap().to_owned(),
            None => match name {
                "name" => "annotated.jpg".to_owned(),
                "prefix" => "abcdefgh".to_owned(),
                _ => uuid::Uuid::now_v7().to_string(),
            },
        };
        filled = filled.replace(&format!("{{{name}}}"), &value);
    }
    assert!(!filled.contains('{'), "unfilled parameter in {filled}");
    filled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_documents_exactly_the_routes_the_router_is_built_from() {
    let app = app().await;
    let document = contract(&app).await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        document["openapi"]
    );
    let table = imgmeta_api::route_table();
    assert!(table.len() >= 20, "the route table lists {}", table.len());

    let paths = document["paths"].as_object().unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_owned(), r.path.clone()))
        .collect();
    assert_eq!(served.len(), table.len(), "a route is listed twice");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served, not documented: {undocumented:?}"
    );
    assert!(phantom.is_empty(), "documented, not served: {phantom:?}");

    for route in &table {
        let operation = &paths[&route.path][route.method.to_lowercase()];
        let security = operation["security"].as_array().unwrap();
        let schemes: Vec<Vec<&str>> = security
            .iter()
            .map(|r| {
                let mut names: Vec<&str> =
                    r.as_object().unwrap().keys().map(String::as_str).collect();
                names.sort_unstable();
                names
            })
            .collect();
        match route.guard {
            Guard::Key => {
                assert!(schemes.contains(&vec!["api_key"]), "{route:?}: {schemes:?}");
                let session = if route.method == "GET" {
                    vec!["session"]
                } else {
                    vec!["csrf", "session"]
                };
                assert!(schemes.contains(&session), "{route:?}: {schemes:?}");
                assert!(operation["responses"]["401"].is_object(), "{route:?}");
            }
            Guard::Admin => assert_eq!(schemes, vec![vec!["admin_token"]], "{route:?}"),
            Guard::Session => {
                let session = if route.method == "GET" {
                    vec!["session"]
                } else {
                    vec!["csrf", "session"]
                };
                assert_eq!(schemes, vec![session], "{route:?}");
                assert!(operation["responses"]["401"].is_object(), "{route:?}");
            }
            Guard::Entry | Guard::Open => assert!(schemes.is_empty(), "{route:?}"),
        }
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{route:?} has no summary"
        );
        assert!(operation["responses"]["default"].is_object(), "{route:?}");
        assert!(
            operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{route:?} has no tag"
        );
    }
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "imgmeta_session");
    assert_eq!(schemes["csrf"]["in"], "header");
    assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_answers_every_documented_operation_and_no_other_method() {
    let app = app().await;
    let document = contract(&app).await;
    // No credentials: a guarded route answers its guard's documented refusal, no side effects.
    let client = reqwest::Client::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let item = item.as_object().unwrap();
        for (method, operation) in item {
            let url = format!("{}{}", app.base, concrete(path, operation));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = client.request(method.clone(), &url).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_ne!(
                body["error"]["code"], "route_not_found",
                "{method} {path}: the router does not know it"
            );
            assert_ne!(status, 405, "{method} {path}: not answered: {body}");
            let documented = &operation["responses"][status.to_string()];
            assert!(
                documented.is_object(),
                "{method} {path} answered {status}, which it does not document: {body}"
            );
        }
        // Every other method on the path is refused by the router itself.
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if item.contains_key(&method.to_lowercase()) {
                continue;
            }
            let any = item.values().next().unwrap();
            let url = format!("{}{}", app.base, concrete(path, any));
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let response = client.request(method.clone(), &url).send().await.unwrap();
            assert_eq!(response.status(), 405, "{method} {path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body["error"]["code"], "method_not_allowed",
                "{method} {path}"
            );
        }
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_validator_accepts_the_contract() {
    let app = app().await;
    let document = contract(&app).await;
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::process::Command::new("bash")
        .arg(root.join("scripts/dev_python.sh"))
        .output()
        .expect("running scripts/dev_python.sh");
    assert!(
        python.status.success(),
        "scripts/dev_python.sh: {}",
        String::from_utf8_lossy(&python.stderr)
    );
    let python = String::from_utf8(python.stdout).unwrap().trim().to_owned();
    let file = std::env::temp_dir().join(format!("openapi-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, document.to_string()).unwrap();
    let out = std::process::Command::new(python)
        .arg(root.join("scripts/validate_openapi.py"))
        .arg(&file)
        .output()
        .expect("running scripts/validate_openapi.py");
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("valid OpenAPI 3.1"), "{stdout}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_envelope_lists_every_stable_error_code() {
    let app = app().await;
    let document = contract(&app).await;
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["ErrorEnvelope"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert_eq!(
        schemas["ErrorBody"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    let listed: BTreeSet<String> = schemas["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    // Every code the document lists is one the service speaks, spelled as it sends it.
    for code in &listed {
        let parsed: imgmeta_domain::ErrorCode =
            serde_json::from_value(Value::String(code.clone())).unwrap();
        assert_eq!(parsed.as_str(), code);
    }
    // And every code `ErrorCode::as_str` spells is listed (read from its source, the one list).
    let source = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../imgmeta-domain/src/error_code.rs"),
    )
    .unwrap();
    let spelled: BTreeSet<String> = source
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Self::"))
        .filter_map(|rest| rest.split_once("=> \""))
        .map(|(_, code)| code.trim_end_matches("\",").to_owned())
        .collect();
    assert!(spelled.len() > 50, "read {} codes", spelled.len());
    assert_eq!(listed, spelled);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_page_and_its_assets_come_from_this_origin() {
    let app = app().await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'")
    );
    let page = response.text().await.unwrap();
    // Nothing inline: the CSP would refuse it.
    assert!(!page.contains("<style"), "inline style block");
    assert!(!page.contains("style="), "inline style attribute");
    let handler = page.split(char::is_whitespace).find(|word| {
        word.strip_prefix("on")
            .and_then(|rest| rest.split_once('='))
            .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_alphabetic()))
    });
    assert_eq!(handler, None, "an inline event handler");
    for script in page.split("<script").skip(1) {
        let (attributes, rest) = script.split_once('>').unwrap();
        assert!(attributes.contains("src="), "inline script: {script}");
        assert!(
            rest.starts_with("</script>"),
            "inline script body: {script}"
        );
    }
    // Every referenced URL is this origin's, and answers with its type.
    let mut references = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in page.split(attribute).skip(1) {
            references.push(piece.split('"').next().unwrap().to_owned());
        }
    }
    assert!(
        references.iter().any(|r| r == "/docs/docs.js"),
        "{references:?}"
    );
    assert!(
        references.iter().any(|r| r == "/docs/docs.css"),
        "{references:?}"
    );
    for reference in &references {
        assert!(
            reference.starts_with('/') && !reference.starts_with("//"),
            "not same-origin: {reference}"
        );
        let response = client
            .get(format!("{}{reference}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{reference}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let expected = match reference.rsplit('.').next().unwrap() {
            "js" => "text/javascript",
            "css" => "text/css",
            "json" => "application/json",
            other => panic!("unexpected asset kind {other}: {reference}"),
        };
        assert!(
            content_type.starts_with(expected),
            "{reference}: {content_type}"
        );
        let etag = response.headers()["etag"].clone();
        let body = response.text().await.unwrap();
        // The script and the style load nothing from another origin.
        if expected != "application/json" {
            assert!(!body.contains("://"), "{reference} names another origin");
        }
        // Revalidation: the same ETag answers 304.
        let again = client
            .get(format!("{}{reference}", app.base))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{reference}");
    }
    let script = client
        .get(format!("{}/docs/docs.js", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains("fetch(\"/openapi.json\""));
    assert!(
        !script.contains("innerHTML"),
        "the page builds its DOM as text"
    );
    // An unknown file of the page is a plain 404.
    let missing = client
        .get(format!("{}/docs/nope.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    app.cleanup().await;
}
