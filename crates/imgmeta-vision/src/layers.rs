//! The network's basic layer: a convolution with its (already folded) batch-norm bias and an
//! optional SiLU, including a direct depthwise kernel for the CPU.

use crate::VisionError;
use crate::weights::Weights;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

/// A convolution whose batch norm the exporter folded into weight and bias.
pub struct Conv {
    weight: Tensor,
    /// Bias shaped `[1, c_out, 1, 1]` so it broadcasts over the feature map.
    bias: Tensor,
    /// The same weights as plain vectors, for the CPU depthwise kernel.
    depthwise: Option<(Vec<f32>, Vec<f32>)>,
    stride: usize,
    padding: usize,
    groups: usize,
    kernel: usize,
    silu: bool,
}

/// Whether a convolution is followed by SiLU. In Ultralytics modules `Conv` always is;
/// the attention projections and the head's final layers are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Silu,
    Linear,
}

impl Conv {
    /// Loads `<prefix>.weight` and `<prefix>.bias`. A weight with one input channel per
    /// group and as many groups as outputs is depthwise; those are the only grouped
    /// convolutions in YOLOv12.
    pub fn load(w: &Weights, prefix: &str, stride: usize, act: Act) -> Result<Self, VisionError> {
        let weight = w.get(&format!("{prefix}.weight"))?.contiguous()?;
        let (c_out, c_in_per_group, k_h, k_w) = weight.dims4()?;
        if k_h != k_w {
            return Err(VisionError::WeightsInvalid {
                path: prefix.into(),
                reason: format!("non-square kernel {k_h}x{k_w}"),
            });
        }
        let bias = match w.contains(&format!("{prefix}.bias")) {
            true => w.get(&format!("{prefix}.bias"))?,
            false => Tensor::zeros(c_out, weight.dtype(), weight.device())?,
        };
        let groups = if c_in_per_group == 1 && c_out > 1 { c_out } else { 1 };
        let depthwise = match (groups > 1, weight.device()) {
            (true, Device::Cpu) => Some((
                weight.flatten_all()?.to_vec1::<f32>()?,
                bias.to_vec1::<f32>()?,
            )),
            _ => None,
        };
        Ok(Self {
            bias: bias.reshape((1, c_out, 1, 1))?,
            weight,
            depthwise,
            stride,
            padding: k_h / 2,
            groups,
            kernel: k_h,
            silu: act == Act::Silu,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, VisionError> {
        if let Some((weight, bias)) = &self.depthwise {
            return self.depthwise_cpu(x, weight, bias);
        }
        let y = x
            .conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?
            .broadcast_add(&self.bias)?;
        Ok(if self.silu { y.silu()? } else { y })
    }

    /// Depthwise convolution computed directly, one channel per task. candle runs grouped
    /// convolutions one group at a time, which for 64-128 single-channel groups costs more
    /// than the arithmetic itself.
    fn depthwise_cpu(&self, x: &Tensor, weight: &[f32], bias: &[f32]) -> Result<Tensor, VisionError> {
        let (n, c, h, w) = x.dims4()?;
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let input = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; n * c * ho * wo];
        out.par_chunks_mut(ho * wo).enumerate().for_each(|(nc, plane)| {
            let ch = nc % c;
            let src = &input[nc * h * w..(nc + 1) * h * w];
            let kern = &weight[ch * k * k..(ch + 1) * k * k];
            plane.fill(bias[ch]);
            for oy in 0..ho {
                let row = &mut plane[oy * wo..(oy + 1) * wo];
                for ky in 0..k {
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let src_row = &src[iy as usize * w..(iy as usize + 1) * w];
                    for kx in 0..k {
                        let wv = kern[ky * k + kx];
                        // Output columns whose input column lies inside the image.
                        let first = p.saturating_sub(kx).div_ceil(s);
                        let last = ((w + p - kx).div_ceil(s)).min(wo);
                        for ox in first..last {
                            row[ox] += wv * src_row[ox * s + kx - p];
                        }
                    }
                }
            }
            if self.silu {
                for v in plane.iter_mut() {
                    *v /= 1.0 + (-*v).exp();
                }
            }
        });
        Ok(Tensor::from_vec(out, (n, c, ho, wo), x.device())?)
    }
}

/// Concatenates feature maps along the channel axis.
pub fn cat_channels(parts: &[Tensor]) -> Result<Tensor, VisionError> {
    Ok(Tensor::cat(parts, 1)?)
}

/// Splits a feature map into its two channel halves.
pub fn split_halves(x: &Tensor) -> Result<(Tensor, Tensor), VisionError> {
    let c = x.dim(1)?;
    Ok((x.narrow(1, 0, c / 2)?, x.narrow(1, c / 2, c - c / 2)?))
}

/// Numerically stable softmax over the last axis.
pub fn softmax_last(x: &Tensor) -> Result<Tensor, VisionError> {
    Ok(candle_nn::ops::softmax_last_dim(x)?)
}
