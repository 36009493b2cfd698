//! Reading the EXIF fields we report (camera, exposure, capture time, GPS) with kamadak-exif.

use crate::bounded::cut_lossy;
use crate::warnings::{Warning, WarningCode};
use exif::{Exif, In, Tag, Value};
use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// The EXIF fields reported in `result.image.exif`. Every field is `null` when the image
/// does not carry it or carries a value that cannot be read.
///
/// Numbers are printed as exiftool `-n` prints them: to at most 15 significant digits, as
/// their shortest decimal (`0.004`, `2.8`, `48.8583694444444`).
///
/// Text (`make`, `model`, `lens`) is at most 256 characters: a longer value is cut to its
/// first 256 on a character boundary and its key is listed in `truncated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExifSummary {
    pub make: Option<String>,
    pub model: Option<String>,
    pub lens: Option<String>,
    /// The EXIF orientation tag, 1 to 8.
    pub orientation: Option<u8>,
    /// ISO 8601: `2024-05-01T12:34:56`, with the offset (`+02:00`) when the image records one.
    pub datetime_original: Option<String>,
    pub exposure_time_s: Option<f64>,
    pub f_number: Option<f64>,
    pub iso: Option<u32>,
    pub focal_length_mm: Option<f64>,
    pub gps: Option<GpsPosition>,
    /// The keys of the text fields above that were longer than 256 characters and are
    /// reported cut, in field order: `"truncated": ["make", "lens"]`. Left out of the JSON
    /// when nothing was cut, so an ordinary image's `exif` has exactly the keys above.
    /// (`datetime_original` is read from the first 19 characters and the GPS references
    /// from the first one, so cutting their source text never changes them; they are
    /// never listed.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

/// Where the picture was taken: signed decimal degrees (north and east positive) and
/// metres above sea level (negative below). A position off the globe (latitude beyond ±90°,
/// longitude beyond ±180°) is not reported: `gps` is `null` and `warnings` says why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpsPosition {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub altitude_m: Option<f64>,
}

/// Reads EXIF from the container (JPEG APP1, PNG eXIf, WebP EXIF chunk, TIFF IFDs); when
/// that finds nothing, falls back to the raw block the image decoder extracted. What was
/// odd (a position off the globe, a text cut) is added to `warnings`. The descriptive texts
/// come back apart, for `descriptive` to use where XMP and IPTC-IIM have none.
pub(crate) fn read_exif(
    bytes: &[u8],
    decoder_block: Option<&[u8]>,
    warnings: &mut Vec<Warning>,
) -> (Option<ExifSummary>, ExifTexts) {
    match parse(bytes, decoder_block) {
        Some(parsed) => {
            let (summary, texts) = summarise(&parsed, warnings);
            (Some(summary), texts)
        }
        None => (None, ExifTexts::default()),
    }
}

/// EXIF's descriptive texts, each cut to 256 characters with whether it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExifTexts {
    /// ImageDescription (0x010E).
    pub(crate) description: Option<(String, bool)>,
    /// Artist (0x013B).
    pub(crate) artist: Option<(String, bool)>,
    /// Copyright (0x8298), its photographer part (before the first NUL).
    pub(crate) copyright: Option<(String, bool)>,
}

fn parse(bytes: &[u8], decoder_block: Option<&[u8]>) -> Option<Exif> {
    let mut reader = exif::Reader::new();
    // Keep what parsed even when a later IFD is damaged, as exiftool does.
    reader.continue_on_error(true);
    match reader.read_from_container(&mut Cursor::new(bytes)) {
        Ok(exif) => Some(exif),
        Err(exif::Error::PartialResult(partial)) => Some(partial.into_inner().0),
        Err(_) => None,
    }
    .or_else(|| match reader.read_raw(decoder_block?.to_vec()) {
        Ok(exif) => Some(exif),
        Err(exif::Error::PartialResult(partial)) => Some(partial.into_inner().0),
        Err(_) => None,
    })
}

fn summarise(exif: &Exif, warnings: &mut Vec<Warning>) -> (ExifSummary, ExifTexts) {
    let (summary, texts) = fields(exif, warnings);
    if !summary.truncated.is_empty() {
        warnings.push(Warning::new(
            WarningCode::TextTruncated,
            format!(
                "EXIF {} longer than 256 characters and reported cut (exif.truncated)",
                match summary.truncated.as_slice() {
                    [one] => format!("{one} is"),
                    many => format!("{} are", many.join(", ")),
                }
            ),
        ));
    }
    (summary, texts)
}

fn fields(exif: &Exif, warnings: &mut Vec<Warning>) -> (ExifSummary, ExifTexts) {
    // Fields whose declared values are larger than any real one are never parsed whole (see
    // `exif_scan`): their text comes from a prefix of their raw bytes, their numbers are
    // reported as missing.
    let oversized = crate::exif_scan::oversized(exif.buf(), exif.little_endian());
    let field = |tag: Tag| {
        if oversized.contains_key(&tag) {
            return None;
        }
        exif.get_field(tag, In::PRIMARY).map(|f| &f.value)
    };
    let text_of = |tag: Tag| match oversized.get(&tag) {
        Some(entry) if entry.is_text() => {
            // Enough bytes for 256 characters and the sign that there were more.
            let end = entry
                .offset
                .saturating_add(entry.len.min(RAW_TEXT_PREFIX_BYTES));
            let raw = exif.buf().get(entry.offset..end)?;
            let (text, cut) = cut_lossy(trim(raw));
            (!text.is_empty()).then_some((text, cut))
        }
        Some(_) => None,
        None => field(tag).and_then(text_value),
    };
    let text = |tag| text_of(tag).map(|(text, _)| text);
    let number = |tag| {
        field(tag)
            .and_then(|v| number_at(v, 0))
            .map(as_exiftool_prints)
    };

    // As exiftool does, a coordinate counts only with its reference: without one the
    // hemisphere (or the side of sea level) is unknown, so the value is reported as missing.
    let latitude = field(Tag::GPSLatitude)
        .and_then(degrees)
        .zip(text(Tag::GPSLatitudeRef))
        .map(|(d, r)| as_exiftool_prints(signed(d, &r, 'S')));
    let longitude = field(Tag::GPSLongitude)
        .and_then(degrees)
        .zip(text(Tag::GPSLongitudeRef))
        .map(|(d, r)| as_exiftool_prints(signed(d, &r, 'W')));
    let altitude_m = number(Tag::GPSAltitude)
        .zip(field(Tag::GPSAltitudeRef).and_then(|v| v.get_uint(0)))
        .map(|(alt, below_sea_level)| {
            if below_sea_level != 0 {
                -alt.abs()
            } else {
                alt
            }
        });
    let placed = on_globe(latitude, longitude);
    if !placed {
        // No coordinates in the message: an account that has GPS redacted gets `gps: null`
        // from the pipeline, and a bad latitude may come with a real longitude.
        let off = match (on_globe(latitude, None), on_globe(None, longitude)) {
            (false, false) => "latitude is beyond ±90° and its longitude beyond ±180°",
            (false, true) => "latitude is beyond ±90°",
            _ => "longitude is beyond ±180°",
        };
        warnings.push(Warning::new(
            WarningCode::GpsOutOfRange,
            format!("the EXIF GPS position is off the globe (its {off}) and is not reported"),
        ));
    }
    let gps = (placed && (latitude.is_some() || longitude.is_some() || altitude_m.is_some()))
        .then_some(GpsPosition {
            latitude,
            longitude,
            altitude_m,
        });

    let texts = ExifTexts {
        description: text_of(Tag::ImageDescription),
        artist: text_of(Tag::Artist),
        copyright: text_of(Tag::Copyright),
    };
    // The reported text fields, noting which of them had to be cut.
    let mut truncated = Vec::new();
    let mut reported = |key: &str, tag| {
        let (text, cut) = text_of(tag)?;
        if cut {
            truncated.push(key.to_owned());
        }
        Some(text)
    };
    let make = reported("make", Tag::Make);
    let model = reported("model", Tag::Model);
    let lens = reported("lens", Tag::LensModel);

    let summary = ExifSummary {
        make,
        model,
        lens,
        orientation: field(Tag::Orientation)
            .and_then(|v| v.get_uint(0))
            .and_then(|o| u8::try_from(o).ok())
            .filter(|o| (1..=8).contains(o)),
        datetime_original: text(Tag::DateTimeOriginal)
            .and_then(|dt| iso_datetime(&dt, text(Tag::OffsetTimeOriginal).as_deref())),
        exposure_time_s: number(Tag::ExposureTime),
        f_number: number(Tag::FNumber),
        iso: field(Tag::PhotographicSensitivity)
            .or_else(|| field(Tag::ISOSpeed))
            .and_then(|v| v.get_uint(0))
            .filter(|iso| *iso > 0),
        focal_length_mm: number(Tag::FocalLength),
        gps,
        truncated,
    };
    (summary, texts)
}

/// Bytes of an oversized text field that are read: 256 characters of up to 4 bytes, and 4 more
/// to tell that the text went on.
const RAW_TEXT_PREFIX_BYTES: usize = 256 * 4 + 4;

/// An ASCII field as exiftool reads it: up to the first NUL, without the trailing spaces
/// cameras pad fixed-width fields with. Some writers store strings as UNDEFINED or BYTE, so
/// those are read the same way. Cut to 256 characters; the flag says whether it was.
fn text_value(value: &Value) -> Option<(String, bool)> {
    let raw: &[u8] = match value {
        // kamadak splits at NULs; the first part is what precedes the first NUL.
        Value::Ascii(parts) => parts.first()?,
        Value::Undefined(bytes, _) | Value::Byte(bytes) => bytes,
        _ => return None,
    };
    let (text, cut) = cut_lossy(trim(raw));
    (!text.is_empty()).then_some((text, cut))
}

fn trim(raw: &[u8]) -> &[u8] {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    raw[..end].trim_ascii_end()
}

/// Whether a position is on the globe: |latitude| ≤ 90 and |longitude| ≤ 180 (a missing
/// coordinate is no evidence against it).
fn on_globe(latitude: Option<f64>, longitude: Option<f64>) -> bool {
    latitude.is_none_or(|lat| (-90.0..=90.0).contains(&lat))
        && longitude.is_none_or(|lon| (-180.0..=180.0).contains(&lon))
}

/// `x` to 15 significant digits, as exiftool `-n` prints numbers (Perl's `%.15g`): a
/// rational's quotient or a sum of degrees, minutes and seconds then prints as the same
/// short decimal (`48.8583694444444`), not its binary value's 17 digits.
fn as_exiftool_prints(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.14e}").parse().unwrap_or(x)
}

/// The `index`th element of a numeric field as f64; `None` for a zero denominator.
fn number_at(value: &Value, index: usize) -> Option<f64> {
    let n = match value {
        Value::Rational(v) => {
            let r = v.get(index)?;
            (r.denom != 0).then(|| r.to_f64())?
        }
        Value::SRational(v) => {
            let r = v.get(index)?;
            (r.denom != 0).then(|| r.to_f64())?
        }
        // The decimal an f32 stands for (0.1, not 0.10000000149011612).
        Value::Float(v) => v.get(index)?.to_string().parse().ok()?,
        Value::Double(v) => *v.get(index)?,
        other => f64::from(other.get_uint(index)?),
    };
    n.is_finite().then_some(n)
}

/// Degrees, minutes and seconds as decimal degrees, summed in exiftool's order so that the
/// last digit agrees. Writers that store decimal degrees put them in the first element with
/// zero minutes and seconds, which sums the same.
fn degrees(value: &Value) -> Option<f64> {
    let degrees = number_at(value, 0)?;
    let minutes = number_at(value, 1).unwrap_or(0.0);
    let seconds = number_at(value, 2).unwrap_or(0.0);
    Some(degrees + (minutes + seconds / 60.0) / 60.0)
}

/// Negative when the reference starts with `negative` ('S' or 'W'), in either case.
fn signed(magnitude: f64, reference: &str, negative: char) -> f64 {
    match reference.chars().next() {
        Some(c) if c.eq_ignore_ascii_case(&negative) => -magnitude.abs(),
        _ => magnitude,
    }
}

/// `2024:05:01 12:34:56` (+ `+02:00`) to `2024-05-01T12:34:56+02:00`. Blank or zeroed
/// timestamps, which cameras write when the clock was never set, become `None`.
fn iso_datetime(raw: &str, offset: Option<&str>) -> Option<String> {
    let raw = raw.get(..19)?;
    let parsed = chrono::NaiveDateTime::parse_from_str(raw, "%Y:%m:%d %H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S"))
        .ok()?;
    let naive = parsed.format("%Y-%m-%dT%H:%M:%S").to_string();
    match offset.filter(|o| is_offset(o)) {
        Some(offset) => Some(format!("{naive}{offset}")),
        None => Some(naive),
    }
}

/// `+HH:MM` or `-HH:MM`, the only offset form EXIF 2.31 defines.
fn is_offset(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.len() == 6
        && (b[0] == b'+' || b[0] == b'-')
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3] == b':'
        && b[4..6].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &Value) -> Option<String> {
        text_value(value).map(|(text, cut)| {
            assert!(!cut, "{text}");
            text
        })
    }

    #[test]
    fn strings_lose_nul_padding_and_trailing_spaces_as_exiftool_does() {
        let value = Value::Ascii(vec![b"Canon\0\0\0  ".to_vec()]);
        assert_eq!(text(&value).as_deref(), Some("Canon"));
        let padded = Value::Ascii(vec![b"NIKON CORPORATION   ".to_vec()]);
        assert_eq!(text(&padded).as_deref(), Some("NIKON CORPORATION"));
        let tabbed = Value::Undefined(b"OLYMPUS\t \0garbage".to_vec(), 0);
        assert_eq!(text(&tabbed).as_deref(), Some("OLYMPUS"));
        assert_eq!(text(&Value::Ascii(vec![b"   \0".to_vec()])), None);
    }

    #[test]
    fn strings_longer_than_256_characters_are_cut_and_flagged() {
        // NUL padding and trailing spaces go first, so a value that fits once they are gone
        // is not flagged.
        let padded = format!("{}{}", "x".repeat(256), " ".repeat(100));
        let value = Value::Ascii(vec![padded.into_bytes()]);
        assert_eq!(text_value(&value), Some(("x".repeat(256), false)));

        let long = Value::Byte(format!("{}ü", "y".repeat(256)).into_bytes());
        assert_eq!(text_value(&long), Some(("y".repeat(256), true)));
    }

    #[test]
    fn capture_times_become_iso_8601_with_the_offset_when_recorded() {
        assert_eq!(
            iso_datetime("2024:05:01 12:34:56", None).as_deref(),
            Some("2024-05-01T12:34:56")
        );
        assert_eq!(
            iso_datetime("2024:05:01 12:34:56", Some("-05:30")).as_deref(),
            Some("2024-05-01T12:34:56-05:30")
        );
        assert_eq!(
            iso_datetime("2024:05:01 12:34:56", Some("   :  ")).as_deref(),
            Some("2024-05-01T12:34:56")
        );
        assert_eq!(iso_datetime("    :  :     :  :  ", None), None);
        assert_eq!(iso_datetime("0000:00:00 00:00:00", None), None);
    }

    #[test]
    fn zero_denominators_read_as_missing() {
        let value = Value::Rational(vec![exif::Rational { num: 1, denom: 0 }]);
        assert_eq!(number_at(&value, 0), None);
    }

    #[test]
    fn numbers_print_to_15_significant_digits_as_exiftool_prints_them() {
        // 48°51'30.13": the sum's binary value has 17 digits, exiftool prints 15.
        let sum = 48.0 + (51.0 + 30.13 / 60.0) / 60.0;
        assert_eq!(as_exiftool_prints(sum).to_string(), "48.8583694444444");
        assert_eq!(as_exiftool_prints(1.0 / 250.0).to_string(), "0.004");
        assert_eq!(as_exiftool_prints(-12.5), -12.5);
        assert_eq!(as_exiftool_prints(0.0), 0.0);
        let float = Value::Float(vec![0.1]);
        assert_eq!(number_at(&float, 0), Some(0.1));
    }

    #[test]
    fn positions_off_the_globe_are_refused() {
        assert!(on_globe(Some(-90.0), Some(180.0)));
        assert!(on_globe(None, Some(-180.0)));
        assert!(on_globe(None, None));
        assert!(!on_globe(Some(-91.0), Some(10.0)));
        assert!(!on_globe(Some(10.0), Some(200.0)));
        assert!(!on_globe(Some(f64::NAN), None));
    }

    #[test]
    fn southern_and_western_references_make_coordinates_negative() {
        assert_eq!(signed(33.5, "S", 'S'), -33.5);
        assert_eq!(signed(33.5, "s", 'S'), -33.5);
        assert_eq!(signed(33.5, "N", 'S'), 33.5);
        assert_eq!(signed(151.25, "W", 'W'), -151.25);
        assert_eq!(signed(151.25, "E", 'W'), 151.25);
    }
}
