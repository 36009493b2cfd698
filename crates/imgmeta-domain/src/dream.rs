//! `DreamOptions`: the validated parameters of the `dream` task (DeepDream), each with its
//! documented default and bounds, as a job's `"dream"` object spells them.

use crate::{ErrorCode, ValidationError};
use serde::{Deserialize, Serialize};

/// The YOLOv12n modules whose output maps may be amplified (Ultralytics' module paths):
/// every backbone stage and the neck's four feature blocks.
pub const DREAM_LAYERS: [&str; 13] = [
    "model.0", "model.1", "model.2", "model.3", "model.4", "model.5", "model.6", "model.7",
    "model.8", "model.11", "model.14", "model.17", "model.20",
];

/// The 80 COCO classes the detector knows, which `"class"` may name.
pub const COCO_CLASSES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// At most this many gradient steps in all (`steps × octaves`).
pub const MAX_DREAM_STEPS: u32 = 200;
/// The longest side a dream is computed at.
pub const MAX_DREAM_SIDE: u32 = 1024;

/// DeepDream's parameters; see the README's `dream` section for what each does.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DreamOptions {
    layers: Vec<String>,
    class: Option<String>,
    octaves: u32,
    #[serde(serialize_with = "shortest")]
    octave_scale: f32,
    steps: u32,
    #[serde(serialize_with = "shortest")]
    step_size: f32,
    jitter: u32,
    max_side: u32,
    seed: u64,
}

/// An f32 as the shortest decimal that reads back as it (`1.4`, not `1.399999976158142`, which
/// is what converting it to a JSON document's f64 would print).
fn shortest<S: serde::Serializer>(value: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(crate::decimal(*value))
}

/// The client's spelling of DeepDream's parameters: every field optional (defaults as in
/// `DreamOptions`), unknown fields refused.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DreamRequest)]
pub struct RawDream {
    layers: Option<Vec<String>>,
    class: Option<String>,
    octaves: Option<u32>,
    octave_scale: Option<f32>,
    steps: Option<u32>,
    step_size: Option<f32>,
    jitter: Option<u32>,
    max_side: Option<u32>,
    seed: Option<u64>,
}

impl Default for DreamOptions {
    fn default() -> Self {
        Self {
            layers: vec!["model.4".into(), "model.6".into()],
            class: None,
            octaves: 4,
            octave_scale: 1.4,
            steps: 10,
            step_size: 0.02,
            jitter: 32,
            max_side: 512,
            seed: 0,
        }
    }
}

/// A client's text quoted in a message: at most 40 characters.
fn shorten(raw: &str) -> String {
    raw.chars().take(40).collect()
}

fn invalid(message: impl Into<String>) -> ValidationError {
    ValidationError::new(ErrorCode::InvalidDream, message)
}

impl DreamOptions {
    /// From a job's `"dream"` object (`null` or absent fields take their defaults).
    pub fn parse(value: &serde_json::Value) -> Result<Self, ValidationError> {
        let raw: RawDream = match value {
            serde_json::Value::Null => RawDream::default(),
            serde_json::Value::Object(_) => serde_json::from_value(value.clone())
                .map_err(|e| invalid(format!("dream options: {e}")))?,
            _ => return Err(invalid("\"dream\" must be an object")),
        };
        let d = Self::default();
        let class = raw.class;
        // A class objective replaces the layers' unless layers are named too.
        let layers = match (raw.layers, &class) {
            (Some(layers), _) => layers,
            (None, Some(_)) => Vec::new(),
            (None, None) => d.layers,
        };
        let options = Self {
            layers,
            class,
            octaves: raw.octaves.unwrap_or(d.octaves),
            octave_scale: raw.octave_scale.unwrap_or(d.octave_scale),
            steps: raw.steps.unwrap_or(d.steps),
            step_size: raw.step_size.unwrap_or(d.step_size),
            jitter: raw.jitter.unwrap_or(d.jitter),
            max_side: raw.max_side.unwrap_or(d.max_side),
            seed: raw.seed.unwrap_or(d.seed),
        };
        options.check()?;
        Ok(options)
    }

    fn check(&self) -> Result<(), ValidationError> {
        if self.layers.is_empty() && self.class.is_none() {
            return Err(invalid(
                "a dream needs \"layers\" or a \"class\" to amplify",
            ));
        }
        if self.layers.len() > DREAM_LAYERS.len() {
            return Err(invalid("too many layers"));
        }
        for layer in &self.layers {
            if !DREAM_LAYERS.contains(&layer.as_str()) {
                return Err(invalid(format!(
                    "unknown layer {:?}; known layers are {}",
                    shorten(layer),
                    DREAM_LAYERS.join(", ")
                )));
            }
        }
        if let Some(class) = &self.class
            && !COCO_CLASSES.contains(&class.as_str())
        {
            return Err(invalid(format!(
                "unknown class {:?}; \"class\" is one of the 80 COCO class names, e.g. \"dog\"",
                shorten(class)
            )));
        }
        let bounded = |name: &str, ok: bool, bounds: &str| match ok {
            true => Ok(()),
            false => Err(invalid(format!("{name} must be {bounds}"))),
        };
        bounded("octaves", (1..=8).contains(&self.octaves), "1 to 8")?;
        bounded(
            "octave_scale",
            (1.1..=2.0).contains(&self.octave_scale),
            "from 1.1 to 2.0",
        )?;
        bounded("steps", (1..=100).contains(&self.steps), "1 to 100")?;
        bounded(
            "steps × octaves",
            self.steps * self.octaves <= MAX_DREAM_STEPS,
            "at most 200",
        )?;
        bounded(
            "step_size",
            self.step_size > 0.0 && self.step_size <= 0.1,
            "above 0 and at most 0.1",
        )?;
        bounded("jitter", self.jitter <= 128, "0 to 128 pixels")?;
        bounded(
            "max_side",
            (64..=MAX_DREAM_SIDE).contains(&self.max_side),
            "64 to 1024 pixels",
        )
    }

    /// The layers to amplify, by name (see [`DREAM_LAYERS`]).
    pub fn layers(&self) -> &[String] {
        &self.layers
    }
    /// The COCO class whose score maps to amplify, if any.
    pub fn class(&self) -> Option<&str> {
        self.class.as_deref()
    }
    pub fn octaves(&self) -> u32 {
        self.octaves
    }
    pub fn octave_scale(&self) -> f32 {
        self.octave_scale
    }
    pub fn steps(&self) -> u32 {
        self.steps
    }
    /// The mean change of a pixel value (on a 0 to 1 scale) per step.
    pub fn step_size(&self) -> f32 {
        self.step_size
    }
    /// The largest random shift, in pixels, applied before each step.
    pub fn jitter(&self) -> u32 {
        self.jitter
    }
    pub fn max_side(&self) -> u32 {
        self.max_side
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// With a different longest side (for benchmarks), checked like a client's.
    pub fn with_max_side(mut self, max_side: u32) -> Result<Self, ValidationError> {
        self.max_side = max_side;
        self.check()?;
        Ok(self)
    }

    /// With different octaves and steps (for benchmarks), checked like a client's.
    pub fn with_schedule(mut self, octaves: u32, steps: u32) -> Result<Self, ValidationError> {
        self.octaves = octaves;
        self.steps = steps;
        self.check()?;
        Ok(self)
    }
}

impl<'de> Deserialize<'de> for DreamOptions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&serde_json::Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_fields_take_the_documented_defaults() {
        let o = DreamOptions::parse(&json!({})).unwrap();
        assert_eq!(o, DreamOptions::default());
        assert_eq!(DreamOptions::parse(&serde_json::Value::Null).unwrap(), o);
        assert_eq!(o.layers(), ["model.4", "model.6"]);
        assert_eq!((o.octaves(), o.steps(), o.max_side()), (4, 10, 512));
    }

    #[test]
    fn a_class_alone_replaces_the_default_layers() {
        let o = DreamOptions::parse(&json!({"class": "dog"})).unwrap();
        assert_eq!(o.class(), Some("dog"));
        assert!(o.layers().is_empty());
        let both = DreamOptions::parse(&json!({"class": "dog", "layers": ["model.2"]})).unwrap();
        assert_eq!(both.layers(), ["model.2"]);
    }

    #[test]
    fn values_out_of_bounds_are_refused_with_invalid_dream() {
        for bad in [
            json!({"max_side": 2048}),
            json!({"max_side": 10}),
            json!({"steps": 60, "octaves": 4}),
            json!({"octaves": 0}),
            json!({"octave_scale": 3.0}),
            json!({"step_size": 0}),
            json!({"jitter": 500}),
            json!({"layers": ["model.9"]}),
            json!({"layers": []}),
            json!({"class": "unicorn"}),
            json!({"colour": "blue"}),
            json!("deep"),
            json!({"steps": -1}),
        ] {
            let err = DreamOptions::parse(&bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidDream, "{bad}");
        }
    }

    #[test]
    fn the_options_serialise_as_they_are_spelled() {
        let o = DreamOptions::parse(&json!({"class": "cat", "seed": 7})).unwrap();
        let value = serde_json::to_value(&o).unwrap();
        assert_eq!(DreamOptions::parse(&value).unwrap(), o);
        assert_eq!(value["octave_scale"], json!(1.4));
        assert_eq!(value["step_size"], json!(0.02));
    }
}
