//! `imgmeta models fetch` and `imgmeta bench detect`: the model supply and its benchmark.

use imgmeta_config::Settings;
use imgmeta_models::FetchMode;
use imgmeta_vision::DeviceKind;
use imgmeta_vision::bench::BenchConfig;
use std::path::PathBuf;

/// Fetches (or re-verifies) a model into the model directory and prints what is there.
pub fn fetch(settings: &Settings, name: Option<&str>, force: bool) -> anyhow::Result<()> {
    let name = name.unwrap_or(&settings.detector.model);
    let mode = if force {
        FetchMode::Always
    } else {
        FetchMode::IfNeeded
    };
    let files = imgmeta_models::fetch(
        name,
        &settings.model_dir,
        mode,
        settings.cargo_home.as_deref(),
    )?;
    println!(
        "{}",
        serde_json::json!({
            "model": files.spec.name,
            "weights": files.weights,
            "weights_sha256": files.weights_sha256,
            "licence": files.spec.licence,
        })
    );
    Ok(())
}

/// Times the detector on one image and prints one JSON line.
pub fn bench_detect(
    settings: &Settings,
    image: PathBuf,
    runs: usize,
    threads: usize,
    batch: usize,
    modules: bool,
) -> anyhow::Result<()> {
    let files = imgmeta_models::ensure(
        &settings.detector.model,
        &settings.model_dir,
        settings.cargo_home.as_deref(),
    )?;
    let config = BenchConfig {
        runs,
        threads,
        batch,
        modules,
        device: DeviceKind::parse(&settings.detector.device)?,
        ..BenchConfig::new(image, files.weights)
    };
    let report = imgmeta_vision::bench::detect(&config)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// What `imgmeta bench dream` dreams.
pub struct DreamBench {
    pub image: PathBuf,
    pub max_side: u32,
    pub octaves: u32,
    pub steps: u32,
    pub class: Option<String>,
    pub threads: usize,
}

/// `imgmeta bench dream`: one dream, timed, as one JSON line.
pub fn bench_dream(settings: &Settings, bench: DreamBench) -> anyhow::Result<()> {
    let files = imgmeta_models::ensure(
        &settings.detector.model,
        &settings.model_dir,
        settings.cargo_home.as_deref(),
    )?;
    let options = imgmeta_domain::DreamOptions::parse(&serde_json::json!({
        "class": bench.class,
        "max_side": bench.max_side,
        "octaves": bench.octaves,
        "steps": bench.steps,
    }))?;
    let config = BenchConfig {
        threads: bench.threads,
        device: DeviceKind::parse(&settings.detector.device)?,
        ..BenchConfig::new(bench.image, files.weights)
    };
    let report = imgmeta_vision::bench::dream(&config, &options)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
