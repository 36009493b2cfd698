//! The web console: how its page and assets are served, and the whole console driven in a real
//! browser (Debian's chromium through playwright-core, `tests/browser/console.spec.mjs`).

use crate::helpers::{Options, TestApp, fixtures_dir, photos_dir};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

fn repository_root() -> PathBuf {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .ancestors()
        .nth(2)
        .expect("crates/<name>")
        .to_owned()
}

async fn spawn_with_signup() -> TestApp {
    TestApp::spawn_with(Options {
        env: vec![
            ("IMGMETA_SIGNUP", "open".into()),
            // The run makes a few hundred requests in a couple of minutes (it polls jobs and
            // batches); the default 120 a minute would make it a rate-limit test.
            ("IMGMETA_RATE_PER_MINUTE", "100000".into()),
        ],
        ..Options::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_page_and_its_assets_are_served_with_types_etags_and_the_csp() {
    let app = TestApp::spawn_with(Options {
        start_worker: false,
        ..Options::default()
    })
    .await;
    // No key: the console is public (the API calls it makes are not).
    let anonymous = reqwest::Client::new();

    let page = anonymous
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag.len(), 66, "a quoted sha256: {etag}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<script type=\"module\" src=\"/console/app.js\"></script>"));

    let again = anonymous
        .get(format!("{}/", app.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());

    for (asset, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("figure.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let answer = anonymous
            .get(format!("{}/console/{asset}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{asset}");
        assert_eq!(answer.headers()["content-type"], content_type, "{asset}");
        assert!(answer.headers().contains_key("etag"), "{asset}");
        assert_ne!(answer.headers()["etag"], etag.as_str(), "{asset}");
        assert!(!answer.bytes().await.unwrap().is_empty());
    }
    // HEAD answers like GET, without the body.
    let head = anonymous
        .head(format!("{}/console/app.css", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "text/css; charset=utf-8");

    for missing in ["nope.js", "index.html", "..%2FCargo.toml"] {
        let answer = anonymous
            .get(format!("{}/console/{missing}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{missing}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "route_not_found", "{missing}");
    }
    // Only `/` is a page: other paths stay JSON 404s (the console routes by the hash).
    let other = anonymous
        .get(format!("{}/jobs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    app.cleanup().await;
}

/// Runs `tests/browser/<script>` with node against `app`, with `env`; its output is printed and
/// a failing exit status fails the test.
async fn run_browser_script(app: &TestApp, script: &str, env: &[(&str, String)]) {
    let browser_dir = repository_root().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/browser (scripts/test.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (scripts/test.sh does)"
    );
    let screenshots = repository_root().join("target/console-screenshots");
    let mut node = tokio::process::Command::new("node");
    node.arg(script)
        .current_dir(&browser_dir)
        .env("CONSOLE_BASE_URL", &app.base)
        .env("CONSOLE_SCREENSHOTS", &screenshots)
        .env("CHROMIUM", &chromium)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(600), node.output())
        .await
        .expect("the browser test ran over 10 minutes")
        .expect("running node (apt-get install nodejs)");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!("screenshots: {}", screenshots.display());
    assert!(
        output.status.success(),
        "{script} failed ({}); its steps are printed above, screenshots in {}",
        output.status,
        screenshots.display()
    );
}

/// The API reference page in the browser, with every other origin blocked: it renders every
/// operation of the contract, logs no error (a CSP refusal is one), fits 375 px.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_page_renders_in_a_real_browser() {
    let app = TestApp::spawn_with(Options {
        start_worker: false,
        ..Options::default()
    })
    .await;
    run_browser_script(&app, "docs.spec.mjs", &[]).await;
    app.cleanup().await;
}

/// Sign up, mint a key, submit, look at the boxes and the metadata, upload, a failed job,
/// another account's job, a batch, CSRF, 375 px, keyboard, password change, log out, log in,
/// `/docs`: see `tests/browser/console.spec.mjs`. Fails when node, chromium or playwright-core
/// is missing (`scripts/test.sh` installs them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    let app = spawn_with_signup().await;
    // A job of another account (the app's own key is in an account of its own).
    let foreign = app
        .submit_ok(json!({ "url": app.image_url("camera_north_east.jpg"), "tasks": ["metadata"] }))
        .await;
    let upload = photos_dir().join("chelsea.png");
    assert!(upload.is_file() && fixtures_dir().is_dir());
    run_browser_script(
        &app,
        "console.spec.mjs",
        &[
            // A photo stored sideways in a HEIC (the preview is its upright JPEG)...
            (
                "CONSOLE_IMAGE_URL",
                app.image_url("motorcycle_orientation6.heic"),
            ),
            // ...and a JPEG with EXIF, GPS, orientation 6 and two detections.
            ("CONSOLE_EXIF_URL", app.image_url("camera_orientation6.jpg")),
            ("CONSOLE_MISSING_URL", format!("{}/gone", app.images)),
            ("CONSOLE_UPLOAD_FILE", upload.display().to_string()),
            ("CONSOLE_FOREIGN_JOB", foreign),
        ],
    )
    .await;
    app.cleanup().await;
}
