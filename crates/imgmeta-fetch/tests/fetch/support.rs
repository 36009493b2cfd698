//! Test servers on loopback: a tiny hand-rolled HTTP/1.1 responder that can misbehave on
//! purpose (lie about lengths, drip, stall, never end), and that counts the connections it
//! accepted so tests can prove a refused fetch never reached it.
//!
//! Hand-rolled rather than axum because the hostile behaviours (a 10 GB `Content-Length` with
//! no body, a stalled socket) are exactly what a well-behaved server framework prevents.

use imgmeta_domain::ImageUrl;
use imgmeta_fetch::FetchConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete response with a correct `Content-Length`.
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    Redirect {
        status: u16,
        location: String,
    },
    /// Headers declaring `length` bytes, then a few bytes, then the socket stays open.
    DeclaredLength(u64),
    /// A chunked body that never ends.
    EndlessChunked,
    /// Headers declaring 1000 bytes, then one byte per `interval`.
    Drip(Duration),
    /// Reads the request and never answers.
    Silent,
    /// Declares `declared` bytes, sends `sent`, then closes the connection.
    Truncated {
        declared: usize,
        sent: usize,
    },
}

impl Reply {
    pub fn ok(body: &[u8], content_type: &str) -> Self {
        Self::Full {
            status: 200,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: body.to_vec(),
        }
    }

    pub fn status(status: u16) -> Self {
        Self::Full {
            status,
            headers: vec![("Content-Type", "text/plain".to_owned())],
            body: format!("status {status}").into_bytes(),
        }
    }

    pub fn redirect(location: impl Into<String>) -> Self {
        Self::Redirect {
            status: 302,
            location: location.into(),
        }
    }
}

type Router = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// A loopback server answering each request by its path.
pub struct TestServer {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 on a free port.
    pub async fn start(router: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), router)
            .await
            .expect("bind 127.0.0.1")
    }

    /// Starts a server on `bind` (for example `[::1]:0`); `None` if that address cannot be bound
    /// here (some sandboxes have no IPv6 loopback).
    pub async fn start_on(
        bind: SocketAddr,
        router: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> Option<Self> {
        let listener = TcpListener::bind(bind).await.ok()?;
        let addr = listener.local_addr().ok()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let router: Router = Arc::new(router);
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, router.clone()));
            }
        });
        Some(Self {
            addr,
            accepted,
            task,
        })
    }

    /// A server that answers every path with the same reply.
    pub async fn always(reply: Reply) -> Self {
        Self::start(move |_| reply.clone()).await
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self, path: &str) -> ImageUrl {
        ImageUrl::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    /// How many TCP connections the server has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, router: Router) {
    let Some(path) = read_request_path(&mut stream).await else {
        return;
    };
    // Write errors mean the client hung up, which is how every hostile reply is meant to end.
    let _ = reply(&mut stream, router(&path)).await;
}

async fn read_request_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    head.split_whitespace().nth(1).map(str::to_owned)
}

async fn reply(stream: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("Connection: close\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
        }
        Reply::Redirect { status, location } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nLocation: {location}\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
        }
        Reply::DeclaredLength(length) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\nGIF89a");
            stream.write_all(head.as_bytes()).await?;
            wait_for_hangup(stream).await;
        }
        Reply::EndlessChunked => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let chunk = [0x42u8; 64 * 1024];
            loop {
                stream.write_all(b"10000\r\n").await?;
                stream.write_all(&chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
        }
        Reply::Drip(interval) => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                .await?;
            loop {
                stream.write_all(b"x").await?;
                tokio::time::sleep(interval).await;
            }
        }
        Reply::Silent => wait_for_hangup(stream).await,
        Reply::Truncated { declared, sent } => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&vec![0x42u8; sent]).await?;
        }
    }
    stream.shutdown().await
}

/// Holds the connection open until the client closes it.
async fn wait_for_hangup(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// A configuration for tests against loopback servers: private destinations allowed and short
/// limits so hostile servers are cut off quickly.
pub fn dev_config() -> FetchConfig {
    FetchConfig {
        allow_private: true,
        connect_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_millis(1500),
        max_bytes: 1024 * 1024,
        ..FetchConfig::default()
    }
}

pub fn image_url(raw: &str) -> ImageUrl {
    ImageUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
}

/// A tiny but valid GIF, standing in for image bytes (the fetcher never decodes).
pub const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
