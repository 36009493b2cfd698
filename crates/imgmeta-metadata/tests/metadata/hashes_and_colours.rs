//! The perceptual hash survives re-encoding and resizing; dominant colours are sane.

use crate::fixtures::describe_fixture;
use imgmeta_metadata::phash_distance;

#[test]
fn a_jpeg_re_encoded_at_lower_quality_has_the_same_phash() {
    let q95 = describe_fixture("scene_q95.jpg");
    let q40 = describe_fixture("scene_q40.jpg");
    assert_ne!(q95.sha256, q40.sha256);
    assert_eq!(q95.phash, q40.phash);
}

#[test]
fn a_half_size_png_copy_has_a_phash_within_a_few_bits() {
    // Resampling moves coefficients near the median across it, so a resized copy may
    // differ in a bit or two; distinct pictures differ in 20 or more.
    let q95 = describe_fixture("scene_q95.jpg");
    let half = describe_fixture("scene_half.png");
    let distance = phash_distance(&q95.phash, &half.phash).unwrap();
    assert!(distance <= 4, "distance {distance}");
}

#[test]
fn different_pictures_have_distant_phashes() {
    let scene = describe_fixture("scene_q95.jpg");
    let other = describe_fixture("animated.gif");
    assert_eq!(scene.phash.len(), 16);
    assert!(
        scene
            .phash
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let distance = phash_distance(&scene.phash, &other.phash).unwrap();
    assert!(distance >= 10, "distance {distance}");
}

#[test]
fn dominant_colours_are_at_most_five_with_fractions_summing_to_at_most_one() {
    for name in ["scene_q95.jpg", "animated.gif", "alpha.png", "plain.tiff"] {
        let colors = describe_fixture(name).dominant_colors;
        assert!(
            !colors.is_empty() && colors.len() <= 5,
            "{name}: {colors:?}"
        );
        let sum: f64 = colors.iter().map(|c| c.fraction).sum();
        assert!(sum <= 1.0, "{name}: {sum}");
        assert!(
            colors.windows(2).all(|w| w[0].fraction >= w[1].fraction),
            "{name}"
        );
        for c in &colors {
            assert!(
                c.hex.len() == 7 && c.hex.starts_with('#'),
                "{name}: {}",
                c.hex
            );
        }
    }
}

#[test]
fn a_translucent_red_png_is_dominated_by_its_red() {
    // alpha.png is (200, 40, 40) everywhere, with alpha rising left to right.
    let colors = describe_fixture("alpha.png").dominant_colors;
    let red = u32::from_str_radix(&colors[0].hex[1..], 16).unwrap();
    let (r, g, b) = (red >> 16, (red >> 8) & 0xff, red & 0xff);
    assert!(
        r.abs_diff(200) <= 8 && g.abs_diff(40) <= 8 && b.abs_diff(40) <= 8,
        "{colors:?}"
    );
}
