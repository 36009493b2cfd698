//! The decode and metadata stages: turn fetched bytes into an oriented image and a description.
//!
//! Only this crate decodes images and reads EXIF and ICC data. [`decode`] is the "decode"
//! stage (format sniffing by magic bytes, header limits, frame cap, orientation);
//! [`describe`] is the "metadata" stage (`result.image`). They are separate calls so the
//! caller can time them separately.

mod colors;
mod decode;
mod describe;
mod error;
mod exif_fields;
mod frames;
mod hashes;
mod icc;
mod limits;
mod sniff;

pub use colors::DominantColor;
pub use decode::{Decoded, decode, decode_with_timeout};
pub use describe::{ImageMetadata, describe};
pub use error::MetadataError;
pub use exif_fields::{ExifSummary, GpsPosition};
pub use hashes::phash_distance;
pub use icc::IccSummary;
pub use limits::DecodeLimits;
pub use sniff::{Format, sniff};
