//! Exact fields: the layout as stored, frames counted by walking the file, GPS kept on the
//! globe, the warnings, and numbers printed as short decimals.

use crate::bombs::{exif_text_bomb, iccp_bomb};
use crate::fixtures::{bytes, describe_fixture, with_expectations};
use imgmeta_domain::ErrorCode;
use imgmeta_metadata::{DecodeLimits, ImageMetadata, WarningCode, decode, describe};

fn describe_bytes(bytes: &[u8]) -> ImageMetadata {
    let decoded = decode(bytes, &DecodeLimits::default()).expect("decodes");
    describe(bytes, &decoded)
}

fn codes(described: &ImageMetadata) -> Vec<WarningCode> {
    described.warnings.iter().map(|w| w.code).collect()
}

fn with_max_frames(max_frames: u32) -> DecodeLimits {
    DecodeLimits {
        max_frames,
        ..DecodeLimits::default()
    }
}

#[test]
fn an_opaque_gif87a_is_indexed_without_alpha() {
    let described = describe_fixture("opaque87a.gif");
    assert_eq!(described.color_type, "indexed");
    assert_eq!(described.bit_depth, 4);
    assert!(!described.has_alpha);
    assert!(describe_fixture("transparent89a.gif").has_alpha);
}

#[test]
fn low_depth_and_palette_pngs_report_their_stored_depth() {
    for (name, color_type, bit_depth, has_alpha) in [
        ("grey1.png", "l1", 1, false),
        ("grey2.png", "l2", 2, false),
        ("palette4.png", "indexed", 4, false),
        ("palette8_trns.png", "indexed", 8, true),
        ("rgb16.png", "rgb16", 16, false),
        ("grey16.tiff", "l16", 16, false),
        ("cmyk.jpg", "cmyk8", 8, false),
    ] {
        let described = describe_fixture(name);
        assert_eq!(
            (
                described.color_type.as_str(),
                described.bit_depth,
                described.has_alpha
            ),
            (color_type, bit_depth, has_alpha),
            "{name}"
        );
    }
}

#[test]
fn an_apng_counts_its_frames_not_its_header() {
    assert_eq!(describe_fixture("apng_declares1_has4.png").frames, 4);
    // A header of 100,000 frames over 2 is not refused as too large.
    assert_eq!(describe_fixture("apng_declares100000_has2.png").frames, 2);
    let refused = decode(&bytes("apng_declares1_has4.png"), &with_max_frames(3));
    assert_eq!(refused.unwrap_err().code(), ErrorCode::ImageTooLarge);
}

#[test]
fn every_page_of_a_tiff_is_counted() {
    assert_eq!(describe_fixture("pages3.tiff").frames, 3);
    let refused = decode(&bytes("pages3.tiff"), &with_max_frames(2));
    assert_eq!(refused.unwrap_err().code(), ErrorCode::ImageTooLarge);
}

#[test]
fn a_gps_position_off_the_globe_is_null_with_a_warning() {
    let described = describe_fixture("gps_off_globe.jpg");
    let exif = described
        .exif
        .as_ref()
        .expect("the rest of the EXIF is read");
    assert_eq!(exif.gps, None);
    assert_eq!(exif.model.as_deref(), Some("IM-500"));
    assert_eq!(codes(&described), [WarningCode::GpsOutOfRange]);
    // The message names what is wrong, never the coordinates (GPS may be redacted).
    let message = &described.warnings[0].message;
    assert!(
        message.contains("latitude is beyond ±90° and its longitude beyond ±180°"),
        "{message}"
    );
    assert!(
        !message.contains("91") && !message.contains("200"),
        "{message}"
    );
}

#[test]
fn bytes_after_the_end_marker_are_a_warning_in_every_format_that_has_one() {
    for name in [
        "scene_q95.jpg",
        "alpha.png",
        "animated.gif",
        "animated.webp",
    ] {
        let mut appended = bytes(name);
        appended.extend(b"0123456789ab");
        let described = describe_bytes(&appended);
        assert_eq!(codes(&described), [WarningCode::TrailingData], "{name}");
        assert!(
            described.warnings[0].message.starts_with("12 bytes"),
            "{name}: {}",
            described.warnings[0].message
        );
    }
}

#[test]
fn an_ordinary_image_has_an_empty_list_of_warnings() {
    let json = serde_json::to_value(describe_fixture("camera_north_east.jpg")).unwrap();
    assert_eq!(json["warnings"], serde_json::json!([]));
}

#[test]
fn cut_text_and_unread_profiles_are_warnings_too() {
    let text_bomb = exif_text_bomb(5_000);
    let described = describe_bytes(&text_bomb);
    assert_eq!(codes(&described), [WarningCode::TextTruncated]);
    let json = serde_json::to_value(&described.warnings[0]).unwrap();
    assert_eq!(json["code"], "text_truncated");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("make, model, lens"),
        "{json}"
    );

    let profile_bomb = iccp_bomb(8 * 1024 * 1024);
    assert_eq!(
        codes(&describe_bytes(&profile_bomb)),
        [WarningCode::IccUnparsed]
    );
}

/// Significant digits of a JSON number as printed: no sign, exponent or leading zeros.
fn significant_digits(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_start_matches('0');
    // Trailing zeros of an integer part are significant only as placeholders.
    if mantissa.contains('.') {
        trimmed.len()
    } else {
        trimmed.trim_end_matches('0').len()
    }
}

fn numbers(value: &serde_json::Value, out: &mut Vec<(String, serde_json::Number)>, at: &str) {
    match value {
        serde_json::Value::Number(n) => out.push((at.to_owned(), n.clone())),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                numbers(item, out, &format!("{at}[{i}]"));
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                numbers(item, out, &format!("{at}.{key}"));
            }
        }
        _ => {}
    }
}

#[test]
fn every_number_prints_as_a_short_decimal() {
    for (name, _) in with_expectations() {
        let value = serde_json::to_value(describe_fixture(&name)).unwrap();
        let mut found = Vec::new();
        numbers(&value, &mut found, "image");
        for (at, number) in found {
            let printed = number.to_string();
            let limit = if at.ends_with(".fraction") { 4 } else { 15 };
            let digits = if at.ends_with(".fraction") {
                printed.split('.').nth(1).map_or(0, str::len)
            } else {
                significant_digits(&printed)
            };
            assert!(digits <= limit, "{name}: {at} prints as {printed}");
        }
    }
}
