//! Reading the embedded ICC profile's human-readable description with moxcms.

use moxcms::{ColorProfile, ProfileText};
use serde::{Deserialize, Serialize};

/// Reported as `result.image.icc` when the image embeds an ICC profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IccSummary {
    /// The profile's `desc` text ("sRGB IEC61966-2.1", "Display P3"); `null` when the
    /// profile does not parse or has no description.
    pub description: Option<String>,
}

pub(crate) fn read_icc(profile: &[u8]) -> IccSummary {
    let description = ColorProfile::new_from_slice(profile)
        .ok()
        .and_then(|p| p.description)
        .and_then(|text| describe(&text));
    IccSummary { description }
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
