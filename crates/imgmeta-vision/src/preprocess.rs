//! Letterboxing: the image scaled to fit the square network input with its aspect ratio
//! kept, centred on grey padding, as a `[3, S, S]` float tensor in 0..1.
//!
//! `scripts/yolo_golden.py` mirrors this operation for operation in float32, so the
//! reference runtime is fed bit-identical input in the parity tests. Change both together.

use image::RgbImage;
use rayon::prelude::*;

/// Padding grey, as Ultralytics uses.
pub const PAD_VALUE: f32 = 114.0 / 255.0;

/// Where the image landed inside the network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub input_size: u32,
    pub width: u32,
    pub height: u32,
    pub new_width: u32,
    pub new_height: u32,
    pub left: u32,
    pub top: u32,
}

impl Letterbox {
    pub fn new(width: u32, height: u32, input_size: u32) -> Self {
        let size = f64::from(input_size);
        let scale = (size / f64::from(width)).min(size / f64::from(height));
        let fit = |len: u32| ((f64::from(len) * scale + 0.5).floor() as u32).clamp(1, input_size);
        let (new_width, new_height) = (fit(width), fit(height));
        Self {
            input_size,
            width,
            height,
            new_width,
            new_height,
            left: (input_size - new_width) / 2,
            top: (input_size - new_height) / 2,
        }
    }

    /// Maps an x coordinate of the network input back to the original image, clamped to it.
    pub fn unmap_x(&self, x: f64) -> f64 {
        let scale = f64::from(self.new_width) / f64::from(self.width);
        ((x - f64::from(self.left)) / scale).clamp(0.0, f64::from(self.width))
    }

    pub fn unmap_y(&self, y: f64) -> f64 {
        let scale = f64::from(self.new_height) / f64::from(self.height);
        ((y - f64::from(self.top)) / scale).clamp(0.0, f64::from(self.height))
    }
}

/// Source taps of a half-pixel-centred bilinear resize along one axis (no antialiasing,
/// like OpenCV's `INTER_LINEAR`, which Ultralytics uses).
struct Taps {
    i0: Vec<usize>,
    i1: Vec<usize>,
    frac: Vec<f32>,
}

impl Taps {
    fn new(src_len: u32, dst_len: u32) -> Self {
        let scale = f64::from(src_len) / f64::from(dst_len);
        let last = src_len as usize - 1;
        let mut taps = Self {
            i0: Vec::with_capacity(dst_len as usize),
            i1: Vec::with_capacity(dst_len as usize),
            frac: Vec::with_capacity(dst_len as usize),
        };
        for i in 0..dst_len {
            let pos = ((f64::from(i) + 0.5) * scale - 0.5).max(0.0);
            let i0 = (pos.floor() as usize).min(last);
            taps.i0.push(i0);
            taps.i1.push((i0 + 1).min(last));
            taps.frac.push((pos - i0 as f64) as f32);
        }
        taps
    }
}

/// The letterboxed `[3, S, S]` input (channel planes, row-major) and its geometry.
pub fn letterbox(image: &RgbImage, input_size: u32) -> (Vec<f32>, Letterbox) {
    let lb = Letterbox::new(image.width(), image.height(), input_size);
    let size = input_size as usize;
    let plane = size * size;
    let xs = Taps::new(image.width(), lb.new_width);
    let ys = Taps::new(image.height(), lb.new_height);
    let src = image.as_raw();
    let stride = image.width() as usize * 3;
    let (top, left) = (lb.top as usize, lb.left as usize);
    let inside = top..top + lb.new_height as usize;
    let columns = left..left + lb.new_width as usize;
    let width = columns.len();
    // Each task writes one row of each of the three planes, padding included, so every
    // value is written once (no interleaved copy, no fill before).
    let mut chw = vec![0f32; 3 * plane];
    let (r, rest) = chw.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    r.par_chunks_mut(size)
        .zip(g.par_chunks_mut(size))
        .zip(b.par_chunks_mut(size))
        .enumerate()
        .for_each_init(
            // Per task (consecutive rows, in order): the last two source rows interpolated
            // horizontally, so an upscaled image's rows are resampled once, not twice or more.
            || Resampled::new(width),
            |resampled, (y, ((r, g), b))| {
                if !inside.contains(&y) {
                    for row in [r, g, b] {
                        row.fill(PAD_VALUE);
                    }
                    return;
                }
                for row in [&mut *r, &mut *g, &mut *b] {
                    row[..columns.start].fill(PAD_VALUE);
                    row[columns.end..].fill(PAD_VALUE);
                }
                let oy = y - top;
                let wy1 = ys.frac[oy];
                let wy0 = 1.0 - wy1;
                let row = |i: usize| &src[i * stride..][..stride];
                let (upper, lower) = resampled.rows(ys.i0[oy], ys.i1[oy], row, &xs);
                let planes = [
                    &mut r[columns.clone()],
                    &mut g[columns.clone()],
                    &mut b[columns.clone()],
                ];
                for (c, out) in planes.into_iter().enumerate() {
                    let upper = &upper[c * width..][..width];
                    let lower = &lower[c * width..][..width];
                    // The same operations in the same order as `yolo_golden.py`.
                    for ((v, &top), &bottom) in out.iter_mut().zip(upper).zip(lower) {
                        *v = (top * wy0 + bottom * wy1) / 255.0;
                    }
                }
            },
        );
    (chw, lb)
}

/// Two source rows resampled along x, remembered by their index so that consecutive output
/// rows sharing a source row resample it once.
struct Resampled {
    slots: [(Option<usize>, Vec<f32>); 2],
}

impl Resampled {
    fn new(width: usize) -> Self {
        let slot = || (None, vec![0f32; 3 * width]);
        Self {
            slots: [slot(), slot()],
        }
    }

    /// Source rows `i0` and `i1` resampled (they may be the same row).
    fn rows<'s, 'r>(
        &'s mut self,
        i0: usize,
        i1: usize,
        row: impl Fn(usize) -> &'r [u8],
        xs: &Taps,
    ) -> (&'s [f32], &'s [f32]) {
        // Keep a slot that holds one of the wanted rows; refill the other.
        for want in [i0, i1] {
            if self.slots.iter().any(|(held, _)| *held == Some(want)) {
                continue;
            }
            let other = if want == i0 { i1 } else { i0 };
            let free = usize::from(self.slots[0].0 == Some(other));
            let (held, values) = &mut self.slots[free];
            horizontal(row(want), xs, values);
            *held = Some(want);
        }
        let find = |i: usize| usize::from(self.slots[0].0 != Some(i));
        (&self.slots[find(i0)].1, &self.slots[find(i1)].1)
    }
}

/// One interleaved RGB source row resampled along x into `out`, three consecutive slices of
/// `xs`'s length (red, green, blue): `src[i0] * (1 - frac) + src[i1] * frac`, as
/// `yolo_golden.py` computes it, each pixel's three channels from one pass over its taps.
fn horizontal(row: &[u8], xs: &Taps, out: &mut [f32]) {
    let width = xs.frac.len();
    let (red, rest) = out.split_at_mut(width);
    let (green, blue) = rest.split_at_mut(width);
    let taps = xs.i0.iter().zip(&xs.i1).zip(&xs.frac);
    for ((((&i0, &i1), &wx1), r), (g, b)) in taps.zip(red).zip(green.iter_mut().zip(blue)) {
        let wx0 = 1.0 - wx1;
        let (a, z) = (&row[i0 * 3..][..3], &row[i1 * 3..][..3]);
        *r = f32::from(a[0]) * wx0 + f32::from(z[0]) * wx1;
        *g = f32::from(a[1]) * wx0 + f32::from(z[1]) * wx1;
        *b = f32::from(a[2]) * wx0 + f32::from(z[2]) * wx1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_image_is_scaled_to_the_full_width_and_centred_vertically() {
        let lb = Letterbox::new(1280, 720, 640);
        assert_eq!((lb.new_width, lb.new_height), (640, 360));
        assert_eq!((lb.left, lb.top), (0, 140));
        assert_eq!(lb.unmap_y(140.0), 0.0);
        assert_eq!(lb.unmap_x(320.0), 640.0);
        assert_eq!(lb.unmap_y(10.0), 0.0, "padding maps to the clamped edge");
    }

    #[test]
    fn padding_is_grey_and_a_uniform_image_keeps_its_value() {
        let image = RgbImage::from_pixel(10, 5, image::Rgb([255, 0, 51]));
        let (chw, lb) = letterbox(&image, 20);
        assert_eq!((lb.new_width, lb.new_height, lb.top), (20, 10, 5));
        let plane = 400;
        assert_eq!(chw[0], PAD_VALUE);
        assert_eq!(chw[5 * 20 + 3], 1.0);
        assert_eq!(chw[plane + 5 * 20 + 3], 0.0);
        assert_eq!(chw[2 * plane + 14 * 20 + 19], 51.0 / 255.0);
        assert_eq!(chw[2 * plane + 15 * 20], PAD_VALUE);
    }

    #[test]
    fn every_value_is_the_bilinear_formula_or_padding_bit_for_bit() {
        // Odd sizes, wide and tall, up- and downscaled: borders on every side.
        for (w, h, size) in [(37, 23, 32), (13, 41, 64), (64, 64, 48), (5, 3, 16)] {
            let image = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 37 + y * 11) as u8, (x * y % 251) as u8, (y * 53) as u8])
            });
            let (chw, lb) = letterbox(&image, size);
            let s = size as usize;
            let xs = Taps::new(w, lb.new_width);
            let ys = Taps::new(h, lb.new_height);
            for c in 0..3 {
                for y in 0..s {
                    for x in 0..s {
                        let got = chw[c * s * s + y * s + x];
                        let (ox, oy) = (
                            x.wrapping_sub(lb.left as usize),
                            y.wrapping_sub(lb.top as usize),
                        );
                        if ox >= lb.new_width as usize || oy >= lb.new_height as usize {
                            assert_eq!(got, PAD_VALUE, "{w}x{h}: padding at {c} {y} {x}");
                            continue;
                        }
                        let px = |xi: usize, yi: usize| {
                            f32::from(image.get_pixel(xi as u32, yi as u32).0[c])
                        };
                        let (wx1, wy1) = (xs.frac[ox], ys.frac[oy]);
                        let (wx0, wy0) = (1.0 - wx1, 1.0 - wy1);
                        let top = px(xs.i0[ox], ys.i0[oy]) * wx0 + px(xs.i1[ox], ys.i0[oy]) * wx1;
                        let bottom =
                            px(xs.i0[ox], ys.i1[oy]) * wx0 + px(xs.i1[ox], ys.i1[oy]) * wx1;
                        let want = (top * wy0 + bottom * wy1) / 255.0;
                        assert_eq!(got.to_bits(), want.to_bits(), "{w}x{h}: {c} {y} {x}");
                    }
                }
            }
        }
    }
}
