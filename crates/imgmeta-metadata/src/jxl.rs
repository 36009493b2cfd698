//! Decoding JPEG XL with jxl-oxide: the first frame with the codestream's orientation, the
//! frames counted, EXIF from the container's `Exif` box and the embedded ICC profile.
//!
//! The header is read first and its size checked against the limits before any frame is
//! parsed; frames are counted as the file is fed in, and a file with more than
//! `max_frames` is refused before the rest is read. jxl-oxide's own allocation tracker is
//! given what `max_alloc_bytes` leaves after our copy of the pixels, so its working grids
//! share the budget.
//!
//! Orientation: JPEG XL keeps it in the codestream header, which decoders must apply (an
//! EXIF Orientation tag in the container is informative, as in HEIF); jxl-oxide applies it
//! while rendering. `width`/`height` are the codestream's stored size,
//! `oriented_width`/`oriented_height` the rendered one.

use crate::decode::{Decoded, check_size};
use crate::icc::EmbeddedIcc;
use crate::layout::{Channels, Layout};
use crate::{DecodeLimits, Format, MetadataError};
use image::{DynamicImage, ImageBuffer};
use jxl_oxide::image::BitDepth;
use jxl_oxide::{AllocTracker, AuxBoxData, InitializeResult, JxlImage};

const FORMAT: Format = Format::Jxl;
/// Bytes handed to jxl-oxide at a time, so the frame count is checked as it grows.
const CHUNK: usize = 64 * 1024;

fn fail(reason: impl std::fmt::Display) -> MetadataError {
    MetadataError::DecodeFailed {
        format: FORMAT.name(),
        reason: reason.to_string(),
    }
}

/// Decodes the first frame of a JPEG XL file within `limits`.
pub(crate) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, MetadataError> {
    let tracker =
        AllocTracker::with_limit(usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX));
    let mut uninit = JxlImage::builder()
        .alloc_tracker(tracker.clone())
        .build_uninit();
    // jxl-oxide may keep part of what it is given for later: that part is given again,
    // with the next chunk, so the window grows until it is taken.
    let (mut pos, mut end) = (0, 0);
    let mut image = loop {
        end = bytes.len().min(end.max(pos) + CHUNK);
        pos += uninit.feed_bytes(&bytes[pos..end]).map_err(fail)?;
        match uninit.try_init().map_err(fail)? {
            InitializeResult::Initialized(image) => break image,
            InitializeResult::NeedMoreData(more) if end < bytes.len() => uninit = more,
            InitializeResult::NeedMoreData(_) => {
                return Err(fail("the file ends inside the image header"));
            }
        }
    };
    let header = image.image_header();
    let (width, height) = (header.size.width, header.size.height);
    check_size("the jxl image", width, height, limits)?;
    let metadata = &header.metadata;
    let alpha = metadata.ec_info.iter().any(|ec| ec.is_alpha());
    if metadata.ec_info.iter().any(|ec| ec.is_black()) {
        return Err(fail("CMYK images are not decoded"));
    }
    let grey = metadata.grayscale();
    let (bits, float) = match metadata.bit_depth {
        BitDepth::FloatSample {
            bits_per_sample, ..
        } => (bits_per_sample, true),
        other => (other.bits_per_sample(), false),
    };
    let channels = match (grey, alpha) {
        (true, false) => Channels::Grey,
        (true, true) => Channels::GreyAlpha,
        (false, false) => Channels::Rgb,
        (false, true) => Channels::Rgba,
    };
    let layout = Layout {
        float,
        ..Layout::new(channels, u8::try_from(bits).unwrap_or(32))
    };

    // Our copy of the pixels comes out of the same budget as jxl-oxide's grids.
    let sample_bytes: u64 = match (float && !grey, bits > 8) {
        (true, _) => 4,
        (false, true) => 2,
        (false, false) => 1,
    };
    let samples = u64::from(channels_count(grey, alpha));
    let output = u64::from(width) * u64::from(height) * samples * sample_bytes;
    let mut budget = limits.to_image_limits();
    budget
        .reserve(output)
        .map_err(|e| MetadataError::from_image(FORMAT.name(), e))?;
    tracker
        .shrink_limit(usize::try_from(output).unwrap_or(usize::MAX))
        .map_err(|_| {
            MetadataError::ImageTooLarge("the JPEG XL image exceeds the decode limits".into())
        })?;

    // The rest of the file, frame headers and all, counting frames as they load.
    while pos < bytes.len() {
        end = bytes.len().min(end.max(pos) + CHUNK);
        let used = image.feed_bytes(&bytes[pos..end]).map_err(fail)?;
        pos += used;
        too_many_frames(&image, limits)?;
        if used == 0 && end == bytes.len() {
            break;
        }
    }
    image.finalize().map_err(fail)?;
    // The first chunk (all of a small file) is read with the header, before the loop.
    too_many_frames(&image, limits)?;
    let frames = u32::try_from(image.num_loaded_keyframes()).unwrap_or(u32::MAX);
    if frames == 0 {
        return Err(fail("the file ends before its first frame"));
    }

    let icc_profile = image
        .original_icc()
        .map(|icc| EmbeddedIcc::bounded(icc.to_vec()))
        .map(|icc| match budget.reserve(icc.held_bytes() as u64) {
            Ok(()) => icc,
            Err(_) => EmbeddedIcc::TooLarge,
        });
    let exif_block = match image.aux_boxes().first_exif() {
        Ok(AuxBoxData::Data(exif)) => exif
            .payload()
            .get(exif.tiff_header_offset() as usize..)
            .map(<[u8]>::to_vec),
        _ => None,
    }
    .filter(|exif| budget.reserve(exif.len() as u64).is_ok());

    let render = image.render_frame(0).map_err(fail)?;
    let mut stream = render.stream();
    let (shown_width, shown_height) = (stream.width(), stream.height());
    let count = shown_width as usize * shown_height as usize * stream.channels() as usize;
    let pixels = match (float && !grey, bits > 8) {
        (true, _) => {
            let mut buf = vec![0f32; count];
            stream.write_to_buffer(&mut buf);
            if alpha {
                ImageBuffer::from_raw(shown_width, shown_height, buf)
                    .map(DynamicImage::ImageRgba32F)
            } else {
                ImageBuffer::from_raw(shown_width, shown_height, buf).map(DynamicImage::ImageRgb32F)
            }
        }
        (false, true) => {
            let mut buf = vec![0u16; count];
            stream.write_to_buffer(&mut buf);
            match (grey, alpha) {
                (true, false) => ImageBuffer::from_raw(shown_width, shown_height, buf)
                    .map(DynamicImage::ImageLuma16),
                (true, true) => ImageBuffer::from_raw(shown_width, shown_height, buf)
                    .map(DynamicImage::ImageLumaA16),
                (false, false) => ImageBuffer::from_raw(shown_width, shown_height, buf)
                    .map(DynamicImage::ImageRgb16),
                (false, true) => ImageBuffer::from_raw(shown_width, shown_height, buf)
                    .map(DynamicImage::ImageRgba16),
            }
        }
        (false, false) => {
            let mut buf = vec![0u8; count];
            stream.write_to_buffer(&mut buf);
            match (grey, alpha) {
                (true, false) => ImageBuffer::from_raw(shown_width, shown_height, buf)
                    .map(DynamicImage::ImageLuma8),
                (true, true) => ImageBuffer::from_raw(shown_width, shown_height, buf)
                    .map(DynamicImage::ImageLumaA8),
                (false, false) => ImageBuffer::from_raw(shown_width, shown_height, buf)
                    .map(DynamicImage::ImageRgb8),
                (false, true) => ImageBuffer::from_raw(shown_width, shown_height, buf)
                    .map(DynamicImage::ImageRgba8),
            }
        }
    };
    let image = pixels.ok_or_else(|| fail("the rendered frame has an unexpected layout"))?;

    Ok(Decoded {
        format: FORMAT,
        image,
        width,
        height,
        frames,
        layout,
        trailing_bytes: 0,
        icc_profile,
        exif_block,
    })
}

/// `image_too_large` once more keyframes than `max_frames` are loaded.
fn too_many_frames(image: &JxlImage, limits: &DecodeLimits) -> Result<(), MetadataError> {
    let frames = image.num_loaded_keyframes();
    if frames > limits.max_frames as usize {
        return Err(MetadataError::ImageTooLarge(format!(
            "the jxl image has {frames} or more frames; at most {} are accepted",
            limits.max_frames
        )));
    }
    Ok(())
}

fn channels_count(grey: bool, alpha: bool) -> u32 {
    (if grey { 1 } else { 3 }) + u32::from(alpha)
}
