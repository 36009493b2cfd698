//! The network's basic layer, a convolution with its (already folded) batch-norm bias and
//! an optional SiLU, plus the residual addition; both use the fused CPU kernels when the
//! model runs on the CPU and plain candle ops elsewhere.
//!
//! A tensor that needs a gradient (one computed from a candle `Var`, as DeepDream's input
//! is) takes operations that record it instead: never an in-place kernel, which would
//! overwrite values the backward pass reads, nor a kernel without a backward pass, which
//! would silently cut the gradient off.

use crate::VisionError;
use crate::gemm_conv::{GemmConv, pointwise_over_parts};
use crate::grad_conv::GradFilters;
use crate::kernels::{AddAssign, BiasAct, Depthwise};
use crate::weights::Weights;
use crate::winograd::{Winograd, WinogradFilters};
use candle_core::{Device, Tensor};
use std::sync::{Arc, OnceLock};

/// Whether a convolution is followed by SiLU. In Ultralytics modules `Conv` always is;
/// the attention projections and the head's final layers are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Silu,
    Linear,
}

/// A convolution whose batch norm the exporter folded into weight and bias.
pub struct Conv {
    weight: Tensor,
    /// Bias shaped `[1, c_out, 1, 1]` for the generic (GPU) path.
    bias: Tensor,
    /// Plain copies prepared once for the CPU kernels.
    bias_values: Vec<f32>,
    /// The filters as a row-major `[c_out, c_in * k * k]` matrix, for the CPU kernel.
    matrix_values: Vec<f32>,
    depthwise_weights: Option<Vec<f32>>,
    /// Off the CPU, a depthwise convolution's filters as a dense `[c, c, k, k]` filter that is
    /// zero off its diagonal: candle runs a grouped convolution as one convolution per group
    /// (hundreds of kernel launches for one layer), a dense one as one im2col and one matrix
    /// product. The zeros add nothing to any sum, so the results are the same.
    block_diagonal: Option<Tensor>,
    /// A dense stride-1 3x3 convolution's filters transformed for Winograd's F(2x2, 3x3),
    /// for the CPU kernel (boxed: most convolutions have none).
    winograd: Option<Box<WinogradFilters>>,
    on_cpu: bool,
    stride: usize,
    padding: usize,
    groups: usize,
    kernel: usize,
    act: Act,
    /// Both-ways filters for the CPU gradient path, made on its first use.
    grad: OnceLock<Arc<GradFilters>>,
}

impl Conv {
    /// Loads `<prefix>.weight` and `<prefix>.bias`.
    pub fn load(w: &Weights, prefix: &str, stride: usize, act: Act) -> Result<Self, VisionError> {
        let weight = w.get(&format!("{prefix}.weight"))?;
        let bias_name = format!("{prefix}.bias");
        let bias = match w.contains(&bias_name) {
            true => w.get(&bias_name)?,
            false => Tensor::zeros(weight.dim(0)?, weight.dtype(), weight.device())?,
        };
        Self::new(weight, bias, stride, act)
    }

    /// A weight with one input channel per group and as many groups as outputs is
    /// depthwise; those are the only grouped convolutions in YOLOv12.
    pub fn new(weight: Tensor, bias: Tensor, stride: usize, act: Act) -> Result<Self, VisionError> {
        let weight = weight.contiguous()?;
        let (c_out, c_in_per_group, k_h, k_w) = weight.dims4()?;
        if k_h != k_w || bias.dims1()? != c_out {
            return Err(VisionError::Inference(format!(
                "unsupported convolution: kernel {k_h}x{k_w}, {} biases for {c_out} outputs",
                bias.elem_count()
            )));
        }
        let groups = if c_in_per_group == 1 && c_out > 1 {
            c_out
        } else {
            1
        };
        let on_cpu = matches!(weight.device(), Device::Cpu);
        let depthwise_weights = match on_cpu && groups > 1 {
            true => Some(weight.flatten_all()?.to_vec1::<f32>()?),
            false => None,
        };
        let matrix_values = match on_cpu && groups == 1 {
            true => weight.flatten_all()?.to_vec1::<f32>()?,
            false => Vec::new(),
        };
        let block_diagonal = match !on_cpu && groups > 1 {
            true => Some(block_diagonal(&weight)?),
            false => None,
        };
        let winograd = match on_cpu && groups == 1 && k_h == 3 && stride == 1 {
            true => Some(Box::new(WinogradFilters::new(
                &matrix_values,
                c_out,
                c_in_per_group,
            ))),
            false => None,
        };
        Ok(Self {
            matrix_values,
            winograd,
            bias_values: bias.to_vec1::<f32>()?,
            bias: bias.reshape((1, c_out, 1, 1))?,
            weight,
            depthwise_weights,
            block_diagonal,
            on_cpu,
            stride,
            padding: k_h / 2,
            groups,
            kernel: k_h,
            act,
            grad: OnceLock::new(),
        })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// `forward` of the channel-wise concatenation of `parts`; a 1x1 convolution on the CPU
    /// reads the parts where they are instead of concatenating them first.
    pub fn forward_parts(&self, parts: &[Tensor]) -> Result<Tensor, VisionError> {
        self.forward_after_upsampled(None, parts)
    }

    /// `forward` of the channel-wise concatenation of `small` upsampled 2x (nearest), if
    /// given, and `parts`. A 1x1 convolution on the CPU multiplies `small` as it is (the
    /// convolution commutes with the upsampling) and never makes the upsampled copy.
    pub fn forward_after_upsampled(
        &self,
        small: Option<&Tensor>,
        parts: &[Tensor],
    ) -> Result<Tensor, VisionError> {
        let pointwise = self.kernel == 1 && self.stride == 1 && self.groups == 1;
        let tracked = parts.iter().chain(small).any(Tensor::track_op);
        if self.on_cpu && pointwise && !tracked {
            let contiguous = |p: &Tensor| p.contiguous();
            let parts = parts
                .iter()
                .map(contiguous)
                .collect::<Result<Vec<_>, _>>()?;
            let small = small.map(contiguous).transpose()?;
            return Ok(pointwise_over_parts(
                &self.matrix_values,
                &self.bias_values,
                self.act == Act::Silu,
                small.as_ref(),
                &parts,
            )?);
        }
        match small {
            Some(small) => {
                let mut all = vec![upsample2(small)?];
                all.extend_from_slice(parts);
                self.forward(&cat_channels(&all)?)
            }
            None => self.forward(&cat_channels(parts)?),
        }
    }

    /// The output is always a fresh tensor, so callers may add into it in place.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, VisionError> {
        let silu = self.act == Act::Silu;
        if x.track_op() && self.on_cpu && x.dim(0)? == 1 {
            let y = self.grad_filters()?.apply(x)?;
            return Ok(if silu { y.silu()? } else { y });
        }
        if let Some(weight) = &self.depthwise_weights {
            let op = Depthwise {
                weight,
                bias: &self.bias_values,
                kernel: self.kernel,
                stride: self.stride,
                padding: self.padding,
                silu,
            };
            return Ok(x.contiguous()?.apply_op1_no_bwd(&op)?);
        }
        if let (Some(filters), false) = (&self.winograd, x.track_op()) {
            let op = Winograd {
                filters,
                bias: &self.bias_values,
                padding: self.padding,
                silu,
            };
            return Ok(x.contiguous()?.apply_op1_no_bwd(&op)?);
        }
        if self.on_cpu && !x.track_op() {
            let op = GemmConv {
                matrix: &self.matrix_values,
                bias: &self.bias_values,
                kernel: self.kernel,
                stride: self.stride,
                padding: self.padding,
                silu,
            };
            return Ok(x.contiguous()?.apply_op1_no_bwd(&op)?);
        }
        let y = match &self.block_diagonal {
            Some(dense) => x.conv2d(dense, self.padding, self.stride, 1, 1)?,
            None => x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?,
        };
        if self.on_cpu && y.is_contiguous() && !y.track_op() {
            y.inplace_op1(&BiasAct {
                bias: &self.bias_values,
                silu,
            })?;
            return Ok(y);
        }
        let y = y.broadcast_add(&self.bias)?;
        Ok(if silu { y.silu()? } else { y })
    }

    fn grad_filters(&self) -> Result<&Arc<GradFilters>, VisionError> {
        if let Some(filters) = self.grad.get() {
            return Ok(filters);
        }
        let (c_out, per_group, k, _) = self.weight.dims4()?;
        let filters = GradFilters::new(
            self.weight.flatten_all()?.to_vec1::<f32>()?,
            self.bias_values.clone(),
            (c_out, per_group, k),
            self.stride,
            self.padding,
            self.groups > 1,
        );
        Ok(self.grad.get_or_init(|| Arc::new(filters)))
    }
}

/// A depthwise filter `[c, 1, k, k]` as the dense `[c, c, k, k]` filter of the same
/// convolution: output channel `o` reads only input channel `o`.
fn block_diagonal(weight: &Tensor) -> Result<Tensor, VisionError> {
    let (c, _, k, _) = weight.dims4()?;
    let values = weight.flatten_all()?.to_vec1::<f32>()?;
    let taps = k * k;
    let mut dense = vec![0f32; c * c * taps];
    for (o, filter) in values.chunks_exact(taps).enumerate() {
        let at = (o * c + o) * taps;
        dense[at..at + taps].copy_from_slice(filter);
    }
    Ok(Tensor::from_vec(dense, (c, c, k, k), weight.device())?)
}

/// `fresh + other`, reusing `fresh`'s memory on the CPU. `fresh` must not share storage
/// with any other live tensor (a convolution's output never does).
pub fn add_into(fresh: Tensor, other: &Tensor) -> Result<Tensor, VisionError> {
    let tracked = fresh.track_op() || other.track_op();
    if matches!(fresh.device(), Device::Cpu) && fresh.is_contiguous() && !tracked {
        fresh.inplace_op2(&other.contiguous()?, &AddAssign)?;
        Ok(fresh)
    } else {
        Ok((fresh + other)?)
    }
}

/// Concatenates feature maps along the channel axis.
pub fn cat_channels(parts: &[Tensor]) -> Result<Tensor, VisionError> {
    Ok(Tensor::cat(parts, 1)?)
}

/// Nearest-neighbour 2x upsampling.
pub fn upsample2(x: &Tensor) -> Result<Tensor, VisionError> {
    let (_, _, h, w) = x.dims4()?;
    // candle 0.11's backward pass of nearest upsampling *assigns* its gradient to the input
    // instead of adding to it, losing what other uses of the input contributed (every map
    // upsampled here is also used directly). Upsampling a copy made for the purpose keeps
    // the input's gradient whole: the copy's backward adds.
    let x = match x.track_op() {
        true => x.copy()?,
        false => x.clone(),
    };
    Ok(x.upsample_nearest2d(h * 2, w * 2)?)
}

/// Splits a feature map into its two channel halves.
pub fn split_halves(x: &Tensor) -> Result<(Tensor, Tensor), VisionError> {
    let c = x.dim(1)?;
    Ok((x.narrow(1, 0, c / 2)?, x.narrow(1, c / 2, c - c / 2)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::max_diff;

    #[test]
    fn a_block_diagonal_filter_convolves_as_the_depthwise_one() {
        let dev = Device::Cpu;
        // (channels, kernel, stride, map side): YOLOv12's 3x3 head and 7x7 attention shapes,
        // a stride-2 one, and an odd map.
        for (c, k, stride, side) in [(8, 3, 1, 12), (6, 7, 1, 9), (5, 3, 2, 11), (3, 5, 1, 4)] {
            let x = Tensor::randn(0f32, 1.0, (2, c, side, side), &dev).unwrap();
            let weight = Tensor::randn(0f32, 1.0, (c, 1, k, k), &dev).unwrap();
            let grouped = x.conv2d(&weight, k / 2, stride, 1, c).unwrap();
            let dense = x
                .conv2d(&block_diagonal(&weight).unwrap(), k / 2, stride, 1, 1)
                .unwrap();
            assert_eq!(grouped.dims(), dense.dims());
            let diff = max_diff(&grouped, &dense);
            assert!(diff < 1e-5, "c {c}, k {k}, stride {stride}: {diff}");
        }
    }
}
