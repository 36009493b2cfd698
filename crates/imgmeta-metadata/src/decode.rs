//! The decode stage: sniff the format, check header dimensions and frame count against the
//! limits, decode the first frame and apply the EXIF orientation.

use crate::container;
use crate::icc::EmbeddedIcc;
use crate::layout::Layout;
use crate::png_iccp::{self, PngIccp, WithoutRange};
use crate::{DecodeLimits, Format, MetadataError, sniff};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};

/// A decoded image: the pixels in display orientation plus what the metadata stage needs
/// from the file and the decoder (stored dimensions and layout, frames, embedded profiles).
#[derive(Clone)]
pub struct Decoded {
    pub(crate) format: Format,
    pub(crate) image: DynamicImage,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) frames: u32,
    /// The pixel layout as the file stores it.
    pub(crate) layout: Layout,
    /// Bytes after the image's end marker.
    pub(crate) trailing_bytes: usize,
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
            .field("stored_color", &self.layout.color_type())
            .field("frames", &self.frames)
            .field("trailing_bytes", &self.trailing_bytes)
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

    /// Frames of an animation or pages of a TIFF: 1 for still images.
    pub fn frames(&self) -> u32 {
        self.frames
    }
}

/// Decodes `bytes` within `limits`. Synchronous and CPU-bound: run it on a blocking thread
/// (see [`decode_with_timeout`]).
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, MetadataError> {
    let format = sniff(bytes)?;
    let image_format = match format.image_format() {
        Some(image_format) => image_format,
        None if format == Format::Jxl => return crate::jxl::decode(bytes, limits),
        None => return crate::heif::decode(format, bytes, limits),
    };
    let fail = |e| MetadataError::from_image(format.name(), e);

    // A PNG's profile is read here, bounded, and hidden from the decoder, which would
    // inflate it without a useful bound (see png_iccp.rs).
    let png_iccp = match format {
        Format::Png => png_iccp::find(bytes)?,
        _ => PngIccp::default(),
    };
    let source = WithoutRange::new(bytes, png_iccp.chunk);
    let mut reader = ImageReader::with_format(source, image_format);
    reader.limits(limits.to_image_limits());
    // Building the decoder reads only the header; `image` checks the header dimensions
    // against `max_side` here, before any pixel buffer exists.
    let mut decoder = reader.into_decoder().map_err(fail)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(format, width, height, limits)?;
    // Frames are counted (and capped) from the file's own structure before any pixel is
    // decoded; the same walk finds the stored layout and the image's end.
    let walked = container::walk(format, bytes, limits)?;
    if format == Format::Jpeg && walked.end.is_none() {
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
    let layout = walked
        .layout
        .unwrap_or_else(|| Layout::from_decoder(source_color, image.color()));

    Ok(Decoded {
        format,
        image,
        width,
        height,
        frames: walked.frames,
        layout,
        trailing_bytes: walked.trailing_bytes(bytes.len()),
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
    check_size(
        &format!("the {} image", format.name()),
        width,
        height,
        limits,
    )?;
    if width == 0 || height == 0 {
        return Err(MetadataError::DecodeFailed {
            format: format.name(),
            reason: format!("the header declares an empty {width}x{height} image"),
        });
    }
    Ok(())
}

/// `image_too_large` when `what` ("the png image", or one inside it: a HEIF's tile,
/// thumbnail or depth map) is declared larger than the limits.
pub(crate) fn check_size(
    what: &str,
    width: u32,
    height: u32,
    limits: &DecodeLimits,
) -> Result<(), MetadataError> {
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_side || height > limits.max_side || pixels > limits.max_pixels {
        return Err(MetadataError::ImageTooLarge(format!(
            "{what} is {width}x{height} ({pixels} pixels); at most {} pixels per side and {} \
             pixels in all are accepted",
            limits.max_side, limits.max_pixels
        )));
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
