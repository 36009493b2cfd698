//! Convolution on the CPU as blocked matrix products: each task unfolds one block of output
//! columns (im2col) into a small per-thread buffer, multiplies it by the filters with
//! `gemm`, and adds the bias and applies SiLU while the block is still in cache.
//!
//! Why not candle's `matmul` on a whole im2col matrix: that materialises the full unfolded
//! image (29 MB for a 3x3 layer at 160x160), zero-fills every output before overwriting it,
//! and needs a second pass over the output for bias and activation. Working block by block
//! keeps everything in the L2 cache, which is what made the CPU forward pass memory-bound.

use crate::kernels::{BiasActCopy, f32_contiguous, output_size, vectorized, with_scratch, zeros};
use crate::matmul::{Mat, matmul};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;
use std::cell::RefCell;
use std::mem::MaybeUninit;

/// Unfolded values per block: the im2col block (`depth x columns`) stays within ~256 KiB.
const BLOCK_VALUES: usize = 64 * 1024;
/// Output columns per block, at least and at most.
const MIN_BLOCK: usize = 32;
const MAX_BLOCK: usize = 1024;

thread_local! {
    /// Per-thread buffers for the unfolded block and the block's product, reused across
    /// layers and runs (allocating them per block made page faults a tenth of the time).
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// The calling thread's zero-bordered copy of a stride-1 convolution's input, reused
    /// (by the Winograd path too: one copy per thread, whichever path a layer takes).
    pub(crate) static PADDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A dense (ungrouped) square convolution with bias and optional SiLU.
pub struct GemmConv<'a> {
    /// Filters as a row-major `[c_out, c_in * k * k]` matrix.
    pub matrix: &'a [f32],
    pub bias: &'a [f32],
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub silu: bool,
}

/// The geometry of one convolution, shared by every block.
#[derive(Clone, Copy)]
struct Geometry {
    c_in: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    wo: usize,
}

impl GemmConv<'_> {
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        output_size(h, w, self.kernel, self.stride, self.padding)
    }

    /// Columns per block: small enough for the cache and to give every thread a few
    /// blocks, large enough to keep the matrix product efficient.
    fn block_columns(depth: usize, columns: usize) -> usize {
        let for_cache = (BLOCK_VALUES / depth.max(1)).clamp(MIN_BLOCK, MAX_BLOCK);
        let for_balance = columns
            .div_ceil(4 * rayon::current_num_threads())
            .max(MIN_BLOCK);
        // Multiples of 16 suit the vector kernels.
        for_cache.min(for_balance).next_multiple_of(16)
    }

    /// A stride-1 convolution computed over the zero-bordered input: output column `j` of
    /// the product is position `(j / wp, j % wp)` of a map as wide as the padded input
    /// (`wp` values), and tap `(ky, kx)` of every output position reads the padded input at
    /// `j + ky * wp + kx`, so every row of a block's unfolded matrix is one contiguous run
    /// (no edge cases, no zero fills). The `wp - wo` columns past each row's end are
    /// computed and dropped when the block is written out.
    ///
    /// (Strided convolutions could do the same over the input split into its `s x s`
    /// phases; tried, it was slower: the phase split is a strided gather of the whole input
    /// on too few parallel tasks.)
    fn stride_one(&self, input: &[f32], g: Geometry, ho: usize, padded: &mut Vec<f32>) -> Vec<f32> {
        let Geometry {
            c_in,
            h,
            w,
            k,
            p,
            wo,
            ..
        } = g;
        let c_out = self.bias.len();
        let depth = c_in * k * k;
        let wp = w + 2 * p;
        let plane = (h + 2 * p) * wp;
        // The last tap of a plane's last (dropped) columns reads `k - 1` values beyond it.
        pad_planes(input, (c_in, h, w), p, (h + 2 * p, wp), k - 1, padded);
        let padded = &padded[..];
        let columns = ho * wp;
        let block = Self::block_columns(depth, columns);
        let filters = Mat::rows(self.matrix, c_out, depth);
        blocked(
            (c_out, columns, block),
            (self.bias, self.silu),
            OutputColumns::Padded { wp, wo },
            |first, width, unfolded, product| {
                unfolded.resize(depth * width, 0.0);
                for (row_index, row) in unfolded.chunks_mut(width).enumerate() {
                    let (ch, ky, kx) = (row_index / (k * k), (row_index / k) % k, row_index % k);
                    let start = ch * plane + ky * wp + kx + first;
                    row.copy_from_slice(&padded[start..start + width]);
                }
                matmul(
                    product,
                    width,
                    filters,
                    Mat::rows(unfolded, depth, width),
                    false,
                );
            },
        )
    }
}

/// Writes into `padded` the `c` planes of `input` (`[c, h, w]`), each bordered with zeros
/// into a `hq x wq` plane with the input at row and column `p`, followed by `beyond` zeros.
/// The buffer is reused: every value is written (the borders with zeros, in parallel), so it
/// is not cleared first — a one-thread memset of the whole copy.
pub(crate) fn pad_planes(
    input: &[f32],
    (c, h, w): (usize, usize, usize),
    p: usize,
    (hq, wq): (usize, usize),
    beyond: usize,
    padded: &mut Vec<f32>,
) {
    assert!(
        hq >= h + p && wq >= w + p,
        "a {h}x{w} plane at {p} fits in {hq}x{wq}"
    );
    let plane = hq * wq;
    let len = c * plane + beyond;
    padded.resize(len, 0.0);
    let (planes, tail) = padded[..len].split_at_mut(c * plane);
    tail.fill(0.0);
    planes
        .par_chunks_mut(plane)
        .zip(input.par_chunks(h * w))
        .for_each(|(dst, src)| {
            let (top, rest) = dst.split_at_mut(p * wq);
            let (rows, bottom) = rest.split_at_mut(h * wq);
            top.fill(0.0);
            bottom.fill(0.0);
            for (row, line) in rows.chunks_mut(wq).zip(src.chunks(w)) {
                row[..p].fill(0.0);
                row[p..p + w].copy_from_slice(line);
                row[p + w..].fill(0.0);
            }
        });
}

impl CustomOp1 for GemmConv<'_> {
    fn name(&self) -> &'static str {
        "gemm-conv2d"
    }

    /// A batch is convolved one image after another, each exactly as it would be alone (so
    /// a batch's results are bit-identical to single runs).
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c_in, h, w) = layout.shape().dims4()?;
        let c_out = self.bias.len();
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let depth = c_in * k * k;
        if self.matrix.len() != c_out * depth {
            return Err(candle_core::Error::Msg(format!(
                "gemm-conv2d: {} filter values for {c_out} x {depth}",
                self.matrix.len()
            )));
        }
        let input = f32_contiguous(storage, layout, self.name())?;
        let (ho, wo) = self.output_size(h, w);
        let geometry = Geometry {
            c_in,
            h,
            w,
            k,
            s,
            p,
            wo,
        };
        let image = c_in * h * w;
        let mut out = self.one(&input[..image], geometry, ho);
        for i in 1..n {
            out.extend_from_slice(&self.one(&input[i * image..(i + 1) * image], geometry, ho));
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c_out, ho, wo))))
    }
}

impl GemmConv<'_> {
    /// The convolution of one image (`[c_in, h, w]`): `[c_out, ho, wo]`.
    fn one(&self, input: &[f32], geometry: Geometry, ho: usize) -> Vec<f32> {
        let Geometry {
            c_in, k, s, p, wo, ..
        } = geometry;
        let c_out = self.bias.len();
        let depth = c_in * k * k;
        if s == 1 && k > 1 {
            return with_scratch(&PADDED, |padded| {
                self.stride_one(input, geometry, ho, padded)
            });
        }
        let columns = ho * wo;
        let block = Self::block_columns(depth, columns);
        // A 1x1, stride-1 convolution multiplies the input itself: no unfolding. Strided
        // ones unfold each block (gathering every s-th value).
        let direct = k == 1 && s == 1 && p == 0;
        let filters = Mat::rows(self.matrix, c_out, depth);
        blocked(
            (c_out, columns, block),
            (self.bias, self.silu),
            OutputColumns::Same,
            |first, width, unfolded, product| {
                if direct {
                    // Columns `first..first + width` of the `[c_in, columns]` input.
                    let view = Mat::new(&input[first..], (depth, width), (columns, 1));
                    matmul(product, width, filters, view, false);
                } else {
                    unfolded.resize(depth * width, 0.0);
                    vectorized(Unfold {
                        input,
                        g: geometry,
                        first,
                        width,
                        dst: unfolded,
                    });
                    matmul(
                        product,
                        width,
                        filters,
                        Mat::rows(unfolded, depth, width),
                        false,
                    );
                }
            },
        )
    }
}

/// A 1x1 convolution (with bias and optional SiLU) of the channel-wise concatenation of
/// `parts`, each a contiguous `[n, c_i, h, w]` tensor on the CPU, without concatenating
/// them: the product sums one filter slice times each part. With `upsampled`, a
/// `[n, c_0, h / 2, w / 2]` map whose nearest 2x upsampling comes first in the
/// concatenation: a 1x1 convolution commutes with nearest upsampling, so its filter slice
/// multiplies the small map (a quarter of the work, no upsampled copy) and each product
/// value is added to the four outputs it stands for. A batch is computed one image after
/// another.
pub fn pointwise_over_parts(
    matrix: &[f32],
    bias: &[f32],
    silu: bool,
    upsampled: Option<&candle_core::Tensor>,
    parts: &[candle_core::Tensor],
) -> Result<candle_core::Tensor> {
    let fail = |msg: String| candle_core::Error::Msg(format!("pointwise-over-parts: {msg}"));
    let (n, _, h, w) = parts
        .first()
        .ok_or_else(|| fail("no inputs".into()))?
        .dims4()?;
    let columns = h * w;
    let small = match upsampled {
        Some(_) if h % 2 != 0 || w % 2 != 0 => {
            return Err(fail(format!("cannot upsample to the odd size {h}x{w}")));
        }
        Some(t) => Some((t, (h / 2, w / 2))),
        None => None,
    };
    let guards: Vec<_> = small
        .into_iter()
        .chain(parts.iter().map(|t| (t, (h, w))))
        .map(|(t, size)| (t.storage_and_layout(), size))
        .collect();
    let mut inputs = Vec::with_capacity(guards.len());
    for ((storage, layout), (eh, ew)) in &guards {
        let (b, c, ph, pw) = layout.shape().dims4()?;
        let candle_core::Storage::Cpu(storage) = &**storage else {
            return Err(fail("needs the CPU".into()));
        };
        if b != n || (ph, pw) != (*eh, *ew) {
            return Err(fail(format!(
                "part [{b}, {c}, {ph}, {pw}] where [{n}, _, {eh}, {ew}] was expected"
            )));
        }
        inputs.push((f32_contiguous(storage, layout, "pointwise-over-parts")?, c));
    }
    let depth: usize = inputs.iter().map(|(_, c)| c).sum();
    let c_out = bias.len();
    if matrix.len() != c_out * depth {
        return Err(fail(format!(
            "{} filter values for {c_out} x {depth}",
            matrix.len()
        )));
    }
    // The small map (its filter slice is the matrix's first `skip` columns) and the
    // full-size parts with theirs.
    let (low, full) = match small {
        Some(_) => (Some(inputs[0]), &inputs[1..]),
        None => (None, &inputs[..]),
    };
    let skip = low.map_or(0, |(_, c)| c);
    let small_columns = columns / 4;
    let block = GemmConv::block_columns(depth, columns);
    let mut out = Vec::new();
    for item in 0..n {
        let reduced = low.map(|(input, c)| {
            let input = &input[item * c * small_columns..(item + 1) * c * small_columns];
            let filters = Mat::new(matrix, (c_out, c), (depth, 1));
            multiply_rows(filters, Mat::rows(input, c, small_columns))
        });
        let one = blocked(
            (c_out, columns, block),
            (bias, silu),
            OutputColumns::Same,
            |first, width, _, product| {
                let mut offset = skip;
                for (i, &(input, c)) in full.iter().enumerate() {
                    let input = &input[item * c * columns..(item + 1) * c * columns];
                    let filters = Mat::new(&matrix[offset..], (c_out, c), (depth, 1));
                    let view = Mat::new(&input[first..], (c, width), (columns, 1));
                    matmul(product, width, filters, view, i > 0);
                    offset += c;
                }
                if let Some(reduced) = &reduced {
                    for (dst, src) in product.chunks_mut(width).zip(reduced.chunks(small_columns)) {
                        add_upsampled(dst, src, first, w);
                    }
                }
            },
        );
        if item == 0 {
            out = one;
        } else {
            out.extend_from_slice(&one);
        }
    }
    drop(guards);
    candle_core::Tensor::from_vec(out, (n, c_out, h, w), &candle_core::Device::Cpu)
}

/// `filters x input` as a row-major `[filters.rows, input.cols]` matrix, its rows spread
/// over rayon's threads.
fn multiply_rows(filters: Mat<'_>, input: Mat<'_>) -> Vec<f32> {
    let (rows, cols) = (filters.shape().0, input.shape().1);
    let mut out = zeros(rows * cols);
    if out.is_empty() {
        return out;
    }
    let per_task = rows.div_ceil(2 * rayon::current_num_threads()).max(1);
    out.par_chunks_mut(per_task * cols)
        .enumerate()
        .for_each(|(task, dst)| {
            let first = task * per_task;
            matmul(
                dst,
                cols,
                filters.row_range(first, dst.len() / cols),
                input,
                false,
            );
        });
    out
}

/// Adds to `dst` (columns `first..first + dst.len()` of a `[2h, width]` map, row-major) the
/// nearest 2x upsampling of `src` (an `[h, width / 2]` map): column `j` of the big map is
/// row `j / width / 2`, column `j % width / 2` of the small one.
fn add_upsampled(dst: &mut [f32], src: &[f32], first: usize, width: usize) {
    let half = width / 2;
    let mut j = first;
    let mut rest = dst;
    while !rest.is_empty() {
        let (y, x) = (j / width, j % width);
        let len = (width - x).min(rest.len());
        let (run, tail) = rest.split_at_mut(len);
        let row = &src[(y / 2) * half..(y / 2 + 1) * half];
        vectorized(AddUpsampledRun {
            dst: run,
            src: row,
            x,
        });
        rest = tail;
        j += len;
    }
}

/// `dst[i] += src[(x + i) / 2]`: one run of a big map's row from column `x`.
struct AddUpsampledRun<'a> {
    dst: &'a mut [f32],
    src: &'a [f32],
    x: usize,
}

impl WithSimd for AddUpsampledRun<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self { dst, src, x } = self;
        let src = &src[x / 2..];
        // A run from an odd column starts with the second copy of its first value.
        let skip = (x % 2).min(dst.len());
        if skip == 1 {
            dst[0] += src[0];
        }
        let (dst, src) = (&mut dst[skip..], &src[skip..]);
        let len = dst.len();
        let mut pairs = dst.chunks_exact_mut(2);
        for (pair, &v) in (&mut pairs).zip(src) {
            pair[0] += v;
            pair[1] += v;
        }
        if let [last] = pairs.into_remainder() {
            *last += src[len / 2];
        }
    }
}

/// How the product's columns map to the output's.
#[derive(Clone, Copy)]
pub(crate) enum OutputColumns {
    /// One to one.
    Same,
    /// Product column `j` is output row `j / wp`, column `j % wp`; columns `wo..wp` of each
    /// row are dropped.
    Padded { wp: usize, wo: usize },
}

impl OutputColumns {
    /// The output column of product column `j` (or of the next kept one).
    fn output_index(self, j: usize) -> usize {
        match self {
            Self::Same => j,
            Self::Padded { wp, wo } => (j / wp) * wo + (j % wp).min(wo),
        }
    }

    /// Calls `f(product_offset, output_offset, len)` for each run of kept columns among
    /// product columns `first..first + width`, offsets relative to the block's first column.
    fn runs(self, first: usize, width: usize, mut f: impl FnMut(usize, usize, usize)) {
        match self {
            Self::Same => f(0, 0, width),
            Self::Padded { wp, wo } => {
                let base = self.output_index(first);
                let mut j = first;
                while j < first + width {
                    let row_end = (j / wp + 1) * wp;
                    let kept_end = (row_end - wp + wo).min(first + width);
                    if j < kept_end {
                        f(j - first, self.output_index(j) - base, kept_end - j);
                    }
                    j = row_end.min(first + width);
                }
            }
        }
    }
}

/// Runs `product_of(first, width, scratch, product)` for every block of `block` product
/// columns (out of `columns`) in parallel, then writes `act(product + bias)` into the
/// `[c_out, output columns]` output while the block is in cache.
///
/// The output is allocated uninitialised and every value written exactly once: zeroing it
/// first (another pass over memory, and another parallel region to wait on) cost 4–8 % of
/// the forward pass.
#[allow(unsafe_code)]
pub(crate) fn blocked(
    (c_out, columns, block): (usize, usize, usize),
    (bias, silu): (&[f32], bool),
    layout: OutputColumns,
    product_of: impl Fn(usize, usize, &mut Vec<f32>, &mut [f32]) + Sync,
) -> Vec<f32> {
    assert_eq!(bias.len(), c_out, "one bias per output channel");
    let out_columns = layout.output_index(columns);
    let total = c_out * out_columns;
    let mut out: Vec<f32> = Vec::with_capacity(total);
    // Cut every output row into the blocks' pieces, then gather the i-th piece of every row:
    // the pieces of one block are disjoint from every other block's, and together the
    // pieces are exactly the `total` values.
    let blocks = columns.div_ceil(block);
    let mut pieces: Vec<Vec<&mut [MaybeUninit<f32>]>> =
        (0..blocks).map(|_| Vec::with_capacity(c_out)).collect();
    for mut row in out.spare_capacity_mut()[..total].chunks_mut(out_columns) {
        for (i, list) in pieces.iter_mut().enumerate() {
            let len = layout.output_index(((i + 1) * block).min(columns))
                - layout.output_index(i * block);
            let (piece, rest) = row.split_at_mut(len);
            list.push(piece);
            row = rest;
        }
        assert!(row.is_empty(), "the blocks' pieces cover every output row");
    }
    pieces
        .into_par_iter()
        .enumerate()
        .for_each(|(index, rows)| {
            let first = index * block;
            let width = block.min(columns - first);
            with_scratch(&SCRATCH, |(unfolded, product)| {
                product.resize(c_out * width, 0.0);
                product_of(first, width, unfolded, product);
                for ((piece, src), &b) in rows.into_iter().zip(product.chunks(width)).zip(bias) {
                    // The kept runs follow each other in the output row: each takes the
                    // front of what is left of the piece, and nothing may be left.
                    let mut unwritten = piece;
                    layout.runs(first, width, |from, _, len| {
                        let (dst, rest) = std::mem::take(&mut unwritten).split_at_mut(len);
                        vectorized(BiasActCopy {
                            src: &src[from..from + len],
                            bias: b,
                            silu,
                            dst,
                        });
                        unwritten = rest;
                    });
                    assert!(unwritten.is_empty(), "every output value is written");
                }
            });
        });
    // SAFETY: the pieces partition the first `total` values of the allocation (split from
    // its rows, every row checked to be used up), there are `c_out` of them per block
    // (`rows`, `product` rows and `bias` all have `c_out` entries), each is written front
    // to back by runs that `BiasActCopy` fills completely (it checks that source and
    // destination have one length), and the check after the runs panics if any value of a
    // piece is left; a panic in a task reaches this thread before this line.
    unsafe { out.set_len(total) };
    out
}

/// Writes rows `c * k * k + ky * k + kx` of the unfolded image, for output columns
/// `first..first + width`, into `dst` (`[depth, width]`, every value written).
struct Unfold<'a> {
    input: &'a [f32],
    g: Geometry,
    first: usize,
    width: usize,
    dst: &'a mut [f32],
}

impl WithSimd for Unfold<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self {
            input,
            g,
            first,
            width,
            dst,
        } = self;
        let Geometry {
            c_in,
            h,
            w,
            k,
            s,
            p,
            wo,
        } = g;
        let last = first + width;
        for (row_index, row) in dst.chunks_mut(width).enumerate().take(c_in * k * k) {
            let ch = row_index / (k * k);
            let (ky, kx) = ((row_index / k) % k, row_index % k);
            let plane = &input[ch * h * w..(ch + 1) * h * w];
            let mut j = first;
            while j < last {
                let (oy, ox0) = (j / wo, j % wo);
                let ox1 = wo.min(ox0 + (last - j));
                let out = &mut row[j - first..j - first + (ox1 - ox0)];
                match (oy * s + ky).checked_sub(p).filter(|&iy| iy < h) {
                    None => out.fill(0.0),
                    Some(iy) => {
                        let src = &plane[iy * w..(iy + 1) * w];
                        // Output columns whose input column `ox * s + kx - p` is inside.
                        let lo = p.saturating_sub(kx).div_ceil(s).clamp(ox0, ox1);
                        let hi = (w + p).saturating_sub(kx).div_ceil(s).clamp(lo, ox1);
                        out[..lo - ox0].fill(0.0);
                        out[hi - ox0..].fill(0.0);
                        let inside = &mut out[lo - ox0..hi - ox0];
                        if inside.is_empty() {
                            // The whole segment lies in the padding.
                        } else if s == 1 {
                            inside.copy_from_slice(&src[lo + kx - p..hi + kx - p]);
                        } else {
                            gather_strided(inside, &src[lo * s + kx - p..], s);
                        }
                    }
                }
                j += ox1 - ox0;
            }
        }
    }
}

/// `dst[i] = src[i * s]`. Reading whole groups of `s` values (rather than stepping over
/// them) lets the compiler vectorise the gather with lane shuffles.
#[inline(always)]
fn gather_strided(dst: &mut [f32], src: &[f32], s: usize) {
    // Whole groups of `s` exist for every output but perhaps the last.
    let whole = dst.len().min(src.len() / s);
    let (head, tail) = dst.split_at_mut(whole);
    if s == 2 {
        head.iter_mut()
            .zip(src.chunks_exact(2))
            .for_each(|(o, pair)| *o = pair[0]);
    } else {
        head.iter_mut()
            .zip(src.chunks_exact(s))
            .for_each(|(o, group)| *o = group[0]);
    }
    for (i, o) in tail.iter_mut().enumerate() {
        *o = src[(whole + i) * s];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::max_diff;
    use candle_core::{Device, Tensor};

    #[test]
    fn blocked_convolution_matches_candles_for_every_shape_the_model_uses() {
        let dev = Device::Cpu;
        // (c_in, c_out, h, w, kernel, stride, padding): odd sizes so blocks end mid-row.
        let cases = [
            (3, 5, 11, 8, 3, 1, 1),
            (3, 5, 11, 8, 3, 2, 1),
            (4, 6, 37, 29, 1, 1, 0),
            (2, 3, 20, 21, 7, 1, 3),
            (70, 9, 13, 40, 3, 2, 1),
            (16, 8, 64, 64, 3, 1, 1),
            // Strided ones: even and odd sizes, no padding, a 1x1 kernel, a stride of three.
            (5, 4, 10, 12, 3, 2, 1),
            (6, 5, 8, 9, 3, 2, 0),
            (3, 4, 9, 7, 1, 2, 0),
            (4, 3, 17, 15, 5, 3, 2),
            (32, 16, 40, 40, 3, 2, 1),
        ];
        for (c_in, c_out, h, w, k, s, p) in cases {
            let x = Tensor::randn(0f32, 1.0, (1, c_in, h, w), &dev).unwrap();
            let weight = Tensor::randn(0f32, 1.0, (c_out, c_in, k, k), &dev).unwrap();
            let bias: Vec<f32> = (0..c_out).map(|i| i as f32 * 0.25 - 1.0).collect();
            let matrix = weight.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for act in [false, true] {
                let op = GemmConv {
                    matrix: &matrix,
                    bias: &bias,
                    kernel: k,
                    stride: s,
                    padding: p,
                    silu: act,
                };

                let ours = x.apply_op1_no_bwd(&op).unwrap();

                let b = Tensor::new(bias.as_slice(), &dev)
                    .unwrap()
                    .reshape((1, c_out, 1, 1))
                    .unwrap();
                let theirs = x
                    .conv2d(&weight, p, s, 1, 1)
                    .unwrap()
                    .broadcast_add(&b)
                    .unwrap();
                let theirs = if act { theirs.silu().unwrap() } else { theirs };
                assert_eq!(ours.dims(), theirs.dims());
                let diff = max_diff(&ours, &theirs);
                let case = (c_in, c_out, h, w, k, s, p, act);
                assert!(diff < 1e-4, "{case:?}: {diff}");
            }
        }
    }

    #[test]
    fn padded_product_columns_map_to_the_kept_output_columns() {
        // Rows of 5 product columns, of which the first 3 are kept.
        let layout = OutputColumns::Padded { wp: 5, wo: 3 };
        assert_eq!(layout.output_index(0), 0);
        assert_eq!(layout.output_index(4), 3);
        assert_eq!(layout.output_index(5), 3);
        assert_eq!(layout.output_index(7), 5);
        assert_eq!(layout.output_index(15), 9);
        // A block from the middle of one row's dropped columns into the next row's kept ones.
        let mut runs = Vec::new();
        layout.runs(4, 8, |from, to, len| runs.push((from, to, len)));
        assert_eq!(runs, vec![(1, 0, 3), (6, 3, 2)]);
        let mut runs = Vec::new();
        OutputColumns::Same.runs(7, 9, |from, to, len| runs.push((from, to, len)));
        assert_eq!(runs, vec![(0, 0, 9)]);
    }

    #[test]
    fn a_strided_gather_takes_every_sth_value_up_to_the_sources_end() {
        let src: Vec<f32> = (0..11).map(|v| v as f32).collect();
        for s in [2, 3] {
            // Outputs whose last group is whole, cut short, or a single value.
            for len in 1..=src.len().div_ceil(s) {
                let mut dst = vec![-1f32; len];
                gather_strided(&mut dst, &src, s);
                let expected: Vec<f32> = (0..len).map(|i| (i * s) as f32).collect();
                assert_eq!(dst, expected, "stride {s}, {len} values");
            }
        }
    }

    #[test]
    fn an_upsampled_part_is_multiplied_small_and_equals_the_upsampled_copy() {
        let dev = Device::Cpu;
        // Odd small sizes, so rows of the big map end mid-block and blocks start on odd
        // columns; two images, so the batch offsets are exercised too.
        for (h, w) in [(6, 10), (14, 22), (40, 40)] {
            let small = Tensor::randn(0f32, 1.0, (2, 5, h / 2, w / 2), &dev).unwrap();
            let rest = Tensor::randn(0f32, 1.0, (2, 3, h, w), &dev).unwrap();
            let weight = Tensor::randn(0f32, 1.0, (7, 8, 1, 1), &dev).unwrap();
            let matrix = weight.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let bias: Vec<f32> = (0..7).map(|i| i as f32 * 0.5 - 1.5).collect();

            let ours = pointwise_over_parts(
                &matrix,
                &bias,
                true,
                Some(&small),
                std::slice::from_ref(&rest),
            )
            .unwrap();

            let big = small.upsample_nearest2d(h, w).unwrap();
            let theirs = pointwise_over_parts(&matrix, &bias, true, None, &[big, rest]).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let diff = max_diff(&ours, &theirs);
            assert!(diff < 1e-5, "{h}x{w}: {diff}");
        }
    }

    #[test]
    fn an_upsampled_part_needs_an_even_size_that_matches() {
        let dev = Device::Cpu;
        let matrix = vec![1f32; 2 * 4];
        let bias = [0f32; 2];
        let small = Tensor::zeros((1, 2, 3, 3), candle_core::DType::F32, &dev).unwrap();
        for size in [(7, 6), (6, 8)] {
            let rest =
                Tensor::zeros((1, 2, size.0, size.1), candle_core::DType::F32, &dev).unwrap();
            assert!(pointwise_over_parts(&matrix, &bias, false, Some(&small), &[rest]).is_err());
        }
    }

    #[test]
    fn one_upsampled_run_adds_each_small_value_to_two_columns() {
        let src: Vec<f32> = (0..5).map(|v| 10.0 * v as f32).collect();
        // Runs from even and odd columns, of even and odd lengths.
        for x in 0..10 {
            for len in 0..=(10 - x) {
                let mut dst = vec![1f32; len];
                vectorized(AddUpsampledRun {
                    dst: &mut dst,
                    src: &src,
                    x,
                });
                let expected: Vec<f32> = (x..x + len).map(|c| 1.0 + src[c / 2]).collect();
                assert_eq!(dst, expected, "from column {x}, {len} values");
            }
        }
    }

    #[test]
    fn a_pointwise_convolution_over_parts_equals_one_over_their_concatenation() {
        let dev = Device::Cpu;
        let parts: Vec<Tensor> = [3, 5, 2]
            .iter()
            .map(|&c| Tensor::randn(0f32, 1.0, (1, c, 9, 13), &dev).unwrap())
            .collect();
        let weight = Tensor::randn(0f32, 1.0, (4, 10, 1, 1), &dev).unwrap();
        let matrix = weight.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let bias = [0.5f32, -0.5, 1.0, 0.0];

        let ours = pointwise_over_parts(&matrix, &bias, true, None, &parts).unwrap();

        let whole = Tensor::cat(&parts, 1).unwrap();
        let theirs = whole
            .apply_op1_no_bwd(&GemmConv {
                matrix: &matrix,
                bias: &bias,
                kernel: 1,
                stride: 1,
                padding: 0,
                silu: true,
            })
            .unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        let diff = max_diff(&ours, &theirs);
        assert!(diff < 1e-5, "{diff}");
    }
}
