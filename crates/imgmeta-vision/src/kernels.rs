//! CPU kernels written as candle custom ops: bias + SiLU fused into one pass over a
//! convolution's output, in-place residual addition, column-wise softmax, and direct depthwise
//! convolution, each compiled for the CPU's widest vector instructions.
//!
//! Why hand-written: candle's element-wise ops on large tensors run on its own spinning
//! thread pool, which on a small machine competes with the rayon pool that runs the
//! convolutions; and it runs grouped convolutions one group at a time. These kernels run on
//! the caller's rayon pool, touch each value once, and allocate nothing for the in-place ones.

use candle_core::{CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Result, Shape};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Runs a kernel compiled for the widest vector instructions this CPU has (AVX-512,
/// AVX2 + FMA, else the x86-64 baseline), chosen at run time, so one binary is both
/// portable and fast. Each kernel is a struct whose `with_simd` is `#[inline(always)]`, so
/// its plain loops are inlined into pulp's feature-enabled function and auto-vectorised for
/// that instruction set (a closure would not be reliably inlined, and would then run with
/// baseline SSE2). Call it within each parallel task: the choice does not cross threads.
#[inline(always)]
pub fn vectorized<K: WithSimd>(kernel: K) -> K::Output {
    ARCH.dispatch(kernel)
}

/// The instruction set, detected once: kernels dispatch once per row.
static ARCH: std::sync::LazyLock<pulp::Arch> = std::sync::LazyLock::new(pulp::Arch::new);

/// Runs `f` on this thread's reusable scratch value in `key` (buffers kept across layers
/// and runs, so large ones are not allocated and faulted in again each time), or on a fresh
/// one should the thread's be in use already.
pub(crate) fn with_scratch<T: Default + 'static, R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut mine) => f(&mut mine),
        Err(_) => f(&mut T::default()),
    })
}

/// `n` zeros, written by all of rayon's threads: a plain `vec![0.0; n]` of a reused
/// allocation is one thread's `memset` while the others wait, which was 6% of the forward
/// pass (every kernel's output is allocated this way, then overwritten).
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    let mut v = Vec::new();
    v.par_extend(rayon::iter::repeat_n(0f32, n));
    v
}

/// Output height and width of a square convolution with kernel `k`, stride `s`, padding `p`.
pub(crate) fn output_size(h: usize, w: usize, k: usize, s: usize, p: usize) -> (usize, usize) {
    ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1)
}

/// `dst = act(src + bias)` for one output row, `act` being SiLU or the identity. Writes
/// every value of `dst`, which may be uninitialised; panics unless `src` is as long.
pub struct BiasActCopy<'a> {
    pub src: &'a [f32],
    pub bias: f32,
    pub silu: bool,
    pub dst: &'a mut [std::mem::MaybeUninit<f32>],
}

impl WithSimd for BiasActCopy<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self {
            src,
            bias,
            silu: act,
            dst,
        } = self;
        assert_eq!(
            src.len(),
            dst.len(),
            "bias-act: source and destination lengths"
        );
        if act {
            dst.iter_mut().zip(src).for_each(|(d, s)| {
                d.write(silu(s + bias));
            });
        } else {
            dst.iter_mut().zip(src).for_each(|(d, s)| {
                d.write(s + bias);
            });
        }
    }
}

/// `v = act(v + bias)` in place for one or more channel planes.
struct BiasActInPlace<'a> {
    values: &'a mut [f32],
    bias: f32,
    silu: bool,
}

impl WithSimd for BiasActInPlace<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let b = self.bias;
        if self.silu {
            self.values.iter_mut().for_each(|v| *v = silu(*v + b));
        } else {
            self.values.iter_mut().for_each(|v| *v += b);
        }
    }
}

/// `lhs += rhs`.
struct AddSlices<'a> {
    lhs: &'a mut [f32],
    rhs: &'a [f32],
}

impl WithSimd for AddSlices<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        self.lhs.iter_mut().zip(self.rhs).for_each(|(a, b)| *a += b);
    }
}

/// The softmax numerators of every column of a row-major `[rows, n]` matrix, in place
/// (`e^(v - column max)`), and the reciprocal of each column's sum in `scales` (`n` values):
/// the caller scales whatever it computes from a column instead of the column itself (the
/// attention scales its `head_dim x n` product, not the `n x n` matrix). Column-wise so that
/// the attention's `n x n` matrix is the transposed scores, which `gemm` multiplies without
/// repacking it; every step is an element-wise pass over contiguous rows.
pub(crate) struct ColumnSoftmax<'a> {
    pub values: &'a mut [f32],
    pub scales: &'a mut [f32],
}

impl WithSimd for ColumnSoftmax<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self { values, scales } = self;
        let n = scales.len();
        assert!(n > 0 && values.len() % n == 0, "softmax: whole rows");
        // The column maxima, kept in `scales` until the sums replace them.
        scales.fill(f32::NEG_INFINITY);
        for row in values.chunks_exact(n) {
            scales.iter_mut().zip(row).for_each(|(m, v)| *m = m.max(*v));
        }
        let mut sums = vec![0f32; n];
        for row in values.chunks_exact_mut(n) {
            row.iter_mut()
                .zip(&*scales)
                .zip(&mut sums)
                .for_each(|((v, m), s)| {
                    *v = exp(*v - m);
                    *s += *v;
                });
        }
        scales.iter_mut().zip(&sums).for_each(|(r, s)| *r = 1.0 / s);
    }
}

/// `dst[i] = src[i] * scale[i]`.
pub(crate) struct ScaleColumns<'a> {
    pub src: &'a [f32],
    pub scale: &'a [f32],
    pub dst: &'a mut [f32],
}

impl WithSimd for ScaleColumns<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self { src, scale, dst } = self;
        assert!(
            src.len() == dst.len() && scale.len() == dst.len(),
            "scale: lengths"
        );
        dst.iter_mut()
            .zip(src.iter().zip(scale))
            .for_each(|(d, (s, k))| *d = s * k);
    }
}

/// `v = sigmoid(v)` for every value.
pub struct SigmoidSlice<'a>(pub &'a mut [f32]);

impl WithSimd for SigmoidSlice<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        self.0.iter_mut().for_each(|v| *v = 1.0 / (1.0 + exp(-*v)));
    }
}

/// Values per parallel task for the element-wise kernels: large enough to amortise the
/// task, small enough to spread a 40x40 map over two threads.
const CHUNK: usize = 16 * 1024;

/// `x * sigmoid(x)` with the branch-free exponential below, so loops over it vectorise.
#[inline(always)]
pub fn silu(v: f32) -> f32 {
    v / (1.0 + exp(-v))
}

/// `e^x` to within 2 ulp for the range that matters here (results below 1e-38 flush to 0).
///
/// libm's `expf` is a function call per value, which keeps the SiLU loops scalar and made
/// them cost as much as all the convolutions' arithmetic. This is the classic Cephes
/// scheme: `x = n ln2 + r` with `|r| <= ln2 / 2`, a degree-6 polynomial for `e^r`, and
/// `2^n` assembled in the exponent bits (rounding by adding and subtracting 1.5 * 2^23,
/// integer arithmetic on the bits).
///
/// The polynomial is written with `mul_add`, which the kernels (compiled by [`vectorized`]
/// for AVX2 + FMA or AVX-512) turn into fused multiply-adds: half the instructions of
/// separate products and sums, and one rounding instead of two. That made the bias + SiLU
/// epilogue 1.5x faster (0.45 → 0.30 ns per value in the L2 cache, AMD EPYC). Called
/// outside such a kernel on a CPU without FMA, `mul_add` is a correctly rounded library
/// call: slower, never wrong.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: u32 = 0x4B40_0000;
    let x = x.clamp(-87.0, 88.0);
    // `t` is 1.5 * 2^23 + n exactly: its low mantissa bits hold `n` as an integer.
    let t = x.mul_add(LOG2E, ROUND);
    let n = t - ROUND;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let p = 1.987_569_1e-4_f32;
    let p = p.mul_add(r, 1.398_199_9e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 1.666_666_5e-1);
    let p = p.mul_add(r, 5e-1);
    let p = (p * r).mul_add(r, r) + 1.0;
    // 2^n from the integer in `t`'s bits, without a float-to-int conversion (Rust's is
    // saturating, which costs several vector instructions per value). `n` is within
    // -126..=127 after the clamp, so the biased exponent is in range.
    let biased = t.to_bits().wrapping_sub(ROUND_BITS).wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

fn f32_contiguous_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a mut [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: needs a contiguous tensor")))?;
    match storage {
        CpuStorage::F32(data) => Ok(&mut data[start..end]),
        _ => Err(candle_core::Error::Msg(format!("{op}: needs f32"))),
    }
}

pub(crate) fn f32_contiguous<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: needs a contiguous tensor")))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Adds a per-channel bias to an NCHW tensor and optionally applies SiLU, in place.
pub struct BiasAct<'a> {
    pub bias: &'a [f32],
    pub silu: bool,
}

impl InplaceOp1 for BiasAct<'_> {
    fn name(&self) -> &'static str {
        "bias-act"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let (_, c, h, w) = layout.shape().dims4()?;
        let data = f32_contiguous_mut(storage, layout, self.name())?;
        let plane = h * w;
        // Whole channel planes per task so each task reads one bias value per plane.
        let planes_per_task = CHUNK.div_ceil(plane).max(1);
        data.par_chunks_mut(plane * planes_per_task)
            .enumerate()
            .for_each(|(task, chunk)| {
                for (i, values) in chunk.chunks_mut(plane).enumerate() {
                    vectorized(BiasActInPlace {
                        values,
                        bias: self.bias[(task * planes_per_task + i) % c],
                        silu: self.silu,
                    });
                }
            });
        Ok(())
    }
}

/// `lhs += rhs` for two contiguous tensors of the same shape.
pub struct AddAssign;

impl InplaceOp2 for AddAssign {
    fn name(&self) -> &'static str {
        "add-assign"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        if l1.shape() != l2.shape() {
            return Err(candle_core::Error::Msg(format!(
                "add-assign: shapes {:?} and {:?} differ",
                l1.shape(),
                l2.shape()
            )));
        }
        let rhs = f32_contiguous(s2, l2, self.name())?;
        let lhs = f32_contiguous_mut(s1, l1, self.name())?;
        lhs.par_chunks_mut(CHUNK)
            .zip(rhs.par_chunks(CHUNK))
            .for_each(|(lhs, rhs)| vectorized(AddSlices { lhs, rhs }));
        Ok(())
    }
}

/// Depthwise (one filter per channel) square convolution with bias and optional SiLU.
pub struct Depthwise<'a> {
    /// `[c, k, k]` filters.
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub silu: bool,
}

impl CustomOp1 for Depthwise<'_> {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let input = f32_contiguous(storage, layout, self.name())?;
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (ho, wo) = output_size(h, w, k, s, p);
        let mut out = zeros(n * c * ho * wo);
        out.par_chunks_mut(ho * wo)
            .enumerate()
            .for_each(|(nc, plane)| {
                with_scratch(&PADDED, |padded| {
                    vectorized(DepthwisePlane {
                        op: self,
                        src: &input[nc * h * w..(nc + 1) * h * w],
                        h,
                        w,
                        ch: nc % c,
                        plane,
                        wo,
                        padded,
                    })
                })
            });
        Ok((CpuStorage::F32(out), Shape::from((n, c, ho, wo))))
    }
}

thread_local! {
    /// A zero-bordered copy of the input plane being convolved, reused across planes.
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One output channel plane of a depthwise convolution. The input plane is first copied
/// into a zero-bordered buffer so that no tap has an edge case (the maps are small: rows of
/// 20 to 80 values). With stride 1, each vector of output values is summed over all k×k taps
/// in a register and stored once (a masked store for a row's last partial vector); adding
/// each tap into memory instead cost a load and a store per tap and value. The loads are
/// always whole vectors (the buffer ends with a vector of zeros): masked loads cost a mask
/// computation each and made the 7x7 kernel several times slower.
struct DepthwisePlane<'a> {
    op: &'a Depthwise<'a>,
    src: &'a [f32],
    h: usize,
    w: usize,
    ch: usize,
    plane: &'a mut [f32],
    wo: usize,
    padded: &'a mut Vec<f32>,
}

impl WithSimd for DepthwisePlane<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            op,
            src,
            h,
            w,
            ch,
            plane,
            wo,
            padded,
        } = self;
        let (k, s, p) = (op.kernel, op.stride, op.padding);
        let wp = w + 2 * p;
        let lanes = S::F32_LANES;
        padded.clear();
        // One vector of zeros beyond the last row, so every tap can load a whole vector.
        padded.resize(wp * (h + 2 * p) + lanes, 0.0);
        for (dst, row) in padded[p * wp..].chunks_mut(wp).zip(src.chunks(w)) {
            dst[p..p + w].copy_from_slice(row);
        }
        let kern = &op.weight[ch * k * k..(ch + 1) * k * k];
        if s == 1 {
            let bias = simd.splat_f32s(op.bias[ch]);
            let ho = plane.len() / wo;
            let mut store = |oy: usize, x0: usize, acc: S::f32s| {
                let n = lanes.min(wo - x0);
                let out = &mut plane[oy * wo + x0..oy * wo + x0 + n];
                if n == lanes {
                    S::as_mut_simd_f32s(out).0[0] = acc;
                } else {
                    simd.partial_store_f32s(out, acc);
                }
            };
            let mut oy = 0;
            while oy + DW_ROWS <= ho {
                for x0 in (0..wo).step_by(lanes) {
                    let acc =
                        depthwise_rows::<S, DW_ROWS>(simd, padded, wp, (kern, k), bias, oy, x0);
                    acc.into_iter()
                        .enumerate()
                        .for_each(|(r, a)| store(oy + r, x0, a));
                }
                oy += DW_ROWS;
            }
            for oy in oy..ho {
                for x0 in (0..wo).step_by(lanes) {
                    let [acc] = depthwise_rows::<S, 1>(simd, padded, wp, (kern, k), bias, oy, x0);
                    store(oy, x0, acc);
                }
            }
        } else {
            plane.fill(op.bias[ch]);
            for (oy, row) in plane.chunks_mut(wo).enumerate() {
                for (ky, taps) in kern.chunks(k).enumerate() {
                    let line = &padded[(oy * s + ky) * wp..(oy * s + ky + 1) * wp];
                    for (kx, &wv) in taps.iter().enumerate() {
                        row.iter_mut()
                            .zip(line[kx..].iter().step_by(s))
                            .for_each(|(o, i)| *o += wv * i);
                    }
                }
            }
        }
        if op.silu {
            plane.iter_mut().for_each(|v| *v = silu(*v));
        }
    }
}

/// Output rows a stride-1 depthwise step sums at once: independent accumulators, so the
/// multiply-adds of one row need not wait for the previous tap's (a single accumulator made
/// the 7x7 kernel latency-bound, 49 dependent multiply-adds per vector).
const DW_ROWS: usize = 4;

/// `R` vectors of stride-1 depthwise output at columns `x0..x0 + lanes` of rows
/// `oy..oy + R`, each summed over every tap of the `k x k` filter `kern`, from the
/// zero-bordered input `padded` (`wp` values per row, a vector of zeros beyond the end).
#[inline(always)]
fn depthwise_rows<S: Simd, const R: usize>(
    simd: S,
    padded: &[f32],
    wp: usize,
    (kern, k): (&[f32], usize),
    bias: S::f32s,
    oy: usize,
    x0: usize,
) -> [S::f32s; R] {
    let lanes = S::F32_LANES;
    let mut acc = [bias; R];
    for (ky, taps) in kern.chunks(k).enumerate() {
        for (kx, &wv) in taps.iter().enumerate() {
            let wv = simd.splat_f32s(wv);
            for (r, a) in acc.iter_mut().enumerate() {
                let start = (oy + r + ky) * wp + x0 + kx;
                // A whole vector even past the row's end (the lanes beyond it read the next
                // row or the zeros, and are not stored).
                let values = S::as_simd_f32s(&padded[start..start + lanes]).0[0];
                *a = simd.mul_add_e_f32s(wv, values, *a);
            }
        }
    }
    acc
}

/// The largest absolute difference between two tensors of the same shape (for tests).
#[cfg(test)]
pub(crate) fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("tensors of the same shape")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn the_depthwise_kernel_matches_candles_grouped_convolution() {
        let dev = Device::Cpu;
        let bias = [0.5f32, -1.0, 0.0, 2.0];
        // A row shorter than one vector; and rows of whole vectors plus a partial one, with
        // the attention's 7x7 filter.
        for (h, w, kernel, padding) in [(9, 7, 3, 1), (20, 37, 7, 3), (8, 32, 3, 1)] {
            let x = Tensor::randn(0f32, 1.0, (1, 4, h, w), &dev).unwrap();
            let wt = Tensor::randn(0f32, 1.0, (4, 1, kernel, kernel), &dev).unwrap();
            let weights = wt.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for stride in [1, 2] {
                let op = Depthwise {
                    weight: &weights,
                    bias: &bias,
                    kernel,
                    stride,
                    padding,
                    silu: true,
                };

                let ours = x.apply_op1_no_bwd(&op).unwrap();

                let b = Tensor::new(&bias, &dev)
                    .unwrap()
                    .reshape((1, 4, 1, 1))
                    .unwrap();
                let theirs = x
                    .conv2d(&wt, padding, stride, 1, 4)
                    .unwrap()
                    .broadcast_add(&b)
                    .unwrap()
                    .silu()
                    .unwrap();
                let diff = max_diff(&ours, &theirs);
                assert!(diff < 1e-5, "{h}x{w} k{kernel} stride {stride}: {diff}");
            }
        }
    }

    #[test]
    fn column_softmax_numerators_times_their_scales_are_candles_softmax() {
        // Rows longer and shorter than a vector, values far apart (the max is subtracted).
        for (rows, n) in [(7, 5), (33, 40), (400, 17)] {
            let x = Tensor::randn(0f32, 8.0, (rows, n), &Device::Cpu).unwrap();
            let mut values = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut scales = vec![0f32; n];

            vectorized(ColumnSoftmax {
                values: &mut values,
                scales: &mut scales,
            });

            let theirs = candle_nn::ops::softmax(&x, 0).unwrap();
            let theirs = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (i, (v, t)) in values.iter().zip(&theirs).enumerate() {
                let ours = v * scales[i % n];
                assert!((ours - t).abs() < 1e-6, "{rows}x{n} [{i}]: {ours} vs {t}");
            }
        }
    }

    #[test]
    fn the_fast_exponential_agrees_with_libm_to_a_few_ulp() {
        let mut worst = 0f32;
        for i in -8690..8790 {
            let x = i as f32 / 100.0 + 0.003;
            let rel = ((exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "relative error {worst}");
    }

    #[test]
    fn bias_and_silu_are_applied_per_channel_in_place() {
        let x = Tensor::zeros((1, 2, 300, 300), candle_core::DType::F32, &Device::Cpu).unwrap();

        x.inplace_op1(&BiasAct {
            bias: &[0.0, 1.0],
            silu: true,
        })
        .unwrap();

        let v = x
            .flatten_from(2)
            .unwrap()
            .max(2)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(v, vec![0.0, silu(1.0)]);
    }
}
