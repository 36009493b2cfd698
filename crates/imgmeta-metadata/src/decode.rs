//! The decode stage: sniff the format, check header dimensions and frame count against the
//! limits, decode the first frame and apply the EXIF orientation.

use crate::frames::count_frames;
use crate::icc::EmbeddedIcc;
use crate::png_iccp::{self, PngIccp, WithoutRange};
use crate::{DecodeLimits, Format, MetadataError, sniff};
use image::metadata::Orientation;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageReader};

/// A decoded image: the pixels in display orientation plus what the metadata stage needs
/// from the decoder (stored dimensions, source colour type, embedded profiles).
#[derive(Clone)]
pub struct Decoded {
    pub(crate) format: Format,
    pub(crate) image: DynamicImage,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) frames: u32,
    pub(crate) source_color: ExtendedColorType,
    pub(crate) icc_profile: Option<EmbeddedIcc>,
    pub(crate) exif_block: Option<Vec<u8>>,
}

/// Summarised by hand: a derived `Debug` would print every pixel into the logs.
impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("format", &self.format)
            .field("stored", &(self.width, self.height))
            .field("oriented", &(self.image.width(), self.image.height()))
            .field("color", &self.image.color())
            .field("frames", &self.frames)
            .field(
                "icc_profile_bytes",
                &self.icc_profile.as_ref().map(EmbeddedIcc::held_bytes),
            )
            .field("exif_bytes", &self.exif_block.as_ref().map(Vec::len))
            .finish()
    }
}

impl Decoded {
    /// The first frame, with the EXIF orientation applied: what a viewer shows.
    pub fn image(&self) -> &DynamicImage {
        &self.image
    }

    pub fn into_image(self) -> DynamicImage {
        self.image
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Width and height as stored, before orientation.
    pub fn stored_dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Frame count: 1 for still images.
    pub fn frames(&self) -> u32 {
        self.frames
    }
}

/// Decodes `bytes` within `limits`. Synchronous and CPU-bound: run it on a blocking thread
/// (see [`decode_with_timeout`]).
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, MetadataError> {
    let format = sniff(bytes)?;
    let fail = |e| MetadataError::from_image(format.name(), e);

    // A PNG's profile is read here, bounded, and hidden from the decoder, which would
    // inflate it without a useful bound (see png_iccp.rs).
    let png_iccp = match format {
        Format::Png => png_iccp::find(bytes)?,
        _ => PngIccp::default(),
    };
    let source = WithoutRange::new(bytes, png_iccp.chunk);
    let mut reader = ImageReader::with_format(source, format.image_format());
    reader.limits(limits.to_image_limits());
    // Building the decoder reads only the header; `image` checks the header dimensions
    // against `max_side` here, before any pixel buffer exists.
    let mut decoder = reader.into_decoder().map_err(fail)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(format, width, height, limits)?;
    let frames = count_frames(format, bytes, limits)?;
    if format == Format::Jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills a cut-off scan with grey rather than failing; a truncated
        // download must not be described as if it were the whole picture.
        return Err(MetadataError::DecodeFailed {
            format: format.name(),
            reason: "the image data is truncated (no end-of-image marker)".into(),
        });
    }

    // Metadata is best effort: a broken EXIF or ICC block must not fail the decode.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc_profile = match format {
        Format::Png => png_iccp.profile,
        _ => decoder
            .icc_profile()
            .ok()
            .flatten()
            .map(EmbeddedIcc::bounded),
    };
    let exif_block = decoder.exif_metadata().ok().flatten();
    let source_color = decoder.original_color_type();

    // `ImageReader::decode` makes this reservation itself; we hold the decoder directly so
    // we must make it here to bound the output buffer by `max_alloc_bytes` too.
    let mut budget = limits.to_image_limits();
    budget.reserve(decoder.total_bytes()).map_err(fail)?;
    // The metadata copies live as long as the pixels, so they share the same budget. They
    // are best effort: one that does not fit is dropped rather than failing the decode.
    let icc_profile = icc_profile.map(|icc| match budget.reserve(icc.held_bytes() as u64) {
        Ok(()) => icc,
        Err(_) => EmbeddedIcc::TooLarge,
    });
    let exif_block = exif_block.filter(|exif| budget.reserve(exif.len() as u64).is_ok());
    let mut image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    image.apply_orientation(orientation);

    Ok(Decoded {
        format,
        image,
        width,
        height,
        frames,
        source_color,
        icc_profile,
        exif_block,
    })
}

fn check_dimensions(
    format: Format,
    width: u32,
    height: u32,
    limits: &DecodeLimits,
) -> Result<(), MetadataError> {
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_side || height > limits.max_side || pixels > limits.max_pixels {
        return Err(MetadataError::ImageTooLarge(format!(
            "the {} image is {width}x{height} ({pixels} pixels); at most {} pixels per side \
             and {} pixels in all are accepted",
            format.name(),
            limits.max_side,
            limits.max_pixels
        )));
    }
    if width == 0 || height == 0 {
        return Err(MetadataError::DecodeFailed {
            format: format.name(),
            reason: format!("the header declares an empty {width}x{height} image"),
        });
    }
    Ok(())
}

/// Runs [`decode`] on tokio's blocking pool, giving up after `limits.timeout`.
///
/// On timeout the blocking thread cannot be interrupted and runs to completion in the
/// background; the size limits are what bound how long that can be.
pub async fn decode_with_timeout<B>(
    bytes: B,
    limits: &DecodeLimits,
) -> Result<Decoded, MetadataError>
where
    B: AsRef<[u8]> + Send + 'static,
{
    let task_limits = limits.clone();
    let task = tokio::task::spawn_blocking(move || decode(bytes.as_ref(), &task_limits));
    match tokio::time::timeout(limits.timeout, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(MetadataError::TaskFailed(join.to_string())),
        Err(_) => Err(MetadataError::TimedOut {
            limit_ms: limits.timeout.as_millis(),
        }),
    }
}

/// Whether a JPEG has an end-of-image marker after its first scan.
///
/// Walks the marker segments up to the first start-of-scan (so an embedded EXIF thumbnail's
/// own end marker is skipped over), then looks for `FF D9` in the rest: inside entropy-coded
/// data a `FF` byte is always followed by `00` or a restart marker, so `FF D9` there is the
/// real end. Hand-written because no decoder we use reports truncation.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut pos = 2; // after SOI
    while pos + 4 <= bytes.len() {
        if bytes[pos] != 0xff {
            return false;
        }
        let marker = bytes[pos + 1];
        match marker {
            // Fill bytes before a marker.
            0xff => pos += 1,
            // Standalone markers without a length.
            0x01 | 0xd0..=0xd7 => pos += 2,
            0xd9 => return false,
            _ => {
                let length = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
                if marker == 0xda {
                    let scan = bytes.get(pos + 2 + length..).unwrap_or_default();
                    return scan.windows(2).any(|w| w == [0xff, 0xd9]);
                }
                pos += 2 + length;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::jpeg_is_complete;

    /// SOI, an APP1 segment holding a thumbnail's own end marker, a scan header, scan data.
    fn jpeg(scan: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0xff, 0xd8];
        bytes.extend([0xff, 0xe1, 0x00, 0x06, 0xab, 0xff, 0xd9, 0xcd]);
        bytes.extend([0xff, 0xda, 0x00, 0x04, 0x01, 0x00]);
        bytes.extend(scan);
        bytes
    }

    #[test]
    fn a_jpeg_ending_in_its_end_marker_is_complete() {
        assert!(jpeg_is_complete(&jpeg(&[
            0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0xd9
        ])));
    }

    #[test]
    fn an_end_marker_inside_a_thumbnail_does_not_make_a_cut_jpeg_complete() {
        assert!(!jpeg_is_complete(&jpeg(&[0x12, 0xff, 0x00, 0x34])));
        assert!(!jpeg_is_complete(&[0xff, 0xd8, 0xff, 0xe1, 0x00]));
    }
}
