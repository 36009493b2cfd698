//! BMP: palette images by their bits per pixel. Other depths are left to the decoder, which
//! knows the channel masks that say whether 16- and 32-bit pixels carry alpha.

use super::{le_u16, le_u32};
use crate::layout::{Channels, Layout};

/// The file header is 14 bytes; the info header follows with its own size first. The
/// original OS/2 header (12 bytes) keeps the bit count at 24, all later ones at 28.
pub(super) fn layout(bytes: &[u8]) -> Option<Layout> {
    let bit_count = match le_u32(bytes, 14)? {
        12 => le_u16(bytes, 24)?,
        _ => le_u16(bytes, 28)?,
    };
    match bit_count {
        1 | 2 | 4 | 8 => Some(Layout::new(Channels::Indexed, bit_count as u8)),
        24 => Some(Layout::new(Channels::Rgb, 8)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bmp(header_size: u32, bit_count: u16) -> Vec<u8> {
        let mut bytes = vec![b'B', b'M'];
        bytes.resize(14, 0);
        bytes.extend(header_size.to_le_bytes());
        bytes.resize(if header_size == 12 { 24 } else { 28 }, 0);
        bytes.extend(bit_count.to_le_bytes());
        bytes.resize(64, 0);
        bytes
    }

    #[test]
    fn palette_bmps_are_indexed_and_true_colour_ones_rgb() {
        let four = layout(&bmp(40, 4)).unwrap();
        assert_eq!((four.color_type().as_str(), four.bit_depth), ("indexed", 4));
        let os2 = layout(&bmp(12, 8)).unwrap();
        assert_eq!(os2.bit_depth, 8);
        assert_eq!(layout(&bmp(124, 24)).unwrap().color_type(), "rgb8");
        assert_eq!(layout(&bmp(124, 32)), None);
    }
}
