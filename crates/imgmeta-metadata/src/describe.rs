//! The metadata stage: describe a decoded image as `result.image`.

use crate::Decoded;
use crate::colors::{DominantColor, dominant_colors};
use crate::exif_fields::{ExifSummary, read_exif};
use crate::hashes::{phash_hex, sha256_hex};
use crate::icc::{IccSummary, read_icc};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{ColorType, DynamicImage};
use serde::{Deserialize, Serialize};

/// `result.image`: exactly these keys, in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMetadata {
    /// Lowercase format name from the magic bytes: "jpeg", "png", "gif", "webp", "bmp", "tiff".
    pub format: String,
    pub mime: String,
    /// Size of the fetched file in bytes.
    pub bytes: u64,
    /// Dimensions as stored in the file.
    pub width: u32,
    pub height: u32,
    /// Dimensions after the EXIF orientation is applied (what a viewer shows).
    pub oriented_width: u32,
    pub oriented_height: u32,
    /// The decoded pixel layout: "l8", "la8", "rgb8", "rgba8", "l16", "la16", "rgb16",
    /// "rgba16", "rgb32f", "rgba32f".
    pub color_type: String,
    /// Bits per channel in the file (1, 2, 4, 8, 16, 32), before decoding widened it.
    pub bit_depth: u8,
    pub has_alpha: bool,
    /// Animation frames; 1 for still images.
    pub frames: u32,
    /// SHA-256 of the file bytes, lowercase hex.
    pub sha256: String,
    /// 64-bit DCT perceptual hash of the oriented image, 16 lowercase hex characters.
    pub phash: String,
    /// Up to 5 most common colours, most common first.
    pub dominant_colors: Vec<DominantColor>,
    pub exif: Option<ExifSummary>,
    pub icc: Option<IccSummary>,
}

/// Longest side of the copy that hashing and colour analysis work on; shrinking once with
/// a cheap box filter keeps them fast on 50-megapixel inputs.
const ANALYSIS_SIDE: u32 = 512;

/// Describes `decoded`, which must have been decoded from `bytes`. Never fails: metadata
/// that cannot be read is reported as `null`. CPU-bound (hashing): call it from a blocking
/// thread for large images.
pub fn describe(bytes: &[u8], decoded: &Decoded) -> ImageMetadata {
    let image = decoded.image();
    let small = shrink(image);
    let (width, height) = (decoded.width, decoded.height);
    // The pixels were rotated in `decode`, so their dimensions are the oriented ones.
    let (oriented_width, oriented_height) = (image.width(), image.height());
    ImageMetadata {
        format: decoded.format.name().to_owned(),
        mime: decoded.format.mime().to_owned(),
        bytes: bytes.len() as u64,
        width,
        height,
        oriented_width,
        oriented_height,
        color_type: color_type_name(image.color()).to_owned(),
        bit_depth: bit_depth(decoded),
        has_alpha: image.color().has_alpha(),
        frames: decoded.frames,
        sha256: sha256_hex(bytes),
        phash: phash_hex(&small),
        dominant_colors: dominant_colors(&small),
        exif: read_exif(bytes, decoded.exif_block.as_deref()),
        icc: decoded.icc_profile.as_ref().map(read_icc),
    }
}

/// A copy at most `ANALYSIS_SIDE` on its longer side, averaged with a box filter (each
/// output pixel is the mean of the input pixels it covers, so noise cancels out).
fn shrink(image: &DynamicImage) -> DynamicImage {
    let (width, height) = (image.width(), image.height());
    if width <= ANALYSIS_SIDE && height <= ANALYSIS_SIDE {
        return image.clone();
    }
    let scale = f64::from(ANALYSIS_SIDE) / f64::from(width.max(height));
    let fit = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, ANALYSIS_SIDE);
    let mut small = DynamicImage::new(fit(width), fit(height), image.color());
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    match Resizer::new().resize(image, &mut small, &options) {
        Ok(()) => small,
        // A pixel layout fast_image_resize does not handle takes the slower portable path.
        Err(_) => image.thumbnail(ANALYSIS_SIDE, ANALYSIS_SIDE),
    }
}

fn color_type_name(color: ColorType) -> &'static str {
    match color {
        ColorType::L8 => "l8",
        ColorType::La8 => "la8",
        ColorType::Rgb8 => "rgb8",
        ColorType::Rgba8 => "rgba8",
        ColorType::L16 => "l16",
        ColorType::La16 => "la16",
        ColorType::Rgb16 => "rgb16",
        ColorType::Rgba16 => "rgba16",
        ColorType::Rgb32F => "rgb32f",
        ColorType::Rgba32F => "rgba32f",
        _ => "other",
    }
}

fn bit_depth(decoded: &Decoded) -> u8 {
    let source = decoded.source_color;
    let channels = u16::from(source.channel_count().max(1));
    let bits = source.bits_per_pixel() / channels;
    if bits == 0 {
        // Unknown source layouts: fall back to what it decoded to.
        let color = decoded.image.color();
        let decoded_bits =
            u16::from(color.bytes_per_pixel()) * 8 / u16::from(color.channel_count());
        return u8::try_from(decoded_bits).unwrap_or(8);
    }
    u8::try_from(bits).unwrap_or(u8::MAX)
}
