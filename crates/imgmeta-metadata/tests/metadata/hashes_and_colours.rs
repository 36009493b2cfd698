//! The perceptual hash survives re-encoding and resizing; dominant colours are sane.

use crate::fixtures::{bytes, describe_fixture};
use imgmeta_metadata::phash_distance;
use imgmeta_metadata::{DecodeLimits, decode, describe};

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

fn encode(image: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn describe_bytes(bytes: &[u8]) -> imgmeta_metadata::ImageMetadata {
    let decoded = decode(bytes, &DecodeLimits::default()).unwrap();
    describe(bytes, &decoded)
}

#[test]
fn an_image_larger_than_the_analysis_size_hashes_like_its_small_copy() {
    // 2400x1800 is shrunk before hashing; the 320x240 original is hashed as it is.
    let small = image::load_from_memory(&bytes("scene_q95.jpg")).unwrap();
    let large = small.resize_exact(2400, 1800, image::imageops::FilterType::Triangle);
    let large = describe_bytes(&encode(&large.to_rgb8().into(), image::ImageFormat::Jpeg));
    let small = describe_fixture("scene_q95.jpg");
    assert_eq!(large.width, 2400);
    let distance = phash_distance(&large.phash, &small.phash).unwrap();
    assert!(distance <= 4, "distance {distance}");
    let (a, b) = (&large.dominant_colors[0], &small.dominant_colors[0]);
    assert!((a.fraction - b.fraction).abs() < 0.1, "{a:?} vs {b:?}");
}

#[test]
fn a_large_floating_point_image_is_described_too() {
    // Float pixels are shrunk as floats, then hashed and binned like any other.
    let image =
        image::Rgb32FImage::from_fn(1200, 700, |x, _| image::Rgb([x as f32 / 1200.0, 0.5, 0.25]));
    let bytes = encode(&image.into(), image::ImageFormat::Tiff);
    let described = describe_bytes(&bytes);
    assert_eq!(described.color_type, "rgb32f");
    assert_eq!(described.bit_depth, 32);
    assert_eq!(described.phash.len(), 16);
    assert!(!described.dominant_colors.is_empty());
}
