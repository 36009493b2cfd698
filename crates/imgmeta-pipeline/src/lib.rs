//! The analysis of one image, stage by stage: fetch → decode → metadata → objects.
//!
//! Both the worker and `imgmeta analyze` run images through this one [`Analyzer`], so a job's
//! result and the command's output are the same document. It knows nothing of queues or
//! databases.

mod artifacts;
mod cache;
mod error;
mod inference;
mod objects;
mod result;

pub use artifacts::{Artifact, ArtifactInfo, MAX_ARTIFACT_BYTES};
pub use cache::{CacheFuture, CacheInfo, CachedAnalysis, ContentCache, OBJECTS_FLOOR};
pub use error::AnalysisError;
pub use imgmeta_fetch::{Lifetimes, OriginCaching, Validators};
// The per-host rate limit is applied by the fetcher on every hop; the binary implements it.
pub use imgmeta_fetch::{GateFuture, HostBusy, HostGate, host_key};
pub use objects::{DetectObjects, Dreamed, Prepared};
pub use result::{JobResult, Kept, Timings};

use bytes::Bytes;
use imgmeta_domain::analysis::{Analysis, Cut};
use imgmeta_domain::{DreamOptions, ImageUrl, MinScore, Task, TaskSet};
use imgmeta_fetch::{Fetcher, Revalidation};
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
    /// The detector's thread, which every job's images queue for: started by the first image
    /// that needs it, with `infer_batch`.
    inference: std::sync::OnceLock<inference::InferenceQueue>,
    infer_batch: usize,
    /// The caller writes fresh analyses (`Kept::fresh`) to the content cache itself.
    caller_keeps: bool,
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
            inference: std::sync::OnceLock::new(),
            infer_batch: 1,
            caller_keeps: false,
        }
    }

    /// Leaves writing fresh analyses to the content cache to the caller (the worker writes
    /// `JobResult::kept` in the same statement that completes the job): the analyzer only
    /// reads the cache.
    pub fn caller_keeps_analyses(mut self) -> Self {
        self.caller_keeps = true;
        self
    }

    /// Lets the detector run up to `batch` waiting images in one forward pass
    /// (`IMGMETA_INFER_BATCH`; 1 runs one image per pass).
    pub fn with_infer_batch(mut self, batch: usize) -> Self {
        self.infer_batch = batch;
        self
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

    /// Fetches `url` for the URL cache: when `stored` (an earlier analysis of this URL with its
    /// validators) is given, the request is conditional and a `304` answers from it without a
    /// download or any stage (`cache.status` `revalidated`). Either way the result's `kept`
    /// holds what the URL cache should keep, with the origin's caching headers.
    pub async fn analyze_url_revalidating(
        &self,
        url: &ImageUrl,
        request: &Request,
        stored: Option<&StoredUrl>,
    ) -> Result<JobResult, AnalysisError> {
        self.check_tasks(request)?;
        let started = Instant::now();
        let validators = stored.map(|s| &s.validators);
        let answered = self
            .fetcher
            .fetch_revalidating(url, validators)
            .instrument(tracing::info_span!("fetch", image.url_host = %url.host_str()))
            .await?;
        let fetch_ms = elapsed_ms(started);
        observe("fetch", Some(fetch_ms));
        let fetched = match (answered, stored) {
            (Revalidation::Modified(fetched), _) => fetched,
            (Revalidation::NotModified(caching), Some(stored)) => {
                metrics::counter!(imgmeta_telemetry::CACHE_LOOKUPS, "result" => "revalidated")
                    .increment(1);
                let info = CacheInfo::new("revalidated", Some("url"), stored.age_s);
                let timings = Timings {
                    fetch: fetch_ms,
                    ..Timings::default()
                };
                return Ok(answer_stored(stored, request, timings, info, Some(caching)));
            }
            (Revalidation::NotModified(_), None) => {
                return Err(AnalysisError::internal(
                    "the origin answered 304 to an unconditional request".to_owned(),
                ));
            }
        };
        tracing::debug!(fetch_ms, bytes = fetched.bytes.len(), "fetched");
        metrics::counter!(imgmeta_telemetry::BYTES_FETCHED).increment(fetched.bytes.len() as u64);
        let mut result = self.analyze_bytes(fetched.bytes, request, fetch_ms).await?;
        if let Some(kept) = &mut result.kept {
            kept.caching = Some(fetched.caching);
        }
        Ok(result)
    }

    /// Answers a URL job from a stored analysis that is still fresh, without asking the origin
    /// or running anything: how a job that leads its URL's flight is answered when an entry
    /// appeared after it was admitted (the flight it would have followed ended in between).
    /// Its followers are cut from the same analysis; the entry itself is left as it is.
    pub fn answer_fresh(
        &self,
        stored: &StoredUrl,
        request: &Request,
    ) -> Result<JobResult, AnalysisError> {
        self.check_tasks(request)?;
        metrics::counter!(imgmeta_telemetry::CACHE_LOOKUPS, "result" => "hit").increment(1);
        let info = CacheInfo::new("hit", Some("url"), stored.age_s);
        Ok(answer_stored(
            stored,
            request,
            Timings::default(),
            info,
            None,
        ))
    }

    /// The detector version the caches are keyed by (`none` without a detector).
    pub fn model_version(&self) -> String {
        match &self.detector {
            Ok(detector) => detector.version(),
            Err(_) => "none".to_owned(),
        }
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
                let analysis = Analysis {
                    image: hit.image.clone(),
                    objects: hit.objects.clone(),
                };
                let info = CacheInfo::new("hit", Some("content"), hit.age_s);
                let mut result = answer(&analysis, request, timings, info);
                result.kept = Some(Kept {
                    sha256: sha256.clone(),
                    analysis,
                    caching: None,
                    fresh: false,
                });
                return Ok(result);
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

        // A cached analysis is the widest one (metadata and objects), so that one entry serves
        // every task subset; objects only when a detector is there to make them.
        let widest = plan.is_some();
        let want_objects =
            request.tasks.iter().any(Task::reports_objects) || (widest && self.detector.is_ok());
        // Cached detections go down to the floor, so the entry serves every min_score above it.
        let detect_at = match plan {
            Some(_) => OBJECTS_FLOOR,
            None => request.min_score.value(),
        };
        // The metadata is described on a blocking thread while the image waits for (and
        // runs through) the detector.
        let describe = async {
            if !(request.tasks.contains(Task::Metadata) || widest) {
                return Ok((None, None));
            }
            let started = Instant::now();
            let (bytes, decoded, sha256) = (bytes.clone(), decoded.clone(), key.clone());
            let metadata = blocking(tracing::info_span!("metadata"), move || {
                imgmeta_metadata::describe_hashed(&bytes, &decoded, sha256.as_deref())
            })
            .await?;
            let value = serde_json::to_value(&metadata)
                .map_err(|e| AnalysisError::internal(format!("metadata document: {e}")))?;
            Ok::<_, AnalysisError>((Some(value), Some(elapsed_ms(started))))
        };
        let detect = async {
            if !want_objects {
                return Ok((None, None));
            }
            let queue = self.inference()?;
            let started = Instant::now();
            // Letterboxed here, beside the metadata, rather than on the detector's thread.
            let (detector, image) = (self.detector()?, decoded.clone());
            let prepared = blocking(tracing::info_span!("prepare"), move || {
                detector.prepare(image.image()).transpose()
            })
            .await??;
            let objects = queue
                .detect(decoded.clone(), prepared, detect_at)
                .instrument(tracing::info_span!("objects"))
                .await?;
            Ok::<_, AnalysisError>((Some(objects), Some(elapsed_ms(started))))
        };
        let (described, detected) = tokio::join!(describe, detect);
        let (image, metadata_ms) = described?;
        let (detected, objects_ms) = detected?;
        timings.metadata = metadata_ms;
        timings.objects = objects_ms;

        let mut cache_info = self.cache.as_ref().map(|_| CacheInfo::bypass());
        let mut kept = None;
        if let (Some((cache, model)), Some(sha256)) = (&plan, &key) {
            let analysis = CachedAnalysis {
                image: image.clone(),
                objects: detected.clone(),
                age_s: 0.0,
            };
            if !self.caller_keeps {
                cache.put(sha256, model, &analysis).await;
            }
            cache_info = Some(CacheInfo::miss());
            kept = Some(Kept {
                sha256: sha256.clone(),
                analysis: Analysis {
                    image: analysis.image,
                    objects: analysis.objects,
                },
                caching: None,
                fresh: true,
            });
        }
        // The job's own cut of what was made (cached or not, the same rules).
        let (image, objects) = Analysis {
            image,
            objects: detected,
        }
        .cut(Cut {
            tasks: &request.tasks,
            min_score: request.min_score,
            redact_gps: request.redact_gps,
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

        if request.tasks.contains(Task::Preview) {
            let started = Instant::now();
            let decoded = decoded.clone();
            let artifact = blocking(tracing::info_span!("preview"), move || {
                artifacts::preview(decoded.image())
            })
            .await??;
            timings.preview = Some(elapsed_ms(started));
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
        observe("preview", timings.preview);
        Ok(JobResult {
            image,
            objects,
            dream,
            artifacts: files.iter().map(|f| f.info.clone()).collect(),
            cache: cache_info,
            timings_ms: timings,
            files,
            kept,
        })
    }

    /// The cache and the detector version to key it by, when this request may use it: only
    /// metadata and objects are kept (never artifacts), and objects only down to the floor.
    fn cache_plan(&self, request: &Request) -> Option<(Arc<dyn ContentCache>, String)> {
        let cache = self.cache.clone()?;
        if !imgmeta_domain::analysis::cacheable(
            &request.tasks,
            request.min_score,
            request.bypass_cache,
        ) {
            return None;
        }
        // Metadata alone does not depend on the model, but is kept with it all the same: one
        // key per image and model, so an entry grows into a whole analysis.
        Some((cache, self.model_version()))
    }

    /// The detector's queue, or `model_unavailable` with the reason it could not be loaded.
    fn inference(&self) -> Result<&inference::InferenceQueue, AnalysisError> {
        let detector = self.detector()?;
        Ok(self
            .inference
            .get_or_init(|| inference::InferenceQueue::start(detector, self.infer_batch)))
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
    Analysis {
        image: hit.image.clone(),
        objects: hit.objects.clone(),
    }
    .covers(&request.tasks)
}

/// A job's result from a cached analysis: the parts it asked for, its `min_score`, its
/// account's GPS setting; no stage ran but getting the bytes.
fn answer(analysis: &Analysis, request: &Request, timings: Timings, info: CacheInfo) -> JobResult {
    let (image, objects) = analysis.cut(Cut {
        tasks: &request.tasks,
        min_score: request.min_score,
        redact_gps: request.redact_gps,
    });
    JobResult {
        image,
        objects,
        dream: None,
        artifacts: Vec::new(),
        cache: Some(info),
        timings_ms: timings,
        files: Vec::new(),
        kept: None,
    }
}

/// A job's answer from a stored analysis of its URL, which its followers are cut from too;
/// `caching` is what a revalidation learned (the entry is refreshed with it), `None` leaves
/// the entry as it is.
fn answer_stored(
    stored: &StoredUrl,
    request: &Request,
    timings: Timings,
    info: CacheInfo,
    caching: Option<imgmeta_fetch::OriginCaching>,
) -> JobResult {
    let mut result = answer(&stored.analysis, request, timings, info);
    result.kept = Some(Kept {
        sha256: stored.sha256.clone(),
        analysis: stored.analysis.clone(),
        caching,
        fresh: false,
    });
    result
}

/// An earlier analysis of a URL, from the URL cache, to revalidate.
#[derive(Debug, Clone)]
pub struct StoredUrl {
    pub analysis: Analysis,
    pub sha256: String,
    pub validators: Validators,
    pub age_s: f64,
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
