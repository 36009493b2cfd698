//! `VisionError`: failures to load the detector or to run it, with their stable codes.

use imgmeta_domain::ErrorCode;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("cannot read model weights {path}: {source}; run `imgmeta models fetch yolov12n`")]
    WeightsUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model weights {path} are not usable: {reason}; run `imgmeta models fetch yolov12n`")]
    WeightsInvalid { path: PathBuf, reason: String },
    #[error("device {0} is not available: {1}")]
    Device(String, String),
    #[error("invalid detector configuration: {0}")]
    Config(String),
    /// Dream options the loaded model cannot honour (a layer or class it does not have).
    #[error("invalid dream: {0}")]
    Dream(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("cannot read image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
}

impl VisionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::WeightsUnreadable { .. } | Self::WeightsInvalid { .. } | Self::Device(..) => {
                ErrorCode::ModelUnavailable
            }
            Self::Config(_) => ErrorCode::Internal,
            Self::Inference(_) => ErrorCode::InferenceFailed,
            Self::Dream(_) => ErrorCode::InvalidDream,
            Self::Image { .. } => ErrorCode::DecodeFailed,
        }
    }
}

impl From<candle_core::Error> for VisionError {
    fn from(e: candle_core::Error) -> Self {
        Self::Inference(e.to_string())
    }
}
