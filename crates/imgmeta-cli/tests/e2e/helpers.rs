//! Spawning an isolated app (fresh database, own queue prefix) and a local image server.

use imgmeta_config::Settings;
use imgmeta_pipeline::DetectObjects;
use imgmeta_queue::{JobMessage, Publisher, Topology};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub base: String,
    pub images: String,
    /// Sends `api_key` on every request, so tests run with authentication on.
    pub client: reqwest::Client,
    pub api_key: String,
    pub settings: Settings,
    pub db_name: String,
    shutdown: CancellationToken,
    worker_shutdown: CancellationToken,
    worker: Option<tokio::task::JoinHandle<()>>,
    store: imgmeta_store::Store,
    pub detector: Result<Arc<dyn DetectObjects>, String>,
}

/// The model is loaded once for the whole test binary (fetched on first use, as in production).
static DETECTOR: OnceCell<Result<Arc<dyn DetectObjects>, String>> = OnceCell::const_new();

/// The repository's model directory, shared with the detector's own tests.
pub fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

pub struct Options {
    pub start_worker: bool,
    pub amqp_url: Option<String>,
    /// Extra settings, overriding the test defaults.
    pub env: Vec<(&'static str, String)>,
    /// Reuse this database (of another TestApp) instead of creating a fresh one.
    pub database: Option<String>,
    /// Authenticate with this key (e.g. another TestApp's, to see its account's jobs) instead
    /// of a new key in a new account.
    pub api_key: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            start_worker: true,
            amqp_url: None,
            env: Vec::new(),
            database: None,
            api_key: None,
        }
    }
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images")
}

/// Public-domain photos with onnxruntime golden detections (the detector's parity fixtures).
pub fn photos_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../imgmeta-vision/tests/fixtures")
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        imgmeta_cli::logging::init(imgmeta_config::LogFormat::Text);
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let db_name = options
            .database
            .clone()
            .unwrap_or_else(|| format!("imgmeta_test_{suffix}"));
        let mut env: HashMap<&str, String> = HashMap::new();
        env.insert("IMGMETA_HTTP_ADDR", "127.0.0.1:0".into());
        env.insert(
            "IMGMETA_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{db_name}"),
        );
        if let Some(url) = options.amqp_url {
            env.insert("IMGMETA_AMQP_URL", url);
        }
        env.insert("IMGMETA_QUEUE", format!("test-{suffix}"));
        env.insert("IMGMETA_FETCH_ALLOW_PRIVATE", "true".into());
        env.insert("IMGMETA_LEASE_SECS", "10".into());
        env.insert("IMGMETA_LEGACY_WAIT_MS", "20000".into());
        env.insert("IMGMETA_SHUTDOWN_GRACE_SECS", "10".into());
        env.insert("IMGMETA_MODEL_DIR", model_dir().display().to_string());
        env.insert("IMGMETA_RETRY_BASE_MS", "50".into());
        env.insert("IMGMETA_SWEEP_MS", "500".into());
        // Tests read the cache as PostgreSQL holds it: an operator's purge run just before a
        // submission reaches the API's hot copies milliseconds later, a race a loaded machine
        // could lose. The hot copies have their own test, which turns them on.
        env.insert("IMGMETA_CACHE_HOT_MS", "0".into());
        for (key, value) in options.env {
            env.insert(key, value);
        }
        let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings");

        let detector = DETECTOR
            .get_or_init(|| imgmeta_cli::detector::load(&settings))
            .await
            .clone();
        let store = imgmeta_cli::serve::migrate(&settings)
            .await
            .expect("migrating a fresh database");
        // Authentication stays on, as in production; the key is generous so no test is throttled.
        let api_key = match options.api_key {
            Some(key) => key,
            None => {
                imgmeta_api::issue_key(
                    &store,
                    &imgmeta_api::KeyRequest::in_new_account(
                        imgmeta_domain::Name::parse("e2e").unwrap(),
                        1_000_000,
                        1_000_000_000,
                        30,
                    ),
                    "test",
                )
                .await
                .expect("creating the test key")
                .key
            }
        };
        let shutdown = CancellationToken::new();
        let worker_shutdown = CancellationToken::new();
        let api = imgmeta_cli::serve::start_api(&settings, store.clone(), shutdown.clone())
            .await
            .expect("starting the api");
        let images = spawn_image_server().await;
        let mut app = Self {
            base: format!("http://{}", api.addr),
            images: format!("http://{images}"),
            client: authorized_client(&api_key),
            api_key,
            settings,
            db_name,
            shutdown,
            worker_shutdown,
            worker: None,
            store,
            detector,
        };
        if options.start_worker {
            app.start_worker();
        }
        app
    }

    pub fn start_worker(&mut self) {
        let analyzer = imgmeta_cli::serve::analyzer_with(&self.settings, self.detector.clone())
            .and_then(|a| imgmeta_cli::serve::with_content_cache(a, &self.settings))
            .expect("analyzer");
        let analyzer = Arc::new(analyzer);
        self.worker = Some(
            imgmeta_cli::serve::start_worker(
                &self.settings,
                self.store.clone(),
                analyzer,
                self.worker_shutdown.clone(),
            )
            .expect("starting the worker"),
        );
    }

    /// Stops the worker gracefully and waits until it has settled every message it held.
    pub async fn stop_worker(&mut self) {
        self.worker_shutdown.cancel();
        if let Some(worker) = self.worker.take() {
            worker.await.expect("worker task");
        }
    }

    pub fn photo_url(&self, name: &str) -> String {
        format!("{}/photos/{name}", self.images)
    }

    pub fn image_url(&self, name: &str) -> String {
        format!("{}/images/{name}", self.images)
    }

    pub async fn submit(&self, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/jobs", self.base))
            .json(&body)
            .send()
            .await
            .expect("POST /v1/jobs")
    }

    pub async fn get_job(&self, id: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/v1/jobs/{id}", self.base))
            .send()
            .await
            .expect("GET /v1/jobs/{id}")
    }

    /// `GET {base}{path}` with the app's key: the answer's JSON, whatever its status.
    pub async fn get_value(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("a JSON answer")
    }

    /// Submits `body`, expects 202, and returns the job id.
    pub async fn submit_ok(&self, body: Value) -> String {
        let response = self.submit(body).await;
        assert_eq!(response.status(), 202, "submission refused");
        let job: Value = response.json().await.unwrap();
        job["id"].as_str().unwrap().to_owned()
    }

    /// Polls until the job is terminal (or the deadline passes) and returns it.
    pub async fn wait_terminal(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let job: Value = self.get_job(id).await.json().await.unwrap();
            let status = job["status"].as_str().unwrap_or_default().to_owned();
            if matches!(status.as_str(), "succeeded" | "failed" | "cancelled") {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} still {status} after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes one more message for `id`, as a broker redelivery or a double publish would.
    pub async fn publish_duplicate(&self, id: &str) {
        let publisher = self.publisher();
        let job_id = imgmeta_domain::JobId::parse(id).unwrap();
        // A nack means "try again" (the broker could not take it just now).
        let mut tries = 0;
        while let Err(err) = publisher.publish(&JobMessage { job_id }).await {
            tries += 1;
            assert!(tries < 5, "publishing a duplicate: {err}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn publisher(&self) -> Publisher {
        Publisher::new(
            &imgmeta_queue::Broker::new(self.settings.amqp_url.clone()),
            Topology::new(&self.settings.queue_prefix),
        )
        .unwrap()
    }

    /// Messages ready in the jobs queue (not counting those delivered but unacknowledged).
    /// The publisher declares the topology first, so "never published to" reads as zero.
    pub async fn ready_messages(&self) -> u32 {
        self.publisher()
            .queue_depth()
            .await
            .expect("reading the queue depth")
    }

    /// Stops everything and removes the test's database and queues.
    pub async fn cleanup(mut self) {
        self.stop_worker().await;
        self.shutdown.cancel();
        let _ = self.publisher().delete_topology().await;
        self.store.close().await;
        if let Ok(pool) = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.db_name
            )))
            .execute(&pool)
            .await;
        }
    }
}

/// A client sending `Authorization: Bearer <key>` on every request.
pub fn authorized_client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).unwrap();
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Serves `fixtures/images/<name>` plus a few misbehaving routes, on a free loopback port.
pub async fn spawn_image_server() -> SocketAddr {
    use axum::Router;
    use axum::extract::Path;
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let app = Router::new()
        .route(
            "/images/{name}",
            get(|Path(name): Path<String>| async move {
                if name.contains('/') || name.contains("..") {
                    return Err(StatusCode::BAD_REQUEST);
                }
                let bytes = tokio::fs::read(fixtures_dir().join(&name))
                    .await
                    .map_err(|_| StatusCode::NOT_FOUND)?;
                // Deliberately claim every file is a JPEG: the format must come from the bytes.
                Ok(([(header::CONTENT_TYPE, "image/jpeg")], bytes))
            }),
        )
        .route(
            "/photos/{name}",
            get(|Path(name): Path<String>| async move {
                if name.contains('/') || name.contains("..") {
                    return Err(StatusCode::BAD_REQUEST);
                }
                let bytes = tokio::fs::read(photos_dir().join(&name))
                    .await
                    .map_err(|_| StatusCode::NOT_FOUND)?;
                Ok(([(header::CONTENT_TYPE, "image/png")], bytes))
            }),
        )
        .route("/gone", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/slow/{ms}/{name}",
            get(|Path((ms, name)): Path<(u64, String)>| async move {
                // Serves the image after `ms` milliseconds: a job that keeps its slot a while.
                if name.contains("..") {
                    return Err(StatusCode::NOT_FOUND);
                }
                tokio::time::sleep(Duration::from_millis(ms)).await;
                tokio::fs::read(fixtures_dir().join(&name))
                    .await
                    .map_err(|_| StatusCode::NOT_FOUND)
            }),
        )
        .route(
            "/flaky/{failures}/{token}/{name}",
            get(
                |Path((failures, token, name)): Path<(u32, String, String)>| async move {
                    // Fails `failures` times per token with 503, then serves the image.
                    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
                    let key = format!("{failures}/{token}/{name}");
                    let seen = {
                        let mut seen = SEEN.lock().unwrap();
                        seen.push(key.clone());
                        seen.iter().filter(|k| **k == key).count() as u32
                    };
                    if seen <= failures || name.contains("..") {
                        return Err(StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let bytes = tokio::fs::read(fixtures_dir().join(&name))
                        .await
                        .map_err(|_| StatusCode::NOT_FOUND)?;
                    Ok(bytes)
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A store on the app's database, for setting up what the API cannot (accounts, keys).
pub fn store_of(app: &TestApp) -> imgmeta_store::Store {
    imgmeta_store::Store::connect_lazy(&app.settings.database.url, 2).unwrap()
}

/// A key in `account` (or in a new account of its own) with `scopes`; returns the secret.
pub async fn key_in(
    app: &TestApp,
    account: Option<imgmeta_domain::AccountId>,
    scopes: &str,
) -> String {
    let mut request = imgmeta_api::KeyRequest::in_new_account(
        imgmeta_domain::Name::parse("e2e key").unwrap(),
        1_000_000,
        1_000_000,
        30,
    );
    request.scopes = imgmeta_domain::ScopeSet::parse_list(scopes).unwrap();
    if let Some(account) = account {
        request.account = imgmeta_store::KeyAccount::Existing(account);
    }
    imgmeta_api::issue_key(&store_of(app), &request, "test")
        .await
        .unwrap()
        .key
}

/// The account of the app's own key.
pub async fn own_account(app: &TestApp) -> imgmeta_domain::AccountId {
    let account = app.get_value("/v1/account").await;
    imgmeta_domain::AccountId::parse(account["id"].as_str().unwrap()).unwrap()
}
