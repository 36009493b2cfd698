//! `result.image.warnings`: what was odd about the file but did not stop us describing it.
//!
//! Clients match on the codes, so, like `imgmeta_domain::ErrorCode`, a code is never renamed
//! once released; new ones are added instead. The messages are ours and never quote text
//! from the file.

use serde::{Deserialize, Serialize};

/// Why a [`Warning`] was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    /// The EXIF GPS position is outside ±90° latitude or ±180° longitude; `exif.gps` is
    /// `null`.
    GpsOutOfRange,
    /// A text from the file's metadata was longer than 256 characters and is reported cut;
    /// the object holding it lists its key in `truncated`.
    TextTruncated,
    /// The image embeds an ICC profile that could not be parsed: damaged, or too large to
    /// read. Its description may still have been found (`icc.description`).
    IccUnparsed,
    /// Bytes follow the image's end marker (JPEG end-of-image, PNG `IEND`, GIF trailer, the
    /// end of a WebP's RIFF container): appended data, another file, or a broken writer.
    TrailingData,
    /// An XMP packet or IPTC-IIM block is larger than we read (1 MiB of XMP, 256 KiB of
    /// IIM) and was skipped, `descriptive` coming from the other sources; or a C2PA manifest
    /// store is over the 4 MiB we validate (`c2pa.valid` is then `null`).
    MetadataTooLarge,
    /// The XMP packet declares a document type (entities are never expanded) or is not
    /// well-formed; only the properties before that point are reported.
    XmpUnparsed,
    /// The file's C2PA manifest store could not be read (malformed JUMBF, a container the
    /// reader cannot walk) or its validation ran past its time; `c2pa` says what is known.
    C2paUnreadable,
}

impl WarningCode {
    /// The stable snake_case string clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GpsOutOfRange => "gps_out_of_range",
            Self::TextTruncated => "text_truncated",
            Self::IccUnparsed => "icc_unparsed",
            Self::TrailingData => "trailing_data",
            Self::MetadataTooLarge => "metadata_too_large",
            Self::XmpUnparsed => "xmp_unparsed",
            Self::C2paUnreadable => "c2pa_unreadable",
        }
    }
}

impl std::fmt::Display for WarningCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `warnings`: `{"code": "trailing_data", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub code: WarningCode,
    /// A sentence for people; may change between releases, unlike `code`.
    pub message: String,
}

impl Warning {
    pub(crate) fn new(code: WarningCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_the_stable_strings() {
        for code in [
            WarningCode::GpsOutOfRange,
            WarningCode::TextTruncated,
            WarningCode::IccUnparsed,
            WarningCode::TrailingData,
            WarningCode::MetadataTooLarge,
            WarningCode::XmpUnparsed,
            WarningCode::C2paUnreadable,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str());
            assert_eq!(code.to_string(), code.as_str());
        }
    }

    #[test]
    fn a_warning_serialises_as_code_and_message() {
        let warning = Warning::new(WarningCode::TrailingData, "12 bytes follow the image");
        assert_eq!(
            serde_json::to_string(&warning).unwrap(),
            r#"{"code":"trailing_data","message":"12 bytes follow the image"}"#
        );
    }
}
