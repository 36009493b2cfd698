//! Fetching yolov12n end to end: archive, checksums, conversion, idempotence, error messages.
//!
//! The `.crate` comes from the local cargo cache when present (as on any machine that built
//! this workspace with `cargo fetch` for it) and from crates.io otherwise.

use imgmeta_models::{FetchMode, Manifest, ModelError, ensure, fetch, locate};
use safetensors::SafeTensors;

#[test]
fn fetching_yolov12n_stores_verified_safetensors_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();

    let first = ensure("yolov12n", dir.path(), cargo_home().as_deref()).unwrap();
    let modified = std::fs::metadata(&first.weights)
        .unwrap()
        .modified()
        .unwrap();
    let second = ensure("yolov12n", dir.path(), cargo_home().as_deref()).unwrap();

    assert_eq!(first.weights, second.weights);
    assert_eq!(
        std::fs::metadata(&second.weights)
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
    let bytes = std::fs::read(&first.weights).unwrap();
    assert_eq!(imgmeta_models::sha256_hex(&bytes), first.weights_sha256);
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let stem = tensors.tensor("model.0.conv.weight").unwrap();
    assert_eq!(stem.shape(), &[16, 3, 3, 3]);
    assert!(tensors.names().iter().all(|n| n.starts_with("model.")));
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().as_ref().unwrap();
    assert!(meta[imgmeta_models::METADATA_KEY].contains("\"toothbrush\""));
    assert!(
        first.onnx.is_file(),
        "the ONNX file is kept for development tools"
    );
}

#[test]
fn a_corrupt_weights_file_is_reported_with_the_command_that_fixes_it_and_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Manifest::builtin().unwrap().get("yolov12n").unwrap();
    std::fs::write(dir.path().join(&spec.weights_file), b"not safetensors").unwrap();

    let err = locate("yolov12n", dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains("imgmeta models fetch yolov12n"),
        "{err}"
    );

    let repaired = fetch(
        "yolov12n",
        dir.path(),
        FetchMode::IfNeeded,
        cargo_home().as_deref(),
    )
    .unwrap();
    assert_eq!(
        imgmeta_models::sha256_hex(&std::fs::read(repaired.weights).unwrap()),
        spec.weights_sha256
    );
}

#[test]
fn a_missing_model_is_reported_with_the_command_that_fetches_it() {
    let dir = tempfile::tempdir().unwrap();

    let err = locate("yolov12n", dir.path()).unwrap_err();

    assert!(matches!(err, ModelError::Missing { .. }), "{err:?}");
    assert!(
        err.to_string().contains("imgmeta models fetch yolov12n"),
        "{err}"
    );
    assert_eq!(err.code(), imgmeta_domain::ErrorCode::ModelUnavailable);
}

/// Where cargo keeps its download cache (the model crate may be there already).
fn cargo_home() -> Option<std::path::PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
}
