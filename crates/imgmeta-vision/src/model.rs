//! YOLOv12n assembled from its blocks: backbone, neck and the anchor-free detection head.
//! `forward` returns the same `output0` as the exported ONNX graph: `[84, 8400]`, rows 0-3 the
//! box centre and size in input pixels, rows 4-83 the class probabilities.

use crate::VisionError;
use crate::blocks::CspStack;
use crate::kernels::{SigmoidSlice, exp, vectorized};
use crate::layers::{Act, Conv};
use crate::weights::Weights;
use candle_core::Tensor;
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

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
        let mut outputs = self.forward_batch(x)?;
        match (outputs.pop(), outputs.is_empty()) {
            (Some(output), true) => Ok(output),
            _ => Err(VisionError::Inference(format!(
                "forward takes one image, got {}",
                x.dim(0)?
            ))),
        }
    }

    /// Runs the network on a batch, `[n, 3, S, S]`: one output per image. On the CPU every
    /// layer computes the images one after another exactly as it would each alone, so the
    /// outputs are bit-identical to `n` single runs; on a GPU the batch is one launch per layer.
    pub fn forward_batch(&self, x: &Tensor) -> Result<Vec<RawOutput>, VisionError> {
        self.forward_batch_marked(x, &mut |_| Ok(()))
    }

    /// [`YoloV12::forward_batch`], calling `mark` after each module of the backbone and neck
    /// with its index, and with `None` once the head's outputs are on the host, for
    /// per-module timings.
    pub fn forward_batch_marked(
        &self,
        x: &Tensor,
        mark: &mut dyn FnMut(Option<usize>) -> Result<(), VisionError>,
    ) -> Result<Vec<RawOutput>, VisionError> {
        let levels = self
            .trunk(x, &mut |i, _| mark(Some(i)).map(|()| false))?
            .ok_or_else(|| VisionError::Inference("the network stopped early".into()))?;
        let outputs = self.head.forward(&levels)?;
        mark(None)?;
        Ok(outputs)
    }

    /// The backbone and the neck, module by module (indices as in the ONNX graph; 9, 10, 12,
    /// 13, 16 and 19 are the upsamplings and concatenations inside 11, 14, 17 and 20): calls
    /// `visit` with each module's index and output and stops, returning `None`, when it says
    /// so; else returns the neck's three detection levels. The one wiring of the network,
    /// shared by the forward pass and DeepDream.
    fn trunk(
        &self,
        x: &Tensor,
        visit: &mut dyn FnMut(usize, &Tensor) -> Result<bool, VisionError>,
    ) -> Result<Option<[Tensor; 3]>, VisionError> {
        macro_rules! stage {
            ($i:expr, $t:expr) => {{
                let t = $t?;
                if visit($i, &t)? {
                    return Ok(None);
                }
                t
            }};
        }
        let x = stage!(0, self.b0.forward(x));
        let x = stage!(1, self.b1.forward(&x));
        let x = stage!(2, self.b2.forward(&x));
        let x = stage!(3, self.b3.forward(&x));
        let p3 = stage!(4, self.b4.forward(&x));
        let x = stage!(5, self.b5.forward(&p3));
        let p4 = stage!(6, self.b6.forward(&x));
        let x = stage!(7, self.b7.forward(&p4));
        let p5 = stage!(8, self.b8.forward(&x));
        let n11 = stage!(11, self.n11.forward_after_upsampled(&p5, p4));
        let n14 = stage!(14, self.n14.forward_after_upsampled(&n11, p3));
        let x = stage!(15, self.n15.forward(&n14));
        let n17 = stage!(17, self.n17.forward_parts(&[x, n11]));
        let x = stage!(18, self.n18.forward(&n17));
        let n20 = stage!(20, self.n20.forward_parts(&[x, p5]));
        Ok(Some([n14, n17, n20]))
    }
}

/// The module indices whose output maps DeepDream may amplify: every backbone stage and
/// the neck's four feature blocks.
pub const DREAM_MODULES: [usize; 13] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 14, 17, 20];

impl YoloV12 {
    /// Runs the network only as far as the deepest of `layers` (module indices from
    /// [`DREAM_MODULES`]) and returns their output maps in the order asked; with `class`,
    /// runs it whole and also returns that class's logit map at each detection level.
    /// The same operations as [`YoloV12::forward`], so a gradient flows through them when
    /// `x` needs one.
    pub fn dream_maps(
        &self,
        x: &Tensor,
        layers: &[usize],
        class: Option<usize>,
    ) -> Result<Vec<Tensor>, VisionError> {
        let deepest = match class {
            Some(_) => usize::MAX,
            None => layers.iter().copied().max().unwrap_or(0),
        };
        let mut kept: Vec<(usize, Tensor)> = Vec::new();
        let levels = self.trunk(x, &mut |i, t| {
            if layers.contains(&i) {
                kept.push((i, t.clone()));
            }
            Ok(i >= deepest)
        })?;
        let mut maps: Vec<Tensor> = layers
            .iter()
            .filter_map(|l| kept.iter().find(|(i, _)| i == l).map(|(_, t)| t.clone()))
            .collect();
        if let (Some(class), Some(levels)) = (class, levels) {
            for (i, level) in levels.iter().enumerate() {
                let mut c = level.clone();
                for conv in &self.head.classes[i] {
                    c = conv.forward(&c)?;
                }
                maps.push(c.narrow(1, class, 1)?);
            }
        }
        Ok(maps)
    }
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

    fn forward(&self, levels: &[Tensor]) -> Result<Vec<RawOutput>, VisionError> {
        let batch = levels.first().map_or(Ok(0), |l| l.dim(0))?;
        let mut maps = Vec::with_capacity(levels.len());
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
            // Decoding runs on the host: each level's maps are copied there once for the
            // whole batch (an image's narrowed view on a GPU would copy the whole buffer).
            let host = |t: Tensor| t.contiguous()?.to_device(&candle_core::Device::Cpu);
            maps.push((host(b)?, host(c)?, (h, w, STRIDES[i])));
        }
        (0..batch)
            .map(|item| {
                let one: Vec<_> = maps
                    .iter()
                    .map(|(b, c, grid)| Ok((b.narrow(0, item, 1)?, c.narrow(0, item, 1)?, *grid)))
                    .collect::<Result<_, VisionError>>()?;
                self.decode(&one)
            })
            .collect()
    }

    /// One image's raw output from its levels' box-bin and class-logit maps.
    fn decode(
        &self,
        maps: &[(Tensor, Tensor, (usize, usize, usize))],
    ) -> Result<RawOutput, VisionError> {
        let anchors: usize = maps.iter().map(|(_, _, (h, w, _))| h * w).sum();
        let rows = 4 + self.num_classes;
        let mut data = vec![0f32; rows * anchors];
        let (box_rows, class_rows) = data.split_at_mut(4 * anchors);
        let mut offset = 0;
        for (b, c, grid) in maps {
            let n = grid.0 * grid.1;
            with_values(b, |bins| {
                self.decode_boxes(bins, *grid, offset, anchors, box_rows)
            })?;
            with_values(c, |logits| {
                sigmoid_rows(logits, n, offset, anchors, class_rows);
                Ok(())
            })?;
            offset += n;
        }
        Ok(RawOutput {
            rows,
            anchors,
            data,
        })
    }

    /// Writes the box rows (centre x, centre y, width, height in input pixels) of one level's
    /// `n` anchors, columns `offset..offset + n` of `out` (4 rows of `anchors` values), from
    /// its `4 * REG_MAX` distance-bin rows: each side's distance is the expectation of a
    /// softmax over its bins, computed for many anchors at once so the loops vectorise.
    fn decode_boxes(
        &self,
        bins: &[f32],
        (h, w, stride): (usize, usize, usize),
        offset: usize,
        anchors: usize,
        out: &mut [f32],
    ) -> Result<(), VisionError> {
        let n = h * w;
        if bins.len() != 4 * REG_MAX * n || self.dfl.len() != REG_MAX {
            return Err(VisionError::Inference(format!(
                "detection head: {} box values for {n} anchors",
                bins.len()
            )));
        }
        let mut dist = vec![0f32; 4 * n];
        dist.par_chunks_mut(n).enumerate().for_each(|(side, d)| {
            vectorized(Distances {
                bins: &bins[side * REG_MAX * n..(side + 1) * REG_MAX * n],
                weights: &self.dfl,
                out: d,
            })
        });
        let (left, rest) = dist.split_at(n);
        let (top, rest) = rest.split_at(n);
        let (right, bottom) = rest.split_at(n);
        let s = stride as f32;
        let mut rows = out.chunks_mut(anchors);
        let mut row = || &mut rows.next().expect("four box rows")[offset..offset + n];
        let (cx, cy, bw, bh) = (row(), row(), row(), row());
        for gy in 0..h {
            let ay = gy as f32 + 0.5;
            let span = gy * w..(gy + 1) * w;
            for (gx, i) in span.enumerate() {
                let ax = gx as f32 + 0.5;
                let (x1, y1) = (ax - left[i], ay - top[i]);
                let (x2, y2) = (ax + right[i], ay + bottom[i]);
                cx[i] = (x1 + x2) / 2.0 * s;
                cy[i] = (y1 + y2) / 2.0 * s;
                bw[i] = (x2 - x1) * s;
                bh[i] = (y2 - y1) * s;
            }
        }
        Ok(())
    }
}

/// Runs `f` on a contiguous tensor's values: borrowed in place on the CPU, copied to the host
/// from other devices.
fn with_values<R>(
    t: &Tensor,
    f: impl FnOnce(&[f32]) -> Result<R, VisionError>,
) -> Result<R, VisionError> {
    let (storage, layout) = t.storage_and_layout();
    if let candle_core::Storage::Cpu(cpu) = &*storage {
        return f(crate::kernels::f32_contiguous(
            cpu,
            layout,
            "detection head",
        )?);
    }
    drop(storage);
    f(&t.flatten_all()?.to_vec1::<f32>()?)
}

/// Writes `sigmoid(logits)` for one level's class rows (`n` values each) into columns
/// `offset..offset + n` of the class rows of `out` (`anchors` values each), in parallel.
fn sigmoid_rows(logits: &[f32], n: usize, offset: usize, anchors: usize, out: &mut [f32]) {
    out.par_chunks_mut(anchors)
        .zip(logits.par_chunks(n))
        .for_each(|(row, src)| {
            let dst = &mut row[offset..offset + n];
            dst.copy_from_slice(src);
            vectorized(SigmoidSlice(dst));
        });
}

/// Anchors per step of [`Distances`]: its running maxima and sums stay in registers/L1.
const DIST_STEP: usize = 64;

/// One side's distance for every anchor of a level: `sum_k softmax(bins)_k * weights[k]` over
/// `REG_MAX` bin rows of `out.len()` anchors each.
struct Distances<'a> {
    bins: &'a [f32],
    weights: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for Distances<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self { bins, weights, out } = self;
        let n = out.len();
        for (step, dst) in out.chunks_mut(DIST_STEP).enumerate() {
            let first = step * DIST_STEP;
            let len = dst.len();
            let row = |k: usize| &bins[k * n + first..k * n + first + len];
            let mut max = [f32::NEG_INFINITY; DIST_STEP];
            for k in 0..REG_MAX {
                max.iter_mut().zip(row(k)).for_each(|(m, v)| *m = m.max(*v));
            }
            let mut sum = [0f32; DIST_STEP];
            let mut weighted = [0f32; DIST_STEP];
            for (k, &wk) in weights.iter().enumerate() {
                for (((s, ws), m), v) in sum.iter_mut().zip(&mut weighted).zip(&max).zip(row(k)) {
                    let e = exp(v - m);
                    *s += e;
                    *ws += e * wk;
                }
            }
            for ((d, s), ws) in dst.iter_mut().zip(&sum).zip(&weighted) {
                *d = ws / s;
            }
        }
    }
}
