//! Batched inference: one forward pass over several images gives each image exactly what a
//! forward pass of that image alone gives (bit for bit), and the same detections.

use crate::detector;
use crate::parity::fixture;
use image::DynamicImage;

fn fixtures() -> Vec<DynamicImage> {
    // Different sizes and aspect ratios, so each image's letterbox differs.
    let mut images: Vec<DynamicImage> = ["chelsea", "coffee", "motorcycle"]
        .iter()
        .map(|name| fixture(name).0)
        .collect();
    // A tall crop, letterboxed on the other axis than the photos.
    let tall = images[2].crop_imm(40, 0, 220, images[2].height());
    images.push(tall);
    images
}

#[test]
fn a_batch_forward_pass_is_bit_identical_to_single_runs() {
    let images = fixtures();
    let refs: Vec<&DynamicImage> = images.iter().collect();
    let batch = detector().raw_outputs(&refs).unwrap();
    assert_eq!(batch.len(), images.len());
    for (i, (image, batched)) in images.iter().zip(&batch).enumerate() {
        let alone = detector().raw_output(image).unwrap();
        assert_eq!((batched.rows, batched.anchors), (alone.rows, alone.anchors));
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
    for ((image, min_score), objects) in items.iter().zip(&batched) {
        let alone = detector().detect(image, *min_score).unwrap();
        assert_eq!(
            serde_json::to_value(objects).unwrap(),
            serde_json::to_value(&alone).unwrap()
        );
        found += alone.detections.len();
    }
    assert!(
        found > 0,
        "the fixtures hold objects, so the comparison compared something"
    );
    // A batch of one is a single run; an empty batch is no run at all.
    let one = detector().detect_batch(&items[..1]).unwrap();
    assert_eq!(
        serde_json::to_value(&one[0]).unwrap(),
        serde_json::to_value(&batched[0]).unwrap()
    );
    assert!(detector().detect_batch(&[]).unwrap().is_empty());
    // Images prepared ahead (as a worker does, off the detector's threads) give the same.
    let prepared: Vec<_> = images
        .iter()
        .map(|image| detector().prepare(image).unwrap())
        .collect();
    let items: Vec<_> = prepared.iter().zip(scores).collect();
    let from_prepared = detector().detect_prepared(&items).unwrap();
    for (a, b) in from_prepared.iter().zip(&batched) {
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap()
        );
    }
}
