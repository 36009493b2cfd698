//! What an operator deploying the binary meets: the admin token generated once into a file
//! (as the Compose one-shot service does) and read back through `IMGMETA_ADMIN_TOKEN_FILE`;
//! TLS to PostgreSQL honoured by the real processes (verified with the server's CA, refused
//! with another); `amqps://` never sent in clear; a worker reporting an unmigrated database
//! on its own port.

use crate::processes::{clean_up, free_port, imgmeta, readiness, terminate, wait_until_up};
use serde_json::{Value, json};
use std::time::Duration;

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn admin_token(file: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_imgmeta"))
        .args(["admin-token", "--file"])
        .arg(file)
        .env_remove("IMGMETA_ADMIN_TOKEN")
        .env_remove("IMGMETA_ADMIN_TOKEN_FILE")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("running imgmeta admin-token")
}

fn scratch_dir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("imgmeta-deploy-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_generated_once_and_the_api_reads_it_from_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir();
    let file = dir.join("secrets/admin-token");

    let first = admin_token(&file, &[]);
    assert!(first.status.success(), "{first:?}");
    let printed = String::from_utf8(first.stdout).unwrap().trim().to_owned();
    assert_eq!(printed.len(), 43, "{printed}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), printed);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A second start keeps it and prints nothing: the token is shown once.
    let second = admin_token(&file, &[]);
    assert!(second.status.success(), "{second:?}");
    assert!(second.stdout.is_empty(), "{second:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), printed);

    // An operator's own token is written, not printed.
    let chosen_file = dir.join("chosen");
    let chosen = "an-operator-chosen-admin-token";
    let third = admin_token(&chosen_file, &[("IMGMETA_ADMIN_TOKEN", chosen)]);
    assert!(third.status.success(), "{third:?}");
    assert!(third.stdout.is_empty());
    assert_eq!(
        std::fs::read_to_string(&chosen_file).unwrap().trim(),
        chosen
    );

    // The API reads the generated token from the file and mints keys with it only.
    let (db, queue) = crate::processes::fresh_database().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut api = imgmeta(
        &db,
        &queue,
        port,
        "api",
        &[
            ("IMGMETA_AUTH", "enabled".into()),
            (
                "IMGMETA_ADMIN_TOKEN_FILE",
                file.to_str().unwrap().to_owned(),
            ),
        ],
    );
    wait_until_up(&base).await;
    let client = reqwest::Client::new();
    let mint = |token: String| {
        client
            .post(format!("{base}/v1/keys"))
            .bearer_auth(token)
            .json(&json!({ "name": "first" }))
            .send()
    };
    let refused = mint(format!("{printed}x")).await.unwrap();
    assert_eq!(refused.status(), 401);
    let minted = mint(printed.clone()).await.unwrap();
    assert_eq!(minted.status(), 201);
    let key: Value = minted.json().await.unwrap();
    let key = key["key"].as_str().expect("the new key").to_owned();
    let jobs = client
        .get(format!("{base}/v1/jobs"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), 200);
    terminate(&mut api, Duration::from_secs(30)).await;
    clean_up(&db, &queue).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processes_speak_tls_to_postgresql_and_never_send_amqps_in_clear() {
    assert!(
        std::fs::metadata(SNAKEOIL).is_ok(),
        "{SNAKEOIL} is missing: this test needs the machine's PostgreSQL to serve TLS with it"
    );
    let (db, queue) = crate::processes::fresh_database().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let tls_url = format!("postgres://postgres@localhost:5432/{db}");

    // The server's CA: verify-full by default, the session is encrypted, the API is ready.
    let mut api = imgmeta(
        &db,
        &queue,
        port,
        "api",
        &[
            ("IMGMETA_DATABASE_URL", tls_url.clone()),
            ("IMGMETA_DATABASE_CA", SNAKEOIL.into()),
        ],
    );
    wait_until_up(&base).await;
    let (status, body) = readiness(&base).await;
    assert_eq!(status, 200, "{body}");
    terminate(&mut api, Duration::from_secs(30)).await;

    // Another CA: refused, and /readyz says it is TLS.
    let dir = scratch_dir();
    let wrong = dir.join("wrong-ca.pem");
    std::fs::write(&wrong, wrong_ca()).unwrap();
    let mut api = imgmeta(
        &db,
        &queue,
        port,
        "api",
        &[
            ("IMGMETA_DATABASE_URL", tls_url),
            ("IMGMETA_DATABASE_CA", wrong.to_str().unwrap().to_owned()),
        ],
    );
    wait_until_up(&base).await;
    let (status, body) = readiness(&base).await;
    assert_eq!(status, 503, "{body}");
    let error = body["checks"]["database"]["error"].as_str().unwrap_or("");
    assert!(error.contains("TLS"), "{body}");
    terminate(&mut api, Duration::from_secs(30)).await;

    // amqps:// to the broker's plain port: a TLS handshake that fails, never plain AMQP.
    let mut api = imgmeta(
        &db,
        &queue,
        port,
        "api",
        &[(
            "IMGMETA_AMQP_URL",
            "amqps://guest:guest@localhost:5672/%2f".into(),
        )],
    );
    wait_until_up(&base).await;
    let (status, body) = readiness(&base).await;
    assert_eq!(status, 503, "{body}");
    let error = body["checks"]["broker"]["error"].as_str().unwrap_or("");
    assert!(error.contains("TLS"), "{body}");
    terminate(&mut api, Duration::from_secs(30)).await;

    // A CA with a URL that allows plain text is refused at start.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_imgmeta"))
        .arg("migrate")
        .env(
            "IMGMETA_DATABASE_URL",
            format!("postgres://postgres@localhost:5432/{db}?sslmode=prefer"),
        )
        .env("IMGMETA_DATABASE_CA", SNAKEOIL)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("IMGMETA_DATABASE_CA"),
        "{refused:?}"
    );
    clean_up(&db, &queue).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A self-signed certificate that signed nothing PostgreSQL presents.
fn wrong_ca() -> String {
    // Only its certificate is needed; the key goes nowhere.
    let output = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "/dev/null",
            "-subj",
            "/CN=not-the-ca",
            "-days",
            "1",
        ])
        .output()
        .expect("running openssl");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reports_an_unmigrated_database_on_its_own_port() {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (db, queue) = (format!("imgmeta_test_{suffix}"), format!("test-{suffix}"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut worker = imgmeta(
        &db,
        &queue,
        free_port(),
        "worker",
        &[("IMGMETA_METRICS_ADDR", format!("127.0.0.1:{port}"))],
    );
    wait_until_up(&base).await;
    let (status, body) = readiness(&base).await;
    assert_eq!(status, 503, "{body}");
    let error = body["checks"]["database"]["error"].as_str().unwrap_or("");
    assert!(error.contains("imgmeta migrate"), "{body}");
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 200);
    terminate(&mut worker, Duration::from_secs(30)).await;
    clean_up(&db, &queue).await;
}
