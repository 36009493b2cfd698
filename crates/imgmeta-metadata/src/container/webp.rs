//! WebP: the layout (lossy `VP8 `, lossless `VP8L` with its alpha hint, extended `VP8X` with
//! its alpha flag), the `ANMF` frames of an animation and the end of the RIFF container.

use super::{Embedded, FrameCounter, Walked, le_u32};
use crate::MetadataError;
use crate::layout::{Channels, Layout};

const RIFF_HEADER_LEN: usize = 12;
/// `VP8X` flags.
const ALPHA: u8 = 0x10;
const ANIMATION: u8 = 0x02;

/// Walks the RIFF chunks by their lengths. The pixels are 8-bit RGB, with alpha when the
/// file says it may be non-opaque.
pub(super) fn walk(bytes: &[u8], counter: &FrameCounter) -> Result<Walked, MetadataError> {
    let Some(riff_size) = le_u32(bytes, 4) else {
        return Ok(Walked::still(None, None));
    };
    // The RIFF size counts from after itself; a chunk is padded to an even length.
    let riff_end = (riff_size as usize).saturating_add(8);
    let end = (riff_end <= bytes.len()).then_some(riff_end);
    let last = riff_end.min(bytes.len());
    let (mut alpha, mut animated, mut frames) = (false, false, 0u32);
    let mut first = true;
    let mut pos = RIFF_HEADER_LEN;
    while let (Some(kind), Some(size)) = (bytes.get(pos..pos + 4), le_u32(bytes, pos + 4)) {
        if pos >= last {
            break;
        }
        let data = &bytes[(pos + 8).min(last)..];
        match kind {
            b"VP8X" if first => {
                let flags = data.first().copied().unwrap_or(0);
                alpha = (flags & ALPHA) != 0;
                animated = (flags & ANIMATION) != 0;
            }
            // Lossless: a signature byte, then width and height (14 bits each), then the
            // "alpha is used" hint.
            b"VP8L" if first => {
                alpha = le_u32(data, 1).is_some_and(|header| (header >> 28) & 1 == 1);
            }
            b"ALPH" => alpha = true,
            b"ANMF" if animated => frames = counter.next(frames)?,
            _ => {}
        }
        first = false;
        let padded = (size as usize).saturating_add(size as usize & 1);
        pos = pos.saturating_add(8).saturating_add(padded);
    }
    let channels = if alpha { Channels::Rgba } else { Channels::Rgb };
    Ok(Walked {
        frames: if animated { frames } else { 1 },
        layout: Some(Layout::new(channels, 8)),
        end,
    })
}

/// The first `XMP ` chunk's data (WebP carries no IPTC-IIM block).
pub(super) fn embedded(bytes: &[u8]) -> Embedded<'_> {
    let mut pos = RIFF_HEADER_LEN;
    while let (Some(kind), Some(size)) = (bytes.get(pos..pos + 4), le_u32(bytes, pos + 4)) {
        let start = pos + 8;
        let end = start.saturating_add(size as usize);
        if kind == b"XMP " {
            return Embedded {
                xmp: bytes.get(start..end.min(bytes.len())),
                iim: None,
            };
        }
        pos = end.saturating_add(size as usize & 1);
    }
    Embedded::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    fn counter(max: u32) -> FrameCounter {
        FrameCounter {
            format: Format::WebP,
            max,
        }
    }

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_vec();
        out.extend(u32::try_from(data.len()).unwrap().to_le_bytes());
        out.extend(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
        out
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut out = b"RIFF".to_vec();
        out.extend(u32::try_from(body.len() + 4).unwrap().to_le_bytes());
        out.extend(b"WEBP");
        out.extend(body);
        out
    }

    fn layout_of(bytes: &[u8]) -> (String, bool) {
        let layout = walk(bytes, &counter(10)).unwrap().layout.unwrap();
        (layout.color_type(), layout.has_alpha)
    }

    #[test]
    fn the_alpha_flag_and_hint_decide_the_layout() {
        let lossy = riff(&[chunk(b"VP8 ", &[0; 10])]);
        assert_eq!(layout_of(&lossy), ("rgb8".into(), false));
        let hinted = riff(&[chunk(b"VP8L", &[0x2f, 0, 0, 0, 0x10])]);
        assert_eq!(layout_of(&hinted), ("rgba8".into(), true));
        let opaque = riff(&[chunk(b"VP8L", &[0x2f, 0, 0, 0, 0])]);
        assert_eq!(layout_of(&opaque), ("rgb8".into(), false));
        let extended = riff(&[chunk(b"VP8X", &[ALPHA, 0, 0, 0, 0, 0, 0, 0, 0, 0])]);
        assert_eq!(layout_of(&extended), ("rgba8".into(), true));
    }

    #[test]
    fn an_animation_has_one_frame_per_anmf_chunk() {
        let vp8x = chunk(b"VP8X", &[ANIMATION, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let anmf = chunk(b"ANMF", &[0; 25]);
        let three = riff(&[
            vp8x.clone(),
            chunk(b"ANIM", &[0; 6]),
            anmf.clone(),
            anmf.clone(),
            anmf,
        ]);
        assert_eq!(walk(&three, &counter(3)).unwrap().frames, 3);
        assert!(walk(&three, &counter(2)).is_err());
    }

    #[test]
    fn bytes_after_the_riff_container_are_counted() {
        let mut bytes = riff(&[chunk(b"VP8 ", &[0; 10])]);
        bytes.extend(b"tail");
        assert_eq!(
            walk(&bytes, &counter(1))
                .unwrap()
                .trailing_bytes(bytes.len()),
            4
        );
    }
}
