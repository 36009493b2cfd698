//! The decode and metadata stages: turn fetched bytes into an oriented image and a description.
//!
//! Only this crate decodes images and reads EXIF and ICC data. [`decode`] is the "decode"
//! stage (format sniffing by magic bytes, header limits, frame cap, orientation);
//! [`describe`] is the "metadata" stage (`result.image`). They are separate calls so the
//! caller can time them separately.
//!
//! Decisions worth knowing:
//! - Formats decoded: JPEG, PNG (and APNG), GIF, WebP, BMP, TIFF, plus ICO, PNM and QOI,
//!   which the workspace's `image` features include; HEIC/HEIF and AVIF with the system
//!   libheif (`heif.rs`), JPEG XL with jxl-oxide (`jxl.rs`). JPEG 2000, SVG, PSD, DDS,
//!   OpenEXR, Radiance HDR and farbfeld are recognised and refused as `unsupported_format`;
//!   anything else (HTML, text, empty) is `not_an_image`.
//! - Orientation is applied once, from where the format keeps it: the EXIF tag for JPEG,
//!   PNG, WebP and TIFF; `irot`/`imir` (and a `clap` crop) for HEIF and AVIF, applied by
//!   libheif, whose EXIF tag is informative and never applied again; the codestream header
//!   for JPEG XL. `width`/`height` are always the stored size (a HEIF's `ispe`),
//!   `oriented_width`/`oriented_height` the shown one; `exif.orientation` is the EXIF tag
//!   as written, whatever it says.
//! - A JPEG with no end-of-image marker is `decode_failed`: the JPEG decoder would otherwise
//!   return a grey-filled picture for a cut-off download.
//! - `mime` follows `format`, so an APNG is `image/png` (exiftool says `image/apng`).
//! - `color_type`, `bit_depth` and `has_alpha` say how the file stores its pixels, read from
//!   its headers (`container/`), not what the decoder widened them to: a 1-bit PNG is `l1`,
//!   every GIF `indexed`, a CMYK JPEG `cmyk8`; `has_alpha` only when a pixel can be less
//!   than opaque.
//! - `frames` is counted by walking the file (GIF images, APNG `fcTL` chunks, WebP `ANMF`
//!   chunks, TIFF IFDs, the `stsz` entries of a HEIF or AVIF sequence's picture track,
//!   JPEG XL keyframes), never from a header's count alone, and capped by `max_frames`.
//! - `warnings` lists what was odd but survivable, with stable codes (`warnings.rs`): GPS
//!   off the globe (then `gps` is `null`), text cut, an ICC profile not parsed, bytes after
//!   the image's end marker.
//! - `c2pa` reports C2PA content credentials read and validated offline with the `c2pa`
//!   crate (signature and hash binding; no trust list, so `trusted` is `false`), and
//!   `ai_generated` from an AI source type in the manifest's actions or the IPTC
//!   `DigitalSourceType` (`credentials.rs`).
//! - `phash` is a DCT hash (8×8 lowest frequencies of a 16×16 grayscale copy, median
//!   threshold). Re-encoded copies usually hash identically; resized copies differ in at most
//!   a few bits. Compare with [`phash_distance`] (≤ 6 is "the same picture").
//! - `dominant_colors` come from a 512-bin histogram of a 64×64 copy; transparent pixels
//!   are ignored and fractions are of the opaque pixels.
//! - Metadata is bounded against hostile files: every EXIF and ICC text reported is at
//!   most 256 characters (a longer one is cut on a character boundary and its key listed in
//!   the object's `truncated`), and an ICC profile over 4 MiB is not read (a PNG's is not
//!   even inflated past that): `icc` is then `{"description": null, "truncated": ["profile"]}`.
//!   The EXIF and ICC copies held through decoding count against `max_alloc_bytes`.
//! - A decode that outlives `DecodeLimits::timeout` is reported as `decode_failed`: the
//!   same image would time out again, so the retryable `timeout` code would be wrong.

mod bounded;
mod colors;
mod container;
mod credentials;
mod decode;
mod describe;
mod descriptive;
mod error;
mod exif_fields;
mod exif_scan;
mod hashes;
mod heif;
mod icc;
mod jxl;
mod layout;
mod limits;
mod png_iccp;
mod sniff;
mod warnings;

pub use colors::DominantColor;
pub use credentials::{ContentCredentials, CredentialAction};
pub use decode::{Decoded, decode, decode_with_timeout};
pub use describe::{ImageMetadata, describe, describe_hashed};
pub use descriptive::Descriptive;
pub use error::MetadataError;
pub use exif_fields::{ExifSummary, GpsPosition};
pub use hashes::phash_distance;
pub use icc::IccSummary;
pub use limits::DecodeLimits;
pub use sniff::{Format, sniff};
pub use warnings::{Warning, WarningCode};
