//! Where a job's image comes from: a URL a worker fetches, or bytes uploaded with the job.

use crate::{ErrorCode, ImageUrl, ValidationError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A job's image: fetched from a URL, or uploaded with the job and stored as its input.
///
/// In a [`crate::JobSpec`] it is flattened into its tag, so a URL job's spec still reads
/// `{"url": …, "tasks": …, "min_score": …}` (stored idempotency digests keep matching) and an
/// upload's `{"upload": {"bytes": …, "sha256": …}, …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Url(ImageUrl),
    /// The upload's identity; its bytes travel beside the spec ([`Upload`]), never inside it.
    Upload(UploadDigest),
}

impl Source {
    pub fn url(&self) -> Option<&ImageUrl> {
        match self {
            Self::Url(url) => Some(url),
            Self::Upload(_) => None,
        }
    }

    pub fn upload(&self) -> Option<&UploadDigest> {
        match self {
            Self::Url(_) => None,
            Self::Upload(digest) => Some(digest),
        }
    }
}

/// An uploaded image's length and SHA-256 (lowercase hex): what the job records about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct UploadDigest {
    bytes: u64,
    sha256: String,
}

impl UploadDigest {
    /// The digest of `content`, which must not be empty.
    pub fn of(content: &[u8]) -> Result<Self, ValidationError> {
        if content.is_empty() {
            return Err(ValidationError::new(
                ErrorCode::EmptyUpload,
                "the uploaded image is empty",
            ));
        }
        Ok(Self {
            bytes: content.len() as u64,
            sha256: hex::encode(Sha256::digest(content)),
        })
    }

    /// A digest as stored: a positive length and 64 lowercase hex digits.
    pub fn parse(bytes: u64, sha256: &str) -> Result<Self, ValidationError> {
        let hex_digest = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if bytes == 0 || !hex_digest {
            return Err(ValidationError::new(
                ErrorCode::EmptyUpload,
                format!(
                    "an upload digest needs a positive length and a sha256, got {bytes} bytes and {sha256:?}"
                ),
            ));
        }
        Ok(Self {
            bytes,
            sha256: sha256.to_owned(),
        })
    }

    /// The upload's length in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Whether `content` is the upload this digest describes.
    pub fn matches(&self, content: &[u8]) -> bool {
        content.len() as u64 == self.bytes && hex::encode(Sha256::digest(content)) == self.sha256
    }
}

impl<'de> Deserialize<'de> for UploadDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            bytes: u64,
            sha256: String,
        }
        let raw = Raw::deserialize(d)?;
        Self::parse(raw.bytes, &raw.sha256).map_err(serde::de::Error::custom)
    }
}

/// An uploaded image: its bytes with their digest, which therefore always match.
#[derive(Clone, PartialEq, Eq)]
pub struct Upload {
    content: Bytes,
    digest: UploadDigest,
}

impl Upload {
    /// Takes the bytes of an upload; an empty one is refused with `empty_upload`. Its size
    /// limit is the API's to enforce (while reading the request), not this type's.
    pub fn new(content: Bytes) -> Result<Self, ValidationError> {
        let digest = UploadDigest::of(&content)?;
        Ok(Self { content, digest })
    }

    pub fn content(&self) -> &Bytes {
        &self.content
    }

    pub fn digest(&self) -> &UploadDigest {
        &self.digest
    }
}

impl std::fmt::Debug for Upload {
    // The bytes themselves are an image: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("bytes", &self.digest.bytes)
            .field("sha256", &self.digest.sha256)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobSpec, MinScore, TaskSet};

    #[test]
    fn an_empty_upload_is_refused_with_empty_upload() {
        assert_eq!(
            Upload::new(Bytes::new()).unwrap_err().code,
            ErrorCode::EmptyUpload
        );
    }

    #[test]
    fn an_upload_carries_the_digest_of_its_bytes() {
        let upload = Upload::new(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(upload.digest().bytes(), 3);
        assert_eq!(
            upload.digest().sha256(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(upload.digest().matches(b"abc"));
        assert!(!upload.digest().matches(b"abd"));
        assert!(!format!("{upload:?}").contains("97"), "{upload:?}");
    }

    #[test]
    fn stored_digests_are_checked() {
        let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert!(UploadDigest::parse(3, good).is_ok());
        assert!(UploadDigest::parse(0, good).is_err());
        assert!(UploadDigest::parse(3, &good.to_uppercase()).is_err());
        assert!(UploadDigest::parse(3, &good[1..]).is_err());
    }

    #[test]
    fn a_url_spec_serialises_as_it_did_before_sources() {
        let spec = JobSpec {
            source: Source::Url(ImageUrl::parse("https://example.com/a.jpg").unwrap()),
            tasks: TaskSet::all(),
            min_score: MinScore::DEFAULT,
            dream: None,
            bypass_cache: false,
            webhook_url: None,
        };
        // The idempotency digest of a URL job is taken over exactly this text.
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"url":"https://example.com/a.jpg","tasks":["metadata","objects"],"min_score":0.25}"#
        );
        let upload = JobSpec {
            source: Source::Upload(UploadDigest::of(b"abc").unwrap()),
            ..spec
        };
        let text = serde_json::to_string(&upload).unwrap();
        assert!(
            text.starts_with(r#"{"upload":{"bytes":3,"sha256":"ba7816bf"#),
            "{text}"
        );
        let back: JobSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, upload);
    }
}
