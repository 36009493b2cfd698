//! The detector's integration tests against the real model weights, fetched through
//! `imgmeta-models` on first use: parity with onnxruntime, and DeepDream's gradients.

mod batch;
mod dream;
mod heic;
mod parity;

use imgmeta_vision::{Detector, DetectorConfig};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where cargo keeps its download cache (the model crate may be there already).
fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

fn model_dir() -> PathBuf {
    std::env::var_os("IMGMETA_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

pub fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        let files = imgmeta_models::ensure("yolov12n", &model_dir(), cargo_home().as_deref())
            .expect("fetching yolov12n");
        Detector::load(&DetectorConfig {
            threads: 2,
            ..DetectorConfig::new(files.weights)
        })
        .expect("loading the detector")
    })
}
