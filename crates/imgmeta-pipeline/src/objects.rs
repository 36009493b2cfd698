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

/// An image made ready for the detector's network (letterboxed) by [`DetectObjects::prepare`],
/// opaque to the pipeline: only the detector that made it reads it.
pub struct Prepared(pub Box<dyn std::any::Any + Send>);

/// Finds objects in an already EXIF-oriented image.
pub trait DetectObjects: Send + Sync + 'static {
    /// Returns the `result.objects` document for detections scoring at least `min_score`.
    fn detect(
        &self,
        image: &DynamicImage,
        min_score: f32,
    ) -> Result<serde_json::Value, AnalysisError>;

    /// `detect` of each image at its own minimum score, in one forward pass where the
    /// detector can batch (the answers must equal `detect`'s); one by one otherwise.
    fn detect_batch(
        &self,
        images: &[(&DynamicImage, f32)],
    ) -> Vec<Result<serde_json::Value, AnalysisError>> {
        images
            .iter()
            .map(|(image, min_score)| self.detect(image, *min_score))
            .collect()
    }

    /// Readies `image` for the network on the calling thread, so that a worker prepares its
    /// next images while the detector's threads run the current ones; `None` when this
    /// detector has no such step (the images then go to `detect_batch`).
    fn prepare(&self, _image: &DynamicImage) -> Option<Result<Prepared, AnalysisError>> {
        None
    }

    /// `detect_batch` of images `prepare` made, each at its own minimum score.
    fn detect_prepared(
        &self,
        items: &[(&Prepared, f32)],
    ) -> Vec<Result<serde_json::Value, AnalysisError>> {
        items
            .iter()
            .map(|_| {
                Err(AnalysisError::internal(
                    "this detector prepares no images".into(),
                ))
            })
            .collect()
    }

    /// What identifies the model's answers (its weights' SHA-256): cached analyses made by
    /// another model are not reused.
    fn version(&self) -> String;

    /// DeepDream of an already EXIF-oriented image with the detector's network.
    fn dream(&self, image: &DynamicImage, options: &DreamOptions)
    -> Result<Dreamed, AnalysisError>;
}
