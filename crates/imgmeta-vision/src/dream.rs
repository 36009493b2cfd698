//! DeepDream (Mordvintsev, Olah and Tyka, 2015) with the detector's own network: gradient
//! ascent on the image to amplify what chosen layers respond to (the mean square of their
//! activations), or what the detection head takes for one COCO class (the mean of that
//! class's logit maps).
//!
//! Each step shifts the image by a random jitter, runs the network forward and backward
//! (candle autograd: the input is a `Var`), shifts the gradient back, divides it by its mean
//! absolute value and adds `step_size` of it, clipped to the valid range. Octaves run from a
//! small copy up to the working size, the detail made at each carried up to the next. The
//! detail at the working size is finally scaled to the input's own size and added to it, so
//! the dream has the input's (EXIF-oriented) dimensions at full resolution.

use crate::VisionError;
use crate::detector::Detector;
use crate::model::DREAM_MODULES;
use candle_core::{DType, Tensor, Var};
use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use imgmeta_domain::{DREAM_LAYERS, DreamOptions};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rayon::prelude::*;
use std::borrow::Cow;
use std::time::{Duration, Instant};

/// Every map size is a multiple of this: the network halves its input five times.
const GRID: u32 = 32;

/// A finished dream.
pub struct Dream {
    /// The dreamed image, as large as the input.
    pub image: RgbImage,
    /// The size the last octave ran at.
    pub working_size: (u32, u32),
    pub octaves: Vec<Octave>,
    /// Wall time of the gradient steps alone.
    pub steps_time: Duration,
}

/// What one octave did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Octave {
    pub width: u32,
    pub height: u32,
    /// The objective at each step, before that step's change.
    pub objective: Vec<f32>,
    /// Wall time of the octave's steps (each a forward and a backward pass).
    pub steps_ms: f64,
}

/// What the objective amplifies, resolved against the loaded model.
struct Objective {
    layers: Vec<usize>,
    class: Option<usize>,
}

impl Detector {
    /// Dreams `image` (already EXIF-oriented) with `options`; deterministic for a seed on
    /// the same device.
    pub fn dream(
        &self,
        image: &DynamicImage,
        options: &DreamOptions,
    ) -> Result<Dream, VisionError> {
        let objective = self.objective(options)?;
        let rgb = match image {
            DynamicImage::ImageRgb8(rgb) => Cow::Borrowed(rgb),
            other => Cow::Owned(other.to_rgb8()),
        };
        if rgb.width() == 0 || rgb.height() == 0 {
            return Err(VisionError::Inference("the image is empty".into()));
        }
        self.in_pool(|| self.dream_in_pool(&rgb, options, &objective))
    }

    /// The dream objective at `chw` (a `[3, height, width]` image with values in 0..1, each
    /// side a multiple of 32) and its gradient with respect to every value: one step's
    /// forward and backward pass, for gradient checks and benchmarks.
    pub fn dream_gradient(
        &self,
        chw: &[f32],
        (width, height): (u32, u32),
        options: &DreamOptions,
    ) -> Result<(f32, Vec<f32>), VisionError> {
        let objective = self.objective(options)?;
        if width % GRID != 0 || height % GRID != 0 || chw.len() != 3 * (width * height) as usize {
            return Err(VisionError::Inference(format!(
                "a dream input must be 3 x {height} x {width} with sides multiple of {GRID}"
            )));
        }
        self.in_pool(|| self.gradient(chw, (width, height), &objective))
    }

    fn objective(&self, options: &DreamOptions) -> Result<Objective, VisionError> {
        let layers = options
            .layers()
            .iter()
            .map(|name| {
                let at = DREAM_LAYERS.iter().position(|l| l == name);
                at.map(|i| DREAM_MODULES[i])
                    .ok_or_else(|| VisionError::Dream(format!("unknown layer {name:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let class =
            match options.class() {
                None => None,
                Some(name) => Some(self.class_names.iter().position(|c| c == name).ok_or_else(
                    || VisionError::Dream(format!("the model has no class {name:?}")),
                )?),
            };
        Ok(Objective { layers, class })
    }

    fn dream_in_pool(
        &self,
        rgb: &RgbImage,
        options: &DreamOptions,
        objective: &Objective,
    ) -> Result<Dream, VisionError> {
        let working = working_size(rgb.dimensions(), options.max_side());
        let work = match rgb.dimensions() == working {
            true => Cow::Borrowed(rgb),
            false => Cow::Owned(image::imageops::resize(
                rgb,
                working.0,
                working.1,
                FilterType::Triangle,
            )),
        };
        let mut rng = StdRng::seed_from_u64(options.seed());
        let jitter = options.jitter() as i64;
        let mut octaves = Vec::new();
        let mut detail: Option<(Vec<f32>, (u32, u32))> = None;
        let mut steps_time = Duration::ZERO;
        for size in octave_sizes(working, options.octaves(), options.octave_scale()) {
            let base = match size == working {
                true => to_chw(&work),
                false => to_chw(&image::imageops::resize(
                    &*work,
                    size.0,
                    size.1,
                    FilterType::Triangle,
                )),
            };
            let mut img = base.clone();
            if let Some((d, from)) = &detail {
                let d = resize_bilinear(d, from, size);
                img.iter_mut()
                    .zip(&d)
                    .for_each(|(v, d)| *v = (*v + d).clamp(0.0, 1.0));
            }
            let mut values = Vec::with_capacity(options.steps() as usize);
            let started = Instant::now();
            for _ in 0..options.steps() {
                let (dx, dy) = match jitter {
                    0 => (0, 0),
                    j => (rng.random_range(-j..=j), rng.random_range(-j..=j)),
                };
                let rolled = roll(&img, size, dx, dy);
                let (value, grad) = self.gradient(&rolled, size, objective)?;
                let grad = roll(&grad, size, -dx, -dy);
                values.push(value);
                let mean_abs = grad.iter().map(|g| g.abs()).sum::<f32>() / grad.len() as f32;
                let scale = options.step_size() / (mean_abs + 1e-8);
                img.iter_mut()
                    .zip(&grad)
                    .for_each(|(v, g)| *v = (*v + g * scale).clamp(0.0, 1.0));
            }
            let took = started.elapsed();
            steps_time += took;
            octaves.push(Octave {
                width: size.0,
                height: size.1,
                objective: values,
                steps_ms: (took.as_secs_f64() * 1e6).round() / 1e3,
            });
            let d: Vec<f32> = img.iter().zip(&base).map(|(v, b)| v - b).collect();
            detail = Some((d, size));
        }
        let (d, from) = detail.expect("at least one octave");
        Ok(Dream {
            image: add_detail(rgb, &d, from),
            working_size: working,
            octaves,
            steps_time,
        })
    }

    /// The fast (inference-only) forward pass at `chw`'s size, timed: the benchmark's yardstick
    /// for a gradient step.
    pub fn forward_time(&self, chw: &[f32], (w, h): (u32, u32)) -> Result<Duration, VisionError> {
        self.in_pool(|| {
            let input = Tensor::from_slice(chw, (1, 3, h as usize, w as usize), &self.device)?;
            let started = Instant::now();
            self.model.forward(&input)?;
            Ok(started.elapsed())
        })
    }

    /// One forward and backward pass: the objective's value and its gradient. The maps are
    /// reduced in f64: a float32 mean of thousands of values is off by more than one pixel's
    /// effect on it, which a gradient check (and the report's objective) would see as noise.
    fn gradient(
        &self,
        chw: &[f32],
        (w, h): (u32, u32),
        objective: &Objective,
    ) -> Result<(f32, Vec<f32>), VisionError> {
        let input = Tensor::from_slice(chw, (1, 3, h as usize, w as usize), &self.device)?;
        let input = Var::from_tensor(&input)?;
        let maps = self
            .model
            .dream_maps(input.as_tensor(), &objective.layers, objective.class)?;
        let (layer_maps, class_maps) = maps.split_at(objective.layers.len());
        let mut terms = Vec::new();
        if !layer_maps.is_empty() {
            let squares = layer_maps
                .iter()
                .map(|m| m.to_dtype(DType::F64)?.sqr()?.mean_all())
                .collect::<Result<Vec<_>, _>>()?;
            terms.push((Tensor::stack(&squares, 0)?.sum_all()? / layer_maps.len() as f64)?);
        }
        if !class_maps.is_empty() {
            let means = class_maps
                .iter()
                .map(|m| m.to_dtype(DType::F64)?.mean_all())
                .collect::<Result<Vec<_>, _>>()?;
            terms.push((Tensor::stack(&means, 0)?.sum_all()? / class_maps.len() as f64)?);
        }
        let total = Tensor::stack(&terms, 0)?.sum_all()?;
        let value = total.to_scalar::<f64>()? as f32;
        let grads = total.backward()?;
        let grad = grads
            .get(input.as_tensor())
            .ok_or_else(|| VisionError::Inference("the dream objective has no gradient".into()))?;
        Ok((value, grad.flatten_all()?.to_vec1::<f32>()?))
    }
}

/// The size a dream runs at: at most `max_side` on the longer side (never enlarged beyond
/// the nearest grid size), each side a multiple of 32.
pub(crate) fn working_size((w, h): (u32, u32), max_side: u32) -> (u32, u32) {
    let scale = (max_side as f32 / w.max(h) as f32).min(1.0);
    (to_grid(w as f32 * scale), to_grid(h as f32 * scale))
}

fn to_grid(side: f32) -> u32 {
    ((side / GRID as f32).round() as u32).max(1) * GRID
}

/// The octaves' sizes, smallest first, the last being `working`.
fn octave_sizes(working: (u32, u32), octaves: u32, scale: f32) -> Vec<(u32, u32)> {
    (0..octaves)
        .rev()
        .map(|i| {
            let f = scale.powi(i as i32);
            match i {
                0 => working,
                _ => (to_grid(working.0 as f32 / f), to_grid(working.1 as f32 / f)),
            }
        })
        .collect()
}

pub(crate) fn to_chw(rgb: &RgbImage) -> Vec<f32> {
    let (w, h) = rgb.dimensions();
    let n = (w * h) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = f32::from(p[c]) / 255.0;
        }
    }
    out
}

/// `[3, h, w]` values shifted by `(dx, dy)` pixels, wrapping around.
fn roll(chw: &[f32], (w, h): (u32, u32), dx: i64, dy: i64) -> Vec<f32> {
    let (w, h) = (w as i64, h as i64);
    let mut out = vec![0f32; chw.len()];
    for (src, dst) in chw
        .chunks(w as usize * h as usize)
        .zip(out.chunks_mut(w as usize * h as usize))
    {
        for y in 0..h {
            let ty = (y + dy).rem_euclid(h);
            for x in 0..w {
                let tx = (x + dx).rem_euclid(w);
                dst[(ty * w + tx) as usize] = src[(y * w + x) as usize];
            }
        }
    }
    out
}

/// Where output position `i` of `to` samples a grid of `from` (pixel centres aligned), as
/// the two source positions and the second one's weight.
fn taps(i: u32, from: u32, to: u32) -> (usize, usize, f32) {
    let x = ((i as f32 + 0.5) * from as f32 / to as f32 - 0.5).clamp(0.0, (from - 1) as f32);
    let x0 = x.floor() as usize;
    (x0, (x0 + 1).min(from as usize - 1), x - x0 as f32)
}

/// One value of a row-major `plane` `width` values wide, between the rows and columns that
/// [`taps`] gave.
fn bilinear(
    plane: &[f32],
    width: usize,
    (x0, x1, fx): (usize, usize, f32),
    (y0, y1, fy): (usize, usize, f32),
) -> f32 {
    let at = |y: usize, x: usize| plane[y * width + x];
    let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
    let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// A `[3, h, w]` map resized to `to` bilinearly (values may be negative: details are).
fn resize_bilinear(chw: &[f32], from: &(u32, u32), to: (u32, u32)) -> Vec<f32> {
    let (fw, fh) = *from;
    let n = (fw * fh) as usize;
    let mut out = vec![0f32; 3 * (to.0 * to.1) as usize];
    let xs: Vec<_> = (0..to.0).map(|x| taps(x, fw, to.0)).collect();
    for (c, dst) in out.chunks_mut((to.0 * to.1) as usize).enumerate() {
        let src = &chw[c * n..(c + 1) * n];
        for (y, row) in dst.chunks_mut(to.0 as usize).enumerate() {
            let ys = taps(y as u32, fh, to.1);
            for (v, &xs) in row.iter_mut().zip(&xs) {
                *v = bilinear(src, fw as usize, xs, ys);
            }
        }
    }
    out
}

/// `rgb` plus the `[3, h, w]` detail made at `from`, scaled to `rgb`'s size, clipped.
fn add_detail(rgb: &RgbImage, detail: &[f32], from: (u32, u32)) -> RgbImage {
    let (w, h) = rgb.dimensions();
    let (fw, fh) = from;
    let n = (fw * fh) as usize;
    let xs: Vec<_> = (0..w).map(|x| taps(x, fw, w)).collect();
    let mut out = rgb.clone();
    out.par_chunks_mut(3 * w as usize)
        .enumerate()
        .for_each(|(y, row)| {
            let ys = taps(y as u32, fh, h);
            for (px, &xs) in row.chunks_mut(3).zip(&xs) {
                for (c, v) in px.iter_mut().enumerate() {
                    let d = bilinear(&detail[c * n..(c + 1) * n], fw as usize, xs, ys);
                    *v = (f32::from(*v) + d * 255.0).round().clamp(0.0, 255.0) as u8;
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_names_are_the_modules_they_name() {
        for (name, module) in DREAM_LAYERS.iter().zip(DREAM_MODULES) {
            assert_eq!(*name, format!("model.{module}"));
        }
    }

    #[test]
    fn working_sizes_fit_the_longest_side_on_the_grid() {
        assert_eq!(working_size((4000, 3000), 512), (512, 384));
        assert_eq!(working_size((300, 200), 512), (288, 192));
        assert_eq!(working_size((10, 10), 512), (32, 32));
    }

    #[test]
    fn octaves_grow_by_the_scale_up_to_the_working_size() {
        let sizes = octave_sizes((512, 384), 4, 1.4);
        assert_eq!(sizes.len(), 4);
        assert_eq!(sizes[3], (512, 384));
        assert_eq!(sizes[0], (192, 128));
        assert!(
            sizes
                .windows(2)
                .all(|p| p[0].0 <= p[1].0 && p[0].1 <= p[1].1)
        );
    }

    #[test]
    fn rolling_back_restores_the_image() {
        let v: Vec<f32> = (0..3 * 4 * 5).map(|i| i as f32).collect();
        let there = roll(&v, (5, 4), 2, -3);
        assert_ne!(there, v);
        assert_eq!(roll(&there, (5, 4), -2, 3), v);
        // One step right: the last column wraps to the first.
        assert_eq!(roll(&v, (5, 4), 1, 0)[0], 4.0);
    }

    #[test]
    fn bilinear_resizing_keeps_constants_and_same_sizes() {
        let v = vec![-0.25f32; 3 * 6 * 4];
        assert!(
            resize_bilinear(&v, &(6, 4), (9, 7))
                .iter()
                .all(|x| (x + 0.25).abs() < 1e-6)
        );
        let ramp: Vec<f32> = (0..3 * 6 * 4).map(|i| i as f32).collect();
        assert_eq!(resize_bilinear(&ramp, &(6, 4), (6, 4)), ramp);
    }

    #[test]
    fn a_detail_of_zero_leaves_the_image_unchanged_and_a_constant_shifts_it() {
        let rgb = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 100]));
        assert_eq!(add_detail(&rgb, &[0.0; 3 * 4 * 3], (4, 3)), rgb);
        let up = add_detail(&rgb, &[10.0 / 255.0; 3 * 4 * 3], (4, 3));
        assert_eq!(up.get_pixel(2, 2)[2], 110);
    }
}
