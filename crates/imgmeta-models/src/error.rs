//! `ModelError`: everything that can go wrong while supplying a model, with its stable code.

use imgmeta_domain::ErrorCode;
use std::path::PathBuf;

/// A model could not be found, fetched, verified or converted.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error(
        "model {name:?} is not in {dir}; run `imgmeta models fetch {name}` (needs access to crates.io once)"
    )]
    Missing { name: String, dir: PathBuf },
    #[error(
        "model {name:?}: {path} is corrupt (sha256 {actual}, expected {expected}); run `imgmeta models fetch {name}` to replace it"
    )]
    Corrupt {
        name: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "model {name:?}: {what} has sha256 {actual}, expected {expected}; the published file differs from the manifest"
    )]
    ChecksumMismatch {
        name: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("could not download {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("archive {what} is malformed: {reason}")]
    Archive { what: String, reason: String },
    #[error("ONNX file is malformed or unsupported: {0}")]
    Onnx(String),
    #[error("could not write safetensors: {0}")]
    Safetensors(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the model manifest is invalid: {0}")]
    Manifest(String),
}

impl ModelError {
    /// Every failure here leaves the service without its model. Checksum and download
    /// problems may clear up after a re-fetch, so they share the retryable
    /// `model_unavailable`; a broken manifest is our own bug.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Manifest(_) => ErrorCode::Internal,
            _ => ErrorCode::ModelUnavailable,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
