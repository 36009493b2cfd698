//! Stride-1 3x3 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 block of outputs
//! ("tile") comes from a 4x4 patch of the input, and the 9 multiply-adds per output, input
//! channel and filter of a direct convolution become 4.
//!
//! The filters are transformed once (`U = G g Gᵀ`, 16 values per filter). Per block of
//! tile rows, on its own rayon task: every 4x4 input patch is transformed (`V = Bᵀ d B`,
//! additions only) into 16 `[c_in, tiles]` matrices, the 16 products `U_ξ V_ξ` run through
//! `gemm`, and each tile's 16 products become its 2x2 outputs (`Y = Aᵀ M A`, additions
//! only); the bias and SiLU are applied by the shared blocked epilogue of `gemm_conv`.
//! The transforms' coefficients are 0, ±1 and ±½, so they add no rounding beyond the
//! reordered sums (measured against candle's `conv2d` in the tests below).

use crate::gemm_conv::{OutputColumns, PADDED, blocked, pad_planes};
use crate::kernels::{f32_contiguous, output_size, vectorized, with_scratch};
use crate::matmul::{Mat, matmul};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use pulp::{Simd, WithSimd};

/// Transformed values (`V` and `M`) per block: about 1 MiB, within the L2 cache. (Measured
/// on the model's layers: 512 KiB and 2 MiB were slower, as were blocks of 32 or 64 tiles at
/// least; the products are short and wide, so fewer, longer ones run better.)
const BLOCK_VALUES: usize = 256 * 1024;
/// Tiles per block at least, so the products stay efficient on small maps.
const MIN_TILES: usize = 128;

/// A dense 3x3 filter bank transformed for F(2x2, 3x3): 16 row-major `[c_out, c_in]`
/// matrices, one per position ξ of the 4x4 transformed tile.
pub struct WinogradFilters {
    values: Vec<f32>,
    c_out: usize,
    c_in: usize,
}

impl WinogradFilters {
    /// From the filters as a row-major `[c_out, c_in * 3 * 3]` matrix (the layout of an
    /// `[c_out, c_in, 3, 3]` weight). Panics if the length does not match.
    pub fn new(matrix: &[f32], c_out: usize, c_in: usize) -> Self {
        assert_eq!(matrix.len(), c_out * c_in * 9, "3x3 filters");
        let mut values = vec![0f32; 16 * c_out * c_in];
        for (index, g) in matrix.chunks_exact(9).enumerate() {
            // G g Gᵀ with G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]].
            let mut gg = [[0f32; 3]; 4];
            for col in 0..3 {
                let (a, b, c) = (g[col], g[3 + col], g[6 + col]);
                gg[0][col] = a;
                gg[1][col] = 0.5 * (a + b + c);
                gg[2][col] = 0.5 * (a - b + c);
                gg[3][col] = c;
            }
            for (row, r) in gg.iter().enumerate() {
                let u = [
                    r[0],
                    0.5 * (r[0] + r[1] + r[2]),
                    0.5 * (r[0] - r[1] + r[2]),
                    r[2],
                ];
                for (col, &v) in u.iter().enumerate() {
                    values[(row * 4 + col) * c_out * c_in + index] = v;
                }
            }
        }
        Self {
            values,
            c_out,
            c_in,
        }
    }

    fn position(&self, xi: usize) -> Mat<'_> {
        let size = self.c_out * self.c_in;
        Mat::rows(
            &self.values[xi * size..(xi + 1) * size],
            self.c_out,
            self.c_in,
        )
    }
}

/// A stride-1 3x3 convolution with bias and optional SiLU, computed with F(2x2, 3x3).
pub struct Winograd<'a> {
    pub filters: &'a WinogradFilters,
    pub bias: &'a [f32],
    pub padding: usize,
    pub silu: bool,
}

/// Where one image's tiles lie.
#[derive(Clone, Copy)]
struct Tiling {
    c_in: usize,
    c_out: usize,
    /// Output width.
    wo: usize,
    /// Tiles per row.
    across: usize,
    /// The zero-bordered input's plane: `2 * rows of tiles + 2` rows of `wq` values.
    plane: usize,
    wq: usize,
}

impl CustomOp1 for Winograd<'_> {
    fn name(&self) -> &'static str {
        "winograd-conv2d"
    }

    /// A batch is convolved one image after another, each exactly as it would be alone.
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c_in, h, w) = layout.shape().dims4()?;
        let (c_out, p) = (self.filters.c_out, self.padding);
        if c_in != self.filters.c_in || self.bias.len() != c_out {
            return Err(candle_core::Error::Msg(format!(
                "winograd-conv2d: {c_in} input channels for [{c_out}, {}] filters, {} biases",
                self.filters.c_in,
                self.bias.len()
            )));
        }
        if h + 2 * p < 3 || w + 2 * p < 3 {
            return Err(candle_core::Error::Msg(format!(
                "winograd-conv2d: a {h}x{w} input padded by {p} is smaller than the filter"
            )));
        }
        let input = f32_contiguous(storage, layout, self.name())?;
        let (ho, wo) = output_size(h, w, 3, 1, p);
        let image = c_in * h * w;
        let one = |i: usize| {
            with_scratch(&PADDED, |padded| {
                self.one(&input[i * image..(i + 1) * image], (h, w), (ho, wo), padded)
            })
        };
        let mut out = one(0);
        for i in 1..n {
            out.extend_from_slice(&one(i));
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c_out, ho, wo))))
    }
}

impl Winograd<'_> {
    /// The convolution of one image (`[c_in, h, w]`): `[c_out, ho, wo]`.
    fn one(
        &self,
        input: &[f32],
        (h, w): (usize, usize),
        (ho, wo): (usize, usize),
        padded: &mut Vec<f32>,
    ) -> Vec<f32> {
        let (c_in, c_out, p) = (self.filters.c_in, self.filters.c_out, self.padding);
        let (down, across) = (ho.div_ceil(2), wo.div_ceil(2));
        // Every tile reads a whole 4x4 patch, so the copy is bordered up to whole tiles.
        let (hq, wq) = (2 * down + 2, 2 * across + 2);
        pad_planes(input, (c_in, h, w), p, (hq, wq), 0, padded);
        let t = Tiling {
            c_in,
            c_out,
            wo,
            across,
            plane: hq * wq,
            wq,
        };
        let rows = Self::tile_rows_per_block(t, down);
        let padded = &padded[..];
        blocked(
            (c_out, ho * wo, 2 * rows * wo),
            (self.bias, self.silu),
            OutputColumns::Same,
            |first, width, scratch, product| {
                // Whole output rows: blocks start on even rows and end on the last row or
                // on an even one.
                let (row, out_rows) = (first / wo, width / wo);
                let tiles = out_rows.div_ceil(2) * across;
                scratch.resize(16 * (c_in + c_out) * tiles, 0.0);
                let (v, m) = scratch.split_at_mut(16 * c_in * tiles);
                vectorized(InputTransform {
                    padded,
                    t,
                    first_tile_row: row / 2,
                    tiles,
                    v,
                });
                for xi in 0..16 {
                    matmul(
                        &mut m[xi * c_out * tiles..(xi + 1) * c_out * tiles],
                        tiles,
                        self.filters.position(xi),
                        Mat::rows(&v[xi * c_in * tiles..(xi + 1) * c_in * tiles], c_in, tiles),
                        false,
                    );
                }
                vectorized(OutputTransform {
                    m,
                    t,
                    out_rows,
                    tiles,
                    product,
                });
            },
        )
    }

    /// Rows of tiles per block: the block's transformed values stay within the cache, and
    /// every thread gets a few blocks when the map is large enough.
    fn tile_rows_per_block(t: Tiling, down: usize) -> usize {
        let per_row = 16 * (t.c_in + t.c_out) * t.across;
        let for_cache = (BLOCK_VALUES / per_row.max(1)).max(MIN_TILES.div_ceil(t.across));
        let for_balance = down.div_ceil(4 * rayon::current_num_threads());
        for_cache.min(for_balance).clamp(1, down)
    }
}

/// `V = Bᵀ d B` for every channel and every tile of rows `first_tile_row..` (`tiles` of
/// them, whole rows), into 16 `[c_in, tiles]` matrices, with
/// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
struct InputTransform<'a> {
    padded: &'a [f32],
    t: Tiling,
    first_tile_row: usize,
    tiles: usize,
    v: &'a mut [f32],
}

impl WithSimd for InputTransform<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self {
            padded,
            t,
            first_tile_row,
            tiles,
            v,
        } = self;
        let n = t.across;
        // The row transform of the patch rows: `e[r][j][x]` for patch row r, transformed
        // column j and tile x, from the rows' even and odd values.
        let mut e = vec![0f32; 16 * n];
        let (mut even, mut odd) = (vec![0f32; n + 1], vec![0f32; n + 1]);
        for c in 0..t.c_in {
            let plane = &padded[c * t.plane..(c + 1) * t.plane];
            for r in 0..tiles / n {
                let top = 2 * (first_tile_row + r);
                for pr in 0..4 {
                    let line = &plane[(top + pr) * t.wq..(top + pr + 1) * t.wq];
                    for ((ev, od), pair) in even.iter_mut().zip(&mut odd).zip(line.chunks_exact(2))
                    {
                        *ev = pair[0];
                        *od = pair[1];
                    }
                    let (e0, rest) = e[pr * 4 * n..(pr + 1) * 4 * n].split_at_mut(n);
                    let (e1, rest) = rest.split_at_mut(n);
                    let (e2, e3) = rest.split_at_mut(n);
                    for x in 0..n {
                        let (a, b, c2, d) = (even[x], odd[x], even[x + 1], odd[x + 1]);
                        e0[x] = a - c2;
                        e1[x] = b + c2;
                        e2[x] = c2 - b;
                        e3[x] = b - d;
                    }
                }
                // The column transform combines the four patch rows.
                let at = c * tiles + r * n;
                let stride = t.c_in * tiles;
                for j in 0..4 {
                    let row = |pr: usize| &e[(pr * 4 + j) * n..(pr * 4 + j + 1) * n];
                    let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                    let start = |i: usize| (i * 4 + j) * stride + at;
                    let dst = &mut v[start(0)..start(0) + n];
                    for (o, (a, c2)) in dst.iter_mut().zip(r0.iter().zip(r2)) {
                        *o = a - c2;
                    }
                    let dst = &mut v[start(1)..start(1) + n];
                    for (o, (b, c2)) in dst.iter_mut().zip(r1.iter().zip(r2)) {
                        *o = b + c2;
                    }
                    let dst = &mut v[start(2)..start(2) + n];
                    for (o, (b, c2)) in dst.iter_mut().zip(r1.iter().zip(r2)) {
                        *o = c2 - b;
                    }
                    let dst = &mut v[start(3)..start(3) + n];
                    for (o, (b, d)) in dst.iter_mut().zip(r1.iter().zip(r3)) {
                        *o = b - d;
                    }
                }
            }
        }
    }
}

/// `Y = Aᵀ M A` for every output channel and tile, with `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`,
/// written into the block's `[c_out, out_rows * wo]` product (before bias and activation);
/// a tile's outputs beyond the map's last row or column are dropped.
struct OutputTransform<'a> {
    m: &'a [f32],
    t: Tiling,
    out_rows: usize,
    tiles: usize,
    product: &'a mut [f32],
}

impl WithSimd for OutputTransform<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self {
            m,
            t,
            out_rows,
            tiles,
            product,
        } = self;
        let (n, wo) = (t.across, t.wo);
        let width = out_rows * wo;
        let stride = t.c_out * tiles;
        // Per row of tiles: `Aᵀ M` as the sums `s[j]` and differences `d[j]` over i for each
        // column j, then `· A` over j: the two output rows as even and odd columns.
        let mut sums = vec![0f32; 8 * n];
        let mut y = vec![0f32; 4 * n];
        for (k, dst) in product.chunks_exact_mut(width).enumerate().take(t.c_out) {
            for r in 0..tiles / n {
                let at = k * tiles + r * n;
                let (s, d) = sums.split_at_mut(4 * n);
                for j in 0..4 {
                    let mj = |i: usize| &m[(i * 4 + j) * stride + at..][..n];
                    let (m0, m1, m2, m3) = (mj(0), mj(1), mj(2), mj(3));
                    let (sj, dj) = (&mut s[j * n..(j + 1) * n], &mut d[j * n..(j + 1) * n]);
                    for x in 0..n {
                        sj[x] = m0[x] + m1[x] + m2[x];
                        dj[x] = m1[x] - m2[x] - m3[x];
                    }
                }
                let (y0, rest) = y.split_at_mut(n);
                let (y1, rest) = rest.split_at_mut(n);
                let (y2, y3) = rest.split_at_mut(n);
                for (from, (ye, yo)) in [(&*s, (&mut *y0, &mut *y1)), (&*d, (&mut *y2, &mut *y3))] {
                    let (a, b, c, e) = (
                        &from[..n],
                        &from[n..2 * n],
                        &from[2 * n..3 * n],
                        &from[3 * n..],
                    );
                    for x in 0..n {
                        ye[x] = a[x] + b[x] + c[x];
                        yo[x] = b[x] - c[x] - e[x];
                    }
                }
                for (i, (ye, yo)) in [(&*y0, &*y1), (&*y2, &*y3)].into_iter().enumerate() {
                    let out_row = 2 * r + i;
                    if out_row >= out_rows {
                        break;
                    }
                    let line = &mut dst[out_row * wo..(out_row + 1) * wo];
                    let mut pairs = line.chunks_exact_mut(2);
                    for ((pair, &a), &b) in (&mut pairs).zip(ye).zip(yo) {
                        pair[0] = a;
                        pair[1] = b;
                    }
                    if let [last] = pairs.into_remainder() {
                        *last = ye[n - 1];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::max_diff;
    use candle_core::{Device, Tensor};

    #[test]
    fn winograd_convolution_matches_candles_for_odd_even_small_and_large_maps() {
        let dev = Device::Cpu;
        // (c_in, c_out, h, w, padding): odd and even sizes (tiles cut by the map's edge),
        // maps smaller than one block and larger than several, no padding, one-row maps.
        let cases = [
            (3, 5, 11, 8, 1),
            (16, 16, 64, 64, 1),
            (7, 9, 13, 40, 1),
            (32, 24, 33, 17, 1),
            (5, 4, 9, 10, 0),
            (4, 3, 1, 1, 1),
            (2, 3, 1, 7, 1),
            (64, 64, 20, 20, 1),
        ];
        for (c_in, c_out, h, w, p) in cases {
            let x = Tensor::randn(0f32, 1.0, (2, c_in, h, w), &dev).unwrap();
            let weight = Tensor::randn(0f32, 1.0, (c_out, c_in, 3, 3), &dev).unwrap();
            let bias: Vec<f32> = (0..c_out).map(|i| i as f32 * 0.25 - 1.0).collect();
            let matrix = weight.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let filters = WinogradFilters::new(&matrix, c_out, c_in);
            for silu in [false, true] {
                let op = Winograd {
                    filters: &filters,
                    bias: &bias,
                    padding: p,
                    silu,
                };

                let ours = x.apply_op1_no_bwd(&op).unwrap();

                let b = Tensor::new(bias.as_slice(), &dev)
                    .unwrap()
                    .reshape((1, c_out, 1, 1))
                    .unwrap();
                let theirs = x
                    .conv2d(&weight, p, 1, 1, 1)
                    .unwrap()
                    .broadcast_add(&b)
                    .unwrap();
                let theirs = if silu { theirs.silu().unwrap() } else { theirs };
                assert_eq!(ours.dims(), theirs.dims());
                let diff = max_diff(&ours, &theirs);
                // Sums of c_in * 9 unit-variance products: values up to ~4 * sqrt(9 c_in).
                let case = (c_in, c_out, h, w, p, silu);
                assert!(diff < 2e-4 * (c_in as f32).sqrt(), "{case:?}: {diff}");
            }
        }
    }

    #[test]
    fn a_mismatched_input_or_a_map_smaller_than_the_filter_is_an_error() {
        let dev = Device::Cpu;
        let filters = WinogradFilters::new(&[1f32; 2 * 3 * 9], 2, 3);
        let bias = [0f32; 2];
        let op = |padding| Winograd {
            filters: &filters,
            bias: &bias,
            padding,
            silu: false,
        };
        let wrong_channels = Tensor::zeros((1, 4, 5, 5), candle_core::DType::F32, &dev).unwrap();
        assert!(wrong_channels.apply_op1_no_bwd(&op(1)).is_err());
        let tiny = Tensor::zeros((1, 3, 2, 5), candle_core::DType::F32, &dev).unwrap();
        assert!(tiny.apply_op1_no_bwd(&op(0)).is_err());
    }
}
