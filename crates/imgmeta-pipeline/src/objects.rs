//! The seam between the pipeline and the object detector (and its network's dreams).
//!
//! The detector (candle, in `imgmeta-vision`) is plugged in by the binary. Keeping it behind
//! this trait keeps candle out of the pipeline's, worker's and API's build, so those crates and
//! their tests compile in seconds rather than minutes.

use crate::AnalysisError;
use image::{DynamicImage, RgbImage};
use imgmeta_domain::DreamOptions;

/// A finished dream: the image (as large as the input) and the `result.dream` document.
pub struct Dreamed {
    pub image: RgbImage,
    pub report: serde_json::Value,
}

/// Finds objects in an already EXIF-oriented image.
pub trait DetectObjects: Send + Sync + 'static {
    /// Returns the `result.objects` document for detections scoring at least `min_score`.
    fn detect(
        &self,
        image: &DynamicImage,
        min_score: f32,
    ) -> Result<serde_json::Value, AnalysisError>;

    /// What identifies the model's answers (its weights' SHA-256): cached analyses made by
    /// another model are not reused.
    fn version(&self) -> String;

    /// DeepDream of an already EXIF-oriented image with the detector's network.
    fn dream(&self, image: &DynamicImage, options: &DreamOptions)
    -> Result<Dreamed, AnalysisError>;
}
