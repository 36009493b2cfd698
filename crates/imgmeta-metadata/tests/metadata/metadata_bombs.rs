//! Metadata built to be expensive (one huge string behind several EXIF fields, a compressed
//! ICC profile of hundreds of megabytes) gives a small result that says what was cut.

use crate::bombs::{exif_text_bomb, iccp_bomb};
use imgmeta_metadata::{DecodeLimits, decode, describe};
use std::time::{Duration, Instant};

#[test]
fn an_exif_text_bomb_gives_a_small_result_with_the_cut_fields_listed() {
    // Make, Model and LensModel all point at one 5 MB string.
    let png = exif_text_bomb(5_000_000);
    let decoded = decode(&png, &DecodeLimits::default()).expect("a valid 1x1 PNG");
    let described = describe(&png, &decoded);
    let json = serde_json::to_vec(&described).unwrap();
    assert!(json.len() <= 256 * 1024, "{} bytes", json.len());

    let exif = described.exif.expect("the EXIF block parses");
    let cut = "A".repeat(256);
    assert_eq!(exif.make.as_deref(), Some(cut.as_str()));
    assert_eq!(exif.model.as_deref(), Some(cut.as_str()));
    assert_eq!(exif.lens.as_deref(), Some(cut.as_str()));
    assert_eq!(exif.truncated, ["make", "model", "lens"]);
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        value["exif"]["truncated"],
        serde_json::json!(["make", "model", "lens"])
    );
}

#[test]
fn an_iccp_bomb_is_not_inflated_and_its_profile_is_reported_as_cut() {
    // 256 MiB of zeros behind about 1.3 MB of file.
    let png = iccp_bomb(256 * 1024 * 1024);
    let started = Instant::now();
    let decoded = decode(&png, &DecodeLimits::default()).expect("a valid 1x1 PNG");
    let described = describe(&png, &decoded);
    let elapsed = started.elapsed();
    assert_eq!(
        serde_json::to_value(&described).unwrap()["icc"],
        serde_json::json!({"description": null, "truncated": ["profile"]})
    );
    assert_eq!((described.width, described.height), (1, 1));
    // Inflating 4 MiB, not 256 MiB twice.
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn a_profile_of_normal_size_in_a_png_is_still_described() {
    let described = crate::fixtures::describe_fixture("icc_damaged.png");
    let icc = described.icc.expect("the fixture embeds a profile");
    assert_eq!(icc.description.as_deref(), Some("Damaged but described"));
    assert!(icc.truncated.is_empty());
}
