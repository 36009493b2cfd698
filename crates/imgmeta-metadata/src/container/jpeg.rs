//! JPEG: the frame header's components and precision, and where the end-of-image marker is.
//!
//! Hand-written because no decoder we use reports truncation: the JPEG decoder fills a
//! cut-off scan with grey rather than failing.

use super::{Embedded, Walked, be_u16, be_u32};
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

/// The XMP packet (APP1) and IPTC-IIM block (APP13 Photoshop resource 0x0404) among the
/// segments before the first scan. The first of each counts; Adobe's extended XMP, split
/// over further APP1 segments, is not read.
pub(super) fn embedded(bytes: &[u8]) -> Embedded<'_> {
    const XMP: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
    const PHOTOSHOP: &[u8] = b"Photoshop 3.0\0";
    let mut found = Embedded::default();
    let mut pos = 2;
    while let Some(&[0xff, marker]) = bytes.get(pos..pos + 2) {
        match marker {
            0xff => pos += 1,
            0x01 | 0xd0..=0xd7 => pos += 2,
            0xd9 | 0xda => break,
            _ => {
                let Some(length) = segment_length(bytes, pos).filter(|&l| l >= 2) else {
                    break;
                };
                let data = bytes.get(pos + 4..(pos + 2 + length).min(bytes.len()));
                let data = data.unwrap_or(&[]);
                if marker == 0xe1 && found.xmp.is_none() {
                    found.xmp = data.strip_prefix(XMP);
                } else if marker == 0xed && found.iim.is_none() {
                    found.iim = data.strip_prefix(PHOTOSHOP).and_then(photoshop_iim);
                }
                pos += 2 + length;
            }
        }
    }
    found
}

/// The IPTC-IIM resource (0x0404) among Photoshop image resources: each is `8BIM`, a 2-byte
/// id, a Pascal name padded to an even length, a 4-byte size and the data padded to even.
fn photoshop_iim(resources: &[u8]) -> Option<&[u8]> {
    let mut pos = 0usize;
    while resources.get(pos..pos + 4) == Some(b"8BIM") {
        let id = be_u16(resources, pos + 4)?;
        let name_len = usize::from(*resources.get(pos + 6)?);
        let size_at = pos + 6 + ((name_len + 2) & !1);
        let size = be_u32(resources, size_at)? as usize;
        let start = size_at + 4;
        let end = start.checked_add(size)?;
        if id == 0x0404 {
            return resources.get(start..end.min(resources.len()));
        }
        pos = end.checked_add(size & 1)?;
    }
    None
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
    fn xmp_and_the_photoshop_iim_resource_are_found_before_the_scan() {
        let mut bytes = vec![0xff, 0xd8];
        let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>";
        bytes.extend([0xff, 0xe1, 0x00, (xmp.len() + 2) as u8]);
        bytes.extend(xmp);
        // A 0x0425 resource with a 1-character name, then the IIM one with an odd size.
        let mut app13 = b"Photoshop 3.0\0".to_vec();
        app13.extend(b"8BIM\x04\x25\x01a\x00\x00\x00\x02zz");
        app13.extend(b"8BIM\x04\x04\x00\x00\x00\x00\x00\x03\x1c\x02\x05\x00");
        bytes.extend([0xff, 0xed, 0x00, (app13.len() + 2) as u8]);
        bytes.extend(&app13);
        bytes.extend([0xff, 0xda, 0x00, 0x04, 0x01, 0x00, 0xff, 0xd9]);
        let found = embedded(&bytes);
        assert_eq!(found.xmp, Some(&b"<x:xmpmeta/>"[..]));
        assert_eq!(found.iim, Some(&b"\x1c\x02\x05"[..]));
        assert_eq!(embedded(&bytes[..10]), Embedded::default());
    }

    #[test]
    fn four_components_are_cmyk() {
        let layout = frame_layout(&[8, 0, 1, 0, 1, 4]).unwrap();
        assert_eq!(layout.color_type(), "cmyk8");
        assert!(!layout.has_alpha);
        assert_eq!(frame_layout(&[8, 0, 1, 0, 1, 2]), None);
    }
}
