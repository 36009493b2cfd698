//! Our reading of every fixture agrees with exiftool's (recorded by scripts/make_fixtures.py).

use crate::fixtures::{describe_fixture, with_expectations};
use serde_json::Value;

/// GPS to 4 decimals (about 11 m), as the product issue asks; other numbers more tightly.
const GPS_TOLERANCE: f64 = 0.5e-4;
const NUMBER_TOLERANCE: f64 = 1e-9;

fn assert_number(name: &str, field: &str, ours: &Value, theirs: &Value, tolerance: f64) {
    match (ours.as_f64(), theirs.as_f64()) {
        (Some(a), Some(b)) => assert!(
            (a - b).abs() <= tolerance,
            "{name}: {field} is {a}, exiftool says {b}"
        ),
        _ => assert_eq!(ours, theirs, "{name}: {field}"),
    }
}

#[test]
fn dimensions_frames_and_mime_agree_with_exiftool_for_every_fixture() {
    for (name, expected) in with_expectations() {
        let ours = serde_json::to_value(describe_fixture(&name)).unwrap();
        for key in [
            "width",
            "height",
            "oriented_width",
            "oriented_height",
            "frames",
            "sha256",
        ] {
            assert_eq!(ours[key], expected[key], "{name}: {key}");
        }
        // exiftool calls an animated PNG image/apng; we report every PNG as image/png.
        let mime = expected["mime"]
            .as_str()
            .unwrap()
            .replace("image/apng", "image/png");
        assert_eq!(ours["mime"], mime, "{name}: mime");
    }
}

#[test]
fn exif_fields_agree_with_exiftool_for_every_fixture() {
    for (name, expected) in with_expectations() {
        let ours = serde_json::to_value(describe_fixture(&name)).unwrap();
        let (ours, theirs) = (&ours["exif"], &expected["exif"]);
        assert_eq!(
            ours.is_null(),
            theirs.is_null(),
            "{name}: exif presence: {ours}"
        );
        if theirs.is_null() {
            continue;
        }
        for key in [
            "make",
            "model",
            "lens",
            "orientation",
            "datetime_original",
            "iso",
        ] {
            assert_eq!(ours[key], theirs[key], "{name}: exif.{key}");
        }
        for key in ["exposure_time_s", "f_number", "focal_length_mm"] {
            assert_number(&name, key, &ours[key], &theirs[key], NUMBER_TOLERANCE);
        }
        assert_eq!(
            ours["gps"].is_null(),
            theirs["gps"].is_null(),
            "{name}: gps presence"
        );
        for key in ["latitude", "longitude", "altitude_m"] {
            assert_number(
                &name,
                key,
                &ours["gps"][key],
                &theirs["gps"][key],
                GPS_TOLERANCE,
            );
        }
    }
}

#[test]
fn icc_descriptions_agree_with_exiftool_for_every_fixture() {
    let mut seen = 0;
    for (name, expected) in with_expectations() {
        let ours = serde_json::to_value(describe_fixture(&name)).unwrap();
        assert_eq!(ours["icc"], expected["icc"], "{name}: icc");
        seen += usize::from(!expected["icc"].is_null());
    }
    assert!(
        seen >= 2,
        "both the v2 (desc) and v4 (mluc) profile fixtures are checked"
    );
}

#[test]
fn the_fixture_set_covers_each_required_format_and_feature() {
    let all = with_expectations();
    for mime in [
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
    ] {
        assert!(
            all.iter().any(|(_, e)| e["mime"] == mime),
            "no {mime} fixture"
        );
    }
    let southern_western_below_sea = all.iter().any(|(_, e)| {
        let gps = &e["exif"]["gps"];
        gps["latitude"].as_f64() < Some(0.0)
            && gps["longitude"].as_f64() < Some(0.0)
            && gps["altitude_m"].as_f64() < Some(0.0)
    });
    assert!(southern_western_below_sea);
    assert!(all.iter().any(|(_, e)| e["exif"]["orientation"] == 6));
    assert!(
        all.iter()
            .any(|(_, e)| e["frames"].as_u64() > Some(1) && e["mime"] == "image/webp")
    );
}
