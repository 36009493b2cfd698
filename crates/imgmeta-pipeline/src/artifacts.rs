//! Images a job makes (artifacts): the `annotate`, `dream` and `preview` stages' images, and the artifact's record in the
//! result (`result.artifacts`) beside its bytes, which are stored apart from the JSON.

use crate::AnalysisError;
use bytes::Bytes;
use image::DynamicImage;
use imgmeta_domain::{ErrorCode, PREVIEW_MAX_SIDE};
use imgmeta_render::BoxToDraw;
use serde::Serialize;

/// The most one artifact may weigh.
pub const MAX_ARTIFACT_BYTES: usize = 16 * 1024 * 1024;

/// An artifact's bytes and what describes them.
#[derive(Clone)]
pub struct Artifact {
    pub info: ArtifactInfo,
    pub bytes: Bytes,
}

impl std::fmt::Debug for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifact")
            .field("info", &self.info)
            .finish()
    }
}

/// One entry of `result.artifacts` (the API adds its `url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactInfo {
    pub name: String,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub sha256: String,
}

/// The boxes of a `result.objects` document, in pixels of the oriented image.
fn boxes(objects: &serde_json::Value) -> Vec<BoxToDraw> {
    let Some(detections) = objects["detections"].as_array() else {
        return Vec::new();
    };
    detections
        .iter()
        .filter_map(|d| {
            let b = &d["box"];
            Some(BoxToDraw {
                label: d["label"].as_str()?.to_owned(),
                class_id: usize::try_from(d["class_id"].as_u64()?).ok()?,
                score: d["score"].as_f64()?,
                x_min: b["x_min"].as_f64()?,
                y_min: b["y_min"].as_f64()?,
                x_max: b["x_max"].as_f64()?,
                y_max: b["y_max"].as_f64()?,
            })
        })
        .collect()
}

/// `annotated.jpg` (`annotated.png` for images with alpha): `image` with the detections of
/// `objects` drawn.
pub(crate) fn annotated(
    image: &DynamicImage,
    objects: &serde_json::Value,
) -> Result<Artifact, AnalysisError> {
    artifact(
        "annotated",
        &imgmeta_render::annotate(image, &boxes(objects)),
    )
}

/// `dream.jpg`: the dreamed image.
pub(crate) fn dreamed(image: image::RgbImage) -> Result<Artifact, AnalysisError> {
    artifact("dream", &DynamicImage::ImageRgb8(image))
}

/// `preview.jpg` (`.png` for images with alpha): the upright `image`, scaled down (never up) so
/// that its longest side is at most [`PREVIEW_MAX_SIDE`], aspect ratio kept.
pub(crate) fn preview(image: &DynamicImage) -> Result<Artifact, AnalysisError> {
    let (width, height) = preview_size(image.width(), image.height());
    if (width, height) == (image.width(), image.height()) {
        return artifact("preview", image);
    }
    let scaled = image.resize_exact(width, height, image::imageops::FilterType::Triangle);
    artifact("preview", &scaled)
}

/// The preview's size for an image of `width` x `height`: the longest side brought down to
/// [`PREVIEW_MAX_SIDE`] (each side at least 1 px), or the size itself when already small.
fn preview_size(width: u32, height: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= PREVIEW_MAX_SIDE {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled = (u64::from(side) * u64::from(PREVIEW_MAX_SIDE) + u64::from(longest) / 2)
            / u64::from(longest);
        u32::try_from(scaled).unwrap_or(PREVIEW_MAX_SIDE).max(1)
    };
    (scale(width), scale(height))
}

/// `<stem>.jpg` (`.png` for images with alpha), at most [`MAX_ARTIFACT_BYTES`].
fn artifact(stem: &str, image: &DynamicImage) -> Result<Artifact, AnalysisError> {
    let encoded = imgmeta_render::encode(image)
        .map_err(|e| AnalysisError::new(ErrorCode::Internal, e.to_string()))?;
    if encoded.bytes.len() > MAX_ARTIFACT_BYTES {
        return Err(AnalysisError::new(
            ErrorCode::ResultTooLarge,
            format!(
                "the {stem} image is {} bytes, more than the {MAX_ARTIFACT_BYTES} an artifact may hold",
                encoded.bytes.len()
            ),
        ));
    }
    Ok(Artifact {
        info: ArtifactInfo {
            name: format!("{stem}.{}", encoded.extension),
            mime: encoded.mime.to_owned(),
            width: encoded.width,
            height: encoded.height,
            bytes: encoded.bytes.len() as u64,
            sha256: encoded.sha256,
        },
        bytes: Bytes::from(encoded.bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_come_from_the_objects_document() {
        let objects = serde_json::json!({
            "detections": [
                {"label": "cat", "class_id": 15, "score": 0.81,
                 "box": {"x_min": 1.5, "y_min": 2.0, "x_max": 30.0, "y_max": 40.0},
                 "box_normalized": {"x_min": 0.0, "y_min": 0.0, "x_max": 1.0, "y_max": 1.0}},
                {"label": "broken"}
            ]
        });
        let found = boxes(&objects);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].label, "cat");
        assert_eq!((found[0].x_min, found[0].y_max), (1.5, 40.0));
    }

    #[test]
    fn the_annotated_artifact_is_a_jpeg_of_the_images_size() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::new(120, 80));
        let objects = serde_json::json!({"detections": []});
        let artifact = annotated(&image, &objects).unwrap();
        assert_eq!(artifact.info.name, "annotated.jpg");
        assert_eq!(artifact.info.mime, "image/jpeg");
        assert_eq!((artifact.info.width, artifact.info.height), (120, 80));
        assert_eq!(artifact.info.bytes as usize, artifact.bytes.len());
        assert_eq!(&artifact.bytes[..2], &[0xFF, 0xD8]);
    }

    #[test]
    fn a_preview_brings_the_longest_side_down_to_the_limit_and_keeps_the_shape() {
        assert_eq!(preview_size(640, 480), (640, 480));
        assert_eq!(preview_size(1280, 1280), (1280, 1280));
        assert_eq!(preview_size(4000, 3000), (1280, 960));
        assert_eq!(preview_size(3000, 4000), (960, 1280));
        assert_eq!(preview_size(2561, 1), (1280, 1));
        assert_eq!(preview_size(1, 100_000), (1, 1280));
    }

    #[test]
    fn the_preview_artifact_is_the_image_scaled_with_its_colours() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_fn(2000, 1000, |x, _| {
            if x < 1000 {
                image::Rgb([250, 0, 0])
            } else {
                image::Rgb([0, 0, 250])
            }
        }));
        let artifact = preview(&image).unwrap();
        assert_eq!(artifact.info.name, "preview.jpg");
        assert_eq!((artifact.info.width, artifact.info.height), (1280, 640));
        let decoded = image::load_from_memory(&artifact.bytes).unwrap().to_rgb8();
        assert_eq!(decoded.dimensions(), (1280, 640));
        let left = decoded.get_pixel(100, 320);
        let right = decoded.get_pixel(1180, 320);
        assert!(left[0] > 200 && left[2] < 50, "{left:?}");
        assert!(right[2] > 200 && right[0] < 50, "{right:?}");
        let small = DynamicImage::ImageRgba8(image::RgbaImage::new(30, 20));
        let artifact = preview(&small).unwrap();
        assert_eq!(artifact.info.name, "preview.png");
        assert_eq!((artifact.info.width, artifact.info.height), (30, 20));
    }
}
