//! The content cache's seam and rules: an analysis of some bytes (their metadata, and their
//! objects down to a score floor) is kept under the bytes' SHA-256 and the detector's version,
//! and any later job whose image has the same bytes, whichever its URL, upload or account,
//! takes its answer from there without decoding or running the detector.
//!
//! The cache holds only what the bytes are, never who asked: GPS redaction and the job's
//! `min_score` are applied to each answer. One entry serves every `min_score` at or above the
//! floor, because class-wise greedy NMS followed by a score filter keeps exactly the boxes that
//! filtering first would (a box is only ever suppressed by a higher-scoring one), and the
//! `max_detections` cap keeps the highest scores either way.

use serde::Serialize;
use std::future::Future;
use std::pin::Pin;

/// Detections are computed down to this score for the cache; a job asking for less runs
/// without it.
pub const OBJECTS_FLOOR: f32 = 0.05;

/// What the cache holds for one image's bytes.
#[derive(Debug, Clone, Default)]
pub struct CachedAnalysis {
    /// `result.image`, unredacted.
    pub image: Option<serde_json::Value>,
    /// `result.objects` with every detection scoring at least [`OBJECTS_FLOOR`].
    pub objects: Option<serde_json::Value>,
    /// Seconds since the analysis was made.
    pub age_s: f64,
}

/// A boxed future, as the cache's implementations are async and live in other crates.
pub type CacheFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where analyses are kept (PostgreSQL, implemented by the worker's store). A failing cache is
/// a slower service, never a failed job: `get` answers `None` and `put` forgets.
pub trait ContentCache: Send + Sync + 'static {
    fn get<'a>(
        &'a self,
        sha256: &'a str,
        model: &'a str,
    ) -> CacheFuture<'a, Option<CachedAnalysis>>;
    fn put<'a>(
        &'a self,
        sha256: &'a str,
        model: &'a str,
        analysis: &'a CachedAnalysis,
    ) -> CacheFuture<'a, ()>;
}

/// How a job's answer was found: `result.cache` (lifted into the job resource).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheInfo {
    /// `hit` (answered from the cache), `miss` (analysed, then kept), `bypass` (the job asked
    /// for something the cache does not hold: a `min_score` under the floor, an annotated
    /// image or a dream, or the client's `"cache": "bypass"`).
    pub status: &'static str,
    /// `content` when the bytes' digest was the key; `null` when the cache was bypassed.
    pub key: Option<&'static str>,
    /// The age of the analysis that answered, in seconds (0 for a fresh one).
    pub age_s: f64,
}

impl CacheInfo {
    pub fn hit(age_s: f64) -> Self {
        Self {
            status: "hit",
            key: Some("content"),
            age_s: (age_s * 1000.0).round() / 1000.0,
        }
    }

    pub fn miss() -> Self {
        Self {
            status: "miss",
            key: Some("content"),
            age_s: 0.0,
        }
    }

    pub fn bypass() -> Self {
        Self {
            status: "bypass",
            key: None,
            age_s: 0.0,
        }
    }
}

/// `result.objects` for a job's `min_score`, from one made at a lower score.
pub fn objects_at(objects: &serde_json::Value, min_score: f32) -> serde_json::Value {
    let mut out = objects.clone();
    if let Some(detections) = out.get_mut("detections").and_then(|d| d.as_array_mut()) {
        // Scores are printed as the shortest decimal of their f32, so this compares the same
        // f32 values the detector's own filter does.
        detections.retain(|d| d["score"].as_f64().is_some_and(|s| s as f32 >= min_score));
    }
    if let Some(model) = out.get_mut("model") {
        model["min_score"] = imgmeta_domain::decimal(min_score).into();
    }
    out
}

/// `result.image` without the GPS position (the account's privacy setting): the coordinates
/// and the warning that would say the file carried some.
pub fn redact_gps(image: &mut serde_json::Value) {
    if let Some(exif) = image.get_mut("exif").filter(|e| e.is_object()) {
        exif["gps"] = serde_json::Value::Null;
    }
    if let Some(warnings) = image.get_mut("warnings").and_then(|w| w.as_array_mut()) {
        warnings.retain(|w| w["code"] != "gps_out_of_range");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_at_a_higher_score_keep_the_detections_scoring_at_least_it() {
        let at_floor = json!({
            "model": {"min_score": 0.05, "name": "yolov12n"},
            "detections": [
                {"label": "cat", "score": 0.91},
                {"label": "dog", "score": 0.25},
                {"label": "cup", "score": 0.07}
            ]
        });
        let at = objects_at(&at_floor, 0.25);
        assert_eq!(at["model"]["min_score"], json!(0.25));
        let labels: Vec<_> = at["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["label"].as_str().unwrap())
            .collect();
        assert_eq!(labels, ["cat", "dog"], "a score equal to min_score stays");
        assert_eq!(
            objects_at(&at_floor, 0.05)["detections"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn redaction_removes_the_position_and_its_warning_only() {
        let mut image = json!({
            "exif": {"gps": {"latitude": 1.0}, "make": "X"},
            "warnings": [{"code": "gps_out_of_range"}, {"code": "trailing_data"}]
        });
        redact_gps(&mut image);
        assert_eq!(image["exif"]["gps"], serde_json::Value::Null);
        assert_eq!(image["exif"]["make"], "X");
        assert_eq!(image["warnings"], json!([{"code": "trailing_data"}]));
        let mut no_exif = json!({"exif": null, "warnings": []});
        redact_gps(&mut no_exif);
        assert_eq!(no_exif["exif"], serde_json::Value::Null);
    }
}
