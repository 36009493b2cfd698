//! Dominant colours: a coarse colour histogram of a downscaled copy.
//!
//! Hand-written rather than a k-means crate because a fixed histogram is deterministic
//! without seeding, runs in one pass over at most 64×64 pixels and needs ~40 lines.

use image::{DynamicImage, imageops::FilterType};
use serde::{Deserialize, Serialize};

/// One of the image's most common colours and the share of opaque pixels close to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DominantColor {
    /// `#rrggbb`, lowercase: the mean of the pixels in this colour's bin.
    pub hex: String,
    /// Share of the opaque pixels, 0 to 1. The fractions of all reported colours sum to ≤ 1.
    pub fraction: f64,
}

const MAX_COLORS: usize = 5;
const SAMPLE_SIDE: u32 = 64;
/// Bits kept per channel: 3 gives 512 bins, coarse enough that shading of one surface
/// falls into one bin, fine enough to separate distinct hues.
const BITS: u32 = 3;

pub(crate) fn dominant_colors(image: &DynamicImage) -> Vec<DominantColor> {
    // Triangle filtering averages neighbours, so tiny speckles do not become "dominant".
    let sample = image
        .resize(SAMPLE_SIDE, SAMPLE_SIDE, FilterType::Triangle)
        .to_rgba8();
    let bins = 1usize << (3 * BITS);
    let mut count = vec![0u64; bins];
    let mut sum = vec![[0u64; 3]; bins];
    let mut opaque = 0u64;
    for pixel in sample.pixels() {
        let [r, g, b, a] = pixel.0;
        // Mostly transparent pixels have no meaningful colour.
        if a < 128 {
            continue;
        }
        opaque += 1;
        let shift = 8 - BITS;
        let bin = ((usize::from(r) >> shift) << (2 * BITS))
            | ((usize::from(g) >> shift) << BITS)
            | (usize::from(b) >> shift);
        count[bin] += 1;
        for (total, channel) in sum[bin].iter_mut().zip([r, g, b]) {
            *total += u64::from(channel);
        }
    }
    if opaque == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..bins).filter(|&bin| count[bin] > 0).collect();
    // Most pixels first; ties broken by bin index so the output is deterministic.
    order.sort_by(|&a, &b| count[b].cmp(&count[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(MAX_COLORS)
        .map(|bin| {
            let n = count[bin];
            let mean = sum[bin].map(|total| u8::try_from((total + n / 2) / n).unwrap_or(u8::MAX));
            DominantColor {
                hex: format!("#{:02x}{:02x}{:02x}", mean[0], mean[1], mean[2]),
                fraction: round4(n as f64 / opaque as f64),
            }
        })
        .collect()
}

/// Four decimals: more would only report sampling noise. Rounding down keeps the sum ≤ 1.
fn round4(x: f64) -> f64 {
    (x * 10_000.0).floor() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    #[test]
    fn a_two_colour_image_reports_both_colours_with_their_shares() {
        let mut img = RgbaImage::from_pixel(100, 100, Rgba([255, 0, 0, 255]));
        for y in 0..100 {
            for x in 0..25 {
                img.put_pixel(x, y, Rgba([0, 0, 255, 255]));
            }
        }
        let colors = dominant_colors(&DynamicImage::ImageRgba8(img));
        // Resampling blends the seam, so compare colours within a few levels.
        let near = |hex: &str, rgb: [u8; 3]| {
            let v = u32::from_str_radix(&hex[1..], 16).unwrap();
            let got = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
            got.iter().zip(rgb).all(|(g, w)| g.abs_diff(w) <= 3)
        };
        assert!(near(&colors[0].hex, [255, 0, 0]), "{colors:?}");
        assert!((colors[0].fraction - 0.75).abs() < 0.05, "{colors:?}");
        assert!(
            colors.iter().any(|c| near(&c.hex, [0, 0, 255])),
            "{colors:?}"
        );
        assert!(colors.iter().map(|c| c.fraction).sum::<f64>() <= 1.0);
    }

    #[test]
    fn a_fully_transparent_image_has_no_dominant_colours() {
        let img = RgbaImage::from_pixel(10, 10, Rgba([255, 255, 255, 0]));
        assert!(dominant_colors(&DynamicImage::ImageRgba8(img)).is_empty());
    }
}
