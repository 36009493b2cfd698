//! Detection on a HEIC equals detection on the same pixels saved as PNG, and finds what the
//! original photo shows: the HEIC path (libheif, its `irot`) feeds the detector exactly what
//! a PNG of its pixels would.

use crate::detector;
use image::{DynamicImage, ImageFormat};
use imgmeta_vision::{Detection, decode_oriented, open_oriented};
use std::io::Cursor;

const MIN_SCORE: f32 = 0.25;

fn iou(a: &Detection, b: &Detection) -> f64 {
    let (a, b) = (a.bbox, b.bbox);
    let w = (a.x_max.min(b.x_max) - a.x_min.max(b.x_min)).max(0.0);
    let h = (a.y_max.min(b.y_max) - a.y_min.max(b.y_min)).max(0.0);
    let area = |x: imgmeta_vision::BoundingBox| (x.x_max - x.x_min) * (x.y_max - x.y_min);
    w * h / (area(a) + area(b) - w * h)
}

#[test]
fn detections_on_a_heic_equal_those_on_its_pixels_saved_as_png() {
    // fixtures/images/motorcycle_orientation6.heic: the motorcycle photo cropped to 432x288,
    // stored turned anticlockwise and shown upright by its irot (scripts/make_fixtures.py).
    let root = crate::crate_dir().join("../..");
    let heic = std::fs::read(root.join("fixtures/images/motorcycle_orientation6.heic")).unwrap();
    let from_heic = decode_oriented(&heic).unwrap();
    assert_eq!((from_heic.width(), from_heic.height()), (432, 288));

    let mut png = Vec::new();
    from_heic
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    let from_png = decode_oriented(&png).unwrap();
    assert_eq!(
        from_png.to_rgb8(),
        from_heic.to_rgb8(),
        "PNG keeps every pixel"
    );

    let on_heic = detector().detect(&from_heic, MIN_SCORE).unwrap();
    let on_png = detector().detect(&from_png, MIN_SCORE).unwrap();
    assert!(!on_heic.detections.is_empty());
    assert_eq!(on_heic, on_png);

    // And the HEIC shows the photo upright: its confident detections are the original's,
    // in the same places (lossy coding moves a box by a pixel or two at most).
    let original = open_oriented(&crate::crate_dir().join("tests/fixtures/motorcycle.png"))
        .unwrap()
        .crop_imm(4, 4, 432, 288);
    let on_original = detector()
        .detect(&DynamicImage::ImageRgb8(original.to_rgb8()), MIN_SCORE)
        .unwrap();
    let confident: Vec<_> = on_original
        .detections
        .iter()
        .filter(|d| d.score >= 0.5)
        .collect();
    assert!(!confident.is_empty(), "the photo has confident detections");
    for found in confident {
        let best = on_heic
            .detections
            .iter()
            .filter(|d| d.label == found.label)
            .map(|d| iou(d, found))
            .fold(0.0, f64::max);
        assert!(
            best > 0.9,
            "{} at {:?}: best IoU {best:.3}",
            found.label,
            found.bbox
        );
    }
}
