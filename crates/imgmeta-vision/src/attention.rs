//! Area attention on the CPU straight from the qkv projection's channel-major output, one
//! (area, head) pair per task: two strided matrix products around an in-cache softmax.
//!
//! The generic path (kept for other devices) reshapes and transposes the projection into
//! token-major tensors and back, six full copies per block; here the products read the
//! queries, keys and values where the projection wrote them.

use crate::kernels::{
    ColumnSoftmax, ScaleColumns, f32_contiguous, vectorized, with_scratch, zeros,
};
use crate::matmul::{Mat, matmul};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// Per-thread buffers for one head's attention matrix, its output and its rows'
    /// softmax scales, reused.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>, Vec<f32>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Takes the `[n, 3c, h, w]` qkv projection (each head's 32 query, 32 key and 32 value
/// channels adjacent, queries already scaled) and returns `[n, 2c, h, w]`: the attention
/// output in channels `0..c`, the values as an image in channels `c..2c`; a batch one image
/// after another.
pub struct AreaAttentionCpu {
    pub area: usize,
    pub head_dim: usize,
}

impl CustomOp1 for AreaAttentionCpu {
    fn name(&self) -> &'static str {
        "area-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c3, h, w) = layout.shape().dims4()?;
        let d = self.head_dim;
        let tokens = h * w;
        if c3 % (3 * d) != 0 || tokens % self.area != 0 {
            return Err(candle_core::Error::Msg(format!(
                "area-attention: batch {b}, {c3} channels, {tokens} tokens in {} areas",
                self.area
            )));
        }
        let qkv = f32_contiguous(storage, layout, self.name())?;
        let image = c3 * tokens;
        let mut out = self.one(&qkv[..image], c3, tokens);
        for i in 1..b {
            out.extend_from_slice(&self.one(&qkv[i * image..(i + 1) * image], c3, tokens));
        }
        Ok((CpuStorage::F32(out), Shape::from((b, 2 * c3 / 3, h, w))))
    }
}

impl AreaAttentionCpu {
    /// One image's `[2c, tokens]` from its `[3c, tokens]` projection.
    fn one(&self, qkv: &[f32], c3: usize, tokens: usize) -> Vec<f32> {
        let d = self.head_dim;
        let heads = c3 / (3 * d);
        let c = heads * d;
        let n = tokens / self.area;

        let mut out = zeros(2 * c * tokens);
        let (attended, values) = out.split_at_mut(c * tokens);
        // The values as an image: head `hd`'s channels `64..96` become channels `hd * 32..`.
        values
            .par_chunks_mut(tokens)
            .enumerate()
            .for_each(|(ch, row)| {
                let src = (ch / d) * 3 * d + 2 * d + ch % d;
                row.copy_from_slice(&qkv[src * tokens..(src + 1) * tokens]);
            });
        // One task per (head, area): rows `hd * d..` and columns `a * n..` of the output.
        let mut tasks: Vec<Vec<&mut [f32]>> = (0..heads * self.area)
            .map(|_| Vec::with_capacity(d))
            .collect();
        for (ch, row) in attended.chunks_mut(tokens).enumerate() {
            for (a, piece) in row.chunks_mut(n).enumerate() {
                tasks[(ch / d) * self.area + a].push(piece);
            }
        }
        tasks.into_par_iter().enumerate().for_each(|(task, rows)| {
            let (hd, a) = (task / self.area, task % self.area);
            let at = |part: usize| &qkv[(hd * 3 * d + part * d) * tokens + a * n..];
            let q = Mat::new(at(0), (d, n), (tokens, 1));
            let k = Mat::new(at(1), (d, n), (tokens, 1));
            let v = Mat::new(at(2), (d, n), (tokens, 1));
            with_scratch(&SCRATCH, |(scores, product, scales)| {
                scores.resize(n * n, 0.0);
                product.resize(d * n, 0.0);
                scales.resize(n, 0.0);
                // The scores transposed, `scores[j][i] = k_j . q_i`, then each column's
                // softmax numerators (the normalisation is applied to the product's columns
                // below: d x n values instead of n x n).
                matmul(scores, n, k.t(), q, false);
                vectorized(ColumnSoftmax {
                    values: scores,
                    scales,
                });
                // out[:, i] = sum_j softmax(q_i . k)[j] v_j, i.e. v x scores (transposed
                // already), scaled by column, channel-major. `gemm` reads the transposed
                // scores as they are; with the scores untransposed it repacked the n x n
                // matrix for every head and area (this product ran at 67 GFLOP/s per
                // thread, the model's slowest large one).
                matmul(product, n, v, Mat::rows(scores, n, n), false);
                for (dst, src) in rows.into_iter().zip(product.chunks(n)) {
                    vectorized(ScaleColumns {
                        src,
                        scale: scales,
                        dst,
                    });
                }
            });
        });
        out
    }
}
