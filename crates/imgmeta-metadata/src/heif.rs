//! Decoding HEIF/HEIC and AVIF with libheif: the primary image, its transformations, EXIF
//! and ICC profile, within the same limits as every other format.
//!
//! Before libheif parses anything, `container::isobmff` checks the declared size of every
//! image in the file (tiles, thumbnails, depth maps, alpha planes) and every grid's output
//! size against the limits, and counts an image sequence's frames. libheif 1.15's own
//! security limit (images up to 32768 pixels a side) cannot be lowered through libheif-rs
//! 0.20, so that check is ours. Then the peak of libheif's planes, its RGB conversion and
//! our copy (two images' worth) is charged to `max_alloc_bytes` before decoding, and libheif
//! decodes with one thread, so at most one tile is in flight beside the output image.
//!
//! Orientation: a HEIF's `irot`, `imir` and `clap` properties say how the stored image is
//! shown, and libheif applies them while decoding; the EXIF Orientation tag of a HEIF is
//! informative only (the HEIF standard makes the properties authoritative, and writers set
//! it to match or to 1), so it is reported in `exif.orientation` but never applied, and no
//! image is turned twice. `width`/`height` are the primary image's `ispe` (as stored),
//! `oriented_width`/`oriented_height` the decoded image's (after the transformations).

use crate::container;
use crate::decode::{Decoded, check_size};
use crate::icc::EmbeddedIcc;
use crate::layout::{Channels, Layout};
use crate::{DecodeLimits, Format, MetadataError};
use image::{DynamicImage, ImageBuffer};
use libheif_rs::{ColorSpace, HeifContext, ImageHandle, LibHeif, RgbChroma};
use std::sync::LazyLock;

/// libheif's initialisation, once per process (loading its plug-ins each time would cost).
static LIBHEIF: LazyLock<LibHeif> = LazyLock::new(LibHeif::new);

/// Decodes the primary image of a HEIF or AVIF file within `limits`.
pub(crate) fn decode(
    format: Format,
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<Decoded, MetadataError> {
    let fail = |e: libheif_rs::HeifError| MetadataError::DecodeFailed {
        format: format.name(),
        reason: e.to_string(),
    };
    // Every image the file declares, decoded or not, within the limits; frames counted.
    let walked = container::walk(format, bytes, limits)?;
    let mut context = HeifContext::read_from_bytes(bytes).map_err(fail)?;
    context.set_max_decoding_threads(1);
    let handle = context.primary_image_handle().map_err(fail)?;
    let (shown_width, shown_height) = (handle.width(), handle.height());
    // `ispe` is the size as stored, before rotation and cropping; a file without one is
    // described by its shown size.
    let (width, height) = match (
        u32::try_from(handle.ispe_width()),
        u32::try_from(handle.ispe_height()),
    ) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => (shown_width, shown_height),
    };
    let what = format!("the {} image", format.name());
    check_size(&what, width, height, limits)?;
    check_size(&what, shown_width, shown_height, limits)?;
    if shown_width == 0 || shown_height == 0 {
        return Err(MetadataError::DecodeFailed {
            format: format.name(),
            reason: format!("the primary image is declared {shown_width}x{shown_height}"),
        });
    }

    let alpha = handle.has_alpha_channel();
    // libheif says -1 (255 here) when the codec configuration gives no depth.
    let bits = match handle.luma_bits_per_pixel() {
        bits @ 1..=16 => bits,
        _ => walked.layout.map_or(8, |layout| layout.bit_depth),
    };
    let grey = walked
        .layout
        .is_some_and(|layout| layout.channels == Channels::Grey);
    let channels = match (grey, alpha) {
        (true, false) => Channels::Grey,
        (true, true) => Channels::GreyAlpha,
        (false, false) => Channels::Rgb,
        (false, true) => Channels::Rgba,
    };
    let layout = Layout::new(channels, bits);

    // libheif holds its decoded planes (at most the size of the RGB output, even 4:4:4 with
    // alpha) until they are converted, then the RGB image until we have copied it: two
    // images' worth at the peak, reserved before anything is decoded. (The codec's own
    // buffers for one tile at a time come on top and are outside our accounting.)
    let wide = bits > 8;
    let samples = if alpha { 4u64 } else { 3 };
    let output = u64::from(shown_width) * u64::from(shown_height) * samples * (1 + u64::from(wide));
    let mut budget = limits.to_image_limits();
    budget
        .reserve(output.saturating_mul(2))
        .map_err(|e| MetadataError::from_image(format.name(), e))?;
    let icc_profile = handle
        .color_profile_raw()
        .map(|profile| EmbeddedIcc::bounded(profile.data))
        .map(|icc| match budget.reserve(icc.held_bytes() as u64) {
            Ok(()) => icc,
            Err(_) => EmbeddedIcc::TooLarge,
        });
    let exif_block = exif(&handle).filter(|exif| budget.reserve(exif.len() as u64).is_ok());

    let chroma = match (wide, alpha) {
        (false, false) => RgbChroma::Rgb,
        (false, true) => RgbChroma::Rgba,
        (true, false) => RgbChroma::HdrRgbLe,
        (true, true) => RgbChroma::HdrRgbaLe,
    };
    // Default options: libheif applies `irot`, `imir` and `clap`.
    let decoded = LIBHEIF
        .decode(&handle, ColorSpace::Rgb(chroma), None)
        .map_err(fail)?;
    let image = to_dynamic(&decoded, alpha, wide.then_some(bits)).ok_or_else(|| {
        MetadataError::DecodeFailed {
            format: format.name(),
            reason: "libheif returned no interleaved RGB plane".into(),
        }
    })?;

    Ok(Decoded {
        format,
        image,
        width,
        height,
        frames: walked.frames,
        layout,
        trailing_bytes: 0,
        icc_profile,
        exif_block,
    })
}

/// The first `Exif` item of the primary image as a TIFF block: the item starts with the
/// 4-byte offset of the TIFF header from its fifth byte (0, or 6 past an `Exif\0\0`).
fn exif(handle: &ImageHandle) -> Option<Vec<u8>> {
    let mut ids = [0; 1];
    if handle.metadata_block_ids(&mut ids, b"Exif") == 0 {
        return None;
    }
    let item = handle.metadata(ids[0]).ok()?;
    let offset = u32::from_be_bytes(item.get(..4)?.try_into().ok()?) as usize;
    let tiff = item.get(offset.checked_add(4)?..)?;
    Some(tiff.to_vec())
}

/// Copies libheif's interleaved RGB(A) plane, row by row past its stride padding, into an
/// `image` buffer: 8-bit samples as they are, deeper ones (`bits`, 10 or 12) widened to
/// 16 bits by repeating their high bits, as PNG does.
fn to_dynamic(decoded: &libheif_rs::Image, alpha: bool, bits: Option<u8>) -> Option<DynamicImage> {
    let planes = decoded.planes();
    let plane = planes.interleaved?;
    let (width, height) = (plane.width, plane.height);
    let samples = if alpha { 4 } else { 3 };
    let row_samples = width as usize * samples;
    let rows = (0..height as usize).map(|y| {
        let start = y * plane.stride;
        &plane.data[start..start + row_samples * if bits.is_some() { 2 } else { 1 }]
    });
    Some(match bits {
        None => {
            let mut pixels = Vec::with_capacity(row_samples * height as usize);
            rows.for_each(|row| pixels.extend_from_slice(row));
            if alpha {
                DynamicImage::ImageRgba8(ImageBuffer::from_raw(width, height, pixels)?)
            } else {
                DynamicImage::ImageRgb8(ImageBuffer::from_raw(width, height, pixels)?)
            }
        }
        Some(bits) => {
            let up = 16 - u32::from(bits);
            let down = u32::from(bits).saturating_sub(up);
            let mut pixels = Vec::with_capacity(row_samples * height as usize);
            for row in rows {
                pixels.extend(row.chunks_exact(2).map(|pair| {
                    let value = u16::from_le_bytes([pair[0], pair[1]]);
                    (value << up) | value.checked_shr(down).unwrap_or(0)
                }));
            }
            if alpha {
                DynamicImage::ImageRgba16(ImageBuffer::from_raw(width, height, pixels)?)
            } else {
                DynamicImage::ImageRgb16(ImageBuffer::from_raw(width, height, pixels)?)
            }
        }
    })
}
