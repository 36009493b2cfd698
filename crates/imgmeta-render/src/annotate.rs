//! Drawing detections: a box in the class's colour, lines thick enough to see at any size, and
//! a `label score` tag on a filled band of the same colour, in white or black for contrast.

use image::{DynamicImage, Rgba, RgbaImage};
use imageproc::drawing::draw_filled_rect_mut;
use imageproc::rect::Rect;
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

/// One detection to draw, in pixels of the image it is drawn on.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxToDraw {
    pub label: String,
    pub class_id: usize,
    pub score: f64,
    pub x_min: f64,
    pub y_min: f64,
    pub x_max: f64,
    pub y_max: f64,
}

/// Twenty colours far apart from one another (Kelly's and Tableau's palettes), one per class
/// modulo 20: neighbouring class ids never share a colour.
const PALETTE: [[u8; 3]; 20] = [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
    [0, 128, 128],
    [220, 190, 255],
    [170, 110, 40],
    [255, 250, 200],
    [128, 0, 0],
    [170, 255, 195],
    [128, 128, 0],
    [255, 215, 180],
    [0, 0, 128],
    [128, 128, 128],
];

/// The colour boxes of `class_id` are drawn in.
pub fn class_colour(class_id: usize) -> [u8; 3] {
    PALETTE[class_id % PALETTE.len()]
}

const TEXT_SIZE: RasterHeight = RasterHeight::Size20;
const TEXT_WEIGHT: FontWeight = FontWeight::Bold;
const PADDING: u32 = 3;

/// `image` with every box drawn. The result keeps the input's alpha channel when it has one.
pub fn annotate(image: &DynamicImage, boxes: &[BoxToDraw]) -> DynamicImage {
    let has_alpha = image.color().has_alpha();
    let mut canvas = image.to_rgba8();
    let (width, height) = canvas.dimensions();
    let thickness = (width.min(height) / 200).clamp(2, 12);
    // Lowest score first, so the most confident boxes and tags end up on top.
    let mut order: Vec<&BoxToDraw> = boxes.iter().collect();
    order.sort_by(|a, b| a.score.total_cmp(&b.score));
    for b in order {
        draw_box(&mut canvas, b, thickness);
    }
    if has_alpha {
        DynamicImage::ImageRgba8(canvas)
    } else {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(canvas).to_rgb8())
    }
}

fn draw_box(canvas: &mut RgbaImage, b: &BoxToDraw, thickness: u32) {
    let (width, height) = canvas.dimensions();
    let clamp = |v: f64, max: u32| (v.round().max(0.0) as u32).min(max.saturating_sub(1));
    let (x0, y0) = (clamp(b.x_min, width), clamp(b.y_min, height));
    let (x1, y1) = (clamp(b.x_max, width), clamp(b.y_max, height));
    if x1 <= x0 || y1 <= y0 {
        return;
    }
    let [r, g, bl] = class_colour(b.class_id);
    let colour = Rgba([r, g, bl, 255]);
    let (box_w, box_h) = (x1 - x0 + 1, y1 - y0 + 1);
    let t = thickness.min(box_w).min(box_h);
    // Four bands inside the box's edges, so the outline never leaves the image.
    let bands = [
        (x0, y0, box_w, t),
        (x0, y1 + 1 - t, box_w, t),
        (x0, y0, t, box_h),
        (x1 + 1 - t, y0, t, box_h),
    ];
    for (x, y, w, h) in bands {
        draw_filled_rect_mut(canvas, Rect::at(x as i32, y as i32).of_size(w, h), colour);
    }
    draw_tag(
        canvas,
        &format!("{} {:.2}", b.label, b.score),
        (x0, y0, y1),
        colour,
    );
}

/// The `label score` tag: above the box when there is room, else just inside its top edge.
fn draw_tag(canvas: &mut RgbaImage, text: &str, (x0, y0, y1): (u32, u32, u32), band: Rgba<u8>) {
    let (width, height) = canvas.dimensions();
    let glyph_w = get_raster_width(TEXT_WEIGHT, TEXT_SIZE) as u32;
    let glyph_h = TEXT_SIZE.val() as u32;
    let text: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let tag_w = (glyph_w * text.chars().count() as u32 + 2 * PADDING).min(width);
    let tag_h = glyph_h + 2 * PADDING;
    if tag_h > height {
        return;
    }
    let top = if y0 >= tag_h { y0 - tag_h } else { y0.min(y1) };
    let top = top.min(height - tag_h);
    let left = x0.min(width - tag_w);
    draw_filled_rect_mut(
        canvas,
        Rect::at(left as i32, top as i32).of_size(tag_w, tag_h),
        band,
    );
    // White on dark colours, black on light ones (relative luminance, ITU-R BT.709).
    let luminance =
        0.2126 * f64::from(band[0]) + 0.7152 * f64::from(band[1]) + 0.0722 * f64::from(band[2]);
    let ink = if luminance > 140.0 { 0u8 } else { 255u8 };
    let mut x = left + PADDING;
    for c in text.chars() {
        if x + glyph_w > left + tag_w {
            break;
        }
        if let Some(raster) = get_raster(c, TEXT_WEIGHT, TEXT_SIZE) {
            for (dy, row) in raster.rows().enumerate() {
                for (dx, &coverage) in row.iter().enumerate() {
                    let (px, py) = (x + dx as u32, top + PADDING + dy as u32);
                    if coverage == 0 || px >= width || py >= height {
                        continue;
                    }
                    let pixel = canvas.get_pixel_mut(px, py);
                    let a = u16::from(coverage);
                    for channel in 0..3 {
                        let under = u16::from(pixel[channel]);
                        pixel[channel] = ((u16::from(ink) * a + under * (255 - a)) / 255) as u8;
                    }
                }
            }
        }
        x += glyph_w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            width,
            height,
            image::Rgb([100, 100, 100]),
        ))
    }

    fn dog() -> BoxToDraw {
        BoxToDraw {
            label: "dog".into(),
            class_id: 16,
            score: 0.87,
            x_min: 100.0,
            y_min: 80.0,
            x_max: 300.0,
            y_max: 250.0,
        }
    }

    #[test]
    fn boxes_are_drawn_on_their_edges_in_their_class_colour() {
        let out = annotate(&grey(400, 300), &[dog()]).to_rgb8();
        let [r, g, b] = class_colour(16);
        let colour = image::Rgb([r, g, b]);
        // On each edge, away from the tag.
        assert_eq!(*out.get_pixel(200, 249), colour, "bottom edge");
        assert_eq!(*out.get_pixel(100, 200), colour, "left edge");
        assert_eq!(*out.get_pixel(300, 200), colour, "right edge");
        assert_eq!(*out.get_pixel(250, 80), colour, "top edge");
        // Inside and outside the box, the image is untouched.
        assert_eq!(*out.get_pixel(200, 160), image::Rgb([100, 100, 100]));
        assert_eq!(*out.get_pixel(350, 280), image::Rgb([100, 100, 100]));
        assert_eq!(out.dimensions(), (400, 300));
    }

    #[test]
    fn the_tag_sits_above_the_box_and_carries_text() {
        let out = annotate(&grey(400, 300), &[dog()]).to_rgb8();
        let [r, g, b] = class_colour(16);
        let band = image::Rgb([r, g, b]);
        // The band spans the rows just above the box; text pixels differ from the band.
        let rows = 80 - 26..80;
        let mut band_pixels = 0;
        let mut ink_pixels = 0;
        for y in rows {
            for x in 100..200 {
                let p = *out.get_pixel(x, y);
                if p == band {
                    band_pixels += 1;
                } else if p != image::Rgb([100, 100, 100]) {
                    ink_pixels += 1;
                }
            }
        }
        assert!(band_pixels > 500, "{band_pixels}");
        assert!(
            ink_pixels > 100,
            "the label's letters are drawn: {ink_pixels}"
        );
    }

    #[test]
    fn boxes_at_or_beyond_the_edges_stay_inside_the_image() {
        let edge = BoxToDraw {
            x_min: -20.0,
            y_min: -5.0,
            x_max: 500.0,
            y_max: 400.0,
            ..dog()
        };
        let degenerate = BoxToDraw {
            x_min: 50.0,
            x_max: 50.0,
            ..dog()
        };
        let out = annotate(&grey(64, 48), &[edge, degenerate]).to_rgb8();
        assert_eq!(out.dimensions(), (64, 48));
        let [r, g, b] = class_colour(16);
        assert_eq!(*out.get_pixel(63, 30), image::Rgb([r, g, b]));
    }

    #[test]
    fn alpha_is_kept_and_neighbouring_classes_differ() {
        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(50, 50, Rgba([0, 0, 0, 0])));
        assert!(annotate(&rgba, &[]).color().has_alpha());
        for id in 0..79 {
            assert_ne!(class_colour(id), class_colour(id + 1));
        }
    }
}
