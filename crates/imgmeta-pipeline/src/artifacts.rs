//! Images a job makes (artifacts): the `annotate` and `dream` stages' images, and the artifact's record in the
//! result (`result.artifacts`) beside its bytes, which are stored apart from the JSON.

use crate::AnalysisError;
use bytes::Bytes;
use image::DynamicImage;
use imgmeta_domain::ErrorCode;
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
}
