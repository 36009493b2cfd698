//! DeepDream through the real network: its gradient against finite differences, the
//! objective rising, determinism for a seed, and the dream's size and change.

use crate::detector;
use crate::parity::fixture;
use image::{DynamicImage, GenericImageView};
use imgmeta_domain::DreamOptions;
use serde_json::json;

fn options(value: serde_json::Value) -> DreamOptions {
    DreamOptions::parse(&value).unwrap()
}

/// The cat photo at `size`, as `[3, h, w]` values in 0..1.
fn chw_of_cat((w, h): (u32, u32)) -> Vec<f32> {
    let (image, _) = fixture("chelsea");
    let small = image
        .resize_exact(w, h, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let n = (w * h) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in small.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = f32::from(p[c]) / 255.0;
        }
    }
    out
}

/// A small deterministic generator for the pixels to check (no dependency for one test).
fn pick(n: usize, count: usize) -> Vec<usize> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        })
        .collect()
}

/// Central differences of the objective at random pixels against autograd's gradient.
///
/// The five-point stencil `(f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)) / 12h`: the objective
/// curves strongly in a single pixel compared with its slope there, so the three-point
/// difference's h² error exceeds the tolerance at any h large enough for a float32 network
/// to resolve the change; this stencil cancels that term.
fn assert_gradient_matches_finite_differences(opts: &DreamOptions) {
    let size = (64, 64);
    let x = chw_of_cat(size);
    let (_, grad) = detector().dream_gradient(&x, size, opts).unwrap();
    let objective = |i: usize, delta: f32| {
        let mut moved = x.clone();
        moved[i] += delta;
        detector().dream_gradient(&moved, size, opts).unwrap().0 as f64
    };
    // About 5 grey levels of 255: smaller steps drown in the network's own float32 rounding
    // (measured: the error grows as h shrinks below 1e-2), larger ones in curvature.
    let h = 2e-2f32;
    let largest = grad.iter().fold(0f32, |m, g| m.max(g.abs()));
    let mut worst = (0f64, 0usize, 0f64, 0f64);
    for i in pick(x.len(), 24) {
        let numeric = (objective(i, -2.0 * h) - 8.0 * objective(i, -h) + 8.0 * objective(i, h)
            - objective(i, 2.0 * h))
            / (12.0 * h as f64);
        let analytic = grad[i] as f64;
        // Relative to the larger of the two, with a floor of a hundredth of the largest
        // gradient so that pixels the objective barely depends on are compared absolutely.
        let scale = numeric.abs().max(analytic.abs()).max(0.01 * largest as f64);
        let error = (numeric - analytic).abs() / scale;
        if error > worst.0 {
            worst = (error, i, numeric, analytic);
        }
    }
    assert!(
        worst.0 <= 2e-2,
        "relative error {:.4} at value {}: finite differences {:e}, autograd {:e}",
        worst.0,
        worst.1,
        worst.2,
        worst.3
    );
    eprintln!("largest relative error {:.4}", worst.0);
}

#[test]
fn the_layer_objective_gradient_matches_central_finite_differences() {
    assert_gradient_matches_finite_differences(&options(json!({"layers": ["model.2", "model.6"]})));
}

#[test]
fn the_class_objective_gradient_matches_central_finite_differences() {
    assert_gradient_matches_finite_differences(&options(json!({"class": "cat"})));
}

#[test]
fn the_objective_rises_at_every_one_of_the_first_steps() {
    let (image, _) = fixture("chelsea");
    let opts = options(json!({"octaves": 1, "steps": 6, "jitter": 0, "max_side": 128}));
    let dream = detector().dream(&image, &opts).unwrap();
    let values = &dream.octaves[0].objective;
    assert_eq!(values.len(), 6);
    assert!(
        values.windows(2).all(|p| p[1] > p[0]),
        "objective per step: {values:?}"
    );
}

#[test]
fn a_dream_is_deterministic_for_a_seed_keeps_the_size_and_changes_the_image() {
    let (image, _) = fixture("chelsea");
    // An odd size, so the working size differs from the input's.
    let image = DynamicImage::ImageRgb8(image.crop_imm(5, 3, 301, 203).to_rgb8());
    let opts = options(json!({"octaves": 2, "steps": 3, "max_side": 160, "seed": 7}));
    let a = detector().dream(&image, &opts).unwrap();
    let b = detector().dream(&image, &opts).unwrap();
    assert_eq!(a.image.dimensions(), image.dimensions());
    assert_eq!(a.image, b.image, "same seed, same dream");
    let other = detector()
        .dream(
            &image,
            &options(json!({"octaves": 2, "steps": 3, "max_side": 160, "seed": 8})),
        )
        .unwrap();
    assert_ne!(a.image, other.image, "another seed jitters differently");

    let input = image.to_rgb8();
    let mean_change = input
        .as_raw()
        .iter()
        .zip(a.image.as_raw())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .sum::<f64>()
        / input.as_raw().len() as f64;
    assert!(mean_change > 2.0, "mean change of {mean_change:.2} levels");
    assert_eq!(a.octaves.len(), 2);
    assert_eq!(a.working_size, (160, 96));
}

#[test]
fn inputs_off_the_grid_and_empty_images_are_refused() {
    let x = vec![0.5f32; 3 * 40 * 64];
    let err = detector()
        .dream_gradient(&x, (64, 40), &DreamOptions::default())
        .unwrap_err();
    assert_eq!(err.code(), imgmeta_domain::ErrorCode::InferenceFailed);
    let image = DynamicImage::new_rgb8(0, 0);
    assert!(detector().dream(&image, &DreamOptions::default()).is_err());
}
