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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dreamed;
    use image::DynamicImage;
    use imgmeta_domain::DreamOptions;
    use std::sync::Mutex;
    use std::sync::mpsc as std_mpsc;

    /// Records each pass's size; the first pass waits until the test releases it, so the test
    /// decides what is queued behind it. An image 13 pixels wide makes a pass panic.
    struct Fake {
        passes: Mutex<Vec<usize>>,
        started: Mutex<Option<std_mpsc::Sender<()>>>,
        release: Mutex<Option<std_mpsc::Receiver<()>>>,
    }

    impl DetectObjects for Fake {
        fn detect(&self, image: &DynamicImage, min_score: f32) -> Answer {
            Ok(serde_json::json!({"width": image.width(), "min_score": min_score}))
        }

        fn detect_batch(&self, images: &[(&DynamicImage, f32)]) -> Vec<Answer> {
            self.passes.lock().unwrap().push(images.len());
            if let Some(started) = self.started.lock().unwrap().take() {
                started.send(()).unwrap();
                self.release.lock().unwrap().take().unwrap().recv().unwrap();
            }
            assert!(images.iter().all(|(i, _)| i.width() != 13), "a bad image");
            images.iter().map(|(i, s)| self.detect(i, *s)).collect()
        }

        fn version(&self) -> String {
            "fake".into()
        }

        fn dream(&self, _: &DynamicImage, _: &DreamOptions) -> Result<Dreamed, AnalysisError> {
            unreachable!("not dreamt in these tests")
        }
    }

    fn decoded(width: u32) -> Arc<Decoded> {
        let mut png = Vec::new();
        image::RgbImage::new(width, 4)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        Arc::new(imgmeta_metadata::decode(&png, &Default::default()).unwrap())
    }

    /// A queue whose first pass holds until the returned sender is used.
    fn held(
        batch: usize,
    ) -> (
        Arc<Fake>,
        InferenceQueue,
        std_mpsc::Receiver<()>,
        std_mpsc::Sender<()>,
    ) {
        let (started_tx, started_rx) = std_mpsc::channel();
        let (release_tx, release_rx) = std_mpsc::channel();
        let fake = Arc::new(Fake {
            passes: Mutex::default(),
            started: Mutex::new(Some(started_tx)),
            release: Mutex::new(Some(release_rx)),
        });
        let queue = InferenceQueue::start(fake.clone(), batch);
        (fake, queue, started_rx, release_tx)
    }

    #[tokio::test]
    async fn images_waiting_during_a_pass_run_together_in_the_next_up_to_the_batch_size() {
        for (batch, want) in [(4, vec![1, 3]), (2, vec![1, 2, 1]), (1, vec![1, 1, 1, 1])] {
            let (fake, queue, started, release) = held(batch);
            let queue = Arc::new(queue);
            let first = {
                let queue = queue.clone();
                tokio::spawn(async move { queue.detect(decoded(10), None, 0.1).await })
            };
            let _ = tokio::task::spawn_blocking(move || started.recv()).await;
            let rest: Vec<_> = [(11, 0.2), (12, 0.3), (14, 0.4)]
                .into_iter()
                .map(|(w, s)| {
                    let queue = queue.clone();
                    tokio::spawn(async move { queue.detect(decoded(w), None, s).await })
                })
                .collect();
            // Let the three requests reach the queue before the first pass ends.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            release.send(()).unwrap();
            let first = first.await.unwrap().unwrap();
            assert_eq!(first["width"], 10);
            for (task, (w, s)) in rest.into_iter().zip([(11, 0.2f32), (12, 0.3), (14, 0.4)]) {
                let answer = task.await.unwrap().unwrap();
                assert_eq!(answer["width"], w, "each image gets its own answer");
                assert_eq!(answer["min_score"], serde_json::json!(s));
            }
            assert_eq!(*fake.passes.lock().unwrap(), want, "batch size {batch}");
        }
    }

    #[tokio::test]
    async fn a_pass_that_panics_fails_only_the_image_that_panics_and_the_thread_lives_on() {
        let (fake, queue, started, release) = held(4);
        let queue = Arc::new(queue);
        let first = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.detect(decoded(10), None, 0.1).await })
        };
        let _ = tokio::task::spawn_blocking(move || started.recv()).await;
        let rest: Vec<_> = [11, 13, 12]
            .into_iter()
            .map(|w| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.detect(decoded(w), None, 0.5).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        release.send(()).unwrap();
        assert!(first.await.unwrap().is_ok());
        let answers: Vec<_> = futures_join(rest).await;
        assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
        let failed = answers[1].as_ref().unwrap_err();
        assert_eq!(failed.code(), imgmeta_domain::ErrorCode::Internal);
        // The batch of three panicked, then each ran alone (the bad one panicking again).
        assert_eq!(*fake.passes.lock().unwrap(), vec![1, 3, 1, 1, 1]);
        let later = queue.detect(decoded(20), None, 0.5).await.unwrap();
        assert_eq!(later["width"], 20);
    }

    async fn futures_join(tasks: Vec<tokio::task::JoinHandle<Answer>>) -> Vec<Answer> {
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    }
}
