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
    /// The f32 settings as their shortest decimal ([`decimal`]): `0.45`, not `0.4499999881…`.
    pub min_score: f64,
    pub iou_threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub label: String,
    pub class_id: usize,
    /// The model's f32 score as its shortest decimal ([`decimal`]).
    pub score: f64,
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

impl BoundingBox {
    /// Every coordinate rounded to `decimals` decimal places.
    pub fn rounded(self, decimals: i32) -> Self {
        let scale = 10f64.powi(decimals);
        let round = |v: f64| (v * scale).round() / scale;
        Self {
            x_min: round(self.x_min),
            y_min: round(self.y_min),
            x_max: round(self.x_max),
            y_max: round(self.y_max),
        }
    }
}

pub use imgmeta_domain::decimal;

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn boxes_round_to_the_decimals_asked() {
        let b = super::BoundingBox {
            x_min: 0.5649026870727538,
            y_min: 1.4631244498239435,
            x_max: 404.91101169586176,
            y_max: 295.7566812004842,
        }
        .rounded(2);
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"x_min":0.56,"y_min":1.46,"x_max":404.91,"y_max":295.76}"#
        );
    }

    #[test]
    fn f32_settings_print_as_their_shortest_decimal() {
        assert_eq!(serde_json::to_string(&decimal(0.45)).unwrap(), "0.45");
        assert_eq!(serde_json::to_string(&decimal(0.25)).unwrap(), "0.25");
        assert_eq!(
            serde_json::to_string(&decimal(0.812_345_7)).unwrap(),
            "0.8123457"
        );
        assert_eq!(decimal(1.0), 1.0);
        assert_eq!(decimal(0.1) as f32, 0.1f32);
        assert_eq!(
            serde_json::to_string(&serde_json::to_value(decimal(0.45)).unwrap()).unwrap(),
            "0.45"
        );
    }
}
