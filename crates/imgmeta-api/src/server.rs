//! The HTTP/1 server loop, written over hyper directly (rather than `axum::serve`) because the
//! inbound limits need hyper's connection settings and a hand on every connection: a
//! header-read timeout, caps on the number and size of request headers, a write deadline
//! ([`crate::connection`]), an idle timeout between kept-alive requests, and a cap on open
//! connections that closes idle connections first when it is reached.

use crate::connection::GuardedIo;
use crate::security::InboundLimits;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// File descriptors kept free for everything that is not a client connection (database and
/// broker pools, logs, the listener).
const RESERVED_FDS: u64 = 1024;

/// Raises the soft open-files limit to the hard one and returns the connection cap that fits
/// under it: `configured`, or less when the descriptors would not suffice.
pub(crate) fn connection_cap(configured: usize) -> usize {
    let soft = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let fits = soft.saturating_sub(RESERVED_FDS).max(16);
    let cap = configured.min(usize::try_from(fits).unwrap_or(usize::MAX));
    if cap < configured {
        tracing::warn!(
            configured,
            cap,
            open_files_limit = soft,
            "IMGMETA_MAX_CONNECTIONS lowered to fit the open-files limit"
        );
    }
    cap
}

/// One open connection, as the cap sees it.
struct Connection {
    /// Requests being served on it now.
    in_requests: AtomicUsize,
    /// Requests it has been served in all.
    served: AtomicU64,
    /// When it last finished a request (or opened), in ms since the server started.
    idle_since_ms: AtomicU64,
    /// Cancelled to close it (gracefully: a request in progress is finished first).
    close: CancellationToken,
}

/// Every open connection, so the cap can pick idle ones to close.
#[derive(Default)]
struct Registry {
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
}

impl Registry {
    fn len(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Asks an idle connection to close: one that never sent a whole request (the mark of a
    /// connection flood) before one that was served, and the one idle the longest among
    /// those. False when every connection is busy.
    fn shed_idle(&self) -> bool {
        let connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let idlest = connections
            .values()
            .filter(|c| c.in_requests.load(Ordering::Relaxed) == 0 && !c.close.is_cancelled())
            .min_by_key(|c| {
                (
                    c.served.load(Ordering::Relaxed) > 0,
                    c.idle_since_ms.load(Ordering::Relaxed),
                )
            });
        match idlest {
            Some(connection) => {
                connection.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, asks every
/// open connection to finish its current request, and waits for them.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: InboundLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopping = CancellationToken::new();
    let trigger = stopping.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let connections = TaskTracker::new();
    let registry = Arc::new(Registry::default());
    let started = Instant::now();
    let mut next_id: u64 = 0;
    let mut refused_since_log: u64 = 0;
    let mut last_refusal_log = Instant::now() - Duration::from_secs(60);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: pause rather than spin.
                Err(error) => {
                    tracing::warn!(kind = "error", error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopping.cancelled() => break,
        };
        // Over the cap, the idlest connection is closed; the ceiling above it bounds the
        // connections still finishing their graceful close.
        let open = registry.len();
        let ceiling = limits.max_connections + limits.max_connections / 8;
        if open >= ceiling || (open >= limits.max_connections && !registry.shed_idle()) {
            // Every connection is busy: this one is closed at once. Logged at most once a
            // second, with the count, so a flood cannot flood the log too.
            metrics::counter!(imgmeta_telemetry::CONNECTIONS_REFUSED, "reason" => "cap")
                .increment(1);
            refused_since_log += 1;
            if last_refusal_log.elapsed() >= Duration::from_secs(1) {
                tracing::warn!(
                    kind = "security",
                    event = "connections_refused",
                    refused = refused_since_log,
                    max_connections = limits.max_connections,
                    "connection cap reached with every connection busy; new connections closed"
                );
                refused_since_log = 0;
                last_refusal_log = Instant::now();
            }
            drop(stream);
            continue;
        }
        next_id += 1;
        let id = next_id;
        let now_ms = move || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let connection = Arc::new(Connection {
            in_requests: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(now_ms()),
            close: CancellationToken::new(),
        });
        registry
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, connection.clone());
        metrics::gauge!(imgmeta_telemetry::CONNECTIONS_OPEN).increment(1.0);
        let router = router.clone();
        let stopping = stopping.clone();
        let registry = registry.clone();
        connections.spawn(async move {
            let tracked = connection.clone();
            let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                let tracked = tracked.clone();
                tracked.in_requests.fetch_add(1, Ordering::Relaxed);
                tracked.served.fetch_add(1, Ordering::Relaxed);
                let response = router.clone().oneshot(request);
                async move {
                    let response = response.await;
                    tracked.idle_since_ms.store(
                        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    tracked.in_requests.fetch_sub(1, Ordering::Relaxed);
                    response
                }
            });
            let io = GuardedIo::new(stream, limits.response_write_timeout);
            let serving = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_headers(limits.max_headers)
                .max_header_size(limits.max_head_bytes)
                .serve_connection(TokioIo::new(io), service);
            tokio::pin!(serving);
            let idle_check = (limits.keep_alive_idle / 4).clamp(Duration::from_millis(25), Duration::from_secs(1));
            let mut ticks = tokio::time::interval(idle_check);
            let result = loop {
                tokio::select! {
                    result = serving.as_mut() => break result,
                    () = stopping.cancelled() => {
                        serving.as_mut().graceful_shutdown();
                        break serving.as_mut().await;
                    }
                    () = connection.close.cancelled() => {
                        metrics::counter!(imgmeta_telemetry::CONNECTIONS_CLOSED, "reason" => "shed").increment(1);
                        // One that never completed a request has no answer to finish: its
                        // socket closes now, even mid-head (a graceful close would wait for the
                        // header deadline). A served one closes once its answer is out.
                        if connection.served.load(Ordering::Relaxed) == 0 {
                            break Ok(());
                        }
                        serving.as_mut().graceful_shutdown();
                        break serving.as_mut().await;
                    }
                    _ = ticks.tick() => {
                        let idle_ms = now_ms().saturating_sub(connection.idle_since_ms.load(Ordering::Relaxed));
                        if connection.in_requests.load(Ordering::Relaxed) == 0
                            && Duration::from_millis(idle_ms) >= limits.keep_alive_idle
                        {
                            metrics::counter!(imgmeta_telemetry::CONNECTIONS_CLOSED, "reason" => "idle").increment(1);
                            serving.as_mut().graceful_shutdown();
                            break serving.as_mut().await;
                        }
                    }
                }
            };
            registry
                .connections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            metrics::gauge!(imgmeta_telemetry::CONNECTIONS_OPEN).decrement(1.0);
            if let Err(error) = result {
                if error.is_timeout() {
                    tracing::warn!(
                        kind = "security",
                        event = "header_read_timeout",
                        client.address = %remote,
                        "client too slow sending its request headers; disconnected"
                    );
                } else {
                    tracing::debug!(error = %error, client.address = %remote, "connection ended with an error");
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}
