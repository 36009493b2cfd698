//! The manifest of known models (`models/manifest.json`), compiled into the binary.

use crate::ModelError;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The committed manifest; embedding it means a deployed binary cannot disagree with it.
const MANIFEST_JSON: &str = include_str!("../../../models/manifest.json");

/// Every model we know how to obtain.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Manifest {
    pub models: Vec<ModelSpec>,
}

/// One model: where it comes from, how to check it, and what its outputs mean.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelSpec {
    pub name: String,
    pub task: String,
    pub description: String,
    pub licence: String,
    pub source: CrateSource,
    /// File name of the converted weights inside the model directory.
    pub weights_file: String,
    /// sha256 of the converted safetensors file; the converter is deterministic.
    pub weights_sha256: String,
    /// File name the original ONNX file is kept under (for development tools only).
    pub onnx_file: String,
    /// Side of the square network input, in pixels.
    pub input_size: u32,
    pub class_names: Vec<String>,
}

/// A model published inside a crate archive on crates.io.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CrateSource {
    pub kind: String,
    #[serde(rename = "crate")]
    pub crate_name: String,
    pub version: String,
    pub crate_sha256: String,
    /// Path of the zip inside the `.crate` tarball.
    pub archive_entry: String,
    pub archive_sha256: String,
    /// Name of the ONNX file inside the zip.
    pub onnx_entry: String,
    pub onnx_sha256: String,
}

impl Manifest {
    /// The manifest compiled into this build.
    pub fn builtin() -> Result<&'static Manifest, ModelError> {
        static PARSED: OnceLock<Result<Manifest, String>> = OnceLock::new();
        PARSED
            .get_or_init(|| Manifest::parse(MANIFEST_JSON))
            .as_ref()
            .map_err(|e| ModelError::Manifest(e.clone()))
    }

    fn parse(json: &str) -> Result<Manifest, String> {
        let manifest: Manifest = serde_json::from_str(json).map_err(|e| e.to_string())?;
        for spec in &manifest.models {
            if spec.source.kind != "crates_io" {
                return Err(format!(
                    "model {}: unsupported source kind {:?}",
                    spec.name, spec.source.kind
                ));
            }
            if spec.class_names.is_empty() || spec.input_size == 0 {
                return Err(format!(
                    "model {}: needs class names and an input size",
                    spec.name
                ));
            }
        }
        Ok(manifest)
    }

    /// Looks a model up by name.
    pub fn get(&self, name: &str) -> Result<&ModelSpec, ModelError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ModelError::UnknownModel {
                name: name.to_owned(),
                known: self.names().join(", "),
            })
    }

    pub fn names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_manifest_describes_yolov12n_with_eighty_coco_classes() {
        let manifest = Manifest::builtin().unwrap();
        let spec = manifest.get("yolov12n").unwrap();
        assert_eq!(spec.class_names.len(), 80);
        assert_eq!(spec.class_names[0], "person");
        assert_eq!(spec.input_size, 640);
        assert_eq!(spec.licence, "AGPL-3.0");
        assert_eq!(spec.weights_sha256.len(), 64);
    }

    #[test]
    fn an_unknown_model_name_lists_the_known_ones() {
        let err = Manifest::builtin().unwrap().get("resnet").unwrap_err();
        assert!(err.to_string().contains("yolov12n"), "{err}");
    }
}
