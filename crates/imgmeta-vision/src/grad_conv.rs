//! A convolution with a gradient, for the CPU: the forward pass is the fast kernel (without
//! its fused SiLU, which the caller applies as a candle op that has a gradient), and the
//! backward pass computes only the gradient of the input, again with the fast kernels.
//!
//! Why not candle's own `conv2d` backward: it also computes the gradient of the filters
//! (a second convolution as large as the first) for every layer, which DeepDream never uses,
//! and runs grouped convolutions one group at a time. The gradient of a convolution's input
//! is itself a convolution: of the output gradient (spread out with zeros between its values
//! for a strided convolution) with the filters flipped in space and their input and output
//! channels swapped.

use crate::gemm_conv::GemmConv;
use crate::kernels::{Depthwise, f32_contiguous};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use std::sync::Arc;

/// The filters of one convolution, both ways round, shared by every use of the layer.
pub struct GradFilters {
    /// Forward filters: `[c_out, c_in * k * k]` (dense) or `[c, k * k]` (depthwise).
    forward: Vec<f32>,
    /// Backward filters: `[c_in, c_out * k * k]` flipped (dense) or `[c, k * k]` flipped.
    backward: Vec<f32>,
    bias: Vec<f32>,
    /// Zeros, one per input channel: the backward convolution has no bias.
    no_bias: Vec<f32>,
    c_out: usize,
    c_in: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    depthwise: bool,
}

impl GradFilters {
    /// From a `[c_out, c_in / groups, k, k]` weight (values row-major) and its bias;
    /// `depthwise` when every output channel has its own single input channel.
    pub fn new(
        weight: Vec<f32>,
        bias: Vec<f32>,
        (c_out, c_in, kernel): (usize, usize, usize),
        stride: usize,
        padding: usize,
        depthwise: bool,
    ) -> Self {
        let k2 = kernel * kernel;
        let backward = if depthwise {
            weight
                .chunks(k2)
                .flat_map(|taps| taps.iter().rev().copied())
                .collect()
        } else {
            // backward[ci][co][t] = weight[co][ci][k2 - 1 - t]: flipped in both axes.
            let mut b = vec![0f32; weight.len()];
            for co in 0..c_out {
                for ci in 0..c_in {
                    for t in 0..k2 {
                        b[(ci * c_out + co) * k2 + t] = weight[(co * c_in + ci) * k2 + k2 - 1 - t];
                    }
                }
            }
            b
        };
        Self {
            forward: weight,
            backward,
            bias,
            // A depthwise backward has as many outputs as the forward has.
            no_bias: vec![0.0; if depthwise { c_out } else { c_in }],
            c_out,
            c_in,
            kernel,
            stride,
            padding,
            depthwise,
        }
    }

    /// `conv(x) + bias`, recorded so that its input gets a gradient.
    pub fn apply(self: &Arc<Self>, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1(GradConv(self.clone()))
    }

    fn run(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
        backward: bool,
    ) -> Result<(CpuStorage, Shape)> {
        // Backward: a stride-1 convolution whose padding puts the output back at the
        // input's size (the output gradient was spread to that size first).
        let (filters, bias, padding) = match backward {
            false => (&self.forward, &self.bias, self.padding),
            true => (
                &self.backward,
                &self.no_bias,
                self.kernel - 1 - self.padding,
            ),
        };
        let stride = if backward { 1 } else { self.stride };
        if self.depthwise {
            let op = Depthwise {
                weight: filters,
                bias,
                kernel: self.kernel,
                stride,
                padding,
                silu: false,
            };
            op.cpu_fwd(storage, layout)
        } else {
            let op = GemmConv {
                matrix: filters,
                bias,
                kernel: self.kernel,
                stride,
                padding,
                silu: false,
            };
            op.cpu_fwd(storage, layout)
        }
    }
}

/// The recorded operation; see the module documentation.
struct GradConv(Arc<GradFilters>);

impl CustomOp1 for GradConv {
    fn name(&self) -> &'static str {
        "grad-conv2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.run(storage, layout, false)
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let f = &self.0;
        let (_, _, h, w) = arg.dims4()?;
        let spread = spread(&grad.contiguous()?, f.stride, (h, w))?;
        let (c_in, c_out) = (f.c_in, f.c_out);
        if spread.dim(1)? != c_out {
            candle_core::bail!(
                "grad-conv2d: gradient has {} channels, not {c_out}",
                spread.dim(1)?
            );
        }
        let back = spread.apply_op1_no_bwd(&Backward(f.clone()))?;
        debug_assert_eq!(
            back.dims4()?,
            (1, if f.depthwise { c_out } else { c_in }, h, w)
        );
        Ok(Some(back))
    }
}

/// The backward convolution as an operation of its own (it needs no gradient).
struct Backward(Arc<GradFilters>);

impl CustomOp1 for Backward {
    fn name(&self) -> &'static str {
        "grad-conv2d-backward"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.run(storage, layout, true)
    }
}

/// A `[1, c, ho, wo]` output gradient placed at every `stride`-th position of a
/// `[1, c, h, w]` map of zeros (itself when `stride` is 1).
fn spread(grad: &Tensor, stride: usize, (h, w): (usize, usize)) -> Result<Tensor> {
    if stride == 1 {
        return Ok(grad.clone());
    }
    let (n, c, ho, wo) = grad.dims4()?;
    let (storage, layout) = grad.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("grad-conv2d runs on the CPU only");
    };
    let src = f32_contiguous(cpu, layout, "grad-conv2d")?;
    let mut out = vec![0f32; n * c * h * w];
    for (plane, dst) in src.chunks(ho * wo).zip(out.chunks_mut(h * w)) {
        for (oy, row) in plane.chunks(wo).enumerate() {
            for (ox, v) in row.iter().enumerate() {
                dst[oy * stride * w + ox * stride] = *v;
            }
        }
    }
    Tensor::from_vec(out, (n, c, h, w), grad.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The gradient of `sum(conv(x) * r)` by this operation and by candle's own `conv2d`.
    fn both_gradients(
        (c_in, c_out, k, stride): (usize, usize, usize, usize),
        size: (usize, usize),
        depthwise: bool,
    ) -> (Tensor, Tensor) {
        let dev = &Device::Cpu;
        let per_group = if depthwise { 1 } else { c_in };
        let weight = Tensor::randn(0f32, 1.0, (c_out, per_group, k, k), dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, c_out, dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, c_in, size.0, size.1), dev).unwrap();
        let p = k / 2;
        let groups = if depthwise { c_out } else { 1 };

        let filters = Arc::new(GradFilters::new(
            weight.flatten_all().unwrap().to_vec1().unwrap(),
            bias.to_vec1().unwrap(),
            (c_out, per_group, k),
            stride,
            p,
            depthwise,
        ));
        let ours_in = Var::from_tensor(&x).unwrap();
        let ours = filters.apply(ours_in.as_tensor()).unwrap();
        let theirs_in = Var::from_tensor(&x).unwrap();
        let theirs = theirs_in
            .as_tensor()
            .conv2d(&weight, p, stride, 1, groups)
            .unwrap()
            .broadcast_add(&bias.reshape((1, c_out, 1, 1)).unwrap())
            .unwrap();
        assert!(crate::kernels::max_diff(&ours, &theirs) < 1e-4, "forward");

        let r = Tensor::randn(0f32, 1.0, ours.dims(), dev).unwrap();
        let g_ours = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (theirs * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        (
            g_ours.get(ours_in.as_tensor()).unwrap().clone(),
            g_theirs.get(theirs_in.as_tensor()).unwrap().clone(),
        )
    }

    #[test]
    fn the_input_gradient_equals_candles_conv2d_backward() {
        // Dense 1x1 and 3x3 at strides 1 and 2 (odd and even sizes), depthwise 3x3 and 7x7.
        let cases = [
            ((5, 7, 1, 1), (6, 5), false),
            ((4, 6, 3, 1), (7, 9), false),
            ((3, 8, 3, 2), (8, 10), false),
            ((3, 8, 3, 2), (9, 7), false),
            ((6, 6, 3, 1), (9, 8), true),
            ((4, 4, 7, 1), (11, 10), true),
            // The smallest maps a dream's first octave makes.
            ((32, 32, 3, 1), (4, 4), false),
            ((32, 32, 3, 1), (2, 2), false),
            ((16, 32, 3, 2), (4, 4), false),
            ((32, 32, 3, 1), (2, 2), true),
        ];
        for (shape, size, depthwise) in cases {
            let (c_in, c_out, k, s) = shape;
            let (ours, theirs) = both_gradients(shape, size, depthwise);
            assert_eq!(ours.dims(), theirs.dims());
            let diff = crate::kernels::max_diff(&ours, &theirs);
            assert!(diff < 1e-3, "{c_in}->{c_out} k{k} s{s} {size:?}: {diff}");
        }
    }
}
