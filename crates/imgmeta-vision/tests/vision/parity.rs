//! The candle YOLOv12n against onnxruntime: golden files written by `scripts/yolo_golden.py`
//! hold the reference runtime's raw `output0` (sampled anchors) and final detections for
//! each fixture photo.

use crate::detector;
use imgmeta_vision::{Detection, Detector, Objects, RawOutput, open_oriented};
use serde_json::Value;

/// Class probabilities (rows 4..) may differ from onnxruntime's by this much.
const OUTPUT0_TOLERANCE: f32 = 1e-3;
/// Box rows (0..4) are in input pixels, up to 640, where float32 values are 3e-5 to 6e-5
/// apart and the two runtimes sum convolutions in different orders (which order also
/// depends on the CPU's vector width). So they get the same 1e-3 plus 4e-6 of the value:
/// 3.6e-3 at 640 px, about 60 float32 steps there, still a thousandth of a pixel's scale.
const BOX_RELATIVE_TOLERANCE: f32 = 4e-6;

pub fn tolerance(row: usize, value: f32) -> f32 {
    match row {
        0..4 => OUTPUT0_TOLERANCE + BOX_RELATIVE_TOLERANCE * value.abs(),
        _ => OUTPUT0_TOLERANCE,
    }
}

pub fn fixture(name: &str) -> (image::DynamicImage, Value) {
    let dir = crate::crate_dir().join("tests/fixtures");
    let image = open_oriented(&dir.join(format!("{name}.png"))).unwrap();
    let golden = std::fs::read_to_string(dir.join(format!("{name}.golden.json"))).unwrap();
    (image, serde_json::from_str(&golden).unwrap())
}

fn f32_of(v: &Value) -> f32 {
    v.as_f64().expect("a number") as f32
}

/// The largest difference of `raw` from the golden `output0` relative to its tolerance:
/// `(ratio, difference, row, anchor)`, anchor `usize::MAX` for a channel's maximum.
pub fn worst_against_golden(raw: &RawOutput, golden: &Value) -> (f32, f32, usize, usize) {
    let reference = &golden["output0"];
    assert_eq!(
        reference["shape"],
        serde_json::json!([1, raw.rows, raw.anchors])
    );
    let mut worst = (0f32, 0f32, 0usize, 0usize);
    let anchors = reference["anchors"].as_array().unwrap();
    let values = reference["values"].as_array().unwrap();
    for (anchor, row_values) in anchors.iter().zip(values) {
        let anchor = anchor.as_u64().unwrap() as usize;
        for (row, expected) in row_values.as_array().unwrap().iter().enumerate() {
            let expected = f32_of(expected);
            let diff = (raw.at(row, anchor) - expected).abs();
            if diff / tolerance(row, expected) > worst.0 {
                worst = (diff / tolerance(row, expected), diff, row, anchor);
            }
        }
    }
    for (row, expected) in reference["channel_max"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let max = (0..raw.anchors)
            .map(|a| raw.at(row, a))
            .fold(f32::NEG_INFINITY, f32::max);
        let expected = f32_of(expected);
        let diff = (max - expected).abs();
        if diff / tolerance(row, expected) > worst.0 {
            worst = (diff / tolerance(row, expected), diff, row, usize::MAX);
        }
    }
    worst
}

fn assert_output0_matches(name: &str) {
    let (image, golden) = fixture(name);
    let raw = detector().raw_output(&image).unwrap();
    let worst = worst_against_golden(&raw, &golden);
    let (ratio, diff, row, anchor) = worst;
    eprintln!(
        "{name}: output0 differs by at most {ratio:.2} of the tolerance ({diff} at row {row}, anchor {anchor})"
    );
    assert!(
        ratio <= 1.0,
        "{name}: output0 differs by {diff} at row {row} anchor {anchor}"
    );
}

fn assert_detections_match(name: &str) {
    let (image, golden) = fixture(name);
    let min_score = f32_of(&golden["min_score"]);

    let objects: Objects = detector().detect(&image, min_score).unwrap();

    let expected = golden["detections"].as_array().unwrap();
    assert!(
        !expected.is_empty(),
        "{name}: the fixture should contain objects"
    );
    let found: Vec<String> = objects
        .detections
        .iter()
        .map(|d| format!("{} {:.3}", d.label, d.score))
        .collect();
    assert_eq!(
        objects.detections.len(),
        expected.len(),
        "{name}: found {found:?}"
    );
    for e in expected {
        let b = &e["box"];
        let eb = ["x_min", "y_min", "x_max", "y_max"].map(|k| b[k].as_f64().unwrap());
        let label = e["label"].as_str().unwrap();
        let d = assert_matched(name, &objects.detections, label, eb, f32_of(&e["score"]));
        assert_eq!(d.class_id as u64, e["class_id"].as_u64().unwrap());
    }
}

/// A detection's box as `[x_min, y_min, x_max, y_max]` in pixels.
pub fn corners(d: &Detection) -> [f64; 4] {
    [d.bbox.x_min, d.bbox.y_min, d.bbox.x_max, d.bbox.y_max]
}

/// The detection in `found` labelled `label` that overlaps the box `expected` most, which must
/// overlap it at IoU >= 0.99 and score within 0.005 of `score`.
pub fn assert_matched<'a>(
    what: &str,
    found: &'a [Detection],
    label: &str,
    expected: [f64; 4],
    score: f32,
) -> &'a Detection {
    let best = found
        .iter()
        .filter(|d| d.label == label)
        .map(|d| (iou(corners(d), expected), d))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let (overlap, d) = best.unwrap_or_else(|| {
        let listed: Vec<String> = found
            .iter()
            .map(|d| format!("{} {:.3}", d.label, d.score))
            .collect();
        panic!("{what}: no {label} found in {listed:?}")
    });
    assert!(overlap >= 0.99, "{what}: {label} box IoU {overlap}");
    let score_diff = (d.score as f32 - score).abs();
    assert!(
        score_diff <= 0.005,
        "{what}: {label} score differs by {score_diff}"
    );
    d
}

pub fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

#[test]
fn raw_output_on_the_cat_photo_matches_onnxruntime() {
    assert_output0_matches("chelsea");
}

#[test]
fn raw_output_on_the_coffee_photo_matches_onnxruntime() {
    assert_output0_matches("coffee");
}

#[test]
fn raw_output_on_the_motorcycle_photo_matches_onnxruntime() {
    assert_output0_matches("motorcycle");
}

#[test]
fn detections_on_the_cat_photo_match_onnxruntime() {
    assert_detections_match("chelsea");
}

#[test]
fn detections_on_the_coffee_photo_match_onnxruntime() {
    assert_detections_match("coffee");
}

#[test]
fn detections_on_the_motorcycle_photo_match_onnxruntime() {
    assert_detections_match("motorcycle");
}

#[test]
fn a_rotated_photo_gets_its_boxes_in_the_rotated_frame() {
    let (image, _) = fixture("chelsea");
    let upright = detector().detect(&image, 0.5).unwrap();
    let cat = &upright.detections[0];
    let (h, w) = (f64::from(image.height()), f64::from(image.width()));

    let rotated = detector().detect(&image.rotate90(), 0.5).unwrap();

    // A quarter turn clockwise sends (x, y) to (h - y, x).
    let expected = [
        h - cat.bbox.y_max,
        cat.bbox.x_min,
        h - cat.bbox.y_min,
        cat.bbox.x_max,
    ];
    let found = &rotated.detections[0];
    assert_eq!(found.label, "cat");
    let b = found.bbox;
    assert!(
        b.x_max <= h && b.y_max <= w,
        "boxes lie inside the rotated {h}x{w} frame"
    );
    let overlap = iou([b.x_min, b.y_min, b.x_max, b.y_max], expected);
    assert!(overlap >= 0.85, "rotated cat box IoU {overlap}");
}

#[test]
fn objects_serialise_to_the_result_schema() {
    let (image, _) = fixture("coffee");

    let json = serde_json::to_value(detector().detect(&image, 0.5).unwrap()).unwrap();

    let model = json["model"].as_object().unwrap();
    let mut keys: Vec<&str> = model.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "input_size",
            "iou_threshold",
            "min_score",
            "name",
            "weights_sha256"
        ]
    );
    assert_eq!(json["model"]["name"], "yolov12n");
    let first = &json["detections"][0];
    assert_eq!(first["label"], "cup");
    for frame in ["box", "box_normalized"] {
        for key in ["x_min", "y_min", "x_max", "y_max"] {
            assert!(first[frame][key].is_number(), "{frame}.{key}");
        }
    }
    assert!(first["box_normalized"]["x_max"].as_f64().unwrap() <= 1.0);
}

#[test]
fn the_detector_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Detector>();
}
