//! `DecodeLimits`: how large, long and animated an image may be before decoding it is refused.

use std::time::Duration;

/// Limits applied before and during decoding. Dimension and frame limits are checked from
/// headers before any pixel buffer is allocated; `max_alloc_bytes` also bounds the decoders'
/// own allocations through `image::Limits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most pixels (width × height) of the image, or of one animation frame's canvas, or of
    /// any image inside a HEIF (tile, grid canvas, thumbnail, depth map, alpha plane).
    pub max_pixels: u64,
    /// Most pixels on either side.
    pub max_side: u32,
    /// Most animation frames (GIF, APNG, animated WebP, JPEG XL, a HEIF or AVIF sequence's
    /// samples) or TIFF pages, counted by walking the file before anything is decoded (a
    /// JPEG XL's as its frame headers are read, before any is rendered).
    pub max_frames: u32,
    /// Most bytes a decoder may allocate. The decoded pixels and the EXIF and ICC copies
    /// kept with them count against it together.
    pub max_alloc_bytes: u64,
    /// Longest a decode may take; enforced by [`crate::decode_with_timeout`].
    pub timeout: Duration,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
            max_side: 20_000,
            max_frames: 10_000,
            // 50 MP of RGBA16 is 400 MB; anything past 512 MiB is not an image we want.
            max_alloc_bytes: 512 * 1024 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

impl DecodeLimits {
    pub(crate) fn to_image_limits(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        limits.max_alloc = Some(self.max_alloc_bytes);
        limits
    }
}
