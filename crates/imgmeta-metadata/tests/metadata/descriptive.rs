//! `result.image.descriptive`: precedence between XMP, IPTC-IIM and EXIF, character sets,
//! bounds, and hostile XMP packets.

use crate::fixtures::describe_fixture;
use imgmeta_metadata::{DecodeLimits, ImageMetadata, WarningCode, decode, describe};

fn describe_bytes(bytes: &[u8]) -> ImageMetadata {
    let decoded = decode(bytes, &DecodeLimits::default()).unwrap();
    describe(bytes, &decoded)
}

fn codes(described: &ImageMetadata) -> Vec<WarningCode> {
    described.warnings.iter().map(|w| w.code).collect()
}

/// A PNG chunk with its CRC.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[4..]);
    out.extend(crc.to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A 1x1 grey PNG carrying `packet` as its XMP `iTXt` chunk.
fn png_with_xmp(packet: &[u8]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
    let mut itxt = b"XML:com.adobe.xmp\0\0\0\0\0".to_vec();
    itxt.extend(packet);
    png.extend(chunk(b"iTXt", &itxt));
    // zlib of one filter byte and one grey pixel.
    png.extend(chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0x00, 0x80, 0x00, 0x81, 0x00, 0x81,
        ],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

const PACKET: &str = "<x:xmpmeta xmlns:x='adobe:ns:meta/'>\
<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\
<rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/'>\
<dc:title><rdf:Alt><rdf:li xml:lang='x-default'>TITLE</rdf:li></rdf:Alt></dc:title>\
</rdf:Description></rdf:RDF></x:xmpmeta>";

#[test]
fn xmp_wins_over_iim_and_exif_fills_only_what_both_lack() {
    let d = describe_fixture("descriptive_xmp_over_iim.jpg")
        .descriptive
        .unwrap();
    assert_eq!(d.title.as_deref(), Some("Harbour at dawn"));
    assert_eq!(d.keywords, ["harbour", "boats", "morning"]);
    assert_eq!(d.creator.as_deref(), Some("Ann Example; Bob Example"));
    assert_eq!(d.credit.as_deref(), Some("Example Agency"));
    assert_eq!(d.description.as_deref(), Some("EXIF description"));
}

#[test]
fn iim_text_is_latin_1_unless_its_character_set_says_utf_8() {
    let latin = describe_fixture("descriptive_iim_latin1.jpg")
        .descriptive
        .unwrap();
    assert_eq!(latin.title.as_deref(), Some("Café au lait"));
    assert_eq!(latin.creator.as_deref(), Some("Jérôme; Zoë"));
    let utf8 = describe_fixture("descriptive_iim_utf8.jpg")
        .descriptive
        .unwrap();
    assert_eq!(utf8.title.as_deref(), Some("Zürich ☕ 東京"));
}

#[test]
fn a_300_character_title_and_100_keywords_are_cut_and_flagged() {
    let described = describe_fixture("descriptive_long.jpg");
    let d = described.descriptive.as_ref().unwrap();
    assert_eq!(d.title.as_ref().unwrap().chars().count(), 256);
    assert_eq!(d.keywords.len(), 64);
    assert_eq!(d.keywords[63], "keyword 063");
    assert_eq!(d.truncated, ["title", "keywords"]);
    assert_eq!(codes(&described), [WarningCode::TextTruncated]);
}

#[test]
fn the_digital_source_type_is_reported_as_its_full_iri() {
    let d = describe_fixture("descriptive_ai.webp").descriptive.unwrap();
    assert!(
        d.digital_source_type
            .unwrap()
            .ends_with("/digitalsourcetype/trainedAlgorithmicMedia")
    );
}

#[test]
fn an_xmp_packet_in_a_png_itxt_chunk_is_read() {
    let d = describe_bytes(&png_with_xmp(PACKET.as_bytes()))
        .descriptive
        .unwrap();
    assert_eq!(d.title.as_deref(), Some("TITLE"));
}

#[test]
fn an_entity_expansion_bomb_is_not_expanded() {
    // A billion laughs: lol9 would expand to 10^9 copies of "lol".
    let mut doctype = String::from("<!DOCTYPE lolz [<!ENTITY lol 'lol'>");
    for level in 1..10 {
        let inner = if level == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", level - 1)
        };
        let body = format!("&{inner};").repeat(10);
        doctype.push_str(&format!("<!ENTITY lol{level} '{body}'>"));
    }
    doctype.push_str("]>");
    let packet = format!("{doctype}{}", PACKET.replace("TITLE", "&lol9;"));
    let described = describe_bytes(&png_with_xmp(packet.as_bytes()));
    assert_eq!(described.descriptive, None);
    assert_eq!(codes(&described), [WarningCode::XmpUnparsed]);

    // Without the declaration, the reference is an error, never a lookup.
    let undeclared = PACKET.replace("TITLE", "&lol9;");
    let described = describe_bytes(&png_with_xmp(undeclared.as_bytes()));
    assert_eq!(described.descriptive, None);
    assert_eq!(codes(&described), [WarningCode::XmpUnparsed]);
}

#[test]
fn an_xmp_packet_over_1_mib_is_skipped_with_a_warning() {
    let padding = " ".repeat(1 << 20);
    let packet = PACKET.replace("<rdf:RDF", &format!("{padding}<rdf:RDF"));
    let described = describe_bytes(&png_with_xmp(packet.as_bytes()));
    assert_eq!(described.descriptive, None);
    assert_eq!(codes(&described), [WarningCode::MetadataTooLarge]);
}
