//! Batched inference: one forward pass over several images gives each image exactly what a
//! forward pass of that image alone gives (bit for bit), and the same detections. On a GPU,
//! where cuBLAS picks its summation order by the product's shape, each image of a batch meets
//! the parity test against onnxruntime's output as a single run does, so a batch and a single
//! run differ by at most twice that tolerance, and their detections agree within the parity
//! test's bounds.

use crate::parity::{assert_matched, corners, fixture, tolerance, worst_against_golden};
use crate::{detector, test_device};
use image::DynamicImage;
use imgmeta_vision::{DeviceKind, Objects};

/// Whether outputs must be bit-identical: on the CPU, where each image of a batch runs
/// through exactly the operations of a single run.
fn exact() -> bool {
    test_device() == DeviceKind::Cpu
}

/// The same objects: bit for bit where [`exact`], else the same classes with boxes
/// overlapping at IoU >= 0.99 and scores within 0.005 (the parity test's bounds).
fn assert_same_objects(a: &Objects, b: &Objects, what: &str) {
    if exact() {
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap(),
            "{what}"
        );
        return;
    }
    assert_eq!(a.detections.len(), b.detections.len(), "{what}");
    for d in &a.detections {
        assert_matched(what, &b.detections, &d.label, corners(d), d.score as f32);
    }
}

/// The photos with golden outputs, the first images of [`fixtures`].
const NAMES: [&str; 3] = ["chelsea", "coffee", "motorcycle"];

fn fixtures() -> Vec<DynamicImage> {
    // Different sizes and aspect ratios, so each image's letterbox differs.
    let mut images: Vec<DynamicImage> = NAMES.iter().map(|name| fixture(name).0).collect();
    // A tall crop, letterboxed on the other axis than the photos.
    let tall = images[2].crop_imm(40, 0, 220, images[2].height());
    images.push(tall);
    images
}

#[test]
fn a_batch_forward_pass_gives_each_image_the_output_of_its_single_run() {
    let images = fixtures();
    let refs: Vec<&DynamicImage> = images.iter().collect();
    let batch = detector().raw_outputs(&refs).unwrap();
    assert_eq!(batch.len(), images.len());
    for (i, (image, batched)) in images.iter().zip(&batch).enumerate() {
        let alone = detector().raw_output(image).unwrap();
        assert_eq!((batched.rows, batched.anchors), (alone.rows, alone.anchors));
        if exact() {
            let differing = batched
                .data
                .iter()
                .zip(&alone.data)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                differing, 0,
                "image {i}: {differing} values differ from its single run"
            );
            continue;
        }
        // Against onnxruntime, for the photos with golden outputs (not the tall crop).
        if let Some(name) = NAMES.get(i) {
            let (ratio, diff, row, anchor) = worst_against_golden(batched, &fixture(name).1);
            eprintln!(
                "{name} in a batch: output0 differs from onnxruntime's by at most {ratio:.2} of the tolerance ({diff} at row {row}, anchor {anchor})"
            );
            assert!(ratio <= 1.0, "{name} in a batch: {ratio} of the tolerance");
        }
        let mut worst = (0f32, 0usize, 0usize);
        for row in 0..alone.rows {
            for anchor in 0..alone.anchors {
                let (a, b) = (batched.at(row, anchor), alone.at(row, anchor));
                let ratio = (a - b).abs() / tolerance(row, b);
                if ratio > worst.0 {
                    worst = (ratio, row, anchor);
                }
            }
        }
        let (ratio, row, anchor) = worst;
        eprintln!(
            "image {i}: the batch differs from its single run by at most {ratio:.2} of the tolerance (row {row}, anchor {anchor}: {} vs {})",
            batched.at(row, anchor),
            alone.at(row, anchor)
        );
        assert!(ratio <= 2.0, "image {i}: {ratio} of the tolerance");
    }
}

#[test]
fn batched_detections_equal_single_detections_each_at_its_own_minimum_score() {
    let images = fixtures();
    let scores = [0.25, 0.5, 0.1, 0.3];
    let items: Vec<(&DynamicImage, f32)> = images.iter().zip(scores).collect();
    let batched = detector().detect_batch(&items).unwrap();
    assert_eq!(batched.len(), images.len());
    let mut found = 0;
    for (i, ((image, min_score), objects)) in items.iter().zip(&batched).enumerate() {
        let alone = detector().detect(image, *min_score).unwrap();
        assert_same_objects(objects, &alone, &format!("image {i}"));
        found += alone.detections.len();
    }
    assert!(
        found > 0,
        "the fixtures hold objects, so the comparison compared something"
    );
    // A batch of one is a single run; an empty batch is no run at all.
    let one = detector().detect_batch(&items[..1]).unwrap();
    assert_same_objects(&one[0], &batched[0], "a batch of one");
    assert!(detector().detect_batch(&[]).unwrap().is_empty());
    // Images prepared ahead (as a worker does, off the detector's threads) give the same.
    let prepared: Vec<_> = images
        .iter()
        .map(|image| detector().prepare(image).unwrap())
        .collect();
    let items: Vec<_> = prepared.iter().zip(scores).collect();
    let from_prepared = detector().detect_prepared(&items).unwrap();
    for (a, b) in from_prepared.iter().zip(&batched) {
        assert_same_objects(a, b, "prepared ahead");
    }
}
