//! Object detection with a native candle implementation of YOLOv12n: letterbox
//! preprocessing, the network, class-wise NMS, and `result.objects`; and DeepDream through the
//! same network with candle's autograd.
//!
//! Only this crate knows candle. It reads nothing but the safetensors weights written by
//! `imgmeta models fetch` (see `imgmeta-models`); no ONNX, protobuf or Python at run time.

mod attention;
pub mod bench;
mod blocks;
mod detector;
mod dream;
mod error;
mod gemm_conv;
mod grad_conv;
mod image_io;
mod kernels;
mod layers;
mod matmul;
mod model;
mod objects;
mod postprocess;
mod preprocess;
mod weights;
mod winograd;

pub use detector::{Detector, DetectorConfig, DeviceKind, Prepared, StageTimes};
pub use dream::{Dream, Octave};
pub use error::VisionError;
pub use image_io::{decode_oriented, open_oriented};
pub use model::RawOutput;
pub use objects::{BoundingBox, Detection, ModelUsed, Objects, decimal};
pub use preprocess::Letterbox;
