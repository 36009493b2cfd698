//! Hostile PNGs built by the tests themselves: small (or merely large) on disk, huge when
//! their metadata is read naively. Shared by the `metadata` and `memory` suites.

/// One PNG chunk: length, type, data, CRC.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(data);
    let crc = crc32fast::hash(&out[4..]);
    out.extend(crc.to_be_bytes());
    out
}

/// A zlib stream of `len` zero bytes, compressed from a small buffer so that building it
/// never holds `len` bytes.
fn zlib_of_zeros(len: usize) -> Vec<u8> {
    let block = vec![0u8; 1 << 20];
    let mut compressor = fdeflate::Compressor::new(Vec::new()).unwrap();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        compressor.write_data(&block[..n]).unwrap();
        left -= n;
    }
    compressor.finish().unwrap()
}

/// A 1x1 grey PNG with `extra` chunks between its header and its image data.
fn png_with(extra: &[Vec<u8>]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
    for c in extra {
        png.extend(c);
    }
    png.extend(chunk(b"IDAT", &fdeflate::compress_to_vec(&[0, 0x80])));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// A PNG whose eXIf Make and Model (IFD0) and LensModel (Exif IFD) all point at one
/// `len`-byte string of `A`s: the file holds the string once, a naive reader copies it
/// three times into the result.
#[allow(dead_code)] // each suite that includes this file uses only some builders
pub fn exif_text_bomb(len: u32) -> Vec<u8> {
    exif_text_bomb_of(len, b'A')
}

/// The same with the string made of `fill` bytes: NULs make a naive parser allocate one empty
/// string per byte.
pub fn exif_text_bomb_of(len: u32, fill: u8) -> Vec<u8> {
    const ASCII: u16 = 2;
    const LONG: u16 = 4;
    let entry = |tag: u16, kind: u16, count: u32, value: u32| {
        let mut e = tag.to_be_bytes().to_vec();
        e.extend(kind.to_be_bytes());
        e.extend(count.to_be_bytes());
        e.extend(value.to_be_bytes());
        e
    };
    // Big-endian TIFF header, IFD0 (3 entries) at 8, the Exif IFD (1 entry) after it,
    // then the string.
    let ifd0_at = 8u32;
    let exif_ifd_at = ifd0_at + 2 + 3 * 12 + 4;
    let text_at = exif_ifd_at + 2 + 12 + 4;
    let mut tiff = b"MM\0\x2a".to_vec();
    tiff.extend(ifd0_at.to_be_bytes());
    tiff.extend(3u16.to_be_bytes());
    tiff.extend(entry(0x010f, ASCII, len, text_at)); // Make
    tiff.extend(entry(0x0110, ASCII, len, text_at)); // Model
    tiff.extend(entry(0x8769, LONG, 1, exif_ifd_at)); // Exif IFD pointer
    tiff.extend(0u32.to_be_bytes());
    tiff.extend(1u16.to_be_bytes());
    tiff.extend(entry(0xa434, ASCII, len, text_at)); // LensModel
    tiff.extend(0u32.to_be_bytes());
    tiff.resize(tiff.len() + len as usize - 1, fill);
    tiff.push(0);
    png_with(&[chunk(b"eXIf", &tiff)])
}

/// A PNG whose iCCP profile inflates to `inflated` zero bytes (about 200 times its size on
/// disk with this compressor).
pub fn iccp_bomb(inflated: usize) -> Vec<u8> {
    let mut data = b"bomb\0\0".to_vec();
    data.extend(zlib_of_zeros(inflated));
    png_with(&[chunk(b"iCCP", &data)])
}
