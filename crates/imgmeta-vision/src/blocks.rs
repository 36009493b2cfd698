//! YOLOv12's composite blocks (Bottleneck, C3k, C3k2, area attention, A2C2f), each loaded
//! from the weights under its module path, e.g. `model.6.m.0.0.attn`.

use crate::VisionError;
use crate::attention::AreaAttentionCpu;
use crate::layers::{Act, Conv, add_into, split_halves};
use crate::weights::Weights;
use candle_core::Tensor;

/// Two 3x3 convolutions with a residual connection.
pub struct Bottleneck {
    cv1: Conv,
    cv2: Conv,
}

impl Bottleneck {
    fn load(w: &Weights, prefix: &str) -> Result<Self, VisionError> {
        Ok(Self {
            cv1: Conv::load(w, &format!("{prefix}.cv1.conv"), 1, Act::Silu)?,
            cv2: Conv::load(w, &format!("{prefix}.cv2.conv"), 1, Act::Silu)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, VisionError> {
        add_into(self.cv2.forward(&self.cv1.forward(x)?)?, x)
    }
}

/// CSP block: a chain of bottlenecks on one branch, a plain 1x1 on the other.
pub struct C3k {
    cv1: Conv,
    cv2: Conv,
    cv3: Conv,
    m: Vec<Bottleneck>,
}

impl C3k {
    fn load(w: &Weights, prefix: &str) -> Result<Self, VisionError> {
        Ok(Self {
            cv1: Conv::load(w, &format!("{prefix}.cv1.conv"), 1, Act::Silu)?,
            cv2: Conv::load(w, &format!("{prefix}.cv2.conv"), 1, Act::Silu)?,
            cv3: Conv::load(w, &format!("{prefix}.cv3.conv"), 1, Act::Silu)?,
            m: load_seq(
                w,
                &format!("{prefix}.m"),
                "cv1.conv.weight",
                Bottleneck::load,
            )?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, VisionError> {
        let mut a = self.cv1.forward(x)?;
        for b in &self.m {
            a = b.forward(&a)?;
        }
        let b = self.cv2.forward(x)?;
        self.cv3.forward_parts(&[a, b])
    }
}

/// What a C3k2 or A2C2f block repeats: plain bottlenecks, C3k blocks, or attention pairs.
enum Inner {
    Bottleneck(Bottleneck),
    C3k(C3k),
    Attention(Vec<ABlock>),
}

impl Inner {
    fn forward(&self, x: &Tensor) -> Result<Tensor, VisionError> {
        match self {
            Self::Bottleneck(b) => b.forward(x),
            Self::C3k(c) => c.forward(x),
            Self::Attention(blocks) => {
                let mut y = x.clone();
                for b in blocks {
                    y = b.forward(&y)?;
                }
                Ok(y)
            }
        }
    }
}

/// YOLOv12's C3k2 (`split = true`) and A2C2f (`split = false`): a 1x1 conv, then inner
/// blocks chained on (half of) its output, every intermediate concatenated, then a 1x1 conv.
pub struct CspStack {
    cv1: Conv,
    cv2: Conv,
    m: Vec<Inner>,
    split: bool,
}

impl CspStack {
    pub fn c3k2(w: &Weights, prefix: &str) -> Result<Self, VisionError> {
        Self::load(w, prefix, true, 1)
    }

    pub fn a2c2f(w: &Weights, prefix: &str, area: usize) -> Result<Self, VisionError> {
        Self::load(w, prefix, false, area)
    }

    fn load(w: &Weights, prefix: &str, split: bool, area: usize) -> Result<Self, VisionError> {
        let mut m = Vec::new();
        for i in 0.. {
            let p = format!("{prefix}.m.{i}");
            let inner = if w.contains(&format!("{p}.0.attn.qkv.conv.weight")) {
                Inner::Attention(load_seq(w, &p, "attn.qkv.conv.weight", |w, p| {
                    ABlock::load(w, p, area)
                })?)
            } else if w.contains(&format!("{p}.m.0.cv1.conv.weight")) {
                Inner::C3k(C3k::load(w, &p)?)
            } else if w.contains(&format!("{p}.cv1.conv.weight")) {
                Inner::Bottleneck(Bottleneck::load(w, &p)?)
            } else {
                break;
            };
            m.push(inner);
        }
        Ok(Self {
            cv1: Conv::load(w, &format!("{prefix}.cv1.conv"), 1, Act::Silu)?,
            cv2: Conv::load(w, &format!("{prefix}.cv2.conv"), 1, Act::Silu)?,
            m,
            split,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, VisionError> {
        self.forward_parts(std::slice::from_ref(x))
    }

    /// `forward` of the channel-wise concatenation of `inputs`, without concatenating.
    pub fn forward_parts(&self, inputs: &[Tensor]) -> Result<Tensor, VisionError> {
        self.after_first(self.cv1.forward_parts(inputs)?)
    }

    /// `forward` of the channel-wise concatenation of `small` upsampled 2x (nearest) and
    /// `rest`: the block reads its input only through its first 1x1 convolution, which
    /// never makes the upsampled copy on the CPU.
    pub fn forward_after_upsampled(
        &self,
        small: &Tensor,
        rest: Tensor,
    ) -> Result<Tensor, VisionError> {
        self.after_first(self.cv1.forward_after_upsampled(Some(small), &[rest])?)
    }

    /// The block after its first convolution's output `y`.
    fn after_first(&self, y: Tensor) -> Result<Tensor, VisionError> {
        let mut parts = if self.split {
            let (a, b) = split_halves(&y)?;
            vec![a, b]
        } else {
            vec![y]
        };
        for inner in &self.m {
            let next = inner.forward(parts.last().expect("parts is never empty"))?;
            parts.push(next);
        }
        self.cv2.forward_parts(&parts)
    }
}

/// Area attention followed by a 1x1 MLP, each with a residual connection.
pub struct ABlock {
    attn: AreaAttention,
    mlp0: Conv,
    mlp1: Conv,
}

impl ABlock {
    fn load(w: &Weights, prefix: &str, area: usize) -> Result<Self, VisionError> {
        Ok(Self {
            attn: AreaAttention::load(w, &format!("{prefix}.attn"), area)?,
            mlp0: Conv::load(w, &format!("{prefix}.mlp.0.conv"), 1, Act::Silu)?,
            mlp1: Conv::load(w, &format!("{prefix}.mlp.1.conv"), 1, Act::Linear)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, VisionError> {
        let x = add_into(self.attn.forward(x)?, x)?;
        add_into(self.mlp1.forward(&self.mlp0.forward(&x)?)?, &x)
    }
}

/// Multi-head self-attention within `area` horizontal bands of the feature map, plus a
/// depthwise 7x7 positional term computed on the values.
pub struct AreaAttention {
    qkv: Conv,
    proj: Conv,
    pe: Conv,
    area: usize,
}

/// Ultralytics fixes the head width at 32 channels.
const HEAD_DIM: usize = 32;

impl AreaAttention {
    fn load(w: &Weights, prefix: &str, area: usize) -> Result<Self, VisionError> {
        // Fold the attention scale 1/sqrt(head_dim) into the query rows of the qkv
        // projection, once, instead of scaling every attention matrix.
        let qkv = Conv::load(w, &format!("{prefix}.qkv.conv"), 1, Act::Linear)?;
        let rows = qkv.weight().dim(0)?;
        let scale = (HEAD_DIM as f64).powf(-0.5) as f32;
        let factors: Vec<f32> = (0..rows)
            .map(|r| {
                if r % (3 * HEAD_DIM) < HEAD_DIM {
                    scale
                } else {
                    1.0
                }
            })
            .collect();
        let factors = Tensor::from_vec(factors, rows, qkv.weight().device())?;
        let qkv = Conv::new(
            qkv.weight()
                .broadcast_mul(&factors.reshape((rows, 1, 1, 1))?)?,
            qkv.bias().flatten_all()?.mul(&factors)?,
            1,
            Act::Linear,
        )?;
        Ok(Self {
            qkv,
            proj: Conv::load(w, &format!("{prefix}.proj.conv"), 1, Act::Linear)?,
            pe: Conv::load(w, &format!("{prefix}.pe.conv"), 1, Act::Linear)?,
            area,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, VisionError> {
        let (out, v) = attend(&self.qkv.forward(x)?, self.area)?;
        self.proj.forward(&add_into(self.pe.forward(&v)?, &out)?)
    }
}

/// Attention within `area` bands over a `[b, 3c, h, w]` qkv projection: the attended values
/// and the values as an image, both `[b, c, h, w]`.
fn attend(qkv: &Tensor, area: usize) -> Result<(Tensor, Tensor), VisionError> {
    if matches!(qkv.device(), candle_core::Device::Cpu) && !qkv.track_op() {
        let both = qkv.contiguous()?.apply_op1_no_bwd(&AreaAttentionCpu {
            area,
            head_dim: HEAD_DIM,
        })?;
        let c = both.dim(1)? / 2;
        return Ok((both.narrow(1, 0, c)?, both.narrow(1, c, c)?));
    }
    attend_generic(qkv, area)
}

/// [`attend`] in plain candle tensor operations, for devices other than the CPU and for
/// inputs that need a gradient.
fn attend_generic(qkv: &Tensor, area: usize) -> Result<(Tensor, Tensor), VisionError> {
    let (b, c3, h, w) = qkv.dims4()?;
    let c = c3 / 3;
    let heads = c / HEAD_DIM;
    let n = h * w / area;
    // [b, 3c, h, w] -> [b * area, n, heads, 3 * head_dim]: tokens in raster order, each
    // band of rows one batch entry, each head's q, k and v adjacent in the channels.
    let qkv = qkv
        .flatten_from(2)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * area, n, heads, 3 * HEAD_DIM))?;
    let q = qkv.narrow(3, 0, HEAD_DIM)?.transpose(1, 2)?.contiguous()?;
    let k = qkv
        .narrow(3, HEAD_DIM, HEAD_DIM)?
        .transpose(1, 2)?
        .contiguous()?;
    let v = qkv.narrow(3, 2 * HEAD_DIM, HEAD_DIM)?;
    let scores = q.matmul(&k.t()?)?;
    // The fused softmax has no backward pass (candle returns no gradient for it, silently).
    let attn = match scores.track_op() {
        true => candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?,
        false => candle_nn::ops::softmax_last_dim(&scores)?,
    };
    let out = attn.matmul(&v.transpose(1, 2)?.contiguous()?)?; // [b*area, heads, n, hd]
    let to_image = |t: Tensor| -> Result<Tensor, VisionError> {
        Ok(t.reshape((b, h, w, c))?
            .permute((0, 3, 1, 2))?
            .contiguous()?)
    };
    let out = to_image(out.transpose(1, 2)?.contiguous()?)?;
    let v = to_image(v.contiguous()?)?;
    Ok((out, v))
}

/// Loads `<prefix>.0`, `<prefix>.1`, ... for as long as `<prefix>.<i>.<probe>` exists.
fn load_seq<T>(
    w: &Weights,
    prefix: &str,
    probe: &str,
    load: impl Fn(&Weights, &str) -> Result<T, VisionError>,
) -> Result<Vec<T>, VisionError> {
    let mut out = Vec::new();
    while w.contains(&format!("{prefix}.{}.{probe}", out.len())) {
        out.push(load(w, &format!("{prefix}.{}", out.len()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::max_diff;
    use candle_core::Device;

    #[test]
    fn the_cpu_attention_kernel_matches_the_generic_tensor_path() {
        // 2 heads, 8x6 map; 1 area (global) and 4 areas of 2 rows.
        for area in [1, 2, 4] {
            let qkv = Tensor::randn(0f32, 1.0, (1, 3 * 2 * HEAD_DIM, 8, 6), &Device::Cpu).unwrap();

            let (out, v) = attend(&qkv, area).unwrap();
            let (want_out, want_v) = attend_generic(&qkv, area).unwrap();

            assert_eq!(out.dims(), want_out.dims());
            assert_eq!(max_diff(&v, &want_v), 0.0, "area {area}: values");
            let diff = max_diff(&out, &want_out);
            assert!(diff < 1e-5, "area {area}: {diff}");
        }
    }
}
