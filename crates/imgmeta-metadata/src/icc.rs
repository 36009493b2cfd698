//! Reading the embedded ICC profile's human-readable description: with moxcms, and with a
//! small `desc`-tag reader when moxcms rejects the profile as a whole.

use crate::bounded::cut;
use crate::warnings::{Warning, WarningCode};
use moxcms::{ColorProfile, ProfileText};
use serde::{Deserialize, Serialize};

/// The largest ICC profile we read. Real profiles are a few hundred bytes to a few hundred
/// kilobytes (lookup-table printer profiles reach a megabyte or two); anything larger is
/// not worth holding, and in a PNG it is usually a compressed bomb.
pub(crate) const MAX_ICC_BYTES: usize = 4 * 1024 * 1024;

/// The profile the decode stage found, or the fact that it was too large or too damaged
/// to read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EmbeddedIcc {
    Profile(Vec<u8>),
    /// Over [`MAX_ICC_BYTES`] (a PNG's compressed profile is not inflated past that), or
    /// more than the decode memory limit left room for.
    TooLarge,
    /// A PNG `iCCP` chunk whose checksum, name or compressed data is broken: the png
    /// decoder ignores such a chunk, and so is the profile reported (`icc: null`), with a
    /// warning.
    Damaged,
}

impl EmbeddedIcc {
    /// Wraps a profile that some decoder has already extracted, dropping it if too large.
    pub(crate) fn bounded(profile: Vec<u8>) -> Self {
        if profile.len() > MAX_ICC_BYTES {
            Self::TooLarge
        } else {
            Self::Profile(profile)
        }
    }

    /// Bytes held in memory.
    pub(crate) fn held_bytes(&self) -> usize {
        match self {
            Self::Profile(profile) => profile.len(),
            Self::TooLarge | Self::Damaged => 0,
        }
    }
}

/// Reported as `result.image.icc` when the image embeds an ICC profile.
///
/// Normally `{"description": "..."}`. `truncated` appears only when something was cut:
/// `["description"]` when the description was longer than 256 characters (it is reported
/// cut to its first 256, on a character boundary), `["profile"]` when the profile was
/// larger than 4 MiB and was not read at all (`description` is then `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IccSummary {
    /// The profile's `desc` text ("sRGB IEC61966-2.1", "Display P3"); `null` when the
    /// profile does not parse, has no description or was too large to read.
    pub description: Option<String>,
    /// What was cut, as explained above; left out of the JSON when nothing was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

/// `result.image.icc` for the embedded profile, noting in `warnings` a profile that could
/// not be parsed and a description that had to be cut.
pub(crate) fn read_icc(icc: &EmbeddedIcc, warnings: &mut Vec<Warning>) -> Option<IccSummary> {
    let profile = match icc {
        EmbeddedIcc::Profile(profile) => profile,
        EmbeddedIcc::TooLarge => {
            warnings.push(Warning::new(
                WarningCode::IccUnparsed,
                "the ICC profile is larger than 4 MiB (or than the memory limit left room \
                 for) and was not read",
            ));
            return Some(IccSummary {
                description: None,
                truncated: vec!["profile".to_owned()],
            });
        }
        EmbeddedIcc::Damaged => {
            warnings.push(Warning::new(
                WarningCode::IccUnparsed,
                "the PNG's iCCP chunk is damaged (checksum, name or compressed data); \
                 its profile was not read",
            ));
            return None;
        }
    };
    let description = match ColorProfile::new_from_slice(profile) {
        Ok(parsed) => parsed.description.and_then(|text| describe(&text)),
        // moxcms validates every tag it knows, so one damaged curve loses the whole
        // profile; the description tag alone is often still intact (exiftool reads it).
        Err(_) => {
            let description = desc_tag::read(profile);
            warnings.push(Warning::new(
                WarningCode::IccUnparsed,
                if description.is_some() {
                    "the ICC profile does not parse; its description was read from its desc \
                     tag alone"
                } else {
                    "the ICC profile does not parse, and it has no readable description"
                },
            ));
            description
        }
    };
    let mut truncated = Vec::new();
    let description = description.map(|text| match cut(&text) {
        (kept, true) => {
            truncated.push("description".to_owned());
            warnings.push(Warning::new(
                WarningCode::TextTruncated,
                "the ICC profile's description is longer than 256 characters and is reported \
                 cut (icc.truncated)",
            ));
            kept.to_owned()
        }
        (_, false) => text,
    });
    Some(IccSummary {
        description,
        truncated,
    })
}

fn describe(text: &ProfileText) -> Option<String> {
    let raw = match text {
        ProfileText::PlainString(s) => s.clone(),
        // v4 `mluc`: prefer English, else the first record, as colour-managed viewers do.
        ProfileText::Localizable(records) => records
            .iter()
            .find(|r| r.language.eq_ignore_ascii_case("en"))
            .or_else(|| records.first())?
            .value
            .clone(),
        // v2 `desc`: the ASCII form is mandatory; the Unicode one is optional.
        ProfileText::Description(d) if !clean(&d.ascii_string).is_empty() => d.ascii_string.clone(),
        ProfileText::Description(d) => d.unicode_string.clone(),
    };
    let cleaned = clean(&raw);
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

fn clean(raw: &str) -> &str {
    raw.split('\0').next().unwrap_or_default().trim()
}

/// A reader for just the `desc` tag, hand-written because moxcms offers no way to parse one
/// tag of a profile it rejects.
mod desc_tag {
    use super::clean;

    fn u32_at(data: &[u8], at: usize) -> Option<usize> {
        let bytes = data.get(at..at.checked_add(4)?)?;
        usize::try_from(u32::from_be_bytes(bytes.try_into().ok()?)).ok()
    }

    pub(super) fn read(profile: &[u8]) -> Option<String> {
        let count = u32_at(profile, 128)?;
        // Each tag table entry is 12 bytes; a count that overruns the data is corrupt.
        if count > profile.len() / 12 {
            return None;
        }
        let tag = (0..count).find_map(|i| {
            let entry = 132 + 12 * i;
            (profile.get(entry..entry + 4)? == b"desc").then_some(())?;
            let offset = u32_at(profile, entry + 4)?;
            let size = u32_at(profile, entry + 8)?;
            profile.get(offset..offset.checked_add(size)?)
        })?;
        let text = match tag.get(0..4)? {
            // v2 textDescriptionType: ASCII count at 8, ASCII from 12.
            b"desc" => {
                let len = u32_at(tag, 8)?;
                String::from_utf8_lossy(tag.get(12..12usize.checked_add(len)?)?).into_owned()
            }
            // v4 multiLocalizedUnicodeType: the first record's UTF-16BE string.
            b"mluc" => {
                let len = u32_at(tag, 20)?;
                let offset = u32_at(tag, 24)?;
                let raw = tag.get(offset..offset.checked_add(len)?)?;
                let units: Vec<u16> = raw
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            }
            b"text" => String::from_utf8_lossy(tag.get(8..)?).into_owned(),
            _ => return None,
        };
        let cleaned = clean(&text);
        (!cleaned.is_empty()).then(|| cleaned.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageDecoder;

    fn embedded_profile(fixture: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/images")
            .join(fixture);
        let bytes = std::fs::read(path).unwrap();
        let mut decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .unwrap()
            .into_decoder()
            .unwrap();
        decoder
            .icc_profile()
            .unwrap()
            .expect("fixture embeds a profile")
    }

    #[test]
    fn a_profile_moxcms_rejects_still_yields_its_description() {
        let profile = embedded_profile("icc_damaged.png");
        assert!(ColorProfile::new_from_slice(&profile).is_err());
        let mut warnings = Vec::new();
        let summary = read_icc(&EmbeddedIcc::Profile(profile), &mut warnings).unwrap();
        assert_eq!(
            summary.description.as_deref(),
            Some("Damaged but described")
        );
        assert_eq!(codes(&warnings), [WarningCode::IccUnparsed]);
    }

    /// A profile moxcms rejects (no valid header) holding only a v2 `desc` tag.
    fn profile_described_as(text: &str) -> Vec<u8> {
        let mut profile = vec![0u8; 128];
        let tag_at = 128 + 4 + 12;
        let mut tag = b"desc\0\0\0\0".to_vec();
        tag.extend(u32::try_from(text.len() + 1).unwrap().to_be_bytes());
        tag.extend(text.as_bytes());
        tag.push(0);
        profile.extend(1u32.to_be_bytes());
        profile.extend(b"desc");
        profile.extend(u32::try_from(tag_at).unwrap().to_be_bytes());
        profile.extend(u32::try_from(tag.len()).unwrap().to_be_bytes());
        profile.extend(tag);
        profile
    }

    fn codes(warnings: &[Warning]) -> Vec<WarningCode> {
        warnings.iter().map(|w| w.code).collect()
    }

    #[test]
    fn a_description_longer_than_256_characters_is_cut_and_flagged() {
        let long = format!("{}ß and more", "Ö".repeat(255));
        let mut warnings = Vec::new();
        let summary = read_icc(
            &EmbeddedIcc::Profile(profile_described_as(&long)),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(summary.description, Some(format!("{}ß", "Ö".repeat(255))));
        assert_eq!(summary.truncated, ["description"]);
        // The hand-made profile has no valid header, so moxcms rejects it too.
        assert_eq!(
            codes(&warnings),
            [WarningCode::IccUnparsed, WarningCode::TextTruncated]
        );

        let mut warnings = Vec::new();
        let short = read_icc(
            &EmbeddedIcc::Profile(profile_described_as("Short")),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(short.description.as_deref(), Some("Short"));
        assert!(short.truncated.is_empty());
        assert_eq!(codes(&warnings), [WarningCode::IccUnparsed]);
    }

    #[test]
    fn a_profile_over_4_mib_is_not_read_and_reported_as_cut() {
        let huge = EmbeddedIcc::bounded(vec![0; MAX_ICC_BYTES + 1]);
        assert_eq!(huge, EmbeddedIcc::TooLarge);
        let mut warnings = Vec::new();
        let summary = read_icc(&huge, &mut warnings).unwrap();
        assert_eq!(summary.description, None);
        assert_eq!(summary.truncated, ["profile"]);
        let json = serde_json::to_string(&summary).unwrap();
        assert_eq!(json, r#"{"description":null,"truncated":["profile"]}"#);
        assert_eq!(codes(&warnings), [WarningCode::IccUnparsed]);
    }

    #[test]
    fn a_damaged_png_profile_is_null_with_a_warning() {
        let mut warnings = Vec::new();
        assert_eq!(read_icc(&EmbeddedIcc::Damaged, &mut warnings), None);
        assert_eq!(codes(&warnings), [WarningCode::IccUnparsed]);
    }

    #[test]
    fn a_profile_that_parses_gives_no_warning() {
        let mut warnings = Vec::new();
        let profile = embedded_profile("icc_display_p3.jpg");
        let summary = read_icc(&EmbeddedIcc::Profile(profile), &mut warnings).unwrap();
        assert!(summary.description.is_some());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn the_desc_tag_reader_agrees_with_moxcms_on_v2_and_v4_profiles() {
        for fixture in ["icc_display_p3.jpg", "exif_icc.webp"] {
            let profile = embedded_profile(fixture);
            let from_moxcms = ColorProfile::new_from_slice(&profile)
                .unwrap()
                .description
                .and_then(|text| describe(&text));
            assert!(from_moxcms.is_some(), "{fixture}");
            assert_eq!(desc_tag::read(&profile), from_moxcms, "{fixture}");
        }
    }
}
