//! Deciding what the bytes are from their magic numbers, never from a declared Content-Type.

use crate::MetadataError;
use image::ImageFormat;

/// An image format this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
    Bmp,
    Tiff,
    Ico,
    Pnm,
    Qoi,
}

impl Format {
    /// The lowercase name reported in `result.image.format`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::WebP => "webp",
            Self::Bmp => "bmp",
            Self::Tiff => "tiff",
            Self::Ico => "ico",
            Self::Pnm => "pnm",
            Self::Qoi => "qoi",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::WebP => "image/webp",
            Self::Bmp => "image/bmp",
            Self::Tiff => "image/tiff",
            Self::Ico => "image/x-icon",
            Self::Pnm => "image/x-portable-anymap",
            Self::Qoi => "image/qoi",
        }
    }

    pub(crate) fn image_format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
            Self::Gif => ImageFormat::Gif,
            Self::WebP => ImageFormat::WebP,
            Self::Bmp => ImageFormat::Bmp,
            Self::Tiff => ImageFormat::Tiff,
            Self::Ico => ImageFormat::Ico,
            Self::Pnm => ImageFormat::Pnm,
            Self::Qoi => ImageFormat::Qoi,
        }
    }
}

/// Identifies the format of `bytes` from their first bytes.
///
/// - A format we decode gives `Ok`.
/// - A recognised image format we do not decode (AVIF, HEIC/HEIF, JPEG XL, SVG, PSD, DDS,
///   OpenEXR, Radiance HDR, farbfeld, JPEG 2000) gives `unsupported_format`.
/// - Anything else (HTML, text, JSON, empty) gives `not_an_image`.
pub fn sniff(bytes: &[u8]) -> Result<Format, MetadataError> {
    if let Ok(format) = image::guess_format(bytes) {
        return match format {
            ImageFormat::Jpeg => Ok(Format::Jpeg),
            ImageFormat::Png => Ok(Format::Png),
            ImageFormat::Gif => Ok(Format::Gif),
            ImageFormat::WebP => Ok(Format::WebP),
            ImageFormat::Bmp => Ok(Format::Bmp),
            ImageFormat::Tiff => Ok(Format::Tiff),
            ImageFormat::Ico => Ok(Format::Ico),
            ImageFormat::Qoi => Ok(Format::Qoi),
            // `image` takes any "P1".."P7" prefix for PNM, which plain text can start with;
            // a real PNM header continues with whitespace.
            ImageFormat::Pnm if bytes.get(2).is_some_and(u8::is_ascii_whitespace) => {
                Ok(Format::Pnm)
            }
            ImageFormat::Pnm => Err(not_an_image(bytes)),
            other => Err(MetadataError::UnsupportedFormat(unsupported_name(other))),
        };
    }
    match other_image_format(bytes) {
        Some(name) => Err(MetadataError::UnsupportedFormat(name)),
        None => Err(not_an_image(bytes)),
    }
}

fn unsupported_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Avif => "avif",
        ImageFormat::Dds => "dds",
        ImageFormat::Hdr => "hdr",
        ImageFormat::OpenExr => "openexr",
        ImageFormat::Farbfeld => "farbfeld",
        ImageFormat::Tga => "tga",
        _ => "unknown",
    }
}

/// Signatures of image formats `image::guess_format` does not know, so that they are
/// reported as unsupported images rather than as "not an image".
fn other_image_format(bytes: &[u8]) -> Option<&'static str> {
    // ISO BMFF: a `ftyp` box whose major brand names the codec.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"avif" | b"avis" => Some("avif"),
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                Some("heif")
            }
            b"jxl " => Some("jxl"),
            _ => None,
        };
    }
    if bytes.starts_with(&[0xff, 0x0a]) || bytes.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
        return Some("jxl");
    }
    if bytes.starts_with(b"\0\0\0\x0cjP  \r\n\x87\n")
        || bytes.starts_with(&[0xff, 0x4f, 0xff, 0x51])
    {
        return Some("jpeg2000");
    }
    if bytes.starts_with(b"8BPS") {
        return Some("psd");
    }
    if looks_like_svg(bytes) {
        return Some("svg");
    }
    None
}

/// SVG is XML text: look for an `<svg` element near the start, after an optional XML
/// declaration, comments or doctype. HTML that embeds an SVG starts with `<html` or
/// `<!doctype html` and is not an image.
fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if !text.starts_with('<') || text.starts_with("<!doctype html") || text.starts_with("<html") {
        return false;
    }
    text.contains("<svg")
}

fn not_an_image(bytes: &[u8]) -> MetadataError {
    if bytes.is_empty() {
        return MetadataError::NotAnImage("the content is empty".into());
    }
    let shown = bytes.len().min(8);
    MetadataError::NotAnImage(format!(
        "no known image signature; it starts with {}",
        hex::encode(&bytes[..shown])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgmeta_domain::ErrorCode;

    fn code(bytes: &[u8]) -> ErrorCode {
        sniff(bytes).unwrap_err().code()
    }

    #[test]
    fn html_text_and_empty_bodies_are_not_images() {
        assert_eq!(
            code(b"<!DOCTYPE html><html><svg></svg></html>"),
            ErrorCode::NotAnImage
        );
        assert_eq!(code(b"hello, world"), ErrorCode::NotAnImage);
        assert_eq!(code(b"{\"error\": 1}"), ErrorCode::NotAnImage);
        assert_eq!(code(b""), ErrorCode::NotAnImage);
        assert_eq!(code(b"P1ease note"), ErrorCode::NotAnImage);
    }

    #[test]
    fn recognised_formats_we_do_not_decode_are_unsupported() {
        assert_eq!(
            code(b"\0\0\0\x1cftypavif\0\0\0\0"),
            ErrorCode::UnsupportedFormat
        );
        assert_eq!(
            code(b"\0\0\0\x18ftypheic\0\0\0\0"),
            ErrorCode::UnsupportedFormat
        );
        assert_eq!(
            code(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"x\"/>"),
            ErrorCode::UnsupportedFormat
        );
        assert_eq!(code(b"8BPS\0\x01"), ErrorCode::UnsupportedFormat);
    }

    #[test]
    fn decodable_formats_are_named_by_their_magic_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").unwrap(), Format::Png);
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]).unwrap(), Format::Jpeg);
        assert_eq!(sniff(b"GIF89a").unwrap(), Format::Gif);
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 ").unwrap(), Format::WebP);
        assert_eq!(sniff(b"P6\n1 1\n255\n").unwrap(), Format::Pnm);
    }
}
