//! `result.image` has exactly the agreed keys, and decoding orients the pixels.

use crate::fixtures::{bytes, describe_fixture};
use imgmeta_metadata::{DecodeLimits, ImageMetadata, decode};
use std::collections::BTreeSet;

fn keys(value: &serde_json::Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn the_result_has_exactly_the_agreed_keys() {
    let value = serde_json::to_value(describe_fixture("camera_orientation6.jpg")).unwrap();
    let top: BTreeSet<&str> = [
        "format",
        "mime",
        "bytes",
        "width",
        "height",
        "oriented_width",
        "oriented_height",
        "color_type",
        "bit_depth",
        "has_alpha",
        "frames",
        "sha256",
        "phash",
        "dominant_colors",
        "exif",
        "icc",
        "descriptive",
        "c2pa",
        "warnings",
    ]
    .into();
    assert_eq!(keys(&value), top);
    let exif: BTreeSet<&str> = [
        "make",
        "model",
        "lens",
        "orientation",
        "datetime_original",
        "exposure_time_s",
        "f_number",
        "iso",
        "focal_length_mm",
        "gps",
    ]
    .into();
    assert_eq!(keys(&value["exif"]), exif);
    assert_eq!(
        keys(&value["exif"]["gps"]),
        ["latitude", "longitude", "altitude_m"].into()
    );
    assert_eq!(
        keys(&value["dominant_colors"][0]),
        ["hex", "fraction"].into()
    );
}

#[test]
fn missing_exif_icc_and_descriptive_metadata_are_null() {
    let value = serde_json::to_value(describe_fixture("alpha.png")).unwrap();
    assert!(value["exif"].is_null());
    assert!(value["icc"].is_null());
    assert!(value["descriptive"].is_null());
}

#[test]
fn descriptive_metadata_has_every_key_even_when_only_some_are_found() {
    let value = serde_json::to_value(describe_fixture("descriptive_ai.webp")).unwrap();
    let descriptive: BTreeSet<&str> = [
        "title",
        "description",
        "keywords",
        "creator",
        "copyright",
        "credit",
        "digital_source_type",
    ]
    .into();
    assert_eq!(keys(&value["descriptive"]), descriptive);
    assert_eq!(value["descriptive"]["keywords"], serde_json::json!([]));
    assert!(value["descriptive"]["credit"].is_null());
}

#[test]
fn the_result_round_trips_through_json() {
    let described = describe_fixture("exif_icc.webp");
    let json = serde_json::to_string(&described).unwrap();
    let back: ImageMetadata = serde_json::from_str(&json).unwrap();
    assert_eq!(back, described);
}

#[test]
fn formats_are_named_in_lowercase_after_their_mime_type() {
    for (name, format) in [
        ("scene_q95.jpg", "jpeg"),
        ("alpha.png", "png"),
        ("animated.gif", "gif"),
        ("animated.webp", "webp"),
        ("plain.bmp", "bmp"),
        ("plain.tiff", "tiff"),
    ] {
        let described = describe_fixture(name);
        assert_eq!(described.format, format, "{name}");
        assert_eq!(described.mime, format!("image/{format}"), "{name}");
    }
}

#[test]
fn a_jpeg_with_orientation_6_decodes_to_upright_pixels() {
    let decoded = decode(&bytes("camera_orientation6.jpg"), &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.stored_dimensions(), (160, 120));
    assert_eq!(
        (decoded.image().width(), decoded.image().height()),
        (120, 160)
    );
}

#[test]
fn a_png_with_alpha_reports_its_alpha_channel_and_depth() {
    let described = describe_fixture("alpha.png");
    assert!(described.has_alpha);
    assert_eq!(described.color_type, "rgba8");
    assert_eq!(described.bit_depth, 8);
    let jpeg = describe_fixture("scene_q95.jpg");
    assert!(!jpeg.has_alpha);
    assert_eq!(jpeg.color_type, "rgb8");
    assert_eq!(jpeg.bytes, bytes("scene_q95.jpg").len() as u64);
}

#[test]
fn the_other_formats_image_decodes_are_named_too() {
    // RGBA, because an ICO's embedded PNG must be RGBA to decode.
    let picture = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(16, 8, |x, y| {
        image::Rgba([x as u8 * 16, y as u8 * 32, 128, 255])
    }));
    for (format, name, mime) in [
        (image::ImageFormat::Ico, "ico", "image/x-icon"),
        (image::ImageFormat::Pnm, "pnm", "image/x-portable-anymap"),
        (image::ImageFormat::Qoi, "qoi", "image/qoi"),
    ] {
        let mut encoded = std::io::Cursor::new(Vec::new());
        picture.write_to(&mut encoded, format).unwrap();
        let encoded = encoded.into_inner();
        let decoded = decode(&encoded, &DecodeLimits::default()).unwrap();
        let described = imgmeta_metadata::describe(&encoded, &decoded);
        assert_eq!(
            (described.format.as_str(), described.mime.as_str()),
            (name, mime)
        );
        assert_eq!((described.width, described.height), (16, 8));
    }
}
