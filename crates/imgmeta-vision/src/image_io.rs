//! Reading an image file upright: decoded, then rotated/flipped by its EXIF orientation.

use crate::VisionError;
use image::{DynamicImage, ImageDecoder, ImageReader};
use std::path::Path;

/// Decodes `path` and applies its EXIF orientation, so boxes are in the frame a viewer sees.
pub fn open_oriented(path: &Path) -> Result<DynamicImage, VisionError> {
    let failed = |reason: String| VisionError::Image {
        path: path.to_owned(),
        reason,
    };
    let mut decoder = ImageReader::open(path)
        .map_err(|e| failed(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| failed(e.to_string()))?
        .into_decoder()
        .map_err(|e| failed(e.to_string()))?;
    let orientation = decoder.orientation().map_err(|e| failed(e.to_string()))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| failed(e.to_string()))?;
    image.apply_orientation(orientation);
    Ok(image)
}
