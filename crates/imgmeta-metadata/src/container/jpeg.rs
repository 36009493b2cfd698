//! JPEG: the frame header's components and precision, and where the end-of-image marker is.
//!
//! Hand-written because no decoder we use reports truncation: the JPEG decoder fills a
//! cut-off scan with grey rather than failing.

use super::Walked;
use crate::layout::{Channels, Layout};

/// Walks the marker segments up to the first start-of-scan (so an embedded EXIF thumbnail's
/// own end marker, inside an APP1 segment, is skipped over), then the scans: inside
/// entropy-coded data an `FF` byte is followed only by `00`, a restart marker or fill, so
/// any other marker there is real; segments between progressive scans are skipped by their
/// length, and `FF D9` ends the image.
pub(super) fn walk(bytes: &[u8]) -> Walked {
    let mut layout = None;
    let mut pos = 2; // after SOI
    loop {
        let Some(&[0xff, marker]) = bytes.get(pos..pos + 2) else {
            return Walked::still(layout, None);
        };
        match marker {
            // Fill bytes before a marker.
            0xff => pos += 1,
            // Standalone markers without a length.
            0x01 | 0xd0..=0xd7 => pos += 2,
            // An end before any scan: there is no picture.
            0xd9 => return Walked::still(layout, None),
            _ => {
                let Some(length) = segment_length(bytes, pos) else {
                    return Walked::still(layout, None);
                };
                if is_frame_header(marker) && layout.is_none() {
                    layout = frame_layout(bytes.get(pos + 4..pos + 2 + length).unwrap_or(&[]));
                }
                pos += 2 + length;
                if marker == 0xda {
                    return Walked::still(layout, end_of_scans(bytes, pos));
                }
            }
        }
    }
}

/// The declared length of the segment whose marker is at `pos` (it counts itself).
fn segment_length(bytes: &[u8], pos: usize) -> Option<usize> {
    let raw = bytes.get(pos + 2..pos + 4)?;
    Some(usize::from(u16::from_be_bytes([raw[0], raw[1]])))
}

/// SOF0 to SOF15, less DHT (C4), JPG (C8) and DAC (CC), which share the range.
fn is_frame_header(marker: u8) -> bool {
    matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc)
}

/// A frame header: precision, height, width, component count. One component is grey,
/// three are colour (YCbCr or RGB, both shown as RGB), four are CMYK (or YCCK).
fn frame_layout(header: &[u8]) -> Option<Layout> {
    let (&precision, &components) = (header.first()?, header.get(5)?);
    let channels = match components {
        1 => Channels::Grey,
        3 => Channels::Rgb,
        4 => Channels::Cmyk,
        _ => return None,
    };
    Some(Layout::new(channels, precision))
}

/// The offset just past the end-of-image marker, scanning from `pos` inside the first scan.
fn end_of_scans(bytes: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        pos += bytes.get(pos..)?.iter().position(|&b| b == 0xff)?;
        match *bytes.get(pos + 1)? {
            // A stuffed zero, a restart marker: still entropy-coded data.
            0x00 | 0xd0..=0xd7 => pos += 2,
            // Fill before a marker.
            0xff => pos += 1,
            0xd9 => return Some(pos + 2),
            // A segment between scans (tables, the next scan's header): skip it.
            _ => pos += 2 + segment_length(bytes, pos)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, an APP1 segment holding a thumbnail's own end marker, a grey 8-bit frame
    /// header, a scan header, then `scan`.
    fn jpeg(scan: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0xff, 0xd8];
        bytes.extend([0xff, 0xe1, 0x00, 0x06, 0xab, 0xff, 0xd9, 0xcd]);
        bytes.extend([0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01]);
        bytes.extend([0x01, 0x11, 0x00]);
        bytes.extend([0xff, 0xda, 0x00, 0x04, 0x01, 0x00]);
        bytes.extend(scan);
        bytes
    }

    #[test]
    fn a_jpeg_ending_in_its_end_marker_is_complete() {
        let bytes = jpeg(&[0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0xd9]);
        let walked = walk(&bytes);
        assert_eq!(walked.end, Some(bytes.len()));
        assert_eq!(walked.trailing_bytes(bytes.len()), 0);
        let layout = walked.layout.unwrap();
        assert_eq!((layout.color_type(), layout.bit_depth), ("l8".into(), 8));
    }

    #[test]
    fn an_end_marker_inside_a_thumbnail_does_not_make_a_cut_jpeg_complete() {
        assert_eq!(walk(&jpeg(&[0x12, 0xff, 0x00, 0x34])).end, None);
        assert_eq!(walk(&[0xff, 0xd8, 0xff, 0xe1, 0x00]).end, None);
    }

    #[test]
    fn segments_between_progressive_scans_are_skipped_and_trailing_bytes_counted() {
        // A second scan after a table segment whose payload holds FF D9 by chance.
        let mut scan = vec![0x12, 0xff, 0xdb, 0x00, 0x05, 0xff, 0xd9, 0x01];
        scan.extend([0xff, 0xda, 0x00, 0x04, 0x01, 0x00, 0x77, 0xff, 0xff, 0xd9]);
        scan.extend(b"appended");
        let bytes = jpeg(&scan);
        let walked = walk(&bytes);
        assert_eq!(walked.trailing_bytes(bytes.len()), 8);
    }

    #[test]
    fn four_components_are_cmyk() {
        let layout = frame_layout(&[8, 0, 1, 0, 1, 4]).unwrap();
        assert_eq!(layout.color_type(), "cmyk8");
        assert!(!layout.has_alpha);
        assert_eq!(frame_layout(&[8, 0, 1, 0, 1, 2]), None);
    }
}
