//! HEIC, AVIF and JPEG XL: pixels turned once by the file's own transforms, the limits
//! applied to them as to every format, and the fields exiftool does not read.

use crate::fixtures::{bytes, describe_fixture, with_expectations};
use image::metadata::Orientation;
use image::{DynamicImage, RgbImage};
use imgmeta_domain::ErrorCode;
use imgmeta_metadata::{DecodeLimits, decode};

fn decoded(name: &str) -> DynamicImage {
    decode(&bytes(name), &DecodeLimits::default())
        .unwrap_or_else(|e| panic!("decoding {name}: {e}"))
        .into_image()
}

/// The upright picture every orientation fixture was made from: `exif.png` holds it
/// losslessly, shown turned by its EXIF orientation 3 (180°), which undoes itself.
fn upright_scene() -> RgbImage {
    let mut scene = decoded("exif.png");
    scene.apply_orientation(Orientation::Rotate180);
    scene.to_rgb8()
}

/// Mean absolute difference per sample, 0-255.
fn mean_difference(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

#[test]
fn heic_and_avif_pixels_are_turned_by_irot_and_imir_once_not_again_by_exif() {
    let scene = upright_scene();
    // Every EXIF orientation, 1 to 8, in both containers.
    let fixtures = (1..=8u8).flat_map(|o| {
        [
            (format!("heic_orientation{o}.heic"), o),
            (format!("avif_orientation{o}.avif"), o),
        ]
    });
    for (name, orientation) in fixtures {
        let name = name.as_str();
        let shown = Orientation::from_exif(orientation).unwrap();
        let mut expected = DynamicImage::ImageRgb8(scene.clone());
        expected.apply_orientation(shown);
        let ours = decoded(name).to_rgb8();
        let difference = mean_difference(&ours, &expected.to_rgb8());
        // Lossy coding leaves a few levels; a wrong or doubled turn leaves tens.
        assert!(
            difference < 6.0,
            "{name}: {difference:.1} from the scene shown turned"
        );
        // Turned once more by the EXIF tag, the picture would be elsewhere.
        if orientation != 1 {
            expected.apply_orientation(shown);
            let twice = expected.to_rgb8();
            if twice.dimensions() == ours.dimensions() {
                assert!(mean_difference(&ours, &twice) > 20.0, "{name}");
            }
        }
    }
}

#[test]
fn stored_and_shown_sizes_follow_the_transforms_for_heif_and_the_codestream_for_jxl() {
    let heic = describe_fixture("heic_orientation6.heic");
    assert_eq!(heic.exif.as_ref().unwrap().orientation, Some(6));
    assert_eq!((heic.width, heic.height), (160, 120));
    assert_eq!((heic.oriented_width, heic.oriented_height), (120, 160));
    // The EXIF tag of a JPEG XL says 6, but only the codestream's orientation (1) counts.
    let jxl = describe_fixture("exif_xmp.jxl");
    assert_eq!(jxl.exif.as_ref().unwrap().orientation, Some(6));
    assert_eq!((jxl.width, jxl.height), (160, 120));
    assert_eq!((jxl.oriented_width, jxl.oriented_height), (160, 120));
}

#[test]
fn jpeg_xl_layout_exif_and_xmp_are_read() {
    let alpha = describe_fixture("alpha.jxl");
    assert_eq!(
        (alpha.color_type.as_str(), alpha.bit_depth, alpha.has_alpha),
        ("rgba8", 8, true)
    );
    let lossless = describe_fixture("lossless.jxl");
    assert_eq!(
        (
            lossless.color_type.as_str(),
            lossless.has_alpha,
            lossless.frames
        ),
        ("rgb8", false, 1)
    );
    let tagged = describe_fixture("exif_xmp.jxl");
    assert_eq!(
        tagged.exif.as_ref().unwrap().make.as_deref(),
        Some("Imgmeta Optics")
    );
    assert_eq!(
        tagged.descriptive.unwrap().title.as_deref(),
        Some("A JPEG XL harbour")
    );
    assert_eq!(tagged.format, "jxl");
}

#[test]
fn a_lossless_jpeg_xl_decodes_to_exactly_the_pixels_it_was_made_from() {
    let scene = upright_scene();
    assert_eq!(decoded("lossless.jxl").to_rgb8(), scene);
}

#[test]
fn ten_bit_heic_samples_are_widened_to_sixteen_bits() {
    let image = decoded("deep10.heic");
    let DynamicImage::ImageRgb16(pixels) = image else {
        panic!(
            "a 10-bit HEIC decodes to 16-bit RGB, not {:?}",
            image.color()
        );
    };
    // The blue ramp starts at 65535 (1023 in 10 bits): widened, it is near full scale.
    let top = pixels.get_pixel(0, 0).0[2];
    assert!(top > 64_000, "{top}");
    assert!(pixels.as_raw().iter().all(|&v| v % 64 == v >> 10));
}

#[test]
fn heic_avif_and_jxl_larger_than_the_limits_are_refused() {
    for name in [
        "heic_orientation6.heic",
        "avif_orientation6.avif",
        "exif_xmp.jxl",
    ] {
        let small_side = DecodeLimits {
            max_side: 100,
            ..DecodeLimits::default()
        };
        let err = decode(&bytes(name), &small_side).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ImageTooLarge, "{name}: {err}");
        // 160x120 RGB is 57,600 bytes; the decoder's working copies need more.
        let little_memory = DecodeLimits {
            max_alloc_bytes: 60_000,
            ..DecodeLimits::default()
        };
        let err = decode(&bytes(name), &little_memory).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ImageTooLarge, "{name}: {err}");
    }
}

#[test]
fn a_heic_declaring_an_image_past_the_limits_is_refused_before_libheif_reads_it() {
    // alpha.heic's colour and alpha images share one ispe property: declare it 30000 wide.
    // (A thumbnail or depth map beside a small primary: container::isobmff's unit tests.)
    let mut file = bytes("alpha.heic");
    let at = file.windows(4).position(|w| w == b"ispe").unwrap() + 8;
    file[at..at + 4].copy_from_slice(&30_000u32.to_be_bytes());
    let err = decode(&file, &DecodeLimits::default()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ImageTooLarge, "{err}");
    assert!(err.to_string().contains("inside the heic file"), "{err}");
}

#[test]
fn the_fixture_set_covers_heic_avif_and_jpeg_xl() {
    let all = with_expectations();
    for mime in ["image/heic", "image/heif", "image/avif", "image/jxl"] {
        assert!(
            all.iter().any(|(_, e)| e["mime"] == mime),
            "no {mime} fixture"
        );
    }
    let heif = |e: &serde_json::Value| {
        ["image/heic", "image/heif", "image/avif"].contains(&e["mime"].as_str().unwrap_or(""))
    };
    assert!(all.iter().any(|(_, e)| heif(e) && e["has_alpha"] == true));
    assert!(all.iter().any(|(_, e)| heif(e) && e["bit_depth"] == 10));
    assert!(all.iter().any(|(_, e)| heif(e) && e["color_type"] == "l8"));
    assert!(all.iter().any(|(_, e)| heif(e) && !e["icc"].is_null()));
    assert!(
        all.iter()
            .any(|(_, e)| heif(e) && !e["exif"]["gps"].is_null())
    );
    for orientation in [2, 3, 5, 6, 8] {
        assert!(
            all.iter()
                .any(|(_, e)| heif(e) && e["exif"]["orientation"] == orientation),
            "no HEIF with EXIF orientation {orientation}"
        );
    }
}

#[test]
fn an_animated_jpeg_xl_counts_its_frames_and_is_refused_past_max_frames() {
    assert_eq!(describe_fixture("animated.jxl").frames, 6);
    let five = DecodeLimits {
        max_frames: 5,
        ..DecodeLimits::default()
    };
    let err = decode(&bytes("animated.jxl"), &five).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ImageTooLarge, "{err}");
}
