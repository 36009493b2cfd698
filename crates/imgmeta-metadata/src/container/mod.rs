//! Walking the file's own structure (chunks, blocks, marker segments, IFDs) without decoding
//! a pixel: how many frames or pages it holds, how it stores its pixels, and where it ends.
//!
//! `image` decodes only the first frame and reports the layout it decoded to, and headers
//! can lie (an APNG's `acTL` may announce 1 frame over 4, or 100,000 over 2). So frames are
//! counted by walking the file itself, each step skipping one chunk or block by its length,
//! and the walk stops as soon as the count passes `DecodeLimits::max_frames`. Every walk
//! costs at most one step per structure in the file and allocates nothing per step (TIFF
//! keeps the offsets it has visited, at most `max_frames + 1` of them, to stop at a loop).
//!
//! [`embedded`] walks the same structures for the descriptive metadata blocks (XMP, IPTC-IIM)
//! and hands them back as borrowed slices of the file, so finding them copies nothing.

mod bmp;
mod gif;
mod isobmff;
mod jpeg;
mod png;
mod tiff;
mod webp;

use crate::layout::Layout;
use crate::{DecodeLimits, Format, MetadataError};

/// What the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Walked {
    /// Animation frames (GIF, APNG, animated WebP) or pages (TIFF); 1 for a still image.
    pub(crate) frames: u32,
    /// The stored layout; `None` when this format's header is not read here or did not
    /// make sense (the decoder's view is used then).
    pub(crate) layout: Option<Layout>,
    /// The offset just past the image's end marker (JPEG end-of-image, PNG `IEND`, GIF
    /// trailer, WebP RIFF container); `None` when the walk did not reach it, or the format
    /// has no end marker (TIFF, BMP).
    pub(crate) end: Option<usize>,
}

impl Walked {
    fn still(layout: Option<Layout>, end: Option<usize>) -> Self {
        Self {
            frames: 1,
            layout,
            end,
        }
    }

    /// Bytes after the image's end marker; 0 when there is none or the end was not found.
    pub(crate) fn trailing_bytes(&self, len: usize) -> usize {
        self.end.map_or(0, |end| len.saturating_sub(end))
    }
}

/// Walks `bytes`, refusing more than `limits.max_frames` frames.
pub(crate) fn walk(
    format: Format,
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<Walked, MetadataError> {
    let counter = FrameCounter {
        format,
        max: limits.max_frames,
    };
    let mut walked = match format {
        Format::Jpeg => jpeg::walk(bytes),
        Format::Png => png::walk(bytes, &counter)?,
        Format::Gif => gif::walk(bytes, &counter)?,
        Format::WebP => webp::walk(bytes, &counter)?,
        Format::Tiff => tiff::walk(bytes, &counter)?,
        Format::Bmp => Walked::still(bmp::layout(bytes), None),
        Format::Heic | Format::Heif | Format::Avif => isobmff::walk(bytes, limits, &counter)?,
        // jxl-oxide reads the codestream's frames and layout itself (jxl.rs).
        Format::Ico | Format::Pnm | Format::Qoi | Format::Jxl => Walked::still(None, None),
    };
    walked.frames = walked.frames.max(1);
    Ok(walked)
}

/// The raw descriptive metadata blocks of a file, borrowed from it; not yet parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Embedded<'a> {
    /// The XMP packet: JPEG APP1 `http://ns.adobe.com/xap/1.0/`, PNG `iTXt`
    /// `XML:com.adobe.xmp` (uncompressed), WebP `XMP ` chunk, TIFF tag 700, a HEIF's
    /// `application/rdf+xml` item, a JPEG XL container's `xml ` box.
    pub(crate) xmp: Option<&'a [u8]>,
    /// The IPTC-IIM datasets: JPEG APP13 Photoshop resource 0x0404, TIFF tag 33723.
    pub(crate) iim: Option<&'a [u8]>,
}

/// Finds the first XMP packet and IPTC-IIM block of `bytes`, each as declared by its
/// container (cut where the file ends). Formats without them give neither.
pub(crate) fn embedded(format: Format, bytes: &[u8]) -> Embedded<'_> {
    match format {
        Format::Jpeg => jpeg::embedded(bytes),
        Format::Png => png::embedded(bytes),
        Format::WebP => webp::embedded(bytes),
        Format::Tiff => tiff::embedded(bytes),
        Format::Heic | Format::Heif | Format::Avif | Format::Jxl => {
            isobmff::embedded(format, bytes)
        }
        Format::Gif | Format::Bmp | Format::Ico | Format::Pnm | Format::Qoi => Embedded::default(),
    }
}

/// Counts frames against the cap.
struct FrameCounter {
    format: Format,
    max: u32,
}

impl FrameCounter {
    /// `count + 1`, or `image_too_large` once that passes the cap.
    fn next(&self, count: u32) -> Result<u32, MetadataError> {
        let count = count.saturating_add(1);
        if count > self.max {
            return Err(MetadataError::ImageTooLarge(format!(
                "the {} image has {count} or more frames; at most {} are accepted",
                self.format.name(),
                self.max
            )));
        }
        Ok(count)
    }
}

/// A big-endian `u32` at `at`.
fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// A big-endian `u16` at `at`.
fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// A little-endian `u32` at `at`.
fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// A little-endian `u16` at `at`.
fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
