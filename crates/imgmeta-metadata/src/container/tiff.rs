//! TIFF (and BigTIFF): the first page's layout from its tags, and the pages, one per IFD in
//! the chain each IFD's "next" offset makes.

use super::{Embedded, FrameCounter, Walked};
use crate::MetadataError;
use crate::layout::{Channels, Layout};
use std::collections::HashSet;

const BITS_PER_SAMPLE: u16 = 258;
const PHOTOMETRIC: u16 = 262;
const SAMPLES_PER_PIXEL: u16 = 277;
const SAMPLE_FORMAT: u16 = 339;
const XMP_PACKET: u16 = 700;
const IPTC_NAA: u16 = 33723;
/// Entries of the first IFD read at most (a real one has a few dozen).
const MAX_ENTRIES: u64 = 4096;

/// Where numbers are and how wide: classic TIFF has 2-byte entry counts, 12-byte entries and
/// 4-byte offsets; BigTIFF 8-byte counts, 20-byte entries and 8-byte offsets.
struct Reader<'a> {
    bytes: &'a [u8],
    little_endian: bool,
    big: bool,
}

impl<'a> Reader<'a> {
    /// A reader for the file's byte order and flavour (`II`/`MM`, classic or BigTIFF).
    fn new(bytes: &'a [u8]) -> Self {
        let little_endian = bytes.starts_with(b"II");
        let version = if little_endian { [43, 0] } else { [0, 43] };
        Self {
            bytes,
            little_endian,
            big: bytes.get(2..4) == Some(&version[..]),
        }
    }

    /// The offset of the first IFD, from the header.
    fn first_ifd(&self) -> Option<usize> {
        self.offset(if self.big { 8 } else { 4 })
    }

    /// The tag and position of each entry of the IFD at `at` (at most [`MAX_ENTRIES`]),
    /// ending where the file does.
    fn entries(&self, at: usize) -> impl Iterator<Item = (u64, usize)> + '_ {
        let count = self.ifd(at).map_or(0, |(count, _)| count.min(MAX_ENTRIES));
        (0..count as usize).map_while(move |i| {
            let entry = at + self.count_width() + i * self.entry_len();
            Some((self.uint(entry, 2)?, entry))
        })
    }

    fn uint(&self, at: usize, width: usize) -> Option<u64> {
        let raw = self.bytes.get(at..at.checked_add(width)?)?;
        let mut value = 0u64;
        for i in 0..width {
            let byte = if self.little_endian {
                raw[width - 1 - i]
            } else {
                raw[i]
            };
            value = (value << 8) | u64::from(byte);
        }
        Some(value)
    }

    fn offset_width(&self) -> usize {
        if self.big { 8 } else { 4 }
    }

    fn count_width(&self) -> usize {
        if self.big { 8 } else { 2 }
    }

    fn entry_len(&self) -> usize {
        if self.big { 20 } else { 12 }
    }

    fn offset(&self, at: usize) -> Option<usize> {
        usize::try_from(self.uint(at, self.offset_width())?).ok()
    }

    /// The IFD at `at`: its entry count and the offset of its "next IFD" field.
    fn ifd(&self, at: usize) -> Option<(u64, usize)> {
        let count = self.uint(at, self.count_width())?;
        let entries = usize::try_from(count).ok()?.checked_mul(self.entry_len())?;
        let next_at = at.checked_add(self.count_width())?.checked_add(entries)?;
        Some((count, next_at))
    }

    /// The width of one value of the entry at `entry`, from its type.
    fn value_width(&self, entry: usize) -> Option<u64> {
        Some(match self.uint(entry + 2, 2)? {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 => 4,
            16..=18 => 8,
            _ => return None,
        })
    }

    /// Where the values of the entry at `entry` start, and how many bytes they span: stored
    /// left-justified in the entry when they fit, else at the offset it holds.
    fn values(&self, entry: usize) -> Option<(usize, u64)> {
        let len = self
            .uint(entry + 4, self.offset_width())?
            .checked_mul(self.value_width(entry)?)?;
        let field = entry + 4 + self.offset_width();
        let at = if len <= self.offset_width() as u64 {
            field
        } else {
            self.offset(field)?
        };
        Some((at, len))
    }

    /// The first value of a SHORT or LONG entry at `entry`.
    fn first_value(&self, entry: usize) -> Option<u32> {
        let width = match self.uint(entry + 2, 2)? {
            3 => 2,
            4 => 4,
            _ => return None,
        };
        let (at, _) = self.values(entry)?;
        u32::try_from(self.uint(at, width)?).ok()
    }

    /// The bytes an entry's values occupy, cut where the file ends.
    fn entry_bytes(&self, entry: usize) -> Option<&'a [u8]> {
        let (at, len) = self.values(entry)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| at.checked_add(len));
        let end = end.unwrap_or(usize::MAX).min(self.bytes.len());
        self.bytes.get(at..end)
    }
}

/// Walks the IFD chain, stopping at an offset outside the file, an IFD cut short, or one
/// already visited (a loop).
pub(super) fn walk(bytes: &[u8], counter: &FrameCounter) -> Result<Walked, MetadataError> {
    let reader = Reader::new(bytes);
    let first = reader.first_ifd();
    let layout = first.and_then(|at| page_layout(&reader, at));
    let mut visited = HashSet::new();
    let mut pages = 0u32;
    let mut next = first;
    while let Some(at) = next.filter(|&at| at != 0 && visited.insert(at)) {
        // A page counts when its whole IFD, up to its "next" field, is in the file.
        let whole = |&(_, n): &(u64, usize)| n.saturating_add(reader.offset_width()) <= bytes.len();
        let Some((_, next_at)) = reader.ifd(at).filter(whole) else {
            break;
        };
        pages = counter.next(pages)?;
        next = reader.offset(next_at);
    }
    Ok(Walked {
        frames: pages,
        layout,
        end: None,
    })
}

/// The first page's XMP packet (tag 700) and IPTC-IIM block (tag 33723), whatever type
/// the writer gave them (BYTE, UNDEFINED, LONG...): the bytes their count and type span.
pub(super) fn embedded(bytes: &[u8]) -> Embedded<'_> {
    let reader = Reader::new(bytes);
    let mut found = Embedded::default();
    let Some(at) = reader.first_ifd() else {
        return found;
    };
    for (tag, entry) in reader.entries(at) {
        let slot = match u16::try_from(tag) {
            Ok(XMP_PACKET) => &mut found.xmp,
            Ok(IPTC_NAA) => &mut found.iim,
            _ => continue,
        };
        *slot = reader.entry_bytes(entry);
    }
    found
}

/// The layout of the page whose IFD is at `at`.
fn page_layout(reader: &Reader, at: usize) -> Option<Layout> {
    reader.ifd(at)?;
    // TIFF's defaults: 1 bit, 1 sample, unsigned integers.
    let (mut bits, mut samples, mut photometric, mut format) = (1, 1, None, 1);
    for (tag, entry) in reader.entries(at) {
        let value = || reader.first_value(entry);
        match u16::try_from(tag).ok()? {
            BITS_PER_SAMPLE => bits = value()?,
            PHOTOMETRIC => photometric = value(),
            SAMPLES_PER_PIXEL => samples = value()?,
            SAMPLE_FORMAT => format = value()?,
            _ => {}
        }
    }
    // Extra samples beyond the colour ones are shown as alpha by decoders.
    let (base, channels) = match photometric? {
        0 | 1 => (1, [Channels::Grey, Channels::GreyAlpha]),
        2 | 6 => (3, [Channels::Rgb, Channels::Rgba]),
        3 => (1, [Channels::Indexed, Channels::Indexed]),
        5 => (4, [Channels::Cmyk, Channels::CmykAlpha]),
        _ => return None,
    };
    let channels = match samples {
        s if s == base => channels[0],
        s if s > base => channels[1],
        _ => return None,
    };
    Some(Layout {
        float: format == 3,
        ..Layout::new(channels, u8::try_from(bits).ok()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    fn counter(max: u32) -> FrameCounter {
        FrameCounter {
            format: Format::Tiff,
            max,
        }
    }

    /// An IFD entry: tag, type, count, value (or offset).
    type Entry = (u16, u16, u32, u32);

    /// A little-endian classic TIFF of IFDs, each (entries, next IFD offset); IFDs are laid
    /// out one after another from offset 8, so a next offset can point at any of them.
    fn tiff(ifds: &[(&[Entry], u32)]) -> Vec<u8> {
        let mut out = b"II\x2a\x00\x08\x00\x00\x00".to_vec();
        for (entries, next) in ifds {
            out.extend(u16::try_from(entries.len()).unwrap().to_le_bytes());
            for (tag, kind, count, value) in *entries {
                out.extend(tag.to_le_bytes());
                out.extend(kind.to_le_bytes());
                out.extend(count.to_le_bytes());
                out.extend(value.to_le_bytes());
            }
            out.extend(next.to_le_bytes());
        }
        out
    }

    /// The offset of the `n`th IFD when each has `entries` entries.
    fn ifd_at(n: u32, entries: u32) -> u32 {
        8 + n * (2 + 12 * entries + 4)
    }

    const RGB16: &[Entry] = &[(258, 3, 1, 16), (262, 3, 1, 2), (277, 3, 1, 3)];

    #[test]
    fn the_first_pages_tags_give_the_layout() {
        let walked = walk(&tiff(&[(RGB16, 0)]), &counter(10)).unwrap();
        let layout = walked.layout.unwrap();
        assert_eq!(
            (layout.color_type().as_str(), layout.bit_depth),
            ("rgb16", 16)
        );
        let float: &[Entry] = &[
            (258, 3, 1, 32),
            (262, 3, 1, 1),
            (277, 3, 1, 2),
            (339, 3, 1, 3),
        ];
        let layout = walk(&tiff(&[(float, 0)]), &counter(10))
            .unwrap()
            .layout
            .unwrap();
        assert_eq!(layout.color_type(), "la32f");
        assert!(layout.has_alpha);
        let palette: &[Entry] = &[(258, 3, 1, 4), (262, 3, 1, 3)];
        let layout = walk(&tiff(&[(palette, 0)]), &counter(10))
            .unwrap()
            .layout
            .unwrap();
        assert_eq!(
            (layout.color_type().as_str(), layout.bit_depth),
            ("indexed", 4)
        );
    }

    #[test]
    fn every_ifd_in_the_chain_is_a_page() {
        let three = tiff(&[(RGB16, ifd_at(1, 3)), (RGB16, ifd_at(2, 3)), (RGB16, 0)]);
        assert_eq!(walk(&three, &counter(3)).unwrap().frames, 3);
        assert!(walk(&three, &counter(2)).is_err());
    }

    #[test]
    fn a_bigtiff_is_read_with_its_wider_fields() {
        // Header: byte order, version 43, offset size 8, padding, first IFD at 16.
        let mut out = b"II\x2b\x00\x08\x00\x00\x00".to_vec();
        out.extend(16u64.to_le_bytes());
        for ifd in 0..2u64 {
            out.extend(3u64.to_le_bytes());
            for (tag, value) in [(258u16, 8u16), (262, 2), (277, 4)] {
                out.extend(tag.to_le_bytes());
                out.extend(3u16.to_le_bytes());
                out.extend(1u64.to_le_bytes());
                out.extend(u64::from(value).to_le_bytes());
            }
            let next: u64 = if ifd == 0 { 16 + 8 + 3 * 20 + 8 } else { 0 };
            out.extend(next.to_le_bytes());
        }
        let walked = walk(&out, &counter(10)).unwrap();
        assert_eq!(walked.frames, 2);
        let layout = walked.layout.unwrap();
        assert_eq!(
            (layout.color_type().as_str(), layout.has_alpha),
            ("rgba8", true)
        );
    }

    #[test]
    fn a_loop_in_the_chain_ends_the_walk() {
        let looped = tiff(&[(RGB16, ifd_at(1, 3)), (RGB16, ifd_at(0, 3))]);
        assert_eq!(walk(&looped, &counter(10)).unwrap().frames, 2);
        let to_itself = tiff(&[(RGB16, ifd_at(0, 3))]);
        assert_eq!(walk(&to_itself, &counter(10)).unwrap().frames, 1);
        let outside = tiff(&[(RGB16, 1_000_000)]);
        assert_eq!(walk(&outside, &counter(10)).unwrap().frames, 1);
    }
}
