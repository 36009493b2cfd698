//! A look at the EXIF entries we report before kamadak-exif parses them. The parser copies a
//! field's whole declared value on first use (and splits ASCII at every NUL into a vector of
//! its own, 24 bytes each), so one hostile image pointing many tags at a multi-megabyte run of
//! NULs would cost gigabytes. Every entry of IFD0, the Exif IFD and the GPS IFD is measured
//! here first; one larger than any real value is never handed to the parser: its text is read
//! from a prefix of its raw bytes, and a number that large is reported as missing.

use exif::{Context, Tag};
use std::collections::HashMap;

/// The largest value, in bytes, a reported field is parsed from (real ones are a few dozen).
pub(crate) const MAX_FIELD_BYTES: usize = 4096;
/// Entries read per IFD at most (a real IFD has a few dozen).
const MAX_ENTRIES: usize = 1024;

/// Where an oversized entry's value lies in the TIFF buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub kind: u16,
    pub offset: usize,
    pub len: usize,
}

impl RawEntry {
    /// Whether the value is text-like (ASCII, or BYTE/UNDEFINED as some writers store text).
    pub(crate) fn is_text(&self) -> bool {
        matches!(self.kind, 1 | 2 | 7)
    }
}

/// The entries of IFD0, the Exif IFD and the GPS IFD whose values are over
/// [`MAX_FIELD_BYTES`], by tag. A damaged structure just ends the scan.
pub(crate) fn oversized(buf: &[u8], little_endian: bool) -> HashMap<Tag, RawEntry> {
    let reader = Reader { buf, little_endian };
    let mut found = HashMap::new();
    let Some(ifd0) = reader.u32_at(4) else {
        return found;
    };
    let pointers = reader.scan(ifd0 as usize, Context::Tiff, &mut found);
    for (pointer, context) in [(0x8769, Context::Exif), (0x8825, Context::Gps)] {
        if let Some(&offset) = pointers.get(&pointer) {
            reader.scan(offset as usize, context, &mut found);
        }
    }
    found
}

struct Reader<'a> {
    buf: &'a [u8],
    little_endian: bool,
}

impl Reader<'_> {
    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.buf.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.little_endian {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.little_endian {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    /// Records the oversized entries of the IFD at `at`; returns its LONG values by tag (the
    /// sub-IFD pointers among them).
    fn scan(
        &self,
        at: usize,
        context: Context,
        found: &mut HashMap<Tag, RawEntry>,
    ) -> HashMap<u16, u32> {
        let mut longs = HashMap::new();
        let Some(count) = self.u16_at(at) else {
            return longs;
        };
        for i in 0..usize::from(count).min(MAX_ENTRIES) {
            let entry = at + 2 + 12 * i;
            let (Some(tag), Some(kind), Some(n)) = (
                self.u16_at(entry),
                self.u16_at(entry + 2),
                self.u32_at(entry + 4),
            ) else {
                break;
            };
            let len = unit_bytes(kind).saturating_mul(n as usize);
            let value_at = entry + 8;
            if kind == 4
                && n == 1
                && let Some(v) = self.u32_at(value_at)
            {
                longs.insert(tag, v);
            }
            if len > MAX_FIELD_BYTES
                && let Some(offset) = self.u32_at(value_at)
            {
                found.insert(
                    Tag(context, tag),
                    RawEntry {
                        kind,
                        offset: offset as usize,
                        len,
                    },
                );
            }
        }
        longs
    }
}

/// Bytes per element of a TIFF field type; 0 for an unknown type (which the parser skips).
fn unit_bytes(kind: u16) -> usize {
    match kind {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 => 4,
        5 | 10 | 12 => 8,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A big-endian TIFF header with IFD0 holding `entries` (tag, type, count, value).
    fn tiff(entries: &[(u16, u16, u32, u32)]) -> Vec<u8> {
        let mut out = b"MM\0\x2a".to_vec();
        out.extend(8u32.to_be_bytes());
        out.extend((entries.len() as u16).to_be_bytes());
        for (tag, kind, count, value) in entries {
            out.extend(tag.to_be_bytes());
            out.extend(kind.to_be_bytes());
            out.extend(count.to_be_bytes());
            out.extend(value.to_be_bytes());
        }
        out.extend(0u32.to_be_bytes());
        out
    }

    #[test]
    fn only_values_over_the_limit_are_reported_with_where_they_lie() {
        let buf = tiff(&[
            (0x010f, 2, 20, 100),        // Make, 20 bytes: ordinary
            (0x0110, 2, 5_000_000, 200), // Model, 5 MB
            (0x829d, 5, 1_000, 300),     // a RATIONAL array of 8,000 bytes
        ]);
        let found = oversized(&buf, false);
        assert_eq!(found.len(), 2);
        let model = found[&Tag::Model];
        assert_eq!(
            (model.offset, model.len, model.is_text()),
            (200, 5_000_000, true)
        );
        assert!(!found[&Tag(Context::Tiff, 0x829d)].is_text());
        assert!(!found.contains_key(&Tag::Make));
    }

    #[test]
    fn sub_ifds_are_followed_and_damage_ends_the_scan_quietly() {
        // IFD0 points at an Exif IFD at 26 holding one oversized LensModel.
        let mut buf = tiff(&[(0x8769, 4, 1, 26)]);
        buf.extend(1u16.to_be_bytes());
        buf.extend(0xa434u16.to_be_bytes());
        buf.extend(2u16.to_be_bytes());
        buf.extend(100_000u32.to_be_bytes());
        buf.extend(40u32.to_be_bytes());
        assert!(oversized(&buf, false).contains_key(&Tag::LensModel));
        assert!(oversized(&buf[..10], false).is_empty());
        assert!(oversized(b"MM", false).is_empty());
    }
}
