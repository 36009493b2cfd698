//! The metadata stage: describe a decoded image as `result.image`.

use crate::Decoded;
use crate::colors::{DominantColor, dominant_colors};
use crate::container::embedded;
use crate::credentials::{ContentCredentials, read_credentials};
use crate::descriptive::{Descriptive, read_descriptive};
use crate::exif_fields::{ExifSummary, read_exif};
use crate::hashes::{phash_hex, sha256_hex};
use crate::icc::{IccSummary, read_icc};
use crate::warnings::{Warning, WarningCode};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// `result.image`: exactly these keys, in this order.
///
/// Every number is printed as its shortest decimal: integers as integers, colour fractions
/// to at most 4 decimals, EXIF numbers to at most 15 significant digits (as exiftool `-n`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMetadata {
    /// Lowercase format name from the magic bytes: "jpeg", "png", "gif", "webp", "bmp", "tiff".
    pub format: String,
    pub mime: String,
    /// Size of the fetched file in bytes.
    pub bytes: u64,
    /// Dimensions as stored in the file (a HEIF's primary image's `ispe`, a JPEG XL's
    /// codestream size), before any orientation.
    pub width: u32,
    pub height: u32,
    /// Dimensions as shown: after the EXIF orientation (JPEG, PNG, WebP, TIFF), a HEIF's
    /// `irot`/`imir` transforms and `clap` crop (never its EXIF tag too), or a JPEG XL's
    /// codestream orientation.
    pub oriented_width: u32,
    pub oriented_height: u32,
    /// How the file stores a pixel, read from its headers (PNG `IHDR`, GIF colour tables,
    /// TIFF tags, JPEG frame header, WebP chunks, BMP header), not the layout decoding
    /// widened it to: the channels, then the bits per sample, then `f` for floating point.
    /// Channels are `l` (grey), `la` (grey and alpha), `rgb`, `rgba`, `cmyk` (CMYK or YCCK
    /// JPEG and TIFF) and `cmyka`, so "l1", "l2", "l4", "l8", "l16", "la8", "la16", "rgb8",
    /// "rgb16", "rgba8", "rgba16", "cmyk8", "rgb32f", "rgba32f" and so on. A palette image
    /// (every GIF, palette PNG, BMP and TIFF) is "indexed". A JPEG's YCbCr and a lossy
    /// WebP's YUV are reported as "rgb8", which is what they decode to; so are a HEIF's
    /// and AVIF's YCbCr, at the luma depth libheif reports ("rgb10" for 10-bit) and "l8" when
    /// its `pixi` has one channel, "rgba…" with an alpha auxiliary image. A JPEG XL reports
    /// its header's bit depth, "f" for float samples.
    pub color_type: String,
    /// Bits per sample as stored: 1, 2, 4, 8, 16 or 32 (12 for a 12-bit JPEG). For
    /// "indexed", bits per palette index (a GIF's from its largest colour table).
    pub bit_depth: u8,
    /// Whether a pixel can be less than opaque: an alpha channel, a PNG `tRNS` chunk, a GIF
    /// transparent index on any frame, WebP's alpha flag or lossless alpha hint.
    pub has_alpha: bool,
    /// Frames of an animation (GIF, APNG, WebP, JPEG XL) or pages of a TIFF, counted by
    /// walking the file (an APNG's `fcTL` chunks, never its `acTL` header alone; a HEIF or
    /// AVIF image sequence's sample table; JPEG XL keyframes); 1 for still images.
    pub frames: u32,
    /// SHA-256 of the file bytes, lowercase hex.
    pub sha256: String,
    /// 64-bit DCT perceptual hash of the oriented image, 16 lowercase hex characters.
    pub phash: String,
    /// Up to 5 most common colours, most common first.
    pub dominant_colors: Vec<DominantColor>,
    pub exif: Option<ExifSummary>,
    pub icc: Option<IccSummary>,
    /// Title, description, keywords, creator, copyright, credit and digital source type,
    /// from XMP, else IPTC-IIM, else EXIF; `null` when the file carries none of them.
    #[serde(default)]
    pub descriptive: Option<Descriptive>,
    /// C2PA content credentials, validated offline, and whether the file declares itself
    /// AI-generated (`credentials.rs`); `present: false` when it carries no manifest.
    #[serde(default)]
    pub c2pa: ContentCredentials,
    /// What was odd about the file but did not stop us describing it, with stable codes:
    /// `gps_out_of_range`, `text_truncated`, `icc_unparsed`, `trailing_data`,
    /// `metadata_too_large`, `xmp_unparsed`, `c2pa_unreadable`. Empty when
    /// nothing was.
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

/// Longest side of the copy that hashing and colour analysis work on; shrinking once with
/// a cheap box filter keeps them fast on 50-megapixel inputs.
const ANALYSIS_SIDE: u32 = 512;

/// Describes `decoded`, which must have been decoded from `bytes`. Never fails: metadata
/// that cannot be read is reported as `null`, and what was odd is listed in `warnings`.
/// CPU-bound (hashing): call it from a blocking
/// thread for large images.
pub fn describe(bytes: &[u8], decoded: &Decoded) -> ImageMetadata {
    describe_hashed(bytes, decoded, None)
}

/// [`describe`] with the bytes' SHA-256 (lowercase hex) already known to the caller (the
/// content cache's key), so it is not computed twice.
pub fn describe_hashed(bytes: &[u8], decoded: &Decoded, sha256: Option<&str>) -> ImageMetadata {
    let image = decoded.image();
    let small = shrink(image);
    let (width, height) = (decoded.width, decoded.height);
    // The pixels were rotated in `decode`, so their dimensions are the oriented ones.
    let (oriented_width, oriented_height) = (image.width(), image.height());
    let mut warnings = Vec::new();
    let (exif, exif_texts) = read_exif(bytes, decoded.exif_block.as_deref(), &mut warnings);
    let icc = decoded
        .icc_profile
        .as_ref()
        .and_then(|icc| read_icc(icc, &mut warnings));
    let descriptive = read_descriptive(embedded(decoded.format, bytes), exif_texts, &mut warnings);
    let source_type = descriptive
        .as_ref()
        .and_then(|d| d.digital_source_type.as_deref());
    let c2pa = read_credentials(bytes, decoded.format.mime(), source_type, &mut warnings);
    if decoded.trailing_bytes > 0 {
        warnings.push(Warning::new(
            WarningCode::TrailingData,
            format!(
                "{} bytes follow the end of the {} image",
                decoded.trailing_bytes,
                decoded.format.name()
            ),
        ));
    }
    let layout = &decoded.layout;
    ImageMetadata {
        format: decoded.format.name().to_owned(),
        mime: decoded.format.mime().to_owned(),
        bytes: bytes.len() as u64,
        width,
        height,
        oriented_width,
        oriented_height,
        color_type: layout.color_type(),
        bit_depth: layout.bit_depth,
        has_alpha: layout.has_alpha,
        frames: decoded.frames,
        sha256: sha256.map_or_else(|| sha256_hex(bytes), str::to_owned),
        phash: phash_hex(&small),
        dominant_colors: dominant_colors(&small),
        exif,
        icc,
        descriptive,
        c2pa,
        warnings,
    }
}

/// A copy at most `ANALYSIS_SIDE` on its longer side, averaged with a box filter (each
/// output pixel is the mean of the input pixels it covers, so noise cancels out); a small
/// enough image is used as it is, not copied.
fn shrink(image: &DynamicImage) -> Cow<'_, DynamicImage> {
    let (width, height) = (image.width(), image.height());
    if width <= ANALYSIS_SIDE && height <= ANALYSIS_SIDE {
        return Cow::Borrowed(image);
    }
    let scale = f64::from(ANALYSIS_SIDE) / f64::from(width.max(height));
    let fit = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, ANALYSIS_SIDE);
    let mut small = DynamicImage::new(fit(width), fit(height), image.color());
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    Cow::Owned(match Resizer::new().resize(image, &mut small, &options) {
        Ok(()) => small,
        // A pixel layout fast_image_resize does not handle takes the slower portable path.
        Err(_) => image.thumbnail(ANALYSIS_SIDE, ANALYSIS_SIDE),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecodeLimits, decode};

    #[test]
    fn a_digest_the_caller_knows_is_reported_as_is_and_equals_the_computed_one() {
        let mut png = Vec::new();
        image::RgbImage::from_pixel(8, 6, image::Rgb([200, 30, 30]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let decoded = decode(&png, &DecodeLimits::default()).unwrap();
        let computed = describe(&png, &decoded);
        assert_eq!(computed.sha256, sha256_hex(&png));
        let given = describe_hashed(&png, &decoded, Some(&computed.sha256));
        assert_eq!(given, computed);
        // What the caller passes is what is reported: the caller owns the digest.
        let other = describe_hashed(&png, &decoded, Some("ab"));
        assert_eq!(other.sha256, "ab");
    }
}
