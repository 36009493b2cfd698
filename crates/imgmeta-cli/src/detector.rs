//! Loading the object detector once per process and plugging it into the pipeline.

use imgmeta_config::Settings;
use imgmeta_domain::DreamOptions;
use imgmeta_pipeline::{AnalysisError, DetectObjects, Dreamed};
use imgmeta_vision::{Detector, DetectorConfig, DeviceKind};
use std::sync::Arc;

/// The candle YOLO detector behind the pipeline's seam.
struct Yolo(Detector);

impl DetectObjects for Yolo {
    fn detect(
        &self,
        image: &image::DynamicImage,
        min_score: f32,
    ) -> Result<serde_json::Value, AnalysisError> {
        let objects = self
            .0
            .detect(image, min_score)
            .map_err(|e| AnalysisError::new(e.code(), e.to_string()))?;
        serde_json::to_value(&objects).map_err(internal)
    }

    fn detect_batch(
        &self,
        images: &[(&image::DynamicImage, f32)],
    ) -> Vec<Result<serde_json::Value, AnalysisError>> {
        match images {
            [] => Vec::new(),
            [(image, min_score)] => vec![self.detect(image, *min_score)],
            _ => match self.0.detect_batch(images) {
                Ok(batch) => batch
                    .iter()
                    .map(|objects| serde_json::to_value(objects).map_err(internal))
                    .collect(),
                // One image the detector refuses (an empty one) must not fail the others.
                Err(_) => images
                    .iter()
                    .map(|(image, min_score)| self.detect(image, *min_score))
                    .collect(),
            },
        }
    }

    fn prepare(
        &self,
        image: &image::DynamicImage,
    ) -> Option<Result<imgmeta_pipeline::Prepared, AnalysisError>> {
        Some(
            self.0
                .prepare(image)
                .map(|p| imgmeta_pipeline::Prepared(Box::new(p)))
                .map_err(|e| AnalysisError::new(e.code(), e.to_string())),
        )
    }

    fn detect_prepared(
        &self,
        items: &[(&imgmeta_pipeline::Prepared, f32)],
    ) -> Vec<Result<serde_json::Value, AnalysisError>> {
        let ours: Option<Vec<(&imgmeta_vision::Prepared, f32)>> = items
            .iter()
            .map(|(p, min_score)| p.0.downcast_ref().map(|p| (p, *min_score)))
            .collect();
        let Some(ours) = ours else {
            return items
                .iter()
                .map(|_| Err(internal("an image prepared by another detector")))
                .collect();
        };
        match self.0.detect_prepared(&ours) {
            Ok(batch) => batch
                .iter()
                .map(|objects| serde_json::to_value(objects).map_err(internal))
                .collect(),
            Err(e) => {
                let error = AnalysisError::new(e.code(), e.to_string());
                items.iter().map(|_| Err(error.clone())).collect()
            }
        }
    }

    fn version(&self) -> String {
        self.0.weights_sha256().to_owned()
    }

    fn dream(
        &self,
        image: &image::DynamicImage,
        options: &DreamOptions,
    ) -> Result<Dreamed, AnalysisError> {
        let dream = self
            .0
            .dream(image, options)
            .map_err(|e| AnalysisError::new(e.code(), e.to_string()))?;
        let octaves = dream
            .octaves
            .iter()
            .map(|o| {
                serde_json::json!({
                    "width": o.width,
                    "height": o.height,
                    "objective": o.objective.iter().map(|v| imgmeta_vision::decimal(*v)).collect::<Vec<_>>(),
                })
            })
            .collect::<Vec<_>>();
        let report = serde_json::json!({
            "parameters": options,
            "working_size": {"width": dream.working_size.0, "height": dream.working_size.1},
            "octaves": octaves,
        });
        Ok(Dreamed {
            image: dream.image,
            report,
        })
    }
}

fn internal(e: impl std::fmt::Display) -> AnalysisError {
    AnalysisError::new(imgmeta_domain::ErrorCode::Internal, e.to_string())
}

/// Makes sure the weights are present (fetching them on first use, progress on stderr) and
/// loads the model. The error says what is wrong and which command fixes it.
pub async fn load(settings: &Settings) -> Result<Arc<dyn DetectObjects>, String> {
    let (model, dir) = (settings.detector.model.clone(), settings.model_dir.clone());
    let cargo_home = settings.cargo_home.clone();
    let device = DeviceKind::parse(&settings.detector.device).map_err(|e| e.to_string())?;
    let threads = settings.worker.inference_threads;
    let iou_threshold = settings.detector.iou_threshold;
    tokio::task::spawn_blocking(move || {
        let files = imgmeta_models::ensure(&model, &dir, cargo_home.as_deref()).map_err(|e| e.to_string())?;
        let config = DetectorConfig {
            device,
            threads,
            iou_threshold,
            ..DetectorConfig::new(files.weights)
        };
        let started = std::time::Instant::now();
        let detector = Detector::load(&config).map_err(|e| e.to_string())?;
        metrics::gauge!(imgmeta_telemetry::MODEL_LOAD).set(started.elapsed().as_secs_f64());
        let load_ms = started.elapsed().as_millis() as u64;
        // One pass on a blank image before the first job: the first pass of a process pays
        // for its thread pool's start and its buffers' first allocation, and the first job
        // (a viral URL's leader, whose followers wait on it) should not.
        let warm = std::time::Instant::now();
        let blank = image::DynamicImage::new_rgb8(640, 480);
        detector.detect(&blank, 0.5).map_err(|e| format!("the detector's first pass failed: {e}"))?;
        tracing::info!(model = %model, load_ms, warm_up_ms = warm.elapsed().as_millis() as u64, "object detector loaded");
        Ok(Arc::new(Yolo(detector)) as Arc<dyn DetectObjects>)
    })
    .await
    .map_err(|e| format!("loading the detector failed: {e}"))?
    .inspect_err(|e| tracing::error!(kind = "error", error = %e, "object detection unavailable"))
}
