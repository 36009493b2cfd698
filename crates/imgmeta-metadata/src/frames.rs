//! Counting animation frames from the container, without decoding their pixels.
//!
//! `image` decodes only the first frame for a still `DynamicImage`, but a hostile file can
//! hold many thousands of frames; counting them here lets the cap be enforced up front and
//! reports `frames` for animated GIF, APNG and WebP.

use crate::{DecodeLimits, Format, MetadataError};
use std::io::Cursor;

/// How many frames the image has (1 for still images), refusing more than `limits.max_frames`.
pub(crate) fn count_frames(
    format: Format,
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<u32, MetadataError> {
    let frames = match format {
        Format::Gif => count_gif_frames(bytes, limits)?,
        Format::Png => count_apng_frames(bytes, limits)?,
        Format::WebP => count_webp_frames(bytes)?,
        _ => 1,
    };
    if frames > limits.max_frames {
        return Err(too_many(format, frames, limits));
    }
    Ok(frames.max(1))
}

fn too_many(format: Format, frames: u32, limits: &DecodeLimits) -> MetadataError {
    MetadataError::ImageTooLarge(format!(
        "the {} image has {frames} or more frames; at most {} are accepted",
        format.name(),
        limits.max_frames
    ))
}

/// Walks the GIF frame by frame with LZW decoding switched off, so each step costs at most one
/// frame's compressed data, and stops as soon as the cap is passed.
fn count_gif_frames(bytes: &[u8], limits: &DecodeLimits) -> Result<u32, MetadataError> {
    let mut options = gif::DecodeOptions::new();
    options.skip_frame_decoding(true);
    if let Some(bytes) = std::num::NonZeroU64::new(limits.max_alloc_bytes) {
        options.set_memory_limit(gif::MemoryLimit::Bytes(bytes));
    }
    let mut decoder = options
        .read_info(Cursor::new(bytes))
        .map_err(|e| gif_failed(&e))?;
    let mut frames: u32 = 0;
    loop {
        match decoder.next_frame_info() {
            Ok(Some(_)) => {
                frames += 1;
                if frames > limits.max_frames {
                    return Err(too_many(Format::Gif, frames, limits));
                }
            }
            Ok(None) => return Ok(frames),
            // A GIF truncated after its first frames still shows those frames, and the full
            // decode that follows reports real damage to the first one; count what is there.
            Err(_) if frames > 0 => return Ok(frames),
            Err(e) => return Err(gif_failed(&e)),
        }
    }
}

fn gif_failed(e: &gif::DecodingError) -> MetadataError {
    MetadataError::DecodeFailed {
        format: "gif",
        reason: e.to_string(),
    }
}

/// An APNG declares its frame count in the `acTL` chunk, which precedes the image data.
fn count_apng_frames(bytes: &[u8], limits: &DecodeLimits) -> Result<u32, MetadataError> {
    let png_limits = png::Limits {
        bytes: usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX),
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), png_limits);
    // Only `acTL` matters here. The profile would otherwise be inflated (up to the whole
    // memory limit) a second time, and text chunks kept, for nothing.
    decoder.set_ignore_iccp_chunk(true);
    decoder.set_ignore_text_chunk(true);
    let reader = decoder
        .read_info()
        .map_err(|e| MetadataError::DecodeFailed {
            format: "png",
            reason: e.to_string(),
        })?;
    Ok(reader
        .info()
        .animation_control
        .map_or(1, |actl| actl.num_frames))
}

/// `image-webp` indexes the chunks (not the pixels) when it opens the file, counting `ANMF`s.
fn count_webp_frames(bytes: &[u8]) -> Result<u32, MetadataError> {
    let decoder = image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(|e| {
        MetadataError::DecodeFailed {
            format: "webp",
            reason: e.to_string(),
        }
    })?;
    Ok(if decoder.is_animated() {
        decoder.num_frames()
    } else {
        1
    })
}
