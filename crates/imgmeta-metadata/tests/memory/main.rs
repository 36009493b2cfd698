//! Hostile inputs are refused with bounded memory: every test here runs under a global
//! allocation cap, so a decoder that tried to allocate what a header claims would fail the
//! allocation (and abort the test binary) instead of passing.
//!
//! A separate test binary because the cap is process-wide; each test holds a lock for its
//! whole body (building its input included) so that one test's allocations are never
//! counted against another's cap.

#[path = "../support/bombs.rs"]
mod bombs;

use bombs::{exif_text_bomb, exif_text_bomb_of, iccp_bomb};
use cap::Cap;
use imgmeta_domain::ErrorCode;
use imgmeta_metadata::{DecodeLimits, decode, describe};
use std::alloc::System;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

static SERIAL: Mutex<()> = Mutex::new(());

/// Held for a whole test: the cap is process-wide and tests run on parallel threads.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` allowing it at most `budget` bytes of live allocations beyond what is already
/// allocated, and reports how long it took. The caller holds `serial()`.
fn within_budget<T>(budget: usize, f: impl FnOnce() -> T) -> (T, Duration) {
    ALLOCATOR
        .set_limit(ALLOCATOR.allocated() + budget)
        .expect("limit above current use");
    let started = Instant::now();
    let out = f();
    let elapsed = started.elapsed();
    ALLOCATOR.set_limit(usize::MAX).expect("lifting the limit");
    (out, elapsed)
}

/// A GIF of `frames` 1x1 frames: ~10 bytes each on disk.
fn gif_with_frames(frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let palette = [0u8, 0, 0, 255, 255, 255];
        let mut encoder = gif::Encoder::new(&mut out, 1, 1, &palette).unwrap();
        for i in 0..frames {
            let pixel = [u8::from(i % 2 == 0)];
            let frame = gif::Frame {
                width: 1,
                height: 1,
                buffer: std::borrow::Cow::Borrowed(&pixel),
                ..gif::Frame::default()
            };
            encoder.write_frame(&frame).unwrap();
        }
    }
    out
}

const MIB: usize = 1024 * 1024;

#[test]
fn a_gif_with_twenty_thousand_frames_is_rejected_quickly_in_bounded_memory() {
    let _serial = serial();
    let gif = gif_with_frames(20_000);
    let (result, elapsed) = within_budget(8 * MIB, || decode(&gif, &DecodeLimits::default()));
    let err = result.expect_err("more frames than the cap");
    assert_eq!(err.code(), ErrorCode::ImageTooLarge);
    assert!(err.to_string().contains("frames"), "{err}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn a_gif_just_under_the_frame_cap_is_accepted() {
    let _serial = serial();
    let gif = gif_with_frames(1_000);
    let limits = DecodeLimits {
        max_frames: 1_000,
        ..DecodeLimits::default()
    };
    let (result, _) = within_budget(8 * MIB, || decode(&gif, &limits));
    assert_eq!(result.expect("within the cap").frames(), 1_000);
}

#[test]
fn a_png_header_claiming_100000_by_100000_pixels_is_rejected_without_allocating_for_it() {
    let _serial = serial();
    let bomb = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/images/bomb_100000x100000.png"),
    )
    .unwrap();
    // 30 GB of pixels claimed; 1 MiB allowed.
    let (result, elapsed) = within_budget(MIB, || decode(&bomb, &DecodeLimits::default()));
    assert_eq!(result.unwrap_err().code(), ErrorCode::ImageTooLarge);
    assert!(elapsed < Duration::from_millis(100), "{elapsed:?}");
}

#[test]
fn a_gif_whose_screen_claims_65535_by_65535_pixels_is_rejected_without_allocating_for_it() {
    let _serial = serial();
    let mut gif = gif_with_frames(2);
    // The logical screen size lives at bytes 6..10, little-endian.
    gif[6..10].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let (result, _) = within_budget(MIB, || decode(&gif, &DecodeLimits::default()));
    assert_eq!(result.unwrap_err().code(), ErrorCode::ImageTooLarge);
}

#[test]
fn a_large_but_permitted_image_fits_within_its_own_size_plus_a_margin() {
    let _serial = serial();
    // 4000x3000 RGB: 36 MB of pixels. Decoding must not need several copies of it.
    let image = image::RgbImage::from_fn(4000, 3000, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).unwrap();
    drop(image);
    let png = png.into_inner();
    let (result, _) = within_budget(36_000_000 + 16 * MIB, || {
        decode(&png, &DecodeLimits::default())
    });
    assert_eq!(result.expect("decodes").stored_dimensions(), (4000, 3000));
}

#[test]
fn a_gif_frame_claiming_65535_by_65535_pixels_on_a_tiny_screen_is_refused_in_bounded_memory() {
    let _serial = serial();
    let mut gif = gif_with_frames(1);
    // The image descriptor starts with 0x2C; its width and height follow the frame's left
    // and top offsets, little-endian.
    let descriptor = 13 + 6 + gif[13 + 6..].iter().position(|&b| b == 0x2c).unwrap();
    gif[descriptor + 5..descriptor + 9].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let (result, elapsed) = within_budget(8 * MIB, || decode(&gif, &DecodeLimits::default()));
    let code = result
        .expect_err("a 4-gigapixel frame cannot decode")
        .code();
    assert_eq!(code, ErrorCode::ImageTooLarge);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn a_png_whose_profile_inflates_to_256_mib_is_described_within_32_mib() {
    let _serial = serial();
    let png = iccp_bomb(256 * MIB);
    // Inflated whole, the profile alone is 256 MiB, and the decoder, the frame counter and
    // the copy handed to us each held one: about 1 GB at peak before it was bounded. Issue
    // 12 asks for at most 300 MiB; at most 4 MiB is inflated now, so hold it to far less,
    // which also fails if any one full inflate comes back.
    let (described, _) = within_budget(32 * MIB, || {
        let decoded = decode(&png, &DecodeLimits::default()).expect("a valid 1x1 PNG");
        describe(&png, &decoded)
    });
    let icc = described.icc.expect("the profile is reported");
    assert_eq!(icc.truncated, ["profile"]);
}

#[test]
fn an_exif_text_bomb_is_described_within_a_few_copies_of_its_string() {
    let _serial = serial();
    // One 5 MB string behind three fields. The EXIF parser still copies each field it
    // is asked for (3 x 5 MB) and the decoders hold the block a few times, but the
    // result holds 256 characters of each, not 15 MB.
    let png = exif_text_bomb(5_000_000);
    let (json, _) = within_budget(64 * MIB, || {
        let decoded = decode(&png, &DecodeLimits::default()).expect("a valid 1x1 PNG");
        serde_json::to_vec(&describe(&png, &decoded)).unwrap()
    });
    assert!(json.len() <= 256 * 1024, "{} bytes", json.len());
}

#[test]
fn an_exif_bomb_of_nuls_is_not_parsed_whole() {
    let _serial = serial();
    // Three tags pointing at 5 MB of NULs: parsed whole, each would become five million empty
    // strings (24 bytes each, 360 MB in all). They are over the field limit, so only a prefix
    // of their raw bytes is looked at.
    let png = exif_text_bomb_of(5_000_000, 0);
    let (json, _) = within_budget(48 * MIB, || {
        let decoded = decode(&png, &DecodeLimits::default()).expect("a valid 1x1 PNG");
        serde_json::to_vec(&describe(&png, &decoded)).unwrap()
    });
    assert!(json.len() <= 256 * 1024, "{} bytes", json.len());
}
