//! `result.objects`: the detection output a job stores, exactly as serialised.

use serde::{Deserialize, Serialize};

/// Detections of one image and the model settings that produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objects {
    pub model: ModelUsed,
    /// Sorted by descending score.
    pub detections: Vec<Detection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelUsed {
    pub name: String,
    pub weights_sha256: String,
    pub input_size: u32,
    pub min_score: f32,
    pub iou_threshold: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub label: String,
    pub class_id: usize,
    pub score: f32,
    /// Pixels of the (EXIF-oriented) image.
    #[serde(rename = "box")]
    pub bbox: BoundingBox,
    /// The same box as fractions of the image's width and height.
    pub box_normalized: BoundingBox,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x_min: f64,
    pub y_min: f64,
    pub x_max: f64,
    pub y_max: f64,
}
