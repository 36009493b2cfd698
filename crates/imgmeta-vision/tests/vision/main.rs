//! The detector's integration tests against the real model weights, fetched through
//! `imgmeta-models` on first use: parity with onnxruntime, and DeepDream's gradients.
//! `IMGMETA_TEST_DEVICE=cuda` (a `--features cuda` build, on a GPU host) runs them all on
//! the GPU instead of the CPU.

mod batch;
mod dream;
mod heic;
mod parity;

use imgmeta_vision::{Detector, DetectorConfig, DeviceKind};
use std::path::PathBuf;
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
        .unwrap_or_else(|| crate_dir().join("../../models"))
}

/// This crate's folder: where cargo says at run time (so a test binary carried to another
/// machine, e.g. a GPU host by `scripts/gpu-check.sh`, finds the checkout there), else where
/// it was compiled.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// Where the detector's tests run: `IMGMETA_TEST_DEVICE`, else the CPU.
pub fn test_device() -> DeviceKind {
    std::env::var("IMGMETA_TEST_DEVICE").map_or(DeviceKind::Cpu, |raw| {
        DeviceKind::parse(&raw).expect("IMGMETA_TEST_DEVICE: cpu, cuda or cuda:N")
    })
}

pub fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        let files = imgmeta_models::ensure("yolov12n", &model_dir(), cargo_home().as_deref())
            .expect("fetching yolov12n");
        let device = test_device();
        eprintln!("the detector's tests run on {device:?}");
        Detector::load(&DetectorConfig {
            threads: 2,
            device,
            ..DetectorConfig::new(files.weights)
        })
        .expect("loading the detector")
    })
}
