//! Converts an ONNX model's weights into a safetensors file, the only format the runtime reads.

use crate::{ModelError, ModelSpec, onnx};
use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;
use std::collections::HashMap;

/// The safetensors metadata key under which the model's description is stored, so the
/// runtime needs nothing but the weights file.
pub const METADATA_KEY: &str = "imgmeta.model";

/// What the runtime needs to know about the weights besides the tensors themselves.
#[derive(Debug, Serialize)]
struct WeightsMetadata<'a> {
    name: &'a str,
    licence: &'a str,
    source: String,
    onnx_sha256: &'a str,
    input_size: u32,
    class_names: &'a [String],
}

/// Builds the safetensors bytes for a model from its ONNX file.
///
/// Only trainable parameters are kept: the exporter's own float constants (anchor grids,
/// the attention scale) are named after graph nodes (`/model.21/...`) and are recomputed by
/// the runtime from the architecture instead. The output is deterministic: tensors are
/// ordered by name and the metadata has a single key holding JSON with a fixed field order.
pub fn onnx_to_safetensors(onnx_bytes: &[u8], spec: &ModelSpec) -> Result<Vec<u8>, ModelError> {
    let mut tensors: Vec<onnx::Initializer> = onnx::float_initializers(onnx_bytes)?
        .into_iter()
        .filter(|t| is_parameter_name(&t.name))
        .collect();
    if tensors.is_empty() {
        return Err(ModelError::Onnx("the model has no float weights".into()));
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F32, t.dims.clone(), b)
                .map(|view| (t.name.clone(), view))
                .map_err(|e| ModelError::Safetensors(format!("tensor {}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = WeightsMetadata {
        name: &spec.name,
        licence: &spec.licence,
        source: format!(
            "crates.io {} {}",
            spec.source.crate_name, spec.source.version
        ),
        onnx_sha256: &spec.source.onnx_sha256,
        input_size: spec.input_size,
        class_names: &spec.class_names,
    };
    let metadata =
        serde_json::to_string(&metadata).map_err(|e| ModelError::Safetensors(e.to_string()))?;
    safetensors::serialize(
        views,
        Some(HashMap::from([(METADATA_KEY.to_owned(), metadata)])),
    )
    .map_err(|e| ModelError::Safetensors(e.to_string()))
}

/// Parameter names are dotted module paths (`model.0.conv.weight`); graph-internal values
/// carry node paths (`/model.21/Constant_9_output_0`) or exporter names (`onnx::Split_249`).
fn is_parameter_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_are_told_apart_from_graph_constants() {
        assert!(is_parameter_name("model.21.dfl.conv.weight"));
        assert!(!is_parameter_name("/model.21/Constant_9_output_0"));
        assert!(!is_parameter_name("onnx::Split_249"));
    }
}
