//! What the caches keep of an analysis and how each job's answer is cut from it: the parts
//! it asked for, its `min_score`, its account's GPS setting, and how the cache answered.
//!
//! Shared by the pipeline (a content hit in a worker), the store (followers of a single
//! flight, completed in their leader's commit) and the API (a URL hit answered at submission),
//! so that every path gives the same document.

use crate::{MinScore, Task, TaskSet};
use serde::Serialize;
use serde_json::{Value, json};

/// Detections are computed down to this score for the caches; a job asking for less runs
/// without them.
pub const OBJECTS_FLOOR: f32 = 0.05;

/// Whether a job may be answered from (and feed) the caches: only metadata and objects are
/// kept (never artifacts), objects only down to [`OBJECTS_FLOOR`], and not when the client
/// asked to bypass them.
pub fn cacheable(tasks: &TaskSet, min_score: MinScore, bypass: bool) -> bool {
    !bypass
        && min_score.value() >= OBJECTS_FLOOR
        && tasks
            .iter()
            .all(|t| matches!(t, Task::Metadata | Task::Objects))
}

/// How a job's answer was found: `result.cache`, lifted into the job resource as `cache`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheInfo {
    /// `hit` (from a fresh entry), `miss` (analysed, then kept), `coalesced` (completed by the
    /// run another job was already making for the same URL), `revalidated` (a stale entry the
    /// origin confirmed with `304`), `stale` (a stale entry, served while another job
    /// refreshes it), `bypass` (not cacheable, or the client's `"cache": "bypass"`).
    pub status: &'static str,
    /// `url` or `content`: which key answered; `null` when the cache was bypassed.
    pub key: Option<&'static str>,
    /// The age of the analysis that answered, in seconds (0 for a fresh one).
    pub age_s: f64,
}

impl CacheInfo {
    pub fn new(status: &'static str, key: Option<&'static str>, age_s: f64) -> Self {
        Self {
            status,
            key,
            age_s: (age_s.max(0.0) * 1000.0).round() / 1000.0,
        }
    }

    pub fn miss() -> Self {
        Self::new("miss", Some("content"), 0.0)
    }

    pub fn bypass() -> Self {
        Self::new("bypass", None, 0.0)
    }
}

/// `result.objects` for a job's `min_score`, from one made at a lower score. Class-wise greedy
/// NMS followed by a score filter keeps exactly the boxes that filtering first would (a box is
/// only ever suppressed by a higher-scoring one), so one entry serves every `min_score`.
pub fn objects_at(objects: &Value, min_score: f32) -> Value {
    let mut out = objects.clone();
    if let Some(detections) = out.get_mut("detections").and_then(|d| d.as_array_mut()) {
        // Scores are printed as the shortest decimal of their f32, so this compares the same
        // f32 values the detector's own filter does.
        detections.retain(|d| d["score"].as_f64().is_some_and(|s| s as f32 >= min_score));
    }
    if let Some(model) = out.get_mut("model") {
        model["min_score"] = crate::decimal(min_score).into();
    }
    out
}

/// `result.image` without the GPS position (the account's privacy setting): the coordinates
/// and the warning that would say the file carried some.
pub fn redact_gps(image: &mut Value) {
    if let Some(exif) = image.get_mut("exif").filter(|e| e.is_object()) {
        exif["gps"] = Value::Null;
    }
    if let Some(warnings) = image.get_mut("warnings").and_then(|w| w.as_array_mut()) {
        warnings.retain(|w| w["code"] != "gps_out_of_range");
    }
}

/// What a cache holds for one image: the unredacted metadata, and detections down to the
/// floor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    pub image: Option<Value>,
    pub objects: Option<Value>,
}

/// What one job asked of an analysis.
#[derive(Debug, Clone, Copy)]
pub struct Cut<'a> {
    pub tasks: &'a TaskSet,
    pub min_score: MinScore,
    pub redact_gps: bool,
}

impl Analysis {
    /// Whether it holds every part `tasks` asks for.
    pub fn covers(&self, tasks: &TaskSet) -> bool {
        (!tasks.contains(Task::Metadata) || self.image.is_some())
            && (!tasks.iter().any(Task::reports_objects) || self.objects.is_some())
    }

    /// The parts a job asked for: its metadata (redacted per its account) and its objects at
    /// its `min_score`.
    pub fn cut(&self, cut: Cut<'_>) -> (Option<Value>, Option<Value>) {
        let image = match cut.tasks.contains(Task::Metadata) {
            true => self.image.clone().map(|mut image| {
                if cut.redact_gps {
                    redact_gps(&mut image);
                }
                image
            }),
            false => None,
        };
        // `annotate` reports the objects it drew, as `objects` does.
        let objects = match cut.tasks.iter().any(Task::reports_objects) {
            true => self
                .objects
                .as_ref()
                .map(|o| objects_at(o, cut.min_score.value())),
            false => None,
        };
        (image, objects)
    }

    /// A whole `result` document for a job answered without running any stage (a URL hit at
    /// submission, or a follower completed with its leader's analysis).
    pub fn answer(&self, cut: Cut<'_>, info: &CacheInfo) -> Value {
        let (image, objects) = self.cut(cut);
        json!({
            "image": image,
            "objects": objects,
            "cache": info,
            "timings_ms": {"fetch": 0.0, "decode": 0.0, "metadata": null, "objects": null},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(image["exif"]["gps"], Value::Null);
        assert_eq!(image["exif"]["make"], "X");
        assert_eq!(image["warnings"], json!([{"code": "trailing_data"}]));
        let mut no_exif = json!({"exif": null, "warnings": []});
        redact_gps(&mut no_exif);
        assert_eq!(no_exif["exif"], Value::Null);
    }

    #[test]
    fn an_answer_holds_only_the_asked_parts_cut_for_the_job() {
        let analysis = Analysis {
            image: Some(json!({"exif": {"gps": {"latitude": 1.0}}, "warnings": []})),
            objects: Some(json!({"model": {}, "detections": [
                {"label": "cat", "score": 0.9}, {"label": "cup", "score": 0.1}]})),
        };
        let tasks = TaskSet::parse(&["objects"]).unwrap();
        let cut = Cut {
            tasks: &tasks,
            min_score: MinScore::parse(0.5).unwrap(),
            redact_gps: true,
        };
        let answer = analysis.answer(cut, &CacheInfo::new("hit", Some("url"), 1.23456));
        assert_eq!(answer["image"], Value::Null);
        assert_eq!(answer["objects"]["detections"].as_array().unwrap().len(), 1);
        assert_eq!(
            answer["cache"],
            json!({"status": "hit", "key": "url", "age_s": 1.235})
        );
        let both = TaskSet::all();
        let (image, _) = analysis.cut(Cut {
            tasks: &both,
            min_score: MinScore::DEFAULT,
            redact_gps: true,
        });
        assert_eq!(image.unwrap()["exif"]["gps"], Value::Null);
        assert!(analysis.covers(&both));
        assert!(!Analysis::default().covers(&tasks));
    }

    #[test]
    fn only_metadata_and_objects_at_or_above_the_floor_are_cacheable() {
        let tasks = TaskSet::parse(&["metadata", "objects"]).unwrap();
        assert!(cacheable(&tasks, MinScore::DEFAULT, false));
        assert!(!cacheable(&tasks, MinScore::DEFAULT, true));
        assert!(!cacheable(&tasks, MinScore::parse(0.01).unwrap(), false));
        assert!(!cacheable(
            &TaskSet::parse(&["annotate"]).unwrap(),
            MinScore::DEFAULT,
            false
        ));
    }
}
