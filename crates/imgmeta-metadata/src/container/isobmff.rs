//! HEIF, AVIF and the JPEG XL container (ISO BMFF boxes): the declared size of every image
//! a HEIF holds, the frames of an image sequence, the primary image's stored channels, and
//! the XMP packet, read before libheif or jxl-oxide sees the file.
//!
//! libheif decodes the primary image, which may be a grid of tiles, and holds thumbnails,
//! depth maps and alpha planes beside it. Every image item's `ispe` (its declared size) and
//! every grid's output size is checked against the limits here, so none of them, decoded
//! or not, can be larger than a whole image may be. A box is skipped by its length; each
//! step moves on by at least the 8 bytes of a box header, and only the boxes named below are
//! entered, so the walk costs at most one step per box in the file.

use super::{Embedded, FrameCounter, Walked, be_u16, be_u32};
use crate::layout::{Channels, Layout};
use crate::{DecodeLimits, Format, MetadataError};

/// A box: its four-character type and its payload.
#[derive(Debug, Clone, Copy)]
struct Bmff<'a> {
    kind: [u8; 4],
    body: &'a [u8],
}

/// The boxes laid end to end in `data`; a box whose size does not fit ends the list.
fn boxes(data: &[u8]) -> impl Iterator<Item = Bmff<'_>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let size = be_u32(data, pos)? as usize;
        let kind: [u8; 4] = data.get(pos + 4..pos + 8)?.try_into().ok()?;
        let (header, len) = match size {
            // To the end of the enclosing data.
            0 => (8, data.len() - pos),
            // A 64-bit size follows the type.
            1 => {
                let high = u64::from(be_u32(data, pos + 8)?);
                let low = u64::from(be_u32(data, pos + 12)?);
                (16, usize::try_from((high << 32) | low).ok()?)
            }
            len => (8, len),
        };
        let end = pos.checked_add(len)?;
        if len < header || end > data.len() {
            return None;
        }
        let body = &data[pos + header..end];
        pos = end;
        Some(Bmff { kind, body })
    })
}

/// The first child of `data` of type `kind`.
fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|b| &b.kind == kind).map(|b| b.body)
}

/// A big-endian unsigned integer of `size` bytes (0, 4 or 8) at `at`.
fn be_uint(data: &[u8], at: usize, size: usize) -> Option<u64> {
    match size {
        0 => Some(0),
        4 => be_u32(data, at).map(u64::from),
        8 => Some((u64::from(be_u32(data, at)?) << 32) | u64::from(be_u32(data, at + 4)?)),
        _ => None,
    }
}

/// Where an item's data lies: in the file, or in the `meta` box's `idat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Location {
    in_idat: bool,
    offset: u64,
    /// 0: to the end of the file.
    length: u64,
    /// More than one extent: the data is not one slice.
    scattered: bool,
}

/// An `infe` entry: the item's id, type and, for `mime` items, its content type.
#[derive(Debug, Clone, Copy)]
struct Item<'a> {
    id: u32,
    kind: [u8; 4],
    content_type: &'a [u8],
}

/// What a HEIF's `meta` box says about its items.
#[derive(Debug, Default)]
struct Meta<'a> {
    primary: Option<u32>,
    items: Vec<Item<'a>>,
    /// The `iloc` body, read on demand.
    iloc: &'a [u8],
    idat: &'a [u8],
    /// The property boxes of `ipco`, in order (`ipma` indexes them from 1).
    properties: Vec<Bmff<'a>>,
    ipma: &'a [u8],
}

/// Most items and properties read from one file; libheif itself refuses more than 20,000.
const MAX_ENTRIES: usize = 20_000;

impl<'a> Meta<'a> {
    fn read(meta: &'a [u8]) -> Self {
        let mut out = Self::default();
        // `meta` is a full box: 4 bytes of version and flags before its children.
        for b in boxes(meta.get(4..).unwrap_or_default()) {
            match &b.kind {
                b"pitm" => {
                    out.primary = match b.body.first() {
                        Some(0) => be_u16(b.body, 4).map(u32::from),
                        Some(_) => be_u32(b.body, 4),
                        None => None,
                    }
                }
                b"iinf" => out.items = read_iinf(b.body),
                b"iloc" => out.iloc = b.body,
                b"idat" => out.idat = b.body,
                b"iprp" => {
                    let ipco = child(b.body, b"ipco").unwrap_or_default();
                    out.properties = boxes(ipco).take(MAX_ENTRIES).collect();
                    out.ipma = child(b.body, b"ipma").unwrap_or_default();
                }
                _ => {}
            }
        }
        out
    }

    /// The properties associated with `item` in `ipma`.
    fn properties_of(&self, item: u32) -> Vec<Bmff<'a>> {
        let ipma = self.ipma;
        let (Some(&version), Some(flags), Some(count)) =
            (ipma.first(), ipma.get(3), be_u32(ipma, 4))
        else {
            return Vec::new();
        };
        let wide_index = flags & 1 == 1;
        let mut pos = 8usize;
        for _ in 0..(count as usize).min(MAX_ENTRIES) {
            let (id, id_len) = if version < 1 {
                (be_u16(ipma, pos).map(u32::from), 2)
            } else {
                (be_u32(ipma, pos), 4)
            };
            let (Some(id), Some(&associations)) = (id, ipma.get(pos + id_len)) else {
                break;
            };
            pos += id_len + 1;
            let mut found = Vec::new();
            for _ in 0..associations {
                let index = if wide_index {
                    be_u16(ipma, pos).map(|v| usize::from(v & 0x7fff))
                } else {
                    ipma.get(pos).map(|v| usize::from(v & 0x7f))
                };
                pos += if wide_index { 2 } else { 1 };
                if let Some(property) = index
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| self.properties.get(i))
                {
                    found.push(*property);
                }
            }
            if id == item {
                return found;
            }
        }
        Vec::new()
    }

    /// Where `item`'s data lies, from `iloc`.
    fn location(&self, item: u32) -> Option<Location> {
        let iloc = self.iloc;
        let version = *iloc.first()?;
        let sizes = *iloc.get(4)?;
        let (offset_size, length_size) = (usize::from(sizes >> 4), usize::from(sizes & 15));
        let sizes = *iloc.get(5)?;
        let base_size = usize::from(sizes >> 4);
        let index_size = if version >= 1 {
            usize::from(sizes & 15)
        } else {
            0
        };
        let (count, mut pos) = if version < 2 {
            (u32::from(be_u16(iloc, 6)?), 8)
        } else {
            (be_u32(iloc, 6)?, 10)
        };
        for _ in 0..(count as usize).min(MAX_ENTRIES) {
            let id = if version < 2 {
                pos += 2;
                u32::from(be_u16(iloc, pos - 2)?)
            } else {
                pos += 4;
                be_u32(iloc, pos - 4)?
            };
            let mut method = 0;
            if version >= 1 {
                method = be_u16(iloc, pos)? & 15;
                pos += 2;
            }
            pos += 2; // data_reference_index
            let base = be_uint(iloc, pos, base_size)?;
            pos += base_size;
            let extents = be_u16(iloc, pos)?;
            pos += 2;
            let mut first = None;
            for _ in 0..extents {
                pos += index_size;
                let offset = be_uint(iloc, pos, offset_size)?;
                pos += offset_size;
                let length = be_uint(iloc, pos, length_size)?;
                pos += length_size;
                first.get_or_insert((offset, length));
            }
            if id == item {
                let (offset, length) = first?;
                return Some(Location {
                    in_idat: method == 1,
                    offset: base.checked_add(offset)?,
                    length,
                    scattered: extents > 1 || method > 1,
                });
            }
        }
        None
    }

    /// `item`'s data as one slice of the file or of `idat`; `None` when it is scattered over
    /// several extents, lies elsewhere, or is cut short.
    fn data(&self, file: &'a [u8], item: u32) -> Option<&'a [u8]> {
        let location = self.location(item)?;
        if location.scattered {
            return None;
        }
        let source = if location.in_idat { self.idat } else { file };
        let start = usize::try_from(location.offset).ok()?;
        let end = match location.length {
            0 => source.len(),
            len => start.checked_add(usize::try_from(len).ok()?)?,
        };
        source.get(start..end)
    }
}

fn read_iinf(iinf: &[u8]) -> Vec<Item<'_>> {
    let entries_at = if iinf.first() == Some(&0) { 6 } else { 8 };
    boxes(iinf.get(entries_at..).unwrap_or_default())
        .filter(|b| &b.kind == b"infe")
        .take(MAX_ENTRIES)
        .filter_map(|infe| {
            let body = infe.body;
            let (id, rest) = match body.first()? {
                2 => (u32::from(be_u16(body, 4)?), 6),
                3 => (be_u32(body, 4)?, 8),
                // Versions 0 and 1 predate item types (old files, no images).
                _ => return None,
            };
            let kind: [u8; 4] = body.get(rest + 2..rest + 6)?.try_into().ok()?;
            // The item name, NUL-terminated, then a `mime` item's content type.
            let strings = body.get(rest + 6..).unwrap_or_default();
            let mut parts = strings.split(|&b| b == 0);
            let _name = parts.next();
            let content_type = parts.next().unwrap_or_default();
            Some(Item {
                id,
                kind,
                content_type,
            })
        })
        .collect()
}

/// A grid item's output size, from its data (`ImageGrid`: version, flags, rows − 1,
/// columns − 1, then width and height in 16 bits, or 32 when flags bit 0 is set).
fn grid_size(data: &[u8]) -> Option<(u32, u32)> {
    let flags = *data.get(1)?;
    if flags & 1 == 0 {
        Some((u32::from(be_u16(data, 4)?), u32::from(be_u16(data, 6)?)))
    } else {
        Some((be_u32(data, 4)?, be_u32(data, 8)?))
    }
}

/// Walks a HEIF or AVIF: refuses it when any image inside it is declared larger than the
/// limits, counts the frames of an image sequence, and reads the primary image's stored
/// channels from its `pixi` property.
pub(super) fn walk(
    bytes: &[u8],
    limits: &DecodeLimits,
    counter: &FrameCounter,
) -> Result<Walked, MetadataError> {
    let format = counter.format;
    let mut frames = 1;
    let mut layout = None;
    for top in boxes(bytes) {
        match &top.kind {
            b"meta" => {
                let meta = Meta::read(top.body);
                check_sizes(format, bytes, &meta, limits)?;
                layout = meta
                    .primary
                    .and_then(|primary| stored_layout(&meta, primary));
            }
            b"moov" => frames = frames.max(sequence_frames(top.body, bytes.len(), counter)?),
            _ => {}
        }
    }
    Ok(Walked {
        frames,
        layout,
        end: None,
    })
}

/// Every `ispe` property and every grid's output size against the limits.
fn check_sizes(
    format: Format,
    bytes: &[u8],
    meta: &Meta<'_>,
    limits: &DecodeLimits,
) -> Result<(), MetadataError> {
    for property in meta.properties.iter().filter(|p| &p.kind == b"ispe") {
        if let (Some(width), Some(height)) = (be_u32(property.body, 4), be_u32(property.body, 8)) {
            let what = format!("an image inside the {} file", format.name());
            crate::decode::check_size(&what, width, height, limits)?;
        }
    }
    for grid in meta.items.iter().filter(|item| &item.kind == b"grid") {
        // A grid whose description cannot be read is left to libheif, which refuses it.
        if let Some((width, height)) = meta.data(bytes, grid.id).and_then(grid_size) {
            let what = format!("a tiled image's grid in the {} file", format.name());
            crate::decode::check_size(&what, width, height, limits)?;
        }
    }
    Ok(())
}

/// The primary image's channels and bits from its `pixi` property (one channel: grey);
/// `None` without one (libheif's reading is used then).
fn stored_layout(meta: &Meta<'_>, primary: u32) -> Option<Layout> {
    let pixi = meta
        .properties_of(primary)
        .into_iter()
        .find(|p| &p.kind == b"pixi")?;
    // A full box: version and flags, the channel count, then bits per channel.
    let channels = *pixi.body.get(4)?;
    let bits = *pixi.body.get(5)?;
    let channels = if channels == 1 {
        Channels::Grey
    } else {
        Channels::Rgb
    };
    Some(Layout::new(channels, bits))
}

/// The samples of the first picture or video track of an image sequence (`msf1`, `avis`):
/// its `stsz` table's entries, which must all be in the box, or, when every sample has one
/// size, as many samples as fit in the file.
fn sequence_frames(
    moov: &[u8],
    file_len: usize,
    counter: &FrameCounter,
) -> Result<u32, MetadataError> {
    for trak in boxes(moov).filter(|b| &b.kind == b"trak") {
        let Some(mdia) = child(trak.body, b"mdia") else {
            continue;
        };
        let handler = child(mdia, b"hdlr").and_then(|h| h.get(8..12));
        if !matches!(handler, Some(b"pict" | b"vide")) {
            continue;
        }
        let stsz = child(mdia, b"minf")
            .and_then(|minf| child(minf, b"stbl"))
            .and_then(|stbl| child(stbl, b"stsz"));
        let Some(stsz) = stsz else { continue };
        let (Some(size), Some(count)) = (be_u32(stsz, 4), be_u32(stsz, 8)) else {
            continue;
        };
        let present = if size == 0 {
            (stsz.len().saturating_sub(12) / 4) as u64
        } else {
            // Samples of one size: no table to walk, but they must fit in the file.
            (file_len / size as usize) as u64
        };
        let count = u64::from(count).min(present);
        let mut frames = 0;
        for _ in 0..count {
            frames = counter.next(frames)?;
        }
        return Ok(frames);
    }
    Ok(1)
}

/// The first JPEG XL container box of `kind` (`Exif`, `xml `), uncompressed.
fn jxl_box<'a>(bytes: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    child(bytes, kind)
}

/// The XMP packet of a HEIF (a `mime` item of type `application/rdf+xml`) or of a JPEG XL
/// container (its `xml ` box), borrowed from the file.
pub(super) fn embedded(format: Format, bytes: &[u8]) -> Embedded<'_> {
    let xmp = match format {
        Format::Jxl => jxl_box(bytes, b"xml "),
        _ => boxes(bytes).find(|b| &b.kind == b"meta").and_then(|meta| {
            let meta = Meta::read(meta.body);
            let item = meta.items.iter().find(|item| {
                &item.kind == b"mime" && item.content_type == b"application/rdf+xml"
            })?;
            meta.data(bytes, item.id)
        }),
    };
    Embedded { xmp, iim: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bmff(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(body.len() + 8)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        out.extend(kind);
        out.extend(body);
        out
    }

    fn full(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
        let mut data = vec![version, 0, 0, 0];
        data.extend(body);
        bmff(kind, &data)
    }

    fn ispe(width: u32, height: u32) -> Vec<u8> {
        full(
            b"ispe",
            0,
            &[width.to_be_bytes(), height.to_be_bytes()].concat(),
        )
    }

    fn counter(max: u32) -> FrameCounter {
        FrameCounter {
            format: Format::Heic,
            max,
        }
    }

    /// A HEIF whose `meta` holds the given properties, all associated with item 1.
    fn heif(properties: &[Vec<u8>], items: &[Vec<u8>], iloc: Option<Vec<u8>>) -> Vec<u8> {
        let mut ipma = 1u32.to_be_bytes().to_vec();
        ipma.extend(1u16.to_be_bytes());
        ipma.push(u8::try_from(properties.len()).unwrap());
        ipma.extend((1..=properties.len()).map(|i| u8::try_from(i).unwrap()));
        let iprp = bmff(
            b"iprp",
            &[bmff(b"ipco", &properties.concat()), full(b"ipma", 0, &ipma)].concat(),
        );
        let mut iinf = u16::try_from(items.len()).unwrap().to_be_bytes().to_vec();
        iinf.extend(items.concat());
        let mut meta = vec![
            full(b"pitm", 0, &1u16.to_be_bytes()),
            full(b"iinf", 0, &iinf),
            iprp,
        ];
        meta.extend(iloc);
        let mut out = bmff(b"ftyp", b"heic\0\0\0\0mif1heic");
        out.extend(full(b"meta", 0, &meta.concat()));
        out
    }

    fn infe(id: u16, kind: &[u8; 4]) -> Vec<u8> {
        full(
            b"infe",
            2,
            &[&id.to_be_bytes()[..], &[0, 0], kind, b"\0"].concat(),
        )
    }

    #[test]
    fn an_image_inside_the_file_larger_than_the_limits_is_refused() {
        let limits = DecodeLimits::default();
        let small = heif(&[ispe(64, 48)], &[], None);
        assert!(walk(&small, &limits, &counter(10)).is_ok());
        // A depth map or thumbnail beside a small primary, declared 30000 pixels wide.
        let hidden = heif(&[ispe(64, 48), ispe(30_000, 10)], &[], None);
        let err = walk(&hidden, &limits, &counter(10)).unwrap_err();
        assert_eq!(err.code(), imgmeta_domain::ErrorCode::ImageTooLarge);
    }

    #[test]
    fn a_grid_declaring_an_output_larger_than_the_limits_is_refused() {
        // A grid item whose data (in `idat`) asks for a 10000x10000 canvas of small tiles.
        let grid = [0u8, 0, 0, 0, 0x27, 0x10, 0x27, 0x10];
        let mut iloc = vec![0x44, 0x00];
        iloc.extend(1u16.to_be_bytes()); // item count
        iloc.extend(1u16.to_be_bytes()); // item id
        iloc.extend(1u16.to_be_bytes()); // construction method 1: idat
        iloc.extend(0u16.to_be_bytes()); // data reference index
        iloc.extend(1u16.to_be_bytes()); // extent count
        iloc.extend(0u32.to_be_bytes());
        iloc.extend(8u32.to_be_bytes());
        let mut file = heif(
            &[ispe(512, 512)],
            &[infe(1, b"grid")],
            Some(full(b"iloc", 1, &iloc)),
        );
        // The idat goes inside meta: rebuild meta with it appended.
        let meta_at = file.windows(4).position(|w| w == b"meta").unwrap() - 4;
        let mut meta = file.split_off(meta_at);
        meta.extend(bmff(b"idat", &grid));
        let len = u32::try_from(meta.len()).unwrap().to_be_bytes();
        meta[..4].copy_from_slice(&len);
        file.extend(meta);
        let limits = DecodeLimits::default();
        let err = walk(&file, &limits, &counter(10)).unwrap_err();
        assert_eq!(err.code(), imgmeta_domain::ErrorCode::ImageTooLarge);
        let roomy = DecodeLimits {
            max_pixels: 200_000_000,
            ..limits
        };
        assert!(walk(&file, &roomy, &counter(10)).is_ok());
    }

    #[test]
    fn pixi_gives_the_primary_images_channels_and_bits() {
        let pixi = |bits: &[u8]| {
            let mut body = vec![u8::try_from(bits.len()).unwrap()];
            body.extend(bits);
            full(b"pixi", 0, &body)
        };
        let grey = heif(&[ispe(8, 8), pixi(&[10])], &[], None);
        let layout = walk(&grey, &DecodeLimits::default(), &counter(1))
            .unwrap()
            .layout
            .unwrap();
        assert_eq!((layout.channels, layout.bit_depth), (Channels::Grey, 10));
        let rgb = heif(&[ispe(8, 8), pixi(&[8, 8, 8])], &[], None);
        let layout = walk(&rgb, &DecodeLimits::default(), &counter(1))
            .unwrap()
            .layout
            .unwrap();
        assert_eq!((layout.channels, layout.bit_depth), (Channels::Rgb, 8));
    }

    fn sequence(samples: u32, table: bool) -> Vec<u8> {
        let mut stsz = if table { 0u32 } else { 1 }.to_be_bytes().to_vec();
        stsz.extend(samples.to_be_bytes());
        if table {
            for _ in 0..samples {
                stsz.extend(100u32.to_be_bytes());
            }
        }
        let hdlr = full(b"hdlr", 0, &[&[0u8; 4][..], b"pict", &[0; 12]].concat());
        let stbl = bmff(b"stbl", &full(b"stsz", 0, &stsz));
        let mdia = bmff(b"mdia", &[hdlr, bmff(b"minf", &stbl)].concat());
        let mut out = bmff(b"ftyp", b"msf1\0\0\0\0msf1");
        out.extend(bmff(b"moov", &bmff(b"trak", &mdia)));
        out
    }

    #[test]
    fn a_sequence_has_one_frame_per_sample_in_its_table() {
        let limits = DecodeLimits::default();
        assert_eq!(
            walk(&sequence(5, true), &limits, &counter(10))
                .unwrap()
                .frames,
            5
        );
        assert!(walk(&sequence(5, true), &limits, &counter(4)).is_err());
        // A table that claims more entries than the box holds counts only those present.
        let mut cut = sequence(5, true);
        let at = cut.windows(4).position(|w| w == b"stsz").unwrap() + 12;
        cut[at..at + 4].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(walk(&cut, &limits, &counter(10)).unwrap().frames, 5);
        // One size for every sample: the count is taken, still capped.
        assert!(walk(&sequence(100_000, false), &limits, &counter(10)).is_err());
        assert_eq!(
            walk(&sequence(3, false), &limits, &counter(10))
                .unwrap()
                .frames,
            3
        );
    }

    #[test]
    fn a_box_whose_size_runs_past_the_data_ends_the_walk() {
        let mut bytes = bmff(b"ftyp", b"heic\0\0\0\0");
        bytes.extend(1_000_000u32.to_be_bytes());
        bytes.extend(b"meta");
        assert_eq!(boxes(&bytes).count(), 1);
        // A size smaller than its own header.
        let tiny = [0, 0, 0, 4, b'm', b'e', b't', b'a'];
        assert_eq!(boxes(&tiny).count(), 0);
    }
}
