//! The analysis of one image, stage by stage: fetch → decode → metadata → objects.
//!
//! Both the worker and `imgmeta analyze` run images through this one [`Analyzer`], so a job's
//! result and the command's output are the same document. It knows nothing of queues or
//! databases.

mod artifacts;
mod cache;
mod error;
mod objects;
mod result;

pub use artifacts::{Artifact, ArtifactInfo, MAX_ARTIFACT_BYTES};
pub use cache::{CacheFuture, CacheInfo, CachedAnalysis, ContentCache, OBJECTS_FLOOR};
pub use error::AnalysisError;
// The per-host rate limit is applied by the fetcher on every hop; the binary implements it.
pub use imgmeta_fetch::{GateFuture, HostBusy, HostGate, host_key};
pub use objects::{DetectObjects, Dreamed};
pub use result::{JobResult, Timings};

use bytes::Bytes;
use imgmeta_domain::{DreamOptions, ImageUrl, MinScore, Task, TaskSet};
use imgmeta_fetch::Fetcher;
use imgmeta_metadata::DecodeLimits;
use sha2::{Digest, Sha256};
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
    /// Analyses by content, shared by every worker (none for `imgmeta analyze`).
    cache: Option<Arc<dyn ContentCache>>,
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
    /// Analyse afresh: neither read nor write the content cache.
    pub bypass_cache: bool,
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
            cache: None,
        }
    }

    /// Answers images whose bytes were analysed before from `cache`, and keeps new analyses
    /// there.
    pub fn with_cache(mut self, cache: Arc<dyn ContentCache>) -> Self {
        self.cache = Some(cache);
        self
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
        let plan = self.cache_plan(request);
        let key = plan.as_ref().map(|_| hex::encode(Sha256::digest(&bytes)));
        if let (Some((cache, model)), Some(sha256)) = (&plan, &key) {
            let found = cache.get(sha256, model).await;
            if let Some(hit) = found.filter(|hit| covers(hit, request)) {
                metrics::counter!(imgmeta_telemetry::CACHE_LOOKUPS, "result" => "hit").increment(1);
                return Ok(answer(&hit, request, timings, CacheInfo::hit(hit.age_s)));
            }
            metrics::counter!(imgmeta_telemetry::CACHE_LOOKUPS, "result" => "miss").increment(1);
        } else if self.cache.is_some() {
            metrics::counter!(imgmeta_telemetry::CACHE_LOOKUPS, "result" => "bypass").increment(1);
        }

        let started = Instant::now();
        let decoded = imgmeta_metadata::decode_with_timeout(bytes.clone(), &self.limits)
            .instrument(tracing::info_span!("decode", image.bytes = bytes.len()))
            .await?;
        timings.decode = elapsed_ms(started);
        let decoded = Arc::new(decoded);

        let image = if request.tasks.contains(Task::Metadata) {
            let started = Instant::now();
            let (bytes, decoded) = (bytes.clone(), decoded.clone());
            let metadata = blocking(tracing::info_span!("metadata"), move || {
                imgmeta_metadata::describe(&bytes, &decoded)
            })
            .await?;
            timings.metadata = Some(elapsed_ms(started));
            Some(
                serde_json::to_value(&metadata)
                    .map_err(|e| AnalysisError::internal(format!("metadata document: {e}")))?,
            )
        } else {
            None
        };

        // Cached detections go down to the floor, so the entry serves every min_score above it.
        let detect_at = match plan {
            Some(_) => OBJECTS_FLOOR,
            None => request.min_score.value(),
        };
        let detected = if request.tasks.iter().any(Task::reports_objects) {
            let detector = self.detector()?;
            let started = Instant::now();
            let decoded = decoded.clone();
            let objects = blocking(tracing::info_span!("objects"), move || {
                detector.detect(decoded.image(), detect_at)
            })
            .await??;
            timings.objects = Some(elapsed_ms(started));
            Some(objects)
        } else {
            None
        };

        let mut cache_info = self.cache.as_ref().map(|_| CacheInfo::bypass());
        if let (Some((cache, model)), Some(sha256)) = (&plan, &key) {
            let analysis = CachedAnalysis {
                image: image.clone(),
                objects: detected.clone(),
                age_s: 0.0,
            };
            cache.put(sha256, model, &analysis).await;
            cache_info = Some(CacheInfo::miss());
        }
        let objects = detected
            .as_ref()
            .map(|o| cache::objects_at(o, request.min_score.value()));
        let image = image.map(|mut image| {
            if request.redact_gps {
                cache::redact_gps(&mut image);
            }
            image
        });

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
            cache: cache_info,
            timings_ms: timings,
            files,
        })
    }

    /// The cache and the detector version to key it by, when this request may use it: only
    /// metadata and objects are kept (never artifacts), and objects only down to the floor.
    fn cache_plan(&self, request: &Request) -> Option<(Arc<dyn ContentCache>, String)> {
        let cache = self.cache.clone()?;
        if request.bypass_cache {
            return None;
        }
        let kept = request
            .tasks
            .iter()
            .all(|t| matches!(t, Task::Metadata | Task::Objects));
        if !kept || request.min_score.value() < OBJECTS_FLOOR {
            return None;
        }
        // Metadata alone does not depend on the model, but is kept with it all the same: one
        // key per image and model, so an entry grows into a whole analysis.
        let model = match &self.detector {
            Ok(detector) => detector.version(),
            Err(_) => "none".to_owned(),
        };
        Some((cache, model))
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

/// Whether a cached analysis holds everything `request` asks for.
fn covers(hit: &CachedAnalysis, request: &Request) -> bool {
    (!request.tasks.contains(Task::Metadata) || hit.image.is_some())
        && (!request.tasks.contains(Task::Objects) || hit.objects.is_some())
}

/// A job's result from a cached analysis: the parts it asked for, its `min_score`, its
/// account's GPS setting; no stage ran but getting the bytes.
fn answer(hit: &CachedAnalysis, request: &Request, timings: Timings, info: CacheInfo) -> JobResult {
    let image = match request.tasks.contains(Task::Metadata) {
        true => hit.image.clone().map(|mut image| {
            if request.redact_gps {
                cache::redact_gps(&mut image);
            }
            image
        }),
        false => None,
    };
    let objects = match request.tasks.contains(Task::Objects) {
        true => hit
            .objects
            .as_ref()
            .map(|o| cache::objects_at(o, request.min_score.value())),
        false => None,
    };
    JobResult {
        image,
        objects,
        dream: None,
        artifacts: Vec::new(),
        cache: Some(info),
        timings_ms: timings,
        files: Vec::new(),
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
