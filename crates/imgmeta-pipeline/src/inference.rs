//! The detector's queue: jobs hand their decoded images to one inference thread, which runs
//! the images waiting at that moment (up to `IMGMETA_INFER_BATCH`) in one forward pass.
//!
//! One pass at a time: two passes at once would only split the detector's threads between
//! them and finish both later. Meanwhile the process's other jobs fetch, decode and describe
//! their images, so the next pass's images are ready when this one ends. A batch is never
//! waited for: what is ready runs, so a lone job pays no extra latency.

use crate::{AnalysisError, DetectObjects, Prepared};
use imgmeta_metadata::Decoded;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Answer = Result<serde_json::Value, AnalysisError>;

struct Request {
    image: Arc<Decoded>,
    /// The image readied for the network by the job, when the detector has that step.
    prepared: Option<Prepared>,
    min_score: f32,
    reply: oneshot::Sender<Answer>,
}

/// The sending side of the inference thread; dropping the last one ends the thread.
pub(crate) struct InferenceQueue {
    tx: mpsc::UnboundedSender<Request>,
}

impl InferenceQueue {
    /// Starts the inference thread, which runs at most `batch` images per pass.
    pub fn start(detector: Arc<dyn DetectObjects>, batch: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let batch = batch.max(1);
        std::thread::Builder::new()
            .name("imgmeta-infer".into())
            .spawn(move || serve(detector.as_ref(), rx, batch))
            .expect("spawning the inference thread");
        Self { tx }
    }

    /// Objects in `image` (or in its `prepared` form) at `min_score`, when the detector gets
    /// to it.
    pub async fn detect(
        &self,
        image: Arc<Decoded>,
        prepared: Option<Prepared>,
        min_score: f32,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            image,
            prepared,
            min_score,
            reply,
        };
        self.tx
            .send(request)
            .map_err(|_| AnalysisError::internal("the inference thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| AnalysisError::internal("the inference thread dropped the image".into()))?
    }
}

fn serve(detector: &dyn DetectObjects, mut rx: mpsc::UnboundedReceiver<Request>, batch: usize) {
    while let Some(first) = rx.blocking_recv() {
        let mut requests = vec![first];
        while requests.len() < batch {
            match rx.try_recv() {
                Ok(request) => requests.push(request),
                Err(_) => break,
            }
        }
        // A job that stopped waiting (cancelled, lease lost) needs no pass.
        requests.retain(|r| !r.reply.is_closed());
        if requests.is_empty() {
            continue;
        }
        metrics::histogram!(imgmeta_telemetry::INFER_BATCH).record(requests.len() as f64);
        let answers = run(detector, &requests);
        for (request, answer) in requests.into_iter().zip(answers) {
            let _ = request.reply.send(answer);
        }
    }
}

/// One pass over `requests`; should it panic, each image is run alone so that only the
/// image that panics fails (with `internal`), and the thread lives on.
fn run(detector: &dyn DetectObjects, requests: &[Request]) -> Vec<Answer> {
    let pass = |requests: &[Request]| {
        let prepared: Option<Vec<_>> = requests
            .iter()
            .map(|r| r.prepared.as_ref().map(|p| (p, r.min_score)))
            .collect();
        catch_unwind(AssertUnwindSafe(|| match prepared {
            Some(items) => detector.detect_prepared(&items),
            None => {
                let items: Vec<_> = requests
                    .iter()
                    .map(|r| (r.image.image(), r.min_score))
                    .collect();
                detector.detect_batch(&items)
            }
        }))
    };
    match pass(requests) {
        Ok(answers) if answers.len() == requests.len() => answers,
        _ if requests.len() > 1 => requests
            .iter()
            .flat_map(|r| run(detector, std::slice::from_ref(r)))
            .collect(),
        _ => vec![Err(AnalysisError::internal(
            "object detection failed unexpectedly on this image".into(),
        ))],
    }
}
