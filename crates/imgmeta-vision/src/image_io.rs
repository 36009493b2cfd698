//! Reading an image upright for the detector's own tools (`bench detect`, the parity tests):
//! decoded by the metadata crate, with its limits and its EXIF orientation, so that this
//! crate never decodes images itself and boxes are in the frame a viewer sees.

use crate::VisionError;
use image::DynamicImage;
use imgmeta_metadata::{DecodeLimits, decode};
use std::path::Path;

/// Decodes the file at `path` within the default decode limits, upright.
pub fn open_oriented(path: &Path) -> Result<DynamicImage, VisionError> {
    let failed = |reason: String| VisionError::Image {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    oriented(&bytes).map_err(failed)
}

/// Decodes image bytes within the default decode limits, upright.
pub fn decode_oriented(bytes: &[u8]) -> Result<DynamicImage, VisionError> {
    oriented(bytes).map_err(|reason| VisionError::Image {
        path: "<bytes>".into(),
        reason,
    })
}

fn oriented(bytes: &[u8]) -> Result<DynamicImage, String> {
    decode(bytes, &DecodeLimits::default())
        .map(|decoded| decoded.into_image())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6).
    fn jpeg_with_orientation_6(width: u32, height: u32) -> Vec<u8> {
        let mut plain = Vec::new();
        image::RgbImage::from_pixel(width, height, image::Rgb([200, 10, 10]))
            .write_to(&mut Cursor::new(&mut plain), image::ImageFormat::Jpeg)
            .unwrap();
        let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        tiff.extend([0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0x00, 0x06, 0, 0]);
        tiff.extend([0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let mut out = plain[..2].to_vec();
        out.extend([0xFF, 0xE1]);
        out.extend(((app1.len() + 2) as u16).to_be_bytes());
        out.extend(app1);
        out.extend(&plain[2..]);
        out
    }

    #[test]
    fn an_exif_rotated_jpeg_is_decoded_in_its_display_orientation() {
        let bytes = jpeg_with_orientation_6(40, 16);

        let image = decode_oriented(&bytes).unwrap();

        assert_eq!((image.width(), image.height()), (16, 40));
    }

    #[test]
    fn bytes_that_are_not_an_image_are_a_decode_error() {
        let err = decode_oriented(b"definitely not an image").unwrap_err();
        assert_eq!(err.code(), imgmeta_domain::ErrorCode::DecodeFailed);
    }
}
