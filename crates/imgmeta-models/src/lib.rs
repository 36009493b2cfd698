//! Model supply: the manifest of models we know, fetching their published files, verifying
//! them, and converting ONNX weights into the safetensors files the runtime reads.
//!
//! Only the `imgmeta models fetch` step (and first use of a missing model) runs this code;
//! the inference runtime never parses ONNX.

mod convert;
mod error;
mod manifest;
mod onnx;
mod source;
mod store;

pub use convert::{METADATA_KEY, onnx_to_safetensors};
pub use error::ModelError;
pub use manifest::{CrateSource, Manifest, ModelSpec};
pub use onnx::{Initializer, float_initializers};
pub use store::{FetchMode, ModelFiles, ensure, fetch, locate};

/// Lower-case hex sha256, the form the manifest uses.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
