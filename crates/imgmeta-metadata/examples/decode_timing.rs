//! Times `decode` and `describe` on the files given as arguments, for sizing the worker's
//! time limits: `cargo run --release -p imgmeta-metadata --example decode_timing -- a.jpg b.png`

use imgmeta_metadata::{DecodeLimits, decode, describe};
use std::time::Instant;

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable file");
        let started = Instant::now();
        let decoded = match decode(&bytes, &DecodeLimits::default()) {
            Ok(decoded) => decoded,
            Err(e) => {
                println!("{path}: {} ({e}) after {:?}", e.code(), started.elapsed());
                continue;
            }
        };
        let decode_ms = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let metadata = describe(&bytes, &decoded);
        let describe_ms = started.elapsed().as_secs_f64() * 1e3;
        println!(
            "{path}: {} {}x{} ({} bytes): decode {decode_ms:.1} ms, describe {describe_ms:.1} ms",
            metadata.format, metadata.width, metadata.height, metadata.bytes
        );
    }
}
