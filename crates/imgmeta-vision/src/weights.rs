//! Loads the safetensors weights and the model description stored in their metadata.

use crate::VisionError;
use candle_core::{Device, Tensor};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// Metadata key written by the converter in `imgmeta-models`.
const METADATA_KEY: &str = "imgmeta.model";

/// What the weights file says about the model.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub input_size: u32,
    pub class_names: Vec<String>,
}

/// Every tensor of the weights file, on the target device, plus its description.
pub struct Weights {
    pub info: ModelInfo,
    pub sha256: String,
    tensors: HashMap<String, Tensor>,
    path: std::path::PathBuf,
}

impl Weights {
    pub fn load(path: &Path, device: &Device) -> Result<Self, VisionError> {
        let bytes = std::fs::read(path).map_err(|source| VisionError::WeightsUnreadable {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |reason: String| VisionError::WeightsInvalid {
            path: path.to_owned(),
            reason,
        };
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| invalid(e.to_string()))?;
        let info_json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or_else(|| invalid(format!("no {METADATA_KEY:?} metadata")))?;
        let info: ModelInfo =
            serde_json::from_str(info_json).map_err(|e| invalid(e.to_string()))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            info,
            sha256: sha256_hex(&bytes),
            tensors,
            path: path.to_owned(),
        })
    }

    /// The tensor called `name`, or an error naming it: a missing tensor means the file
    /// does not hold the architecture this crate implements.
    pub fn get(&self, name: &str) -> Result<Tensor, VisionError> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| VisionError::WeightsInvalid {
                path: self.path.clone(),
                reason: format!("tensor {name:?} is missing"),
            })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
