//! Prints `result.image` for each file given, one JSON document per line, or the error
//! envelope: `cargo run -p imgmeta-metadata --example describe -- photo.jpg`

use imgmeta_domain::ErrorBody;
use imgmeta_metadata::{DecodeLimits, decode, describe};

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable file");
        let json = match decode(&bytes, &DecodeLimits::default()) {
            Ok(decoded) => serde_json::to_value(describe(&bytes, &decoded)).expect("serialises"),
            Err(e) => ErrorBody::new(e.code(), e.to_string()).envelope(),
        };
        println!("{json}");
    }
}
