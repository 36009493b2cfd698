//! `imgmeta analyze <path-or-url>`: one image, in-process, no database or broker.

use bytes::Bytes;
use imgmeta_config::Settings;
use imgmeta_domain::{DreamOptions, ErrorBody, ErrorCode, ImageUrl, MinScore, TaskSet};
use imgmeta_pipeline::Request;
use std::time::Instant;

/// Analyses `target` and returns the result JSON, or the error envelope JSON. The images the
/// analysis made (`annotate`, `dream`, `preview`) are written into `out` when given, each under its name, and
/// `result.artifacts[].path` says where.
pub async fn run(
    settings: &Settings,
    target: &str,
    tasks: &[String],
    min_score: f64,
    dream: Option<&str>,
    out: Option<&std::path::Path>,
) -> Result<serde_json::Value, serde_json::Value> {
    let fail = |code: ErrorCode, message: String| ErrorBody::new(code, message).envelope();
    let tasks = TaskSet::parse(tasks).map_err(|e| fail(e.code, e.message))?;
    let min_score = MinScore::parse(min_score).map_err(|e| fail(e.code, e.message))?;
    let dream = match dream {
        None => DreamOptions::default(),
        Some(raw) => {
            let value = serde_json::from_str(raw)
                .map_err(|e| fail(ErrorCode::InvalidDream, format!("--dream is not JSON: {e}")))?;
            DreamOptions::parse(&value).map_err(|e| fail(e.code, e.message))?
        }
    };
    let request = Request {
        tasks,
        min_score,
        redact_gps: false,
        dream,
        bypass_cache: false,
    };
    // Only load (and if need be fetch) the model when a task needs it.
    let detector = if request
        .tasks
        .iter()
        .any(imgmeta_domain::Task::needs_detector)
    {
        crate::detector::load(settings).await
    } else {
        Err("objects were not requested".to_owned())
    };
    let analyzer = crate::serve::analyzer_with(settings, detector)
        .map_err(|e| fail(ErrorCode::Internal, e.to_string()))?;
    let is_url =
        target.starts_with("http://") || target.starts_with("https://") || target.contains("://");
    let result = if is_url {
        let url = ImageUrl::parse(target).map_err(|e| fail(e.code, e.message))?;
        analyzer.analyze_url(&url, &request).await
    } else {
        let started = Instant::now();
        let bytes = tokio::fs::read(target)
            .await
            .map_err(|e| fail(ErrorCode::FetchFailed, format!("cannot read {target}: {e}")))?;
        let read_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        analyzer
            .analyze_bytes(Bytes::from(bytes), &request, read_ms)
            .await
    };
    let result = result.map_err(|e| e.body().envelope())?;
    let mut value =
        serde_json::to_value(&result).map_err(|e| fail(ErrorCode::Internal, e.to_string()))?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|e| {
            fail(
                ErrorCode::Internal,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
        for (i, file) in result.files.iter().enumerate() {
            let path = dir.join(&file.info.name);
            std::fs::write(&path, &file.bytes).map_err(|e| {
                fail(
                    ErrorCode::Internal,
                    format!("cannot write {}: {e}", path.display()),
                )
            })?;
            value["artifacts"][i]["path"] = path.display().to_string().into();
        }
    }
    Ok(value)
}
