//! Our reading of every fixture agrees with exiftool's (recorded by scripts/make_fixtures.py).

use crate::fixtures::{describe_fixture, with_expectations};
use serde_json::Value;

/// Numbers agree exactly: we print them as exiftool `-n` does (15 significant digits), so
/// its decimal and ours are the same f64 (`48.8583694444444`, not `48.85836944444444`).
fn assert_number(name: &str, field: &str, ours: &Value, theirs: &Value) {
    match (ours.as_f64(), theirs.as_f64()) {
        (Some(a), Some(b)) => assert!(a == b, "{name}: {field} is {a}, exiftool says {b}"),
        _ => assert_eq!(ours, theirs, "{name}: {field}"),
    }
}

#[test]
fn dimensions_frames_and_mime_agree_with_exiftool_for_every_fixture() {
    for (name, expected) in with_expectations() {
        let ours = serde_json::to_value(describe_fixture(&name)).unwrap();
        // `frames` is exiftool's count where it counts (GIF), else the fixture script's own
        // walk of the file (APNG fcTL chunks, WebP ANMF chunks, TIFF IFDs).
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
            assert_number(&name, key, &ours[key], &theirs[key]);
        }
        assert_eq!(
            ours["gps"].is_null(),
            theirs["gps"].is_null(),
            "{name}: gps presence"
        );
        for key in ["latitude", "longitude", "altitude_m"] {
            assert_number(&name, key, &ours["gps"][key], &theirs["gps"][key]);
        }
    }
}

#[test]
fn the_stored_layout_agrees_with_exiftool_for_every_fixture() {
    let mut seen = 0;
    for (name, expected) in with_expectations() {
        // Left out (null) where exiftool does not interpret the header (16- and 32-bit BMP).
        if expected["color_type"].is_null() {
            continue;
        }
        let ours = serde_json::to_value(describe_fixture(&name)).unwrap();
        for key in ["color_type", "bit_depth", "has_alpha"] {
            assert_eq!(ours[key], expected[key], "{name}: {key}");
        }
        seen += 1;
    }
    assert!(seen >= 20, "{seen} fixtures compared");
}

#[test]
fn warnings_are_what_each_fixture_sets_off_and_nothing_more() {
    for (name, expected) in with_expectations() {
        let ours = describe_fixture(&name);
        let codes: Vec<&str> = ours.warnings.iter().map(|w| w.code.as_str()).collect();
        let mut codes = codes;
        codes.sort_unstable();
        let theirs: Vec<&str> = expected["warnings"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: the expectation lists warnings"))
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(codes, theirs, "{name}: {:?}", ours.warnings);
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
fn descriptive_fields_agree_with_exiftool_for_every_fixture() {
    let mut seen = 0;
    for (name, expected) in with_expectations() {
        let ours = serde_json::to_value(describe_fixture(&name)).unwrap();
        let (ours, theirs) = (&ours["descriptive"], &expected["descriptive"]);
        assert_eq!(
            ours.is_null(),
            theirs.is_null(),
            "{name}: descriptive: {ours}"
        );
        if theirs.is_null() {
            continue;
        }
        for key in [
            "title",
            "description",
            "keywords",
            "creator",
            "copyright",
            "credit",
            "digital_source_type",
        ] {
            assert_eq!(ours[key], theirs[key], "{name}: descriptive.{key}");
        }
        let cut = |v: &Value| v.as_array().cloned().unwrap_or_default();
        assert_eq!(
            cut(&ours["truncated"]),
            cut(&theirs["truncated"]),
            "{name}: descriptive.truncated"
        );
        seen += 1;
    }
    assert!(seen >= 7, "{seen} fixtures with descriptive metadata");
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
    // The stored layouts the decoder widens, and the frames a header misstates.
    for (color_type, bit_depth) in [
        ("l1", 1),
        ("l2", 2),
        ("indexed", 4),
        ("indexed", 8),
        ("rgb16", 16),
        ("l16", 16),
        ("cmyk8", 8),
    ] {
        assert!(
            all.iter()
                .any(|(_, e)| e["color_type"] == color_type && e["bit_depth"] == bit_depth),
            "no {color_type} fixture of {bit_depth} bits"
        );
    }
    let gif_with_alpha = |alpha: bool| {
        all.iter()
            .any(|(_, e)| e["mime"] == "image/gif" && e["has_alpha"] == alpha)
    };
    assert!(gif_with_alpha(true) && gif_with_alpha(false));
    assert!(
        all.iter()
            .any(|(_, e)| e["mime"] == "image/tiff" && e["frames"].as_u64() > Some(1))
    );
    assert!(all.iter().any(|(_, e)| {
        e["frames_declared"]
            .as_u64()
            .is_some_and(|declared| Some(declared) < e["frames"].as_u64())
    }));
    assert!(all.iter().any(|(_, e)| {
        e["frames_declared"]
            .as_u64()
            .is_some_and(|declared| Some(declared) > e["frames"].as_u64())
    }));
    for code in ["gps_out_of_range", "trailing_data", "icc_unparsed"] {
        assert!(
            all.iter()
                .any(|(_, e)| e["warnings"].as_array().unwrap().contains(&code.into())),
            "no fixture sets off {code}"
        );
    }
}
