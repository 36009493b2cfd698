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
    /// HEIC: HEIF (ISO/IEC 23008-12) whose major brand is `heic` (8-bit HEVC stills).
    Heic,
    /// Any other HEIF (`heix` 10-bit HEVC, sequences, the generic `mif1`/`msf1`): libheif
    /// decodes what it holds.
    Heif,
    /// AVIF: HEIF with AV1 images.
    Avif,
    /// JPEG XL, a bare codestream or in its ISO BMFF container.
    Jxl,
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
            Self::Heic => "heic",
            Self::Heif => "heif",
            Self::Avif => "avif",
            Self::Jxl => "jxl",
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
            Self::Heic => "image/heic",
            Self::Heif => "image/heif",
            Self::Avif => "image/avif",
            Self::Jxl => "image/jxl",
        }
    }

    /// The `image` crate's decoder for this format; `None` for those decoded by libheif
    /// (HEIF, AVIF) or jxl-oxide (JPEG XL).
    pub(crate) fn image_format(self) -> Option<ImageFormat> {
        Some(match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
            Self::Gif => ImageFormat::Gif,
            Self::WebP => ImageFormat::WebP,
            Self::Bmp => ImageFormat::Bmp,
            Self::Tiff => ImageFormat::Tiff,
            Self::Ico => ImageFormat::Ico,
            Self::Pnm => ImageFormat::Pnm,
            Self::Qoi => ImageFormat::Qoi,
            Self::Heic | Self::Heif | Self::Avif | Self::Jxl => return None,
        })
    }
}

/// Identifies the format of `bytes` from their first bytes.
///
/// - A format we decode gives `Ok`.
/// - HEIF/HEIC and AVIF are told by the brands of their `ftyp` box, JPEG XL by its
///   codestream (`FF 0A`) or container signature.
/// - A recognised image format we do not decode (SVG, PSD, DDS, OpenEXR, Radiance HDR,
///   farbfeld, JPEG 2000, a HEIF-family file whose brands name no image we decode) gives
///   `unsupported_format`.
/// - Anything else (HTML, text, JSON, empty) gives `not_an_image`.
pub fn sniff(bytes: &[u8]) -> Result<Format, MetadataError> {
    // Before `image::guess_format`, which takes any `ftyp....avif` for its own AVIF.
    if let Some(format) = iso_bmff_image(bytes) {
        return Ok(format);
    }
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

/// Brands of a `ftyp` box that make a file AVIF (checked first: an AVIF also lists the
/// generic `mif1`/`msf1`).
const AVIF_BRANDS: [&[u8; 4]; 2] = [b"avif", b"avis"];
/// Brands of a HEIF: HEVC stills and sequences (`heix` and `hevx` with 10-bit or 4:2:2
/// profiles, `heim`/`heis` multi-layer), and the generic ones every HEIF carries.
const HEIF_BRANDS: [&[u8; 4]; 8] = [
    b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
];
/// Most compatible brands looked at; a real `ftyp` lists a handful.
const MAX_BRANDS: usize = 64;

/// HEIF, AVIF or JPEG XL, by the JPEG XL signatures or the brands of a leading `ftyp` box
/// (its major brand, then its compatible brands). As for exiftool, a HEIF is HEIC
/// (`image/heic`) when its major brand is `heic`, the main profile's 8-bit stills.
fn iso_bmff_image(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xff, 0x0a]) || bytes.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
        return Some(Format::Jxl);
    }
    if bytes.len() < 12 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes(bytes[0..4].try_into().ok()?) as usize;
    let end = size.clamp(12, bytes.len());
    // The major brand, then (past the minor version) the compatible ones.
    let compatible = bytes.get(16..end).unwrap_or_default().chunks_exact(4);
    let brands: Vec<&[u8]> = std::iter::once(&bytes[8..12])
        .chain(compatible.take(MAX_BRANDS))
        .collect();
    let any = |set: &[&[u8; 4]]| {
        brands
            .iter()
            .any(|b| set.iter().any(|s| *b == s.as_slice()))
    };
    if any(&AVIF_BRANDS) {
        Some(Format::Avif)
    } else if &bytes[8..12] == b"heic" {
        Some(Format::Heic)
    } else if any(&HEIF_BRANDS) {
        Some(Format::Heif)
    } else {
        None
    }
}

/// Signatures of image formats `image::guess_format` does not know, so that they are
/// reported as unsupported images rather than as "not an image".
fn other_image_format(bytes: &[u8]) -> Option<&'static str> {
    // ISO BMFF: another member of the family (JPEG 2000's `jp2 `, a HEIF of a codec we do
    // not name).
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"jp2 " | b"jpx " | b"jpm " => Some("jpeg2000"),
            b"j2ki" | b"vvic" | b"avci" | b"jpgs" => Some("heif"),
            _ => None,
        };
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
            code(b"\0\0\0\x10ftypjp2 \0\0\0\0"),
            ErrorCode::UnsupportedFormat
        );
        assert_eq!(
            code(b"\0\0\0\x10ftypj2ki\0\0\0\0"),
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

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let mut out = u32::try_from(16 + 4 * compatible.len())
            .unwrap()
            .to_be_bytes()
            .to_vec();
        out.extend(b"ftyp");
        out.extend(major);
        out.extend([0; 4]);
        for brand in compatible {
            out.extend(*brand);
        }
        out.extend(b"\0\0\0\x08meta");
        out
    }

    #[test]
    fn heif_and_avif_are_told_by_their_ftyp_brands() {
        assert_eq!(sniff(&ftyp(b"heic", &[])).unwrap(), Format::Heic);
        for brand in [b"heix", b"hevc", b"mif1", b"msf1"] {
            assert_eq!(sniff(&ftyp(brand, &[])).unwrap(), Format::Heif, "{brand:?}");
        }
        for brand in [b"avif", b"avis"] {
            assert_eq!(sniff(&ftyp(brand, &[])).unwrap(), Format::Avif, "{brand:?}");
        }
        // A generic major brand: the compatible brands say which codec.
        assert_eq!(
            sniff(&ftyp(b"mif1", &[b"mif1", b"avif", b"miaf"])).unwrap(),
            Format::Avif
        );
        assert_eq!(
            sniff(&ftyp(b"isom", &[b"mp41", b"heic"])).unwrap(),
            Format::Heif
        );
        // A video file is not an image.
        assert_eq!(code(&ftyp(b"isom", &[b"mp41"])), ErrorCode::NotAnImage);
    }

    #[test]
    fn jpeg_xl_is_told_by_its_codestream_or_container_signature() {
        assert_eq!(sniff(&[0xff, 0x0a, 0xfa, 0x1f]).unwrap(), Format::Jxl);
        assert_eq!(
            sniff(b"\0\0\0\x0cJXL \r\n\x87\n\0\0\0\x14ftypjxl ").unwrap(),
            Format::Jxl
        );
    }
}
