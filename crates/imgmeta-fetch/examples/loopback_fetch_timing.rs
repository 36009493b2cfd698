//! Measures the fetcher's own overhead per fetch (pinned client per hop, DNS through
//! `localhost`, connect, request, 3-byte body) against a minimal server on loopback.
//!
//! Run with `cargo run --release -p imgmeta-fetch --example loopback_fetch_timing`.

use imgmeta_domain::ImageUrl;
use imgmeta_fetch::{FetchConfig, Fetcher};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FETCHES: u32 = 500;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nGIF",
                    )
                    .await;
            });
        }
    });

    let started = Instant::now();
    let fetcher = Fetcher::new(FetchConfig {
        allow_private: true,
        ..FetchConfig::default()
    })?;
    println!("Fetcher::new: {:?}", started.elapsed());

    let url = ImageUrl::parse(&format!("http://localhost:{port}/a.gif"))?;
    fetcher.fetch(&url).await?;
    let started = Instant::now();
    for _ in 0..FETCHES {
        fetcher.fetch(&url).await?;
    }
    println!(
        "fetch via localhost: {:?} each over {FETCHES}",
        started.elapsed() / FETCHES
    );
    Ok(())
}
