//! `Detector`: the model loaded once per process, shared by every job, turning an oriented
//! image into `result.objects`.

use crate::VisionError;
use crate::model::{RawOutput, YoloV12};
use crate::objects::{BoundingBox, Detection, ModelUsed, Objects, decimal};
use crate::postprocess::{Suppression, detections};
use crate::preprocess::{Letterbox, letterbox};
use crate::weights::Weights;
use candle_core::{Device, Tensor};
use image::DynamicImage;
use std::borrow::Cow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    /// A CUDA device by ordinal; needs the `cuda` cargo feature.
    Cuda(usize),
}

impl DeviceKind {
    /// `cpu`, `cuda` or `cuda:N`.
    pub fn parse(raw: &str) -> Result<Self, VisionError> {
        match raw {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| {
                    VisionError::Config(format!(
                        "unknown device {other:?}; use cpu, cuda or cuda:N"
                    ))
                }),
        }
    }

    fn open(self) -> Result<Device, VisionError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => Device::new_cuda(n).map_err(|e| {
                VisionError::Device(
                    format!("cuda:{n}"),
                    format!("{e} (was imgmeta built with --features cuda?)"),
                )
            }),
        }
    }
}

/// How to load and run the detector.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// The safetensors file written by `imgmeta models fetch`.
    pub weights: PathBuf,
    pub device: DeviceKind,
    /// Worker threads for CPU inference; 0 uses rayon's global pool (all cores).
    pub threads: usize,
    /// Boxes of one class overlapping more than this are suppressed.
    pub iou_threshold: f32,
    pub max_detections: usize,
}

/// Boxes are reported to a hundredth of a pixel, and as fractions of the image to a
/// millionth (a tenth of a pixel up to 100,000 pixels a side): the model's own precision is far
/// coarser, and digits beyond it are noise in every result document.
const PIXEL_DECIMALS: i32 = 2;
const FRACTION_DECIMALS: i32 = 6;

impl DetectorConfig {
    pub const DEFAULT_IOU_THRESHOLD: f32 = 0.45;
    pub const DEFAULT_MAX_DETECTIONS: usize = 300;

    /// CPU, all cores, IoU 0.45, at most 300 detections.
    pub fn new(weights: impl Into<PathBuf>) -> Self {
        Self {
            weights: weights.into(),
            device: DeviceKind::Cpu,
            threads: 0,
            iou_threshold: Self::DEFAULT_IOU_THRESHOLD,
            max_detections: Self::DEFAULT_MAX_DETECTIONS,
        }
    }
}

/// Time spent in each stage of one detection.
#[derive(Debug, Clone, Copy)]
pub struct StageTimes {
    pub preprocess: Duration,
    pub forward: Duration,
    pub postprocess: Duration,
}

/// A loaded YOLOv12n. `Send + Sync`: load it once and share it (in an `Arc`) across jobs.
pub struct Detector {
    pub(crate) model: YoloV12,
    pub(crate) device: Device,
    pool: Option<rayon::ThreadPool>,
    name: String,
    pub(crate) class_names: Vec<String>,
    input_size: u32,
    weights_sha256: String,
    iou_threshold: f32,
    max_detections: usize,
}

impl Detector {
    pub fn load(cfg: &DetectorConfig) -> Result<Self, VisionError> {
        if !(cfg.iou_threshold > 0.0 && cfg.iou_threshold <= 1.0) {
            return Err(VisionError::Config(format!(
                "iou_threshold must be in (0, 1], got {}",
                cfg.iou_threshold
            )));
        }
        let device = cfg.device.open()?;
        let pool = match cfg.threads {
            0 => None,
            n => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("imgmeta-vision-{i}"))
                    .build()
                    .map_err(|e| VisionError::Config(e.to_string()))?,
            ),
        };
        let weights = Weights::load(&cfg.weights, &device)?;
        let model = YoloV12::load(&weights)?;
        if model.num_classes != weights.info.class_names.len() {
            return Err(VisionError::WeightsInvalid {
                path: cfg.weights.clone(),
                reason: format!(
                    "{} class names for {} model outputs",
                    weights.info.class_names.len(),
                    model.num_classes
                ),
            });
        }
        tracing::info!(model = %weights.info.name, sha256 = %weights.sha256, device = ?cfg.device, threads = cfg.threads, "detector loaded");
        Ok(Self {
            model,
            device,
            pool,
            name: weights.info.name.clone(),
            class_names: weights.info.class_names.clone(),
            input_size: weights.info.input_size,
            weights_sha256: weights.sha256.clone(),
            iou_threshold: cfg.iou_threshold,
            max_detections: cfg.max_detections,
        })
    }

    /// Objects in `image`, which must already be EXIF-oriented, scoring at least `min_score`.
    pub fn detect(&self, image: &DynamicImage, min_score: f32) -> Result<Objects, VisionError> {
        self.detect_timed(image, min_score)
            .map(|(objects, _)| objects)
    }

    /// `detect`, also reporting the time each stage took.
    pub fn detect_timed(
        &self,
        image: &DynamicImage,
        min_score: f32,
    ) -> Result<(Objects, StageTimes), VisionError> {
        self.in_pool(|| {
            let start = Instant::now();
            let (input, lb) = self.preprocess(image)?;
            let preprocessed = Instant::now();
            let raw = self.model.forward(&input)?;
            let forwarded = Instant::now();
            let objects = self.postprocess(&raw, &lb, min_score);
            let times = StageTimes {
                preprocess: preprocessed - start,
                forward: forwarded - preprocessed,
                postprocess: forwarded.elapsed(),
            };
            Ok((objects, times))
        })
    }

    /// The network's raw `output0` (`[4 + classes, anchors]`) for `image`, for parity checks.
    pub fn raw_output(&self, image: &DynamicImage) -> Result<RawOutput, VisionError> {
        self.in_pool(|| {
            let (input, _) = self.preprocess(image)?;
            self.model.forward(&input)
        })
    }

    /// The SHA-256 of the weights file: which model answered.
    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    pub(crate) fn in_pool<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    fn preprocess(&self, image: &DynamicImage) -> Result<(Tensor, Letterbox), VisionError> {
        let rgb = match image {
            DynamicImage::ImageRgb8(rgb) => Cow::Borrowed(rgb),
            other => Cow::Owned(other.to_rgb8()),
        };
        if rgb.width() == 0 || rgb.height() == 0 {
            return Err(VisionError::Inference("the image is empty".into()));
        }
        let (chw, lb) = letterbox(&rgb, self.input_size);
        let size = self.input_size as usize;
        let tensor = Tensor::from_vec(chw, (1, 3, size, size), &self.device)?;
        Ok((tensor, lb))
    }

    fn postprocess(&self, raw: &RawOutput, lb: &Letterbox, min_score: f32) -> Objects {
        let settings = Suppression {
            min_score,
            iou_threshold: self.iou_threshold,
            max_detections: self.max_detections,
        };
        let (w, h) = (f64::from(lb.width), f64::from(lb.height));
        let detections = detections(raw, lb, &settings)
            .into_iter()
            .map(|c| Detection {
                label: self.class_names[c.class_id].clone(),
                class_id: c.class_id,
                score: decimal(c.score),
                bbox: BoundingBox {
                    x_min: c.corners.x_min,
                    y_min: c.corners.y_min,
                    x_max: c.corners.x_max,
                    y_max: c.corners.y_max,
                }
                .rounded(PIXEL_DECIMALS),
                box_normalized: BoundingBox {
                    x_min: c.corners.x_min / w,
                    y_min: c.corners.y_min / h,
                    x_max: c.corners.x_max / w,
                    y_max: c.corners.y_max / h,
                }
                .rounded(FRACTION_DECIMALS),
            })
            .collect();
        Objects {
            model: ModelUsed {
                name: self.name.clone(),
                weights_sha256: self.weights_sha256.clone(),
                input_size: self.input_size,
                min_score: decimal(min_score),
                iou_threshold: decimal(self.iou_threshold),
            },
            detections,
        }
    }
}
