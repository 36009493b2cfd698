//! `result.image.descriptive`: title, description, keywords, creator, copyright, credit and
//! digital source type, merged from XMP, IPTC-IIM and EXIF.
//!
//! The IPTC Photo Metadata standard (and the Metadata Working Group's guidance) makes XMP the
//! reference and IIM and EXIF the legacy copies, so each field is taken from XMP when it has
//! it, else from IIM, else from EXIF (which carries only a description, an artist and a
//! copyright). Keywords come whole from one source: XMP's `dc:subject`, else IIM's 2:25.

mod iim;
mod xmp;

use crate::bounded::cut;
use crate::container::Embedded;
use crate::exif_fields::ExifTexts;
use crate::warnings::{Warning, WarningCode};
use serde::{Deserialize, Serialize};

/// Most keywords reported; a longer list keeps its first 64.
pub(crate) const MAX_KEYWORDS: usize = 64;
/// Largest XMP packet read; a larger one is skipped with a `metadata_too_large` warning.
const MAX_XMP_BYTES: usize = 1 << 20;
/// Largest IPTC-IIM block read; a larger one is skipped with a `metadata_too_large` warning.
const MAX_IIM_BYTES: usize = 256 << 10;

/// `result.image.descriptive`: every key is present, `null` (keywords `[]`) when no source
/// carries it. Each text is at most 256 characters and keywords at most 64 entries; a cut
/// value's key is listed in `truncated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptive {
    /// XMP `dc:title` (its `x-default` language), IIM 2:05 object name.
    pub title: Option<String>,
    /// XMP `dc:description`, IIM 2:120 caption, EXIF ImageDescription.
    pub description: Option<String>,
    /// XMP `dc:subject`, IIM 2:25, in the file's order.
    pub keywords: Vec<String>,
    /// XMP `dc:creator` joined with "; ", IIM 2:80 by-lines joined likewise, EXIF Artist.
    pub creator: Option<String>,
    /// XMP `dc:rights`, IIM 2:116, EXIF Copyright.
    pub copyright: Option<String>,
    /// XMP `photoshop:Credit`, IIM 2:110.
    pub credit: Option<String>,
    /// XMP `Iptc4xmpExt:DigitalSourceType` as written: the full IRI of a term, such as
    /// `http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia`. Terms
    /// ending in `/trainedAlgorithmicMedia` or `/compositeWithTrainedAlgorithmicMedia`
    /// mark an image made or altered by generative AI.
    pub digital_source_type: Option<String>,
    /// Keys whose value was cut (a text past 256 characters, more than 64 keywords or a
    /// keyword past 256 characters), in field order; left out when nothing was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

/// What one source carries, before merging and cutting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Found {
    title: Option<String>,
    description: Option<String>,
    keywords: Vec<String>,
    creator: Option<String>,
    copyright: Option<String>,
    credit: Option<String>,
    digital_source_type: Option<String>,
}

/// Merges the file's XMP packet and IIM block (as found by the container walk) with the
/// EXIF texts. `None` when no source carries any of the fields. What was odd (a block too
/// large, a packet not read, a text cut) is added to `warnings`.
pub(crate) fn read_descriptive(
    embedded: Embedded<'_>,
    exif: ExifTexts,
    warnings: &mut Vec<Warning>,
) -> Option<Descriptive> {
    let xmp = within(embedded.xmp, MAX_XMP_BYTES, "XMP packet", warnings).map(|packet| {
        let (found, unread) = xmp::read(packet);
        if let Some(unread) = unread {
            let why = match unread {
                xmp::Unread::DocumentType => "declares a document type, which is not read",
                xmp::Unread::Malformed => "is not well-formed XML",
            };
            warnings.push(Warning::new(
                WarningCode::XmpUnparsed,
                format!("the XMP packet {why}; only the properties before that are reported"),
            ));
        }
        found
    });
    let iim = within(embedded.iim, MAX_IIM_BYTES, "IPTC-IIM block", warnings).map(iim::read);
    let exif = Found {
        description: exif.description.map(|(text, _)| text),
        creator: exif.artist.map(|(text, _)| text),
        copyright: exif.copyright.map(|(text, _)| text),
        ..Found::default()
    };
    let sources = [xmp.unwrap_or_default(), iim.unwrap_or_default(), exif];
    let merged = merge(sources);
    if merged == Found::default() {
        return None;
    }
    let descriptive = bound(merged);
    if !descriptive.truncated.is_empty() {
        warnings.push(Warning::new(
            WarningCode::TextTruncated,
            format!(
                "descriptive {} reported cut (descriptive.truncated)",
                descriptive.truncated.join(", ")
            ),
        ));
    }
    Some(descriptive)
}

/// `block` when it is at most `max` bytes; otherwise `None` and a warning.
fn within<'a>(
    block: Option<&'a [u8]>,
    max: usize,
    what: &str,
    warnings: &mut Vec<Warning>,
) -> Option<&'a [u8]> {
    let block = block?;
    if block.len() > max {
        warnings.push(Warning::new(
            WarningCode::MetadataTooLarge,
            format!(
                "the {what} of {} bytes is larger than the {max} read and was skipped",
                block.len()
            ),
        ));
        return None;
    }
    Some(block)
}

/// Each field from the first source, in precedence order, that has it.
fn merge(sources: [Found; 3]) -> Found {
    let mut merged = Found::default();
    for source in sources {
        let fill = |slot: &mut Option<String>, value: Option<String>| {
            if slot.is_none() {
                *slot = value.filter(|v| !v.is_empty());
            }
        };
        fill(&mut merged.title, source.title);
        fill(&mut merged.description, source.description);
        fill(&mut merged.creator, source.creator);
        fill(&mut merged.copyright, source.copyright);
        fill(&mut merged.credit, source.credit);
        fill(&mut merged.digital_source_type, source.digital_source_type);
        if merged.keywords.is_empty() {
            merged.keywords = source.keywords;
        }
    }
    merged
}

/// Cuts every text to 256 characters and the keywords to 64, noting which keys were cut.
fn bound(found: Found) -> Descriptive {
    let mut truncated = Vec::new();
    let mut note = |key: &str, was_cut: bool| {
        if was_cut && !truncated.iter().any(|k| k == key) {
            truncated.push(key.to_owned());
        }
    };
    let mut text = |key: &str, value: Option<String>| {
        value.map(|value| {
            let (kept, was_cut) = cut(&value);
            note(key, was_cut);
            kept.to_owned()
        })
    };
    let title = text("title", found.title);
    let description = text("description", found.description);
    let keywords: Vec<String> = found
        .keywords
        .iter()
        .take(MAX_KEYWORDS)
        .filter_map(|k| text("keywords", Some(k.clone())))
        .collect();
    let more_keywords = found.keywords.len() > MAX_KEYWORDS;
    let creator = text("creator", found.creator);
    let copyright = text("copyright", found.copyright);
    let credit = text("credit", found.credit);
    let digital_source_type = text("digital_source_type", found.digital_source_type);
    let mut descriptive = Descriptive {
        title,
        description,
        keywords,
        creator,
        copyright,
        credit,
        digital_source_type,
        truncated,
    };
    if more_keywords && !descriptive.truncated.iter().any(|k| k == "keywords") {
        // Keep field order: "keywords" follows "title" and "description".
        let at = descriptive
            .truncated
            .iter()
            .take_while(|k| *k == "title" || *k == "description")
            .count();
        descriptive.truncated.insert(at, "keywords".to_owned());
    }
    descriptive
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(title: &str) -> Found {
        Found {
            title: Some(title.to_owned()),
            ..Found::default()
        }
    }

    #[test]
    fn xmp_wins_over_iim_which_wins_over_exif_field_by_field() {
        let xmp = found("from xmp");
        let iim = Found {
            title: Some("from iim".into()),
            credit: Some("iim credit".into()),
            keywords: vec!["iim".into()],
            ..Found::default()
        };
        let exif = Found {
            description: Some("exif".into()),
            credit: Some("never".into()),
            ..Found::default()
        };
        let merged = merge([xmp, iim, exif]);
        assert_eq!(merged.title.as_deref(), Some("from xmp"));
        assert_eq!(merged.credit.as_deref(), Some("iim credit"));
        assert_eq!(merged.description.as_deref(), Some("exif"));
        assert_eq!(merged.keywords, ["iim"]);
    }

    #[test]
    fn long_texts_and_lists_are_cut_and_listed() {
        let mut long = found(&"t".repeat(300));
        long.keywords = (0..100).map(|i| format!("k{i}")).collect();
        let descriptive = bound(long);
        assert_eq!(descriptive.title.unwrap().chars().count(), 256);
        assert_eq!(descriptive.keywords.len(), MAX_KEYWORDS);
        assert_eq!(descriptive.truncated, ["title", "keywords"]);
    }

    #[test]
    fn an_oversized_packet_is_skipped_with_a_warning() {
        let packet = vec![b' '; MAX_XMP_BYTES + 1];
        let mut warnings = Vec::new();
        let embedded = Embedded {
            xmp: Some(&packet),
            iim: None,
        };
        assert_eq!(
            read_descriptive(embedded, ExifTexts::default(), &mut warnings),
            None
        );
        assert_eq!(warnings[0].code, WarningCode::MetadataTooLarge);
    }
}
