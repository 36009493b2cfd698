//! From raw network output to detections: score threshold, class-wise non-maximum
//! suppression, and boxes mapped back to the original image.

use crate::model::RawOutput;
use crate::preprocess::Letterbox;

/// A box in some frame, corners in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Corners {
    pub x_min: f64,
    pub y_min: f64,
    pub x_max: f64,
    pub y_max: f64,
}

impl Corners {
    fn area(&self) -> f64 {
        (self.x_max - self.x_min).max(0.0) * (self.y_max - self.y_min).max(0.0)
    }

    /// Intersection over union; 0 for two empty boxes.
    pub fn iou(&self, other: &Corners) -> f64 {
        let w = (self.x_max.min(other.x_max) - self.x_min.max(other.x_min)).max(0.0);
        let h = (self.y_max.min(other.y_max) - self.y_min.max(other.y_min)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// One surviving detection, in the original image's pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub class_id: usize,
    pub score: f32,
    pub corners: Corners,
}

/// Post-processing settings.
#[derive(Debug, Clone, Copy)]
pub struct Suppression {
    pub min_score: f32,
    pub iou_threshold: f32,
    pub max_detections: usize,
}

/// Best class per anchor above `min_score`, class-wise greedy NMS in descending score order
/// (ties keep anchor order), at most `max_detections`, mapped back through the letterbox.
pub fn detections(raw: &RawOutput, lb: &Letterbox, s: &Suppression) -> Vec<Candidate> {
    let classes = raw.rows - 4;
    let mut candidates: Vec<(f32, usize, Corners)> = Vec::new();
    for anchor in 0..raw.anchors {
        let (mut best, mut class_id) = (f32::NEG_INFINITY, 0);
        for c in 0..classes {
            let score = raw.at(4 + c, anchor);
            if score > best {
                (best, class_id) = (score, c);
            }
        }
        if best < s.min_score {
            continue;
        }
        let [cx, cy, w, h] = [0, 1, 2, 3].map(|r| f64::from(raw.at(r, anchor)));
        let corners = Corners {
            x_min: cx - w / 2.0,
            y_min: cy - h / 2.0,
            x_max: cx + w / 2.0,
            y_max: cy + h / 2.0,
        };
        candidates.push((best, class_id, corners));
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut kept: Vec<(f32, usize, Corners)> = Vec::new();
    for cand in candidates {
        if kept.len() == s.max_detections {
            break;
        }
        let suppressed = kept
            .iter()
            .any(|k| k.1 == cand.1 && k.2.iou(&cand.2) > f64::from(s.iou_threshold));
        if !suppressed {
            kept.push(cand);
        }
    }
    kept.into_iter()
        .map(|(score, class_id, c)| Candidate {
            class_id,
            score,
            corners: Corners {
                x_min: lb.unmap_x(c.x_min),
                y_min: lb.unmap_y(c.y_min),
                x_max: lb.unmap_x(c.x_max),
                y_max: lb.unmap_y(c.y_max),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw output with 2 classes whose anchors are given as (cx, cy, w, h, score0, score1).
    fn raw(anchors: &[[f32; 6]]) -> RawOutput {
        let n = anchors.len();
        let mut data = vec![0f32; 6 * n];
        for (a, values) in anchors.iter().enumerate() {
            for (row, v) in values.iter().enumerate() {
                data[row * n + a] = *v;
            }
        }
        RawOutput {
            rows: 6,
            anchors: n,
            data,
        }
    }

    const S: Suppression = Suppression {
        min_score: 0.3,
        iou_threshold: 0.45,
        max_detections: 300,
    };

    #[test]
    fn overlapping_boxes_of_one_class_are_suppressed_but_other_classes_survive() {
        let out = raw(&[
            [100.0, 100.0, 50.0, 50.0, 0.9, 0.1],
            [102.0, 100.0, 50.0, 50.0, 0.8, 0.1],
            [101.0, 100.0, 50.0, 50.0, 0.1, 0.7],
            [300.0, 300.0, 20.0, 20.0, 0.2, 0.25],
        ]);
        let lb = Letterbox::new(640, 640, 640);

        let found = detections(&out, &lb, &S);

        let summary: Vec<(usize, f32)> = found.iter().map(|c| (c.class_id, c.score)).collect();
        assert_eq!(summary, vec![(0, 0.9), (1, 0.7)]);
        assert_eq!(
            found[0].corners,
            Corners {
                x_min: 75.0,
                y_min: 75.0,
                x_max: 125.0,
                y_max: 125.0
            }
        );
    }

    #[test]
    fn boxes_are_mapped_out_of_the_letterbox_and_clamped_to_the_image() {
        // A 1280x720 image sits at y 140..500 of the input, scaled by one half.
        let out = raw(&[[620.0, 150.0, 60.0, 40.0, 0.9, 0.0]]);
        let lb = Letterbox::new(1280, 720, 640);

        let found = detections(&out, &lb, &S);

        assert_eq!(
            found[0].corners,
            Corners {
                x_min: 1180.0,
                y_min: 0.0,
                x_max: 1280.0,
                y_max: 60.0
            }
        );
    }

    #[test]
    fn the_number_of_detections_is_capped() {
        let anchors: Vec<[f32; 6]> = (0..10)
            .map(|i| [i as f32 * 60.0 + 20.0, 20.0, 10.0, 10.0, 0.5, 0.0])
            .collect();
        let s = Suppression {
            max_detections: 3,
            ..S
        };
        assert_eq!(
            detections(&raw(&anchors), &Letterbox::new(640, 640, 640), &s).len(),
            3
        );
    }
}
