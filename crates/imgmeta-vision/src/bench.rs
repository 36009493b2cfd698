//! `imgmeta bench detect`: times preprocessing, the forward pass and postprocessing over
//! repeated runs on one image; `imgmeta bench dream`: times a dream's gradient steps beside
//! the fast forward pass at the same size. Each reports one JSON line.

use crate::{Detector, DetectorConfig, DeviceKind, Octave, VisionError, open_oriented};
use image::GenericImageView;
use imgmeta_domain::DreamOptions;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub image: PathBuf,
    pub weights: PathBuf,
    /// Timed runs, after `warmup` untimed ones.
    pub runs: usize,
    pub warmup: usize,
    pub threads: usize,
    pub device: DeviceKind,
    /// Images per forward pass (copies of the image); the stage times are per pass.
    pub batch: usize,
    /// Also time each module of the network (`runs` more passes).
    pub modules: bool,
}

impl BenchConfig {
    /// 20 timed runs after 3 warm-up runs, on 2 CPU threads (the comparison setting).
    pub fn new(image: impl Into<PathBuf>, weights: impl Into<PathBuf>) -> Self {
        Self {
            image: image.into(),
            weights: weights.into(),
            runs: 20,
            warmup: 3,
            threads: 2,
            device: DeviceKind::Cpu,
            batch: 1,
            modules: false,
        }
    }
}

/// Timing statistics of one stage, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub p50_ms: f64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        Self {
            p50_ms: round(ms[ms.len() / 2]),
            min_ms: round(ms[0]),
            mean_ms: round(ms.iter().sum::<f64>() / ms.len() as f64),
            max_ms: round(ms[ms.len() - 1]),
        }
    }
}

/// The benchmark's result; the top-level `p50_ms`/`min_ms` are the forward pass's.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub runtime: &'static str,
    pub image: String,
    pub width: u32,
    pub height: u32,
    pub device: String,
    pub runs: usize,
    pub threads: usize,
    /// Images per forward pass.
    pub batch: usize,
    pub p50_ms: f64,
    pub min_ms: f64,
    /// Images per second at the median pass (preprocess + forward + postprocess).
    pub images_per_s: f64,
    pub forward: Stats,
    pub preprocess: Stats,
    pub postprocess: Stats,
    pub detections: usize,
    /// Per module of the network, its p50 in ms (with `modules`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<(String, f64)>,
}

/// Loads the detector and times `runs` detections of the image (progress on stderr).
pub fn detect(cfg: &BenchConfig) -> Result<BenchReport, VisionError> {
    if cfg.runs == 0 || cfg.threads == 0 || cfg.batch == 0 {
        return Err(VisionError::Config(
            "runs, threads and batch must be at least 1".into(),
        ));
    }
    let image = open_oriented(&cfg.image)?;
    let detector = Detector::load(&DetectorConfig {
        threads: cfg.threads,
        device: cfg.device,
        ..DetectorConfig::new(&cfg.weights)
    })?;
    eprintln!(
        "imgmeta: benchmarking {} runs after {} warm-up runs",
        cfg.runs, cfg.warmup
    );
    let mut times = Vec::with_capacity(cfg.runs);
    let mut detections = 0;
    let batch: Vec<(&image::DynamicImage, f32)> = vec![(&image, 0.25); cfg.batch];
    for i in 0..cfg.warmup + cfg.runs {
        let (objects, t) = match cfg.batch {
            1 => {
                let (objects, t) = detector.detect_timed(&image, 0.25)?;
                (vec![objects], t)
            }
            _ => detector.detect_batch_timed(&batch)?,
        };
        if i >= cfg.warmup {
            times.push(t);
            detections = objects[0].detections.len();
        }
    }
    let mut totals: Vec<Duration> = times
        .iter()
        .map(|t| t.preprocess + t.forward + t.postprocess)
        .collect();
    totals.sort();
    let median = totals[totals.len() / 2].as_secs_f64();
    let stage =
        |f: fn(&crate::StageTimes) -> Duration| Stats::of(&times.iter().map(f).collect::<Vec<_>>());
    let forward = stage(|t| t.forward);
    let mut modules = Vec::new();
    if cfg.modules {
        let images = vec![&image; cfg.batch];
        let mut samples: Vec<Vec<(String, Duration)>> = Vec::with_capacity(cfg.runs);
        for _ in 0..cfg.runs {
            samples.push(detector.module_times(&images)?);
        }
        for (i, (name, _)) in samples[0].iter().enumerate() {
            let times: Vec<Duration> = samples.iter().map(|s| s[i].1).collect();
            modules.push((name.clone(), Stats::of(&times).p50_ms));
        }
    }
    Ok(BenchReport {
        runtime: "candle",
        image: cfg.image.display().to_string(),
        width: image.width(),
        height: image.height(),
        device: format!("{:?}", cfg.device).to_lowercase(),
        runs: cfg.runs,
        threads: cfg.threads,
        batch: cfg.batch,
        p50_ms: forward.p50_ms,
        min_ms: forward.min_ms,
        images_per_s: (cfg.batch as f64 / median * 100.0).round() / 100.0,
        forward,
        preprocess: stage(|t| t.preprocess),
        postprocess: stage(|t| t.postprocess),
        detections,
        modules,
    })
}

/// The dream benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct DreamBenchReport {
    pub runtime: &'static str,
    pub image: String,
    pub width: u32,
    pub height: u32,
    pub working_width: u32,
    pub working_height: u32,
    pub device: String,
    pub threads: usize,
    pub options: DreamOptions,
    /// The whole dream, from the decoded image to the dreamed one.
    pub total_s: f64,
    /// Forward + backward, averaged over the last (largest) octave's steps.
    pub step_ms: f64,
    /// The inference-only forward pass at the working size (median of 5).
    pub fast_forward_ms: f64,
    /// `step_ms / fast_forward_ms`.
    pub step_over_forward: f64,
    pub octaves: Vec<Octave>,
}

/// Loads the detector and dreams the image once with `options`, timing it.
pub fn dream(cfg: &BenchConfig, options: &DreamOptions) -> Result<DreamBenchReport, VisionError> {
    let image = open_oriented(&cfg.image)?;
    let detector = Detector::load(&DetectorConfig {
        threads: cfg.threads,
        device: cfg.device,
        ..DetectorConfig::new(&cfg.weights)
    })?;
    let working = crate::dream::working_size(image.dimensions(), options.max_side());
    let resized = image.resize_exact(working.0, working.1, image::imageops::FilterType::Triangle);
    let chw = crate::dream::to_chw(&resized.to_rgb8());
    let mut forward: Vec<Duration> = (0..6)
        .map(|_| detector.forward_time(&chw, working))
        .collect::<Result<_, _>>()?;
    forward.remove(0); // the first run warms the caches
    let fast_forward_ms = Stats::of(&forward).p50_ms;
    eprintln!(
        "imgmeta: dreaming {} at {}x{}",
        cfg.image.display(),
        working.0,
        working.1
    );
    let started = std::time::Instant::now();
    let dream = detector.dream(&image, options)?;
    let total_s = started.elapsed().as_secs_f64();
    let last = dream.octaves.last().expect("a dream has octaves");
    let step_ms = last.steps_ms / last.objective.len() as f64;
    let round = |v: f64, digits: i32| (v * 10f64.powi(digits)).round() / 10f64.powi(digits);
    Ok(DreamBenchReport {
        runtime: "candle",
        image: cfg.image.display().to_string(),
        width: image.width(),
        height: image.height(),
        working_width: working.0,
        working_height: working.1,
        device: format!("{:?}", cfg.device).to_lowercase(),
        threads: cfg.threads,
        options: options.clone(),
        total_s: round(total_s, 3),
        step_ms: round(step_ms, 3),
        fast_forward_ms,
        step_over_forward: round(step_ms / fast_forward_ms, 2),
        octaves: dream.octaves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_report_the_median_and_extremes_in_milliseconds() {
        let samples = [5, 1, 3, 2, 4].map(Duration::from_millis);
        let s = Stats::of(&samples);
        assert_eq!(
            (s.p50_ms, s.min_ms, s.max_ms, s.mean_ms),
            (3.0, 1.0, 5.0, 3.0)
        );
    }
}
