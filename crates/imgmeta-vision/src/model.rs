//! YOLOv12n assembled from its blocks: backbone, neck and the anchor-free detection head.
//! `forward` returns the same `output0` as the exported ONNX graph: `[84, 8400]`, rows 0-3 the
//! box centre and size in input pixels, rows 4-83 the class probabilities.

use crate::VisionError;
use crate::blocks::CspStack;
use crate::layers::{Act, Conv, cat_channels};
use crate::weights::Weights;
use candle_core::Tensor;

/// Feature-map strides of the three detection levels.
const STRIDES: [usize; 3] = [8, 16, 32];
/// Bins of the distribution-focal-loss box encoding.
const REG_MAX: usize = 16;

pub struct YoloV12 {
    b0: Conv,
    b1: Conv,
    b2: CspStack,
    b3: Conv,
    b4: CspStack,
    b5: Conv,
    b6: CspStack,
    b7: Conv,
    b8: CspStack,
    n11: CspStack,
    n14: CspStack,
    n15: Conv,
    n17: CspStack,
    n18: Conv,
    n20: CspStack,
    head: Head,
    pub num_classes: usize,
}

/// The network's raw output: `rows x anchors` values, row-major.
pub struct RawOutput {
    pub rows: usize,
    pub anchors: usize,
    pub data: Vec<f32>,
}

impl RawOutput {
    pub fn at(&self, row: usize, anchor: usize) -> f32 {
        self.data[row * self.anchors + anchor]
    }
}

impl YoloV12 {
    pub fn load(w: &Weights) -> Result<Self, VisionError> {
        let conv = |i: usize, stride| Conv::load(w, &format!("model.{i}.conv"), stride, Act::Silu);
        let head = Head::load(w)?;
        Ok(Self {
            b0: conv(0, 2)?,
            b1: conv(1, 2)?,
            b2: CspStack::c3k2(w, "model.2")?,
            b3: conv(3, 2)?,
            b4: CspStack::c3k2(w, "model.4")?,
            b5: conv(5, 2)?,
            // Area attention splits the stride-16 map into 4 bands and attends globally
            // on the stride-32 map (YOLOv12's configuration for these two stages).
            b6: CspStack::a2c2f(w, "model.6", 4)?,
            b7: conv(7, 2)?,
            b8: CspStack::a2c2f(w, "model.8", 1)?,
            n11: CspStack::a2c2f(w, "model.11", 1)?,
            n14: CspStack::a2c2f(w, "model.14", 1)?,
            n15: conv(15, 2)?,
            n17: CspStack::a2c2f(w, "model.17", 1)?,
            n18: conv(18, 2)?,
            n20: CspStack::c3k2(w, "model.20")?,
            num_classes: head.num_classes,
            head,
        })
    }

    /// Runs the network on a `[1, 3, S, S]` image tensor with values in 0..1.
    pub fn forward(&self, x: &Tensor) -> Result<RawOutput, VisionError> {
        let x = self.b1.forward(&self.b0.forward(x)?)?;
        let p3 = self.b4.forward(&self.b3.forward(&self.b2.forward(&x)?)?)?;
        let p4 = self.b6.forward(&self.b5.forward(&p3)?)?;
        let p5 = self.b8.forward(&self.b7.forward(&p4)?)?;
        let n11 = self.n11.forward_parts(&[upsample2(&p5)?, p4])?;
        let n14 = self.n14.forward_parts(&[upsample2(&n11)?, p3])?;
        let n17 = self.n17.forward_parts(&[self.n15.forward(&n14)?, n11])?;
        let n20 = self.n20.forward_parts(&[self.n18.forward(&n17)?, p5])?;
        self.head.forward(&[n14, n17, n20])
    }
}

fn upsample2(x: &Tensor) -> Result<Tensor, VisionError> {
    let (_, _, h, w) = x.dims4()?;
    Ok(x.upsample_nearest2d(h * 2, w * 2)?)
}

/// Per level: a box branch (two 3x3 convs and a 1x1 to 4 x 16 bins) and a class branch
/// (two depthwise-separable pairs and a 1x1 to the class logits).
struct Head {
    boxes: Vec<[Conv; 3]>,
    classes: Vec<[Conv; 5]>,
    dfl: Vec<f32>,
    num_classes: usize,
}

impl Head {
    fn load(w: &Weights) -> Result<Self, VisionError> {
        let mut boxes = Vec::new();
        let mut classes = Vec::new();
        for i in 0..STRIDES.len() {
            let b = |name: &str, act| Conv::load(w, &format!("model.21.cv2.{i}.{name}"), 1, act);
            boxes.push([
                b("0.conv", Act::Silu)?,
                b("1.conv", Act::Silu)?,
                b("2", Act::Linear)?,
            ]);
            let c = |name: &str, act| Conv::load(w, &format!("model.21.cv3.{i}.{name}"), 1, act);
            classes.push([
                c("0.0.conv", Act::Silu)?,
                c("0.1.conv", Act::Silu)?,
                c("1.0.conv", Act::Silu)?,
                c("1.1.conv", Act::Silu)?,
                c("2", Act::Linear)?,
            ]);
        }
        let num_classes = w.get("model.21.cv3.0.2.weight")?.dim(0)?;
        let dfl = w
            .get("model.21.dfl.conv.weight")?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(Self {
            boxes,
            classes,
            dfl,
            num_classes,
        })
    }

    fn forward(&self, levels: &[Tensor]) -> Result<RawOutput, VisionError> {
        let mut maps = Vec::with_capacity(levels.len());
        let mut grid = Vec::with_capacity(levels.len());
        for (i, x) in levels.iter().enumerate() {
            let (_, _, h, w) = x.dims4()?;
            let mut b = x.clone();
            for conv in &self.boxes[i] {
                b = conv.forward(&b)?;
            }
            let mut c = x.clone();
            for conv in &self.classes[i] {
                c = conv.forward(&c)?;
            }
            maps.push(cat_channels(&[b, c])?.flatten_from(2)?);
            grid.push((h, w, STRIDES[i]));
        }
        // [1, 64 + classes, anchors] -> plain memory; the decode below is per anchor.
        let all = Tensor::cat(&maps, 2)?.squeeze(0)?.contiguous()?;
        let (channels, anchors) = all.dims2()?;
        let raw = all.flatten_all()?.to_vec1::<f32>()?;
        Ok(self.decode(&raw, channels, anchors, &grid))
    }

    /// Turns the box bins into centre/size in input pixels and the logits into probabilities,
    /// in the exported graph's order of operations.
    fn decode(
        &self,
        raw: &[f32],
        channels: usize,
        anchors: usize,
        grid: &[(usize, usize, usize)],
    ) -> RawOutput {
        let rows = 4 + self.num_classes;
        let mut out = vec![0f32; rows * anchors];
        let mut anchor = 0;
        for &(h, w, stride) in grid {
            for gy in 0..h {
                for gx in 0..w {
                    let ax = gx as f32 + 0.5;
                    let ay = gy as f32 + 0.5;
                    let mut dist = [0f32; 4];
                    for (side, d) in dist.iter_mut().enumerate() {
                        let bins: [f32; REG_MAX] =
                            std::array::from_fn(|k| raw[(side * REG_MAX + k) * anchors + anchor]);
                        let max = bins.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let exps = bins.map(|v| crate::kernels::exp(v - max));
                        let sum: f32 = exps.iter().sum();
                        *d = exps.iter().zip(&self.dfl).map(|(e, k)| e / sum * k).sum();
                    }
                    let (x1, y1) = (ax - dist[0], ay - dist[1]);
                    let (x2, y2) = (ax + dist[2], ay + dist[3]);
                    let s = stride as f32;
                    out[anchor] = (x1 + x2) / 2.0 * s;
                    out[anchors + anchor] = (y1 + y2) / 2.0 * s;
                    out[2 * anchors + anchor] = (x2 - x1) * s;
                    out[3 * anchors + anchor] = (y2 - y1) * s;
                    anchor += 1;
                }
            }
        }
        debug_assert_eq!(channels, 4 * REG_MAX + self.num_classes);
        // Class rows: the logits, one contiguous row per class, through a sigmoid.
        let classes = &mut out[4 * anchors..];
        classes.copy_from_slice(&raw[4 * REG_MAX * anchors..channels * anchors]);
        crate::kernels::vectorized(crate::kernels::SigmoidSlice(classes));
        RawOutput {
            rows,
            anchors,
            data: out,
        }
    }
}
