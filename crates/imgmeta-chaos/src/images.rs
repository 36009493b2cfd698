//! The loopback image server the workers fetch from, with routes the harness controls: images
//! served at once, images held until released (a worker is then "in the fetch"), a photo whose
//! last byte is recorded (the worker is then past the fetch), and a listener that accepts
//! connections and never answers.

use anyhow::Result;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep};

/// The substring the poison hook (`IMGMETA_TEST_CRASH_ON_URL_SUBSTRING`) is armed with.
pub const POISON_MARK: &str = "poison-chaos";

#[derive(Default)]
struct Seen {
    hits: HashMap<String, u32>,
    held: HashSet<String>,
    photo_sent: HashMap<String, Instant>,
}

#[derive(Clone)]
struct Shared {
    small: Bytes,
    photo: Bytes,
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
    release: watch::Receiver<bool>,
}

pub struct ImageServer {
    pub base: String,
    pub never_base: String,
    shared: Shared,
    release: watch::Sender<bool>,
    _held_sockets: Arc<Mutex<Vec<tokio::net::TcpStream>>>,
}

impl ImageServer {
    pub async fn start(small: Bytes, photo: Bytes) -> Result<Self> {
        let (release_tx, release_rx) = watch::channel(false);
        let shared = Shared {
            small,
            photo,
            seen: Arc::default(),
            changed: Arc::new(Notify::new()),
            release: release_rx,
        };
        let app = Router::new()
            .route("/ok/{name}", get(serve_ok))
            .route("/held/{name}", get(serve_held))
            .route("/photo/{name}", get(serve_photo))
            .route(&format!("/{POISON_MARK}/{{name}}"), get(serve_ok))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        // Accepts and keeps every connection without reading or writing a byte: the fetch can
        // only end by its own deadline.
        let never = TcpListener::bind("127.0.0.1:0").await?;
        let never_addr = never.local_addr()?;
        let held_sockets: Arc<Mutex<Vec<tokio::net::TcpStream>>> = Arc::default();
        let sockets = held_sockets.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = never.accept().await {
                sockets.lock().expect("sockets lock").push(socket);
            }
        });

        Ok(Self {
            base: format!("http://{addr}"),
            never_base: format!("http://{never_addr}"),
            shared,
            release: release_tx,
            _held_sockets: held_sockets,
        })
    }

    pub fn ok_url(&self, name: &str) -> String {
        format!("{}/ok/{name}.png", self.base)
    }

    pub fn held_url(&self, name: &str) -> String {
        format!("{}/held/{name}.png", self.base)
    }

    pub fn photo_url(&self, name: &str) -> String {
        format!("{}/photo/{name}.png", self.base)
    }

    pub fn poison_url(&self, name: &str) -> String {
        format!("{}/{POISON_MARK}/{name}.png", self.base)
    }

    pub fn never_url(&self, name: &str) -> String {
        format!("{}/never/{name}.png", self.never_base)
    }

    /// Lets every held request (and every later one) through.
    pub fn release_held(&self) {
        let _ = self.release.send(true);
    }

    /// Holds held requests again (for a scenario that holds more than once).
    pub fn hold_again(&self) {
        let _ = self.release.send(false);
    }

    /// How many requests the route for `name` has received.
    pub fn hits(&self, name: &str) -> u32 {
        let seen = self.shared.seen.lock().expect("seen lock");
        seen.hits.get(name).copied().unwrap_or(0)
    }

    /// Waits until a request for held image `name` is being held.
    pub async fn wait_held(&self, name: &str, within: Duration) -> bool {
        let key = format!("{name}.png");
        self.wait(within, |s| s.held.contains(&key)).await
    }

    /// Waits until the photo `name` has been handed to the socket to its last byte.
    pub async fn wait_photo_sent(&self, name: &str, within: Duration) -> bool {
        let key = format!("{name}.png");
        self.wait(within, |s| s.photo_sent.contains_key(&key)).await
    }

    async fn wait(&self, within: Duration, done: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.shared.changed.notified();
            if done(&self.shared.seen.lock().expect("seen lock")) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                () = notified => {}
                () = sleep(Duration::from_millis(50)) => {}
            }
        }
    }
}

fn png(body: impl Into<Body>) -> Response {
    ([(header::CONTENT_TYPE, "image/png")], body.into()).into_response()
}

fn record_hit(shared: &Shared, name: &str) {
    let mut seen = shared.seen.lock().expect("seen lock");
    *seen.hits.entry(name.to_owned()).or_default() += 1;
}

async fn serve_ok(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    record_hit(&shared, &name);
    png(shared.small.clone())
}

async fn serve_held(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    record_hit(&shared, &name);
    shared.seen.lock().expect("seen lock").held.insert(name);
    shared.changed.notify_waiters();
    let mut release = shared.release.clone();
    // An error means the server is shutting down; answering then is harmless.
    let _ = release.wait_for(|go| *go).await;
    png(shared.small.clone())
}

async fn serve_photo(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    record_hit(&shared, &name);
    let chunks: Vec<Bytes> = shared
        .photo
        .chunks(16 * 1024)
        .map(|c| shared.photo.slice_ref(c))
        .collect();
    // hyper asks the body for its next chunk only after writing the previous one, so the
    // moment the stream is polled past its end is when the last byte went to the socket.
    let done = futures::stream::once(async move {
        shared
            .seen
            .lock()
            .expect("seen lock")
            .photo_sent
            .insert(name, Instant::now());
        shared.changed.notify_waiters();
        None::<Result<Bytes, std::io::Error>>
    });
    let stream = futures::StreamExt::filter_map(
        futures::StreamExt::chain(
            futures::stream::iter(chunks.into_iter().map(|c| Some(Ok(c)))),
            done,
        ),
        futures::future::ready,
    );
    png(Body::from_stream(stream))
}
