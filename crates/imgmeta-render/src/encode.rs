//! Encoding a rendered image: JPEG (quality 90) for opaque images, PNG when alpha matters.

use image::{DynamicImage, ImageFormat};
use sha2::{Digest, Sha256};
use std::io::Cursor;

/// An encoded image, ready to store as an artifact.
#[derive(Clone)]
pub struct Encoded {
    pub mime: &'static str,
    /// `jpg` or `png`.
    pub extension: &'static str,
    pub width: u32,
    pub height: u32,
    pub sha256: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded")
            .field("mime", &self.mime)
            .field("size", &(self.width, self.height))
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the image could not be encoded: {0}")]
pub struct RenderError(String);

/// Encodes `image`: PNG if it has an alpha channel, JPEG otherwise.
pub fn encode(image: &DynamicImage) -> Result<Encoded, RenderError> {
    let mut bytes = Vec::new();
    let (mime, extension) = if image.color().has_alpha() {
        image
            .to_rgba8()
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .map_err(|e| RenderError(e.to_string()))?;
        ("image/png", "png")
    } else {
        let rgb = image.to_rgb8();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90);
        rgb.write_with_encoder(encoder)
            .map_err(|e| RenderError(e.to_string()))?;
        ("image/jpeg", "jpg")
    };
    Ok(Encoded {
        mime,
        extension,
        width: image.width(),
        height: image.height(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes,
    })
}
