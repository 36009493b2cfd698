//! GIF: frames, colour table sizes, transparency and the trailer, block by block.
//!
//! A GIF is a header, an optional global colour table, then blocks: extensions (`21`),
//! images (`2C`, each with an optional local colour table and LZW data) and the trailer
//! (`3B`). Data comes in sub-blocks of at most 255 bytes, each skipped by its length byte,
//! so a walk costs one step per 256 bytes at most, and nothing is decompressed.

use super::{FrameCounter, Walked};
use crate::MetadataError;
use crate::layout::{Channels, Layout};

const HEADER_LEN: usize = 13;

/// What the blocks said so far.
#[derive(Default)]
struct Seen {
    frames: u32,
    /// Bits per index of the largest colour table.
    table_bits: Option<u8>,
    /// A graphic control extension with its transparency flag on, for any frame.
    transparency: bool,
    end: Option<usize>,
}

/// Walks the blocks. A GIF cut short or damaged after its first frame still shows that
/// frame, so the frames before the damage count; damage before any frame is `decode_failed`.
pub(super) fn walk(bytes: &[u8], counter: &FrameCounter) -> Result<Walked, MetadataError> {
    let Some(&packed) = bytes.get(10).filter(|_| bytes.len() >= HEADER_LEN) else {
        return Err(failed("the header is cut short"));
    };
    let mut seen = Seen::default();
    let mut pos = HEADER_LEN + table(&mut seen, packed);
    let damage = loop {
        match bytes.get(pos) {
            Some(0x3b) => {
                seen.end = Some(pos + 1);
                break None;
            }
            Some(0x21) => {
                let Some(&label) = bytes.get(pos + 1) else {
                    break Some("an extension is cut short");
                };
                // A graphic control extension: size 4, then the flags, bit 0 "transparent".
                if label == 0xf9 && bytes.get(pos + 2) == Some(&4) {
                    seen.transparency |= bytes.get(pos + 3).is_some_and(|flags| flags & 1 == 1);
                }
                match skip_sub_blocks(bytes, pos + 2) {
                    Some(next) => pos = next,
                    None => break Some("an extension is cut short"),
                }
            }
            Some(0x2c) => {
                // Separator, left, top, width, height (2 bytes each), flags.
                let Some(&flags) = bytes.get(pos + 9) else {
                    break Some("an image descriptor is cut short");
                };
                seen.frames = counter.next(seen.frames)?;
                // Then the local table, the LZW minimum code size, the data.
                let data = pos + 10 + table(&mut seen, flags) + 1;
                match skip_sub_blocks(bytes, data) {
                    Some(next) => pos = next,
                    None => break Some("an image's data is cut short"),
                }
            }
            Some(_) => break Some("an unknown block follows"),
            None => break Some("there is no trailer"),
        }
    };
    if let Some(reason) = damage
        && seen.frames == 0
    {
        return Err(failed(reason));
    }
    // A GIF without any colour table (the decoder then uses a default one) is 8-bit.
    let bits = seen.table_bits.unwrap_or(8);
    Ok(Walked {
        frames: seen.frames,
        layout: Some(Layout::new(Channels::Indexed, bits).with_transparency(seen.transparency)),
        end: seen.end,
    })
}

/// Notes a colour table announced by `flags` (the screen's or an image's: bit 7 present,
/// bits 0-2 size as 2^(n+1) entries); returns its length in bytes.
fn table(seen: &mut Seen, flags: u8) -> usize {
    if flags & 0x80 == 0 {
        return 0;
    }
    let bits = (flags & 0x07) + 1;
    seen.table_bits = seen.table_bits.max(Some(bits));
    3 << bits
}

/// The offset after the sub-blocks starting at `pos` and their zero-length terminator.
fn skip_sub_blocks(bytes: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let size = usize::from(*bytes.get(pos)?);
        pos += 1 + size;
        if size == 0 {
            return Some(pos);
        }
    }
}

fn failed(reason: &str) -> MetadataError {
    MetadataError::DecodeFailed {
        format: "gif",
        reason: format!("the GIF's structure is damaged: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    fn counter(max: u32) -> FrameCounter {
        FrameCounter {
            format: Format::Gif,
            max,
        }
    }

    /// A GIF with a 4-entry global table and one frame per entry of `frames`: (transparent,
    /// local table bits).
    fn gif(frames: &[(bool, Option<u8>)]) -> Vec<u8> {
        let mut bytes = b"GIF89a\x01\x00\x01\x00\x81\x00\x00".to_vec();
        bytes.extend([0; 12]);
        for &(transparent, local) in frames {
            bytes.extend([0x21, 0xf9, 4, u8::from(transparent), 0, 0, 0, 0]);
            let flags = local.map_or(0, |bits| 0x80 | (bits - 1));
            bytes.extend([0x2c, 0, 0, 0, 0, 1, 0, 1, 0, flags]);
            bytes.extend(vec![0; local.map_or(0, |bits| 3 << bits)]);
            bytes.extend([2, 2, 0x4c, 0x01, 0]);
        }
        bytes.push(0x3b);
        bytes
    }

    #[test]
    fn frames_tables_and_transparency_are_read_from_every_frame() {
        let opaque = walk(&gif(&[(false, None), (false, None)]), &counter(10)).unwrap();
        assert_eq!(opaque.frames, 2);
        let layout = opaque.layout.unwrap();
        assert_eq!(
            (layout.color_type().as_str(), layout.bit_depth),
            ("indexed", 2)
        );
        assert!(!layout.has_alpha);

        let later = walk(&gif(&[(false, None), (true, Some(5))]), &counter(10)).unwrap();
        let layout = later.layout.unwrap();
        assert_eq!(layout.bit_depth, 5);
        assert!(layout.has_alpha);
    }

    #[test]
    fn the_frame_cap_stops_the_walk() {
        let five = gif(&[(false, None); 5]);
        assert!(walk(&five, &counter(4)).is_err());
        assert_eq!(walk(&five, &counter(5)).unwrap().frames, 5);
    }

    #[test]
    fn damage_after_a_frame_keeps_the_frames_before_it() {
        let bytes = gif(&[(false, None), (false, None)]);
        let cut = &bytes[..bytes.len() - 4];
        let walked = walk(cut, &counter(10)).unwrap();
        assert_eq!((walked.frames, walked.end), (2, None));
        assert!(walk(&bytes[..30], &counter(10)).is_err());
    }

    #[test]
    fn bytes_after_the_trailer_are_counted() {
        let mut bytes = gif(&[(false, None)]);
        bytes.extend([0; 7]);
        assert_eq!(
            walk(&bytes, &counter(1))
                .unwrap()
                .trailing_bytes(bytes.len()),
            7
        );
    }
}
