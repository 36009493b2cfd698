//! Stand-in for `imgmeta bench detect <image> [--runs N] [--threads T]` that needs no
//! binary crate: fetches the model if needed, then prints the benchmark's JSON line.
//!
//!     cargo run --release -p imgmeta-vision --example bench_detect -- IMAGE [--runs N] [--threads T]

use imgmeta_vision::bench::{BenchConfig, detect};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: bench_detect IMAGE [--runs N] [--threads T]";
    let mut args = std::env::args().skip(1);
    let image = args.next().ok_or(usage)?;
    let (mut runs, mut threads) = (20, 2);
    while let Some(flag) = args.next() {
        let value: usize = args.next().ok_or(usage)?.parse()?;
        match flag.as_str() {
            "--runs" => runs = value,
            "--threads" => threads = value,
            _ => return Err(usage.into()),
        }
    }
    let model_dir = std::env::var_os("IMGMETA_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let files = imgmeta_models::ensure("yolov12n", &model_dir, cargo_home.as_deref())?;
    let report = detect(&BenchConfig {
        runs,
        threads,
        ..BenchConfig::new(image, files.weights)
    })?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
