//! Bytes that must not decode are refused with the right stable code, cheaply.

use crate::fixtures::bytes;
use imgmeta_domain::ErrorCode;
use imgmeta_metadata::{DecodeLimits, decode, decode_with_timeout};
use std::time::{Duration, Instant};

fn code_of(bytes: &[u8], limits: &DecodeLimits) -> ErrorCode {
    match decode(bytes, limits) {
        Ok(_) => panic!("decoded bytes that should have been refused"),
        Err(e) => e.code(),
    }
}

#[test]
fn an_html_page_is_not_an_image() {
    assert_eq!(
        code_of(&bytes("page.html"), &DecodeLimits::default()),
        ErrorCode::NotAnImage
    );
}

#[test]
fn an_empty_body_is_not_an_image() {
    assert_eq!(
        code_of(b"", &DecodeLimits::default()),
        ErrorCode::NotAnImage
    );
}

#[test]
fn a_truncated_jpeg_fails_to_decode() {
    assert_eq!(
        code_of(&bytes("truncated.jpg"), &DecodeLimits::default()),
        ErrorCode::DecodeFailed
    );
}

#[test]
fn a_jpeg_2000_file_is_an_unsupported_format() {
    let jp2 = b"\0\0\0\x0cjP  \r\n\x87\n\0\0\0\x14ftypjp2 \0\0\0\0jp2 ";
    assert_eq!(
        code_of(jp2, &DecodeLimits::default()),
        ErrorCode::UnsupportedFormat
    );
}

#[test]
fn an_avif_with_nothing_after_its_ftyp_fails_to_decode() {
    let avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf";
    assert_eq!(
        code_of(avif, &DecodeLimits::default()),
        ErrorCode::DecodeFailed
    );
}

#[test]
fn a_png_header_claiming_100000_by_100000_pixels_is_rejected_before_decoding() {
    let bomb = bytes("bomb_100000x100000.png");
    let started = Instant::now();
    let code = code_of(&bomb, &DecodeLimits::default());
    assert_eq!(code, ErrorCode::ImageTooLarge);
    // Allocating and filling 30 GB would take far longer than this, if it did not abort.
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_pixel_limit_is_configurable() {
    let limits = DecodeLimits {
        max_pixels: 160 * 120 - 1,
        ..DecodeLimits::default()
    };
    assert_eq!(
        code_of(&bytes("plain.bmp"), &limits),
        ErrorCode::ImageTooLarge
    );
    let limits = DecodeLimits {
        max_side: 159,
        ..DecodeLimits::default()
    };
    assert_eq!(
        code_of(&bytes("plain.tiff"), &limits),
        ErrorCode::ImageTooLarge
    );
}

#[test]
fn the_frame_limit_is_configurable() {
    let limits = DecodeLimits {
        max_frames: 5,
        ..DecodeLimits::default()
    };
    assert_eq!(
        code_of(&bytes("animated.gif"), &limits),
        ErrorCode::ImageTooLarge
    );
    let limits = DecodeLimits {
        max_frames: 3,
        ..DecodeLimits::default()
    };
    assert_eq!(
        code_of(&bytes("animated.webp"), &limits),
        ErrorCode::ImageTooLarge
    );
    let limits = DecodeLimits {
        max_frames: 2,
        ..DecodeLimits::default()
    };
    assert_eq!(
        code_of(&bytes("animated.png"), &limits),
        ErrorCode::ImageTooLarge
    );
}

#[test]
fn the_allocation_limit_is_configurable() {
    // 160x120 RGB8 needs 57,600 bytes of output.
    let limits = DecodeLimits {
        max_alloc_bytes: 50_000,
        ..DecodeLimits::default()
    };
    assert_eq!(
        code_of(&bytes("scene_half.png"), &limits),
        ErrorCode::ImageTooLarge
    );
}

/// A 4000x4000 PNG of noise-like content: tens of milliseconds to decode even optimised.
fn slow_png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(4000, 4000, |x, y| {
        let v = x
            .wrapping_mul(2_654_435_761)
            .wrapping_add(y.wrapping_mul(40_503));
        image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn a_png_cut_short_fails_to_decode() {
    let whole = bytes("scene_half.png");
    let cut = &whole[..whole.len() / 2];
    assert_eq!(
        code_of(cut, &DecodeLimits::default()),
        ErrorCode::DecodeFailed
    );
}

#[test]
fn a_gif_cut_short_fails_to_decode() {
    let whole = bytes("animated.gif");
    let cut = &whole[..100];
    assert_eq!(
        code_of(cut, &DecodeLimits::default()),
        ErrorCode::DecodeFailed
    );
}

#[tokio::test]
async fn a_decode_that_outlives_its_time_limit_is_abandoned_as_decode_failed() {
    let limits = DecodeLimits {
        timeout: Duration::from_millis(1),
        ..DecodeLimits::default()
    };
    let err = decode_with_timeout(slow_png(), &limits)
        .await
        .expect_err("a zero time limit cannot be met");
    assert_eq!(err.code(), ErrorCode::DecodeFailed);
    assert!(err.to_string().contains("longer than"), "{err}");
}

#[tokio::test]
async fn a_decode_within_its_time_limit_returns_the_image() {
    let decoded = decode_with_timeout(bytes("scene_q95.jpg"), &DecodeLimits::default())
        .await
        .expect("decodes");
    assert_eq!(decoded.stored_dimensions(), (320, 240));
}
