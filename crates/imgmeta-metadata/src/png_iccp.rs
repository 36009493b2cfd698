//! A PNG's iCCP profile, read by us with a bound on its inflated size and hidden from the
//! png decoder.
//!
//! The `png` crate inflates a compressed iCCP profile up to its whole memory limit (512 MiB
//! for us), and `image` offers no way to tell it to skip the chunk: a 0.5 MB file of
//! compressed zeros cost a gigabyte. So before decoding we find the chunk ourselves, inflate
//! at most [`MAX_ICC_BYTES`] of it, and give the decoder the file without that chunk
//! ([`WithoutRange`]). Everything else the decoder sees is byte for byte the file.

use crate::MetadataError;
use crate::icc::{EmbeddedIcc, MAX_ICC_BYTES};
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::ops::Range;

const SIGNATURE_LEN: usize = 8;

/// The iCCP chunk of a PNG, if it has one before its image data.
#[derive(Debug, Default)]
pub(crate) struct PngIccp {
    /// The whole chunk (length, type, data, CRC), to be hidden from the decoder.
    pub(crate) chunk: Range<usize>,
    /// The profile, as the png decoder would have read it: [`EmbeddedIcc::Damaged`] when
    /// the chunk is damaged (the decoder ignores a damaged iCCP chunk).
    pub(crate) profile: Option<EmbeddedIcc>,
}

/// Finds and reads the iCCP chunk. Chunks are walked up to the first IDAT (the png decoder
/// refuses an iCCP chunk after it without inflating it); a malformed chunk layout stops the
/// walk and is left for the decoder to report.
pub(crate) fn find(bytes: &[u8]) -> Result<PngIccp, MetadataError> {
    let mut found: Option<Range<usize>> = None;
    let mut pos = SIGNATURE_LEN;
    while let Some(header) = bytes.get(pos..pos + 8) {
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        // PNG caps chunk lengths at 2^31 - 1; the decoder reports a larger one.
        if length > i32::MAX as u32 {
            break;
        }
        let end = pos + 12 + length as usize;
        if end > bytes.len() {
            break;
        }
        match &header[4..8] {
            b"IDAT" | b"IEND" => break,
            b"iCCP" if found.is_some() => {
                // The png decoder refuses a second profile; with the first one hidden it
                // would take the second as the first (and inflate it), so refuse it here.
                return Err(MetadataError::DecodeFailed {
                    format: "png",
                    reason: "the image has more than one iCCP chunk".into(),
                });
            }
            b"iCCP" => found = Some(pos..end),
            _ => {}
        }
        pos = end;
    }
    Ok(found.map_or_else(PngIccp::default, |chunk| PngIccp {
        profile: Some(read_chunk(&bytes[chunk.clone()])),
        chunk,
    }))
}

/// The profile in a whole iCCP chunk, checked as the png decoder checks it: CRC, a 1 to 79
/// byte name, compression method 0, then a zlib stream inflated to at most `MAX_ICC_BYTES`.
fn read_chunk(chunk: &[u8]) -> EmbeddedIcc {
    checked_chunk(chunk).unwrap_or(EmbeddedIcc::Damaged)
}

fn checked_chunk(chunk: &[u8]) -> Option<EmbeddedIcc> {
    let (typed, crc) = chunk[4..].split_at(chunk.len() - 8);
    if crc32fast::hash(typed).to_be_bytes() != crc {
        return None;
    }
    let data = &typed[4..];
    let name_len = data.iter().take(80).position(|&b| b == 0)?;
    if name_len == 0 || data.get(name_len + 1) != Some(&0) {
        return None;
    }
    let compressed = &data[name_len + 2..];
    // One byte of room past the cap, so that a profile of exactly the cap can finish
    // inflating (the inflater stops, unfinished, when its output is full).
    match fdeflate::decompress_to_vec_bounded(compressed, MAX_ICC_BYTES + 1) {
        Ok(profile) => Some(EmbeddedIcc::bounded(profile)),
        Err(fdeflate::BoundedDecompressionError::OutputTooLarge { .. }) => {
            Some(EmbeddedIcc::TooLarge)
        }
        Err(fdeflate::BoundedDecompressionError::DecompressionError { .. }) => None,
    }
}

/// The bytes of a file with one range left out, readable as a file: what the decoder reads
/// in place of the PNG, minus its iCCP chunk. An empty range leaves the file whole.
#[derive(Debug)]
pub(crate) struct WithoutRange<'a> {
    bytes: &'a [u8],
    hole: Range<usize>,
    /// Position in the bytes as read (after the hole is removed).
    pos: u64,
}

impl<'a> WithoutRange<'a> {
    pub(crate) fn new(bytes: &'a [u8], hole: Range<usize>) -> Self {
        debug_assert!(hole.start <= hole.end && hole.end <= bytes.len());
        Self {
            bytes,
            hole,
            pos: 0,
        }
    }

    fn len(&self) -> u64 {
        (self.bytes.len() - self.hole.len()) as u64
    }
}

impl BufRead for WithoutRange<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let pos = usize::try_from(self.pos).unwrap_or(usize::MAX);
        let rest = if pos < self.hole.start {
            &self.bytes[pos..self.hole.start]
        } else {
            let at = pos.saturating_add(self.hole.len()).min(self.bytes.len());
            &self.bytes[at..]
        };
        Ok(rest)
    }

    fn consume(&mut self, amount: usize) {
        self.pos += amount as u64;
    }
}

impl Read for WithoutRange<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl Seek for WithoutRange<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.len().checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// A PNG chunk (length, type, data, CRC) for the crate's tests.
#[cfg(test)]
pub(crate) fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(data);
    out.extend(crc32fast::hash(&out[4..]).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut compressor = fdeflate::Compressor::new(Vec::new()).unwrap();
        compressor.write_data(data).unwrap();
        compressor.finish().unwrap()
    }

    fn png_with(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
        for c in chunks {
            png.extend(c);
        }
        png.extend(chunk(b"IDAT", &zlib(&[0, 0])));
        png.extend(chunk(b"IEND", &[]));
        png
    }

    fn iccp(name: &[u8], compressed: &[u8]) -> Vec<u8> {
        let mut data = name.to_vec();
        data.extend([0, 0]);
        data.extend(compressed);
        chunk(b"iCCP", &data)
    }

    #[test]
    fn a_profile_is_read_and_its_chunk_hidden() {
        let profile = b"a pretend profile".repeat(10);
        let png = png_with(&[iccp(b"ICC Profile", &zlib(&profile))]);
        let found = find(&png).unwrap();
        assert_eq!(found.profile, Some(EmbeddedIcc::Profile(profile)));
        let mut seen = Vec::new();
        WithoutRange::new(&png, found.chunk.clone())
            .read_to_end(&mut seen)
            .unwrap();
        let mut expected = png[..found.chunk.start].to_vec();
        expected.extend(&png[found.chunk.end..]);
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_profile_inflating_past_4_mib_is_not_inflated_further() {
        let png = png_with(&[iccp(b"bomb", &zlib(&vec![0; MAX_ICC_BYTES + 1]))]);
        assert_eq!(find(&png).unwrap().profile, Some(EmbeddedIcc::TooLarge));
        let exact = png_with(&[iccp(b"fits", &zlib(&vec![0; MAX_ICC_BYTES]))]);
        assert!(matches!(
            find(&exact).unwrap().profile,
            Some(EmbeddedIcc::Profile(p)) if p.len() == MAX_ICC_BYTES
        ));
    }

    #[test]
    fn damaged_iccp_chunks_yield_no_profile_as_with_the_png_decoder_but_are_noted() {
        let mut bad_crc = iccp(b"name", &zlib(b"profile"));
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        for damaged in [
            bad_crc,
            iccp(b"", &zlib(b"profile")),
            iccp(&[b'n'; 80], &zlib(b"profile")),
            iccp(b"name", b"not zlib"),
        ] {
            let found = find(&png_with(&[damaged])).unwrap();
            assert!(!found.chunk.is_empty());
            assert_eq!(found.profile, Some(EmbeddedIcc::Damaged));
        }
    }

    #[test]
    fn a_second_iccp_chunk_is_refused() {
        let one = iccp(b"one", &zlib(b"profile"));
        let err = find(&png_with(&[one.clone(), one])).unwrap_err();
        assert!(err.to_string().contains("iCCP"), "{err}");
    }

    #[test]
    fn a_png_without_a_profile_is_read_whole() {
        let png = png_with(&[]);
        let found = find(&png).unwrap();
        assert_eq!((found.chunk, found.profile), (0..0, None));
    }

    #[test]
    fn reading_around_the_hole_seeks_like_a_cursor_over_the_rest() {
        let bytes: Vec<u8> = (0..100).collect();
        let rest: Vec<u8> = (0..40).chain(60..100).collect();
        let mut reader = WithoutRange::new(&bytes, 40..60);
        let mut cursor = io::Cursor::new(&rest);
        for to in [
            SeekFrom::Start(35),
            SeekFrom::Current(10),
            SeekFrom::End(-5),
            SeekFrom::Start(200),
            SeekFrom::Start(0),
        ] {
            assert_eq!(reader.seek(to).unwrap(), cursor.seek(to).unwrap());
            let (mut a, mut b) = ([0u8; 7], [0u8; 7]);
            let (n, m) = (reader.read(&mut a).unwrap(), cursor.read(&mut b).unwrap());
            // A read may stop at the hole's edge; what it returns must match.
            assert_eq!(a[..n], b[..n]);
            assert!(n <= m);
            cursor.seek(SeekFrom::Current(n as i64 - m as i64)).unwrap();
        }
        assert!(reader.seek(SeekFrom::Current(-1000)).is_err());
    }
}
