//! The decode stage's one error type, classified by the stable codes in `imgmeta-domain`.

use imgmeta_domain::ErrorCode;

/// Why bytes could not be turned into an image. Metadata extraction itself never fails:
/// a broken EXIF block or ICC profile is reported as absent, not as an error.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The bytes start with no image signature we know (HTML, text, JSON, empty).
    #[error("the content is not an image ({0})")]
    NotAnImage(String),
    /// The bytes are an image format we recognise but do not decode (AVIF, HEIC, SVG, ...).
    #[error("image format {0} is not supported")]
    UnsupportedFormat(&'static str),
    /// The header or the pixel data is corrupt or truncated.
    #[error("the {format} image could not be decoded: {reason}")]
    DecodeFailed {
        format: &'static str,
        reason: String,
    },
    /// The image exceeds the configured dimension, pixel, frame or memory limits.
    #[error("{0}")]
    ImageTooLarge(String),
    /// Decoding ran longer than the configured time limit.
    #[error("decoding took longer than {limit_ms} ms")]
    TimedOut { limit_ms: u128 },
    /// The blocking decode task panicked or was cancelled; a bug, not the image's fault.
    #[error("the decode task failed: {0}")]
    TaskFailed(String),
}

impl MetadataError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotAnImage(_) => ErrorCode::NotAnImage,
            Self::UnsupportedFormat(_) => ErrorCode::UnsupportedFormat,
            Self::DecodeFailed { .. } => ErrorCode::DecodeFailed,
            Self::ImageTooLarge(_) => ErrorCode::ImageTooLarge,
            // An image that takes too long to decode will take too long again, so this must
            // not be the retryable `timeout` code; `decode_failed` is the closest final one.
            Self::TimedOut { .. } => ErrorCode::DecodeFailed,
            Self::TaskFailed(_) => ErrorCode::Internal,
        }
    }

    /// Classifies an error from the `image` crate: limit breaches are `image_too_large`,
    /// everything else that happens after the format was recognised is `decode_failed`.
    pub(crate) fn from_image(format: &'static str, err: image::ImageError) -> Self {
        match err {
            image::ImageError::Limits(limit) => Self::ImageTooLarge(format!(
                "the {format} image exceeds the decode limits: {limit}"
            )),
            image::ImageError::Unsupported(unsupported) => Self::DecodeFailed {
                format,
                reason: format!("uses an unsupported feature: {unsupported}"),
            },
            other => Self::DecodeFailed {
                format,
                reason: other.to_string(),
            },
        }
    }
}
