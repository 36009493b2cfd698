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
            Self::Cuda(n) => {
                let device = Device::new_cuda(n).map_err(|e| {
                    VisionError::Device(
                        format!("cuda:{n}"),
                        format!("{e} (was imgmeta built with --features cuda?)"),
                    )
                })?;
                keep_pool_memory(&device)
                    .map_err(|e| VisionError::Device(format!("cuda:{n}"), e))?;
                Ok(device)
            }
        }
    }
}

/// Lets the CUDA device's memory pool keep the memory it has mapped. candle allocates every
/// tensor from the stream-ordered pool (`cuMemAllocAsync`), whose release threshold is 0 by
/// default: at every synchronisation (each forward pass ends with one, copying the outputs
/// back) it unmaps all free memory, so the next pass maps its activations afresh. The
/// detector's passes need the same memory every time, as PyTorch's caching allocator assumes.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
fn keep_pool_memory(device: &Device) -> Result<(), String> {
    use candle_core::cuda::cudarc::driver::{result, sys};
    let Device::Cuda(cuda) = device else {
        return Ok(());
    };
    let cu_device = cuda.cuda_stream().context().cu_device();
    let mut threshold = u64::MAX;
    // SAFETY: the pool is the live device's current one, and the release threshold's value
    // is a u64, which `threshold` is.
    unsafe {
        let pool = result::device::get_mem_pool(cu_device).map_err(|e| e.to_string())?;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&raw mut threshold).cast(),
        )
        .map_err(|e| e.to_string())
    }
}

#[cfg(not(feature = "cuda"))]
fn keep_pool_memory(_device: &Device) -> Result<(), String> {
    Ok(())
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

/// An image letterboxed for the network: made on any thread, ahead of the forward pass that
/// takes it ([`Detector::detect_prepared`]).
pub struct Prepared {
    chw: Vec<f32>,
    letterbox: Letterbox,
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

    /// Objects in each image (already EXIF-oriented) scoring at least its own minimum, from
    /// one forward pass over the whole batch, every image letterboxed to the one input size.
    /// The same objects as [`Detector::detect`] of each image alone.
    pub fn detect_batch(
        &self,
        images: &[(&DynamicImage, f32)],
    ) -> Result<Vec<Objects>, VisionError> {
        self.detect_batch_timed(images).map(|(objects, _)| objects)
    }

    /// `detect_batch`, also reporting the time each stage took for the whole batch.
    pub fn detect_batch_timed(
        &self,
        images: &[(&DynamicImage, f32)],
    ) -> Result<(Vec<Objects>, StageTimes), VisionError> {
        if images.is_empty() {
            let none = StageTimes {
                preprocess: Duration::ZERO,
                forward: Duration::ZERO,
                postprocess: Duration::ZERO,
            };
            return Ok((Vec::new(), none));
        }
        self.in_pool(|| {
            let start = Instant::now();
            let prepared = images
                .iter()
                .map(|(image, _)| self.prepare(image))
                .collect::<Result<Vec<_>, _>>()?;
            let preprocessed = Instant::now();
            let items: Vec<(&Prepared, f32)> = prepared
                .iter()
                .zip(images)
                .map(|(p, (_, min_score))| (p, *min_score))
                .collect();
            let (objects, mut times) = self.run_prepared(&items)?;
            times.preprocess += preprocessed - start;
            Ok((objects, times))
        })
    }

    /// `image` letterboxed for the network, on the calling thread: a worker prepares the next
    /// images while the detector runs the current ones.
    pub fn prepare(&self, image: &DynamicImage) -> Result<Prepared, VisionError> {
        let (chw, letterbox) = self.letterboxed(image)?;
        Ok(Prepared { chw, letterbox })
    }

    /// [`Detector::detect_batch`] of images already prepared: one forward pass.
    pub fn detect_prepared(&self, items: &[(&Prepared, f32)]) -> Result<Vec<Objects>, VisionError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.in_pool(|| self.run_prepared(items).map(|(objects, _)| objects))
    }

    /// The forward pass and postprocessing of prepared images (`preprocess` is the copy into
    /// the batch tensor).
    fn run_prepared(
        &self,
        items: &[(&Prepared, f32)],
    ) -> Result<(Vec<Objects>, StageTimes), VisionError> {
        let start = Instant::now();
        let size = self.input_size as usize;
        let input = match items {
            [(one, _)] => Tensor::from_slice(&one.chw, (1, 3, size, size), &self.device)?,
            _ => {
                let mut data = Vec::with_capacity(items.len() * 3 * size * size);
                for (p, _) in items {
                    data.extend_from_slice(&p.chw);
                }
                Tensor::from_vec(data, (items.len(), 3, size, size), &self.device)?
            }
        };
        let preprocessed = Instant::now();
        let raws = self.model.forward_batch(&input)?;
        let forwarded = Instant::now();
        let objects = raws
            .iter()
            .zip(items)
            .map(|(raw, (p, min_score))| self.postprocess(raw, &p.letterbox, *min_score))
            .collect();
        let times = StageTimes {
            preprocess: preprocessed - start,
            forward: forwarded - preprocessed,
            postprocess: forwarded.elapsed(),
        };
        Ok((objects, times))
    }

    /// The raw outputs of one forward pass over `images`, for parity checks of batching.
    pub fn raw_outputs(&self, images: &[&DynamicImage]) -> Result<Vec<RawOutput>, VisionError> {
        self.in_pool(|| {
            let (input, _) = self.preprocess_batch(images)?;
            self.model.forward_batch(&input)
        })
    }

    /// The time each module of one forward pass over `images` takes, in the network's order,
    /// by module index (`head` last: its layers and decoding on the host); the device is
    /// synchronised after each, so a GPU's queued work counts where it is made.
    pub fn module_times(
        &self,
        images: &[&DynamicImage],
    ) -> Result<Vec<(String, Duration)>, VisionError> {
        self.in_pool(|| {
            let (input, _) = self.preprocess_batch(images)?;
            self.device.synchronize()?;
            let mut times = Vec::new();
            let mut last = Instant::now();
            self.model.forward_batch_marked(&input, &mut |module| {
                self.device.synchronize()?;
                let now = Instant::now();
                let name = module.map_or_else(|| "head".to_string(), |i| i.to_string());
                times.push((name, now - last));
                last = now;
                Ok(())
            })?;
            Ok(times)
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
        let (chw, lb) = self.letterboxed(image)?;
        let size = self.input_size as usize;
        let tensor = Tensor::from_vec(chw, (1, 3, size, size), &self.device)?;
        Ok((tensor, lb))
    }

    /// `[n, 3, S, S]` of the letterboxed images, and each one's geometry.
    fn preprocess_batch(
        &self,
        images: &[&DynamicImage],
    ) -> Result<(Tensor, Vec<Letterbox>), VisionError> {
        let size = self.input_size as usize;
        let mut data = Vec::with_capacity(images.len() * 3 * size * size);
        let mut boxes = Vec::with_capacity(images.len());
        for image in images {
            let (chw, lb) = self.letterboxed(image)?;
            data.extend_from_slice(&chw);
            boxes.push(lb);
        }
        let tensor = Tensor::from_vec(data, (images.len(), 3, size, size), &self.device)?;
        Ok((tensor, boxes))
    }

    fn letterboxed(&self, image: &DynamicImage) -> Result<(Vec<f32>, Letterbox), VisionError> {
        let rgb = match image {
            DynamicImage::ImageRgb8(rgb) => Cow::Borrowed(rgb),
            other => Cow::Owned(other.to_rgb8()),
        };
        if rgb.width() == 0 || rgb.height() == 0 {
            return Err(VisionError::Inference("the image is empty".into()));
        }
        Ok(letterbox(&rgb, self.input_size))
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
