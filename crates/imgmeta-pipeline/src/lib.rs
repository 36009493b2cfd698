//! The analysis of one image, stage by stage: fetch → decode → metadata → objects.
//!
//! Both the worker and `imgmeta analyze` run images through this one [`Analyzer`], so a job's
//! result and the command's output are the same document. It knows nothing of queues or
//! databases.

mod artifacts;
mod error;
mod objects;
mod result;

pub use artifacts::{Artifact, ArtifactInfo, MAX_ARTIFACT_BYTES};
pub use error::AnalysisError;
// The per-host rate limit is applied by the fetcher on every hop; the binary implements it.
pub use imgmeta_fetch::{GateFuture, HostBusy, HostGate, host_key};
pub use objects::{DetectObjects, Dreamed};
pub use result::{JobResult, Timings};

use bytes::Bytes;
use imgmeta_domain::{DreamOptions, ImageUrl, MinScore, Task, TaskSet};
use imgmeta_fetch::Fetcher;
use imgmeta_metadata::DecodeLimits;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Runs the stages; cheap to share between concurrent jobs.
pub struct Analyzer {
    fetcher: Fetcher,
    limits: DecodeLimits,
    /// Loaded once per process; `None` when the model could not be loaded, in which case jobs
    /// asking for objects fail with `model_unavailable` and the reason.
    detector: Result<Arc<dyn DetectObjects>, String>,
}

/// What to compute for one image.
#[derive(Debug, Clone)]
pub struct Request {
    pub tasks: TaskSet,
    pub min_score: MinScore,
    /// Leave GPS coordinates out of the metadata (the account's privacy setting), so they are
    /// never stored.
    pub redact_gps: bool,
    /// The `dream` task's parameters (its defaults when the job gave none).
    pub dream: DreamOptions,
}

impl Analyzer {
    pub fn new(
        fetcher: Fetcher,
        limits: DecodeLimits,
        detector: Result<Arc<dyn DetectObjects>, String>,
    ) -> Self {
        Self {
            fetcher,
            limits,
            detector,
        }
    }

    /// Makes every hop of every fetch (redirect targets included) wait for its host's turn at
    /// `gate` (the per-host fetch rate limit); a turn too far away fails the analysis with the
    /// retryable `host_rate_limited` and a `retry_after`.
    pub fn with_host_gate(mut self, gate: Arc<dyn HostGate>) -> Self {
        self.fetcher = self.fetcher.with_host_gate(gate);
        self
    }

    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// Fetches `url` and analyses it.
    pub async fn analyze_url(
        &self,
        url: &ImageUrl,
        request: &Request,
    ) -> Result<JobResult, AnalysisError> {
        // A job that cannot succeed should not pay for a download first.
        self.check_tasks(request)?;
        let started = Instant::now();
        let fetched = self
            .fetcher
            .fetch(url)
            .instrument(tracing::info_span!("fetch", image.url_host = %url.host_str()))
            .await?;
        let fetch_ms = elapsed_ms(started);
        tracing::debug!(fetch_ms, bytes = fetched.bytes.len(), "fetched");
        metrics::counter!(imgmeta_telemetry::BYTES_FETCHED).increment(fetched.bytes.len() as u64);
        observe("fetch", Some(fetch_ms));
        self.analyze_bytes(fetched.bytes, request, fetch_ms).await
    }

    /// Analyses bytes already in hand; `fetch_ms` is how long getting them took.
    pub async fn analyze_bytes(
        &self,
        bytes: Bytes,
        request: &Request,
        fetch_ms: f64,
    ) -> Result<JobResult, AnalysisError> {
        self.check_tasks(request)?;
        let mut timings = Timings {
            fetch: fetch_ms,
            ..Timings::default()
        };

        let started = Instant::now();
        let decoded = imgmeta_metadata::decode_with_timeout(bytes.clone(), &self.limits)
            .instrument(tracing::info_span!("decode", image.bytes = bytes.len()))
            .await?;
        timings.decode = elapsed_ms(started);
        let decoded = Arc::new(decoded);

        let image = if request.tasks.contains(Task::Metadata) {
            let started = Instant::now();
            let (bytes, decoded) = (bytes.clone(), decoded.clone());
            let mut metadata = blocking(tracing::info_span!("metadata"), move || {
                imgmeta_metadata::describe(&bytes, &decoded)
            })
            .await?;
            if request.redact_gps {
                if let Some(exif) = metadata.exif.as_mut() {
                    exif.gps = None;
                }
                // Even "the position was off the globe" says the image carried one.
                metadata
                    .warnings
                    .retain(|w| w.code != imgmeta_metadata::WarningCode::GpsOutOfRange);
            }
            timings.metadata = Some(elapsed_ms(started));
            Some(metadata)
        } else {
            None
        };

        let objects = if request.tasks.iter().any(Task::reports_objects) {
            let detector = self.detector()?;
            let started = Instant::now();
            let min_score = request.min_score.value();
            let decoded = decoded.clone();
            let objects = blocking(tracing::info_span!("objects"), move || {
                detector.detect(decoded.image(), min_score)
            })
            .await??;
            timings.objects = Some(elapsed_ms(started));
            Some(objects)
        } else {
            None
        };

        let mut files = Vec::new();
        if request.tasks.contains(Task::Annotate)
            && let Some(objects) = &objects
        {
            let started = Instant::now();
            let (objects, decoded) = (objects.clone(), decoded.clone());
            let artifact = blocking(tracing::info_span!("annotate"), move || {
                artifacts::annotated(decoded.image(), &objects)
            })
            .await??;
            timings.annotate = Some(elapsed_ms(started));
            files.push(artifact);
        }

        let mut dream = None;
        if request.tasks.contains(Task::Dream) {
            let detector = self.detector()?;
            let started = Instant::now();
            let (decoded, options) = (decoded.clone(), request.dream.clone());
            let dreamed = blocking(tracing::info_span!("dream"), move || {
                let dreamed = detector.dream(decoded.image(), &options)?;
                Ok::<_, AnalysisError>((artifacts::dreamed(dreamed.image)?, dreamed.report))
            })
            .await??;
            timings.dream = Some(elapsed_ms(started));
            files.push(dreamed.0);
            dream = Some(dreamed.1);
        }

        observe("decode", Some(timings.decode));
        observe("metadata", timings.metadata);
        observe("objects", timings.objects);
        observe("annotate", timings.annotate);
        observe("dream", timings.dream);
        Ok(JobResult {
            image,
            objects,
            dream,
            artifacts: files.iter().map(|f| f.info.clone()).collect(),
            timings_ms: timings,
            files,
        })
    }

    fn detector(&self) -> Result<Arc<dyn DetectObjects>, AnalysisError> {
        self.detector
            .clone()
            .map_err(AnalysisError::model_unavailable)
    }

    fn check_tasks(&self, request: &Request) -> Result<(), AnalysisError> {
        if request.tasks.iter().any(Task::needs_detector) {
            self.detector()?;
        }
        Ok(())
    }
}

/// Runs CPU-bound work on the blocking pool inside its stage's span (named after the stage, as
/// `fetch` and `decode` are, so an exported trace reads as the pipeline does).
async fn blocking<T: Send + 'static>(
    span: tracing::Span,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AnalysisError> {
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| AnalysisError::internal(format!("analysis task failed: {e}")))
}

fn observe(stage: &'static str, ms: Option<f64>) {
    if let Some(ms) = ms {
        metrics::histogram!(imgmeta_telemetry::STAGE_DURATION, "stage" => stage)
            .record(ms / 1000.0);
    }
}

fn elapsed_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}
