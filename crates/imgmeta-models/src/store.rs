//! The model directory: finding verified weights there, and fetching them when absent.

use crate::source::{crate_archive, onnx_from_crate, verify};
use crate::{Manifest, ModelError, ModelSpec, convert, sha256_hex};
use std::path::{Path, PathBuf};

/// A model present in the model directory, its weights verified.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub spec: ModelSpec,
    /// The converted safetensors weights: the only file the runtime reads.
    pub weights: PathBuf,
    pub weights_sha256: String,
    /// The original ONNX file, kept for development tools (golden outputs, benchmarks).
    pub onnx: PathBuf,
}

/// Whether `fetch` replaces weights that are already present and valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchMode {
    /// Keep valid files; fetch only what is missing or corrupt.
    IfNeeded,
    /// Fetch and convert again even if valid files are present.
    Always,
}

/// The verified weights of `name` in `model_dir`, without touching the network.
///
/// Fails with `Missing` or `Corrupt`, whose messages name the command that fixes it.
pub fn locate(name: &str, model_dir: &Path) -> Result<ModelFiles, ModelError> {
    let spec = Manifest::builtin()?.get(name)?;
    let weights = model_dir.join(&spec.weights_file);
    let bytes = match std::fs::read(&weights) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ModelError::Missing {
                name: name.to_owned(),
                dir: model_dir.to_owned(),
            });
        }
        Err(e) => return Err(ModelError::io("reading", &weights, e)),
    };
    let actual = sha256_hex(&bytes);
    if actual != spec.weights_sha256 {
        return Err(ModelError::Corrupt {
            name: name.to_owned(),
            path: weights,
            expected: spec.weights_sha256.clone(),
            actual,
        });
    }
    Ok(files(spec, model_dir))
}

/// The verified weights of `name`, fetched and converted first if they are missing or corrupt.
/// Progress goes to stderr.
/// `cargo_home` (the config's `cargo_home`) is where a cached copy of the model's crate may be.
pub fn ensure(
    name: &str,
    model_dir: &Path,
    cargo_home: Option<&Path>,
) -> Result<ModelFiles, ModelError> {
    fetch(name, model_dir, FetchMode::IfNeeded, cargo_home)
}

/// Obtains the model's published archive, checks every layer against the manifest's sha256,
/// converts the ONNX weights to safetensors and stores both in `model_dir`. Idempotent.
pub fn fetch(
    name: &str,
    model_dir: &Path,
    mode: FetchMode,
    cargo_home: Option<&Path>,
) -> Result<ModelFiles, ModelError> {
    let spec = Manifest::builtin()?.get(name)?;
    if mode == FetchMode::IfNeeded {
        match locate(name, model_dir) {
            Ok(files) => return Ok(files),
            Err(ModelError::Missing { .. }) => {}
            Err(ModelError::Corrupt { path, .. }) => {
                eprintln!("imgmeta: {} is corrupt; fetching it again", path.display());
            }
            Err(other) => return Err(other),
        }
    }
    eprintln!(
        "imgmeta: fetching model {name} (crates.io {} {}, weights licensed {})",
        spec.source.crate_name, spec.source.version, spec.licence
    );
    let crate_bytes = crate_archive(name, &spec.source, cargo_home)?;
    let onnx = onnx_from_crate(name, &crate_bytes, &spec.source)?;
    eprintln!(
        "imgmeta: converting {} to safetensors",
        spec.source.onnx_entry
    );
    let weights = convert::onnx_to_safetensors(&onnx, spec)?;
    verify(
        name,
        "converted safetensors",
        &weights,
        &spec.weights_sha256,
    )?;
    std::fs::create_dir_all(model_dir).map_err(|e| ModelError::io("creating", model_dir, e))?;
    write_atomically(&model_dir.join(&spec.onnx_file), &onnx)?;
    write_atomically(&model_dir.join(&spec.weights_file), &weights)?;
    eprintln!(
        "imgmeta: stored {} in {}",
        spec.weights_file,
        model_dir.display()
    );
    Ok(files(spec, model_dir))
}

fn files(spec: &ModelSpec, model_dir: &Path) -> ModelFiles {
    ModelFiles {
        spec: spec.clone(),
        weights: model_dir.join(&spec.weights_file),
        weights_sha256: spec.weights_sha256.clone(),
        onnx: model_dir.join(&spec.onnx_file),
    }
}

/// Writes beside the target and renames, so a reader (or a concurrent fetch) never sees a
/// half-written file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| ModelError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io("renaming into place", path, e))
}
