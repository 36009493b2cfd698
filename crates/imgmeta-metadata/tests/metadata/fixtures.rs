//! Loading the images under `fixtures/images/` and their exiftool expectations.

use imgmeta_metadata::{DecodeLimits, ImageMetadata, decode, describe};
use std::path::PathBuf;

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images")
}

pub fn bytes(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Decodes and describes a fixture with the default limits.
pub fn describe_fixture(name: &str) -> ImageMetadata {
    let bytes = bytes(name);
    let decoded =
        decode(&bytes, &DecodeLimits::default()).unwrap_or_else(|e| panic!("decoding {name}: {e}"));
    describe(&bytes, &decoded)
}

/// Every fixture that has an `<image>.expected.json`, with that JSON.
pub fn with_expectations() -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir()).expect("fixtures/images exists") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(image) = name.strip_suffix(".expected.json") {
            let json = std::fs::read_to_string(dir().join(&name)).unwrap();
            out.push((image.to_owned(), serde_json::from_str(&json).unwrap()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 10,
        "expected the committed fixture set, found {}",
        out.len()
    );
    out
}
