//! PNG and APNG: the `IHDR` layout, transparency (`tRNS`), the frames of an animation
//! (`fcTL` chunks, never `acTL`'s declared count alone) and the end (`IEND`).

use super::{Embedded, FrameCounter, Walked, be_u32};
use crate::MetadataError;
use crate::layout::{Channels, Layout};

const SIGNATURE_LEN: usize = 8;

/// Walks the chunks by their lengths, without reading their data (except `IHDR`'s 13 bytes).
///
/// An APNG's frames are its `fcTL` chunks: one per frame, whether or not the default image
/// is one of them. They count only when an `acTL` chunk marks the file as animated (other
/// decoders ignore `fcTL` without it). A layout the chunks cannot carry leaves the walk
/// early and is left for the decoder to report.
pub(super) fn walk(bytes: &[u8], counter: &FrameCounter) -> Result<Walked, MetadataError> {
    let mut layout = None;
    let mut transparency = false;
    let (mut animated, mut frame_controls, mut seen_idat) = (false, 0u32, false);
    let mut end = None;
    let mut pos = SIGNATURE_LEN;
    while let (Some(length), Some(kind)) = (be_u32(bytes, pos), bytes.get(pos + 4..pos + 8)) {
        // PNG caps chunk lengths at 2^31 - 1.
        if length > i32::MAX as u32 {
            break;
        }
        let Some(next) = (pos + 12).checked_add(length as usize) else {
            break;
        };
        let data = bytes.get(pos + 8..(pos + 8 + length as usize).min(bytes.len()));
        match kind {
            b"IHDR" if pos == SIGNATURE_LEN => layout = data.and_then(header_layout),
            b"tRNS" if !seen_idat => transparency = true,
            b"acTL" if !seen_idat => animated = true,
            // Without acTL these are ignored, so a file full of them costs only the walk.
            b"fcTL" if animated => frame_controls = counter.next(frame_controls)?,
            b"IDAT" => seen_idat = true,
            b"IEND" => {
                end = (next <= bytes.len()).then_some(next);
                break;
            }
            _ => {}
        }
        pos = next;
    }
    Ok(Walked {
        frames: if animated { frame_controls.max(1) } else { 1 },
        layout: layout.map(|l: Layout| l.with_transparency(transparency)),
        end,
    })
}

/// The XMP packet of the first `iTXt` chunk keyed `XML:com.adobe.xmp`: keyword, NUL,
/// compression flag and method, language tag, NUL, translated keyword, NUL, then the text.
/// A compressed packet is not inflated (writers store XMP uncompressed so that it can be
/// found without parsing), and PNG has no IPTC-IIM block.
pub(super) fn embedded(bytes: &[u8]) -> Embedded<'_> {
    let mut pos = SIGNATURE_LEN;
    while let (Some(length), Some(kind)) = (be_u32(bytes, pos), bytes.get(pos + 4..pos + 8)) {
        let Some(next) = (pos + 12).checked_add(length as usize) else {
            break;
        };
        let data = &bytes[(pos + 8).min(bytes.len())..(next - 4).min(bytes.len())];
        match kind {
            b"iTXt" => {
                if let Some(xmp) = data
                    .strip_prefix(b"XML:com.adobe.xmp\0")
                    .and_then(itxt_text)
                {
                    return Embedded {
                        xmp: Some(xmp),
                        iim: None,
                    };
                }
            }
            b"IEND" => break,
            _ => {}
        }
        pos = next;
    }
    Embedded::default()
}

/// The uncompressed text of an `iTXt` chunk after its keyword.
fn itxt_text(rest: &[u8]) -> Option<&[u8]> {
    let (&[0, _], rest) = (rest.get(..2)?, rest.get(2..)?) else {
        return None;
    };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let (_language, _translated) = (parts.next()?, parts.next()?);
    parts.next()
}

/// `IHDR`: width, height, bit depth, colour type, compression, filter, interlace.
fn header_layout(ihdr: &[u8]) -> Option<Layout> {
    let (&bit_depth, &color_type) = (ihdr.get(8)?, ihdr.get(9)?);
    let channels = match (color_type, bit_depth) {
        (0, 1 | 2 | 4 | 8 | 16) => Channels::Grey,
        (2, 8 | 16) => Channels::Rgb,
        (3, 1 | 2 | 4 | 8) => Channels::Indexed,
        (4, 8 | 16) => Channels::GreyAlpha,
        (6, 8 | 16) => Channels::Rgba,
        _ => return None,
    };
    Some(Layout::new(channels, bit_depth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;
    use crate::png_iccp::chunk;

    /// A 1x1 PNG of `bit_depth` and `color_type` with `extra` chunks before its IDAT and
    /// `after` after it.
    fn png(bit_depth: u8, color_type: u8, extra: &[Vec<u8>], after: &[Vec<u8>]) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(
            b"IHDR",
            &[0, 0, 0, 1, 0, 0, 0, 1, bit_depth, color_type, 0, 0, 0],
        ));
        extra.iter().for_each(|c| png.extend(c));
        png.extend(chunk(b"IDAT", &[0x78, 0x01]));
        after.iter().for_each(|c| png.extend(c));
        png.extend(chunk(b"IEND", &[]));
        png
    }

    fn counter(max: u32) -> FrameCounter {
        FrameCounter {
            format: Format::Png,
            max,
        }
    }

    fn actl(frames: u32) -> Vec<u8> {
        let mut data = frames.to_be_bytes().to_vec();
        data.extend(0u32.to_be_bytes());
        chunk(b"acTL", &data)
    }

    fn fctl() -> Vec<u8> {
        chunk(b"fcTL", &[0; 26])
    }

    #[test]
    fn low_depths_and_palettes_are_reported_as_stored() {
        for (depth, kind, name) in [
            (1, 0, "l1"),
            (2, 0, "l2"),
            (4, 3, "indexed"),
            (16, 2, "rgb16"),
            (8, 4, "la8"),
        ] {
            let layout = walk(&png(depth, kind, &[], &[]), &counter(10))
                .unwrap()
                .layout
                .unwrap();
            assert_eq!(
                (layout.color_type().as_str(), layout.bit_depth),
                (name, depth)
            );
            assert_eq!(layout.has_alpha, kind == 4);
        }
        let bad = walk(&png(16, 3, &[], &[]), &counter(10)).unwrap();
        assert_eq!(bad.layout, None);
    }

    #[test]
    fn a_trns_chunk_makes_a_palette_image_non_opaque() {
        let trns = chunk(b"tRNS", &[0]);
        let walked = walk(&png(8, 3, &[trns], &[]), &counter(10)).unwrap();
        assert!(walked.layout.unwrap().has_alpha);
    }

    #[test]
    fn apng_frames_are_the_frame_controls_not_the_declared_count() {
        let one_over_four = png(8, 2, &[actl(1), fctl()], &[fctl(), fctl(), fctl()]);
        assert_eq!(walk(&one_over_four, &counter(10)).unwrap().frames, 4);
        let many_over_two = png(8, 2, &[actl(100_000)], &[fctl(), fctl()]);
        assert_eq!(walk(&many_over_two, &counter(10)).unwrap().frames, 2);
        let too_many = png(8, 2, &[actl(2)], &[fctl(), fctl(), fctl()]);
        assert!(walk(&too_many, &counter(2)).is_err());
        // fcTL without acTL is not an animation.
        let still = png(8, 2, &[], &[fctl(), fctl()]);
        assert_eq!(walk(&still, &counter(1)).unwrap().frames, 1);
    }

    #[test]
    fn an_uncompressed_xmp_itxt_chunk_is_found() {
        let text = chunk(b"tEXt", b"Comment\0hi");
        let xmp = chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta/>");
        let bytes = png(8, 2, &[text, xmp], &[]);
        let found = embedded(&bytes);
        assert_eq!(found.xmp, Some(&b"<x:xmpmeta/>"[..]));
        let compressed = chunk(b"iTXt", b"XML:com.adobe.xmp\0\x01\0\0\0x");
        let bytes = png(8, 2, &[compressed], &[]);
        assert_eq!(embedded(&bytes).xmp, None);
    }

    #[test]
    fn bytes_after_iend_are_counted() {
        let mut bytes = png(8, 2, &[], &[]);
        let whole = bytes.len();
        assert_eq!(walk(&bytes, &counter(1)).unwrap().end, Some(whole));
        bytes.extend(b"zip!");
        assert_eq!(
            walk(&bytes, &counter(1))
                .unwrap()
                .trailing_bytes(bytes.len()),
            4
        );
        let cut = &bytes[..whole - 6];
        assert_eq!(walk(cut, &counter(1)).unwrap().end, None);
    }
}
