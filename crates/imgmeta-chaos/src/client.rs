//! The API's client side: submitting jobs and reading them back, timing every call, and the
//! ledger that records what the API answered to each submission.

use crate::checker::{Answer, Expect, Submission};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client of the API at `base`, sending `key` as a Bearer token when there is one.
    pub fn new(base: &str, key: Option<&str>) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .expect("an API key is a valid header value");
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(256)
            .default_headers(headers)
            .build()
            .expect("a reqwest client with a timeout builds");
        Self {
            http,
            base: base.to_owned(),
        }
    }

    /// The underlying HTTP client (with the key), for requests this type has no method for.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `POST /v1/jobs`; the answer and how long it took.
    pub async fn submit(&self, url: &str, tasks: &[&str]) -> (Answer, Duration) {
        let body = serde_json::json!({"url": url, "tasks": tasks, "min_score": 0.25});
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            // Harmless where the API ignores it; lets an idempotent API recognise a retry.
            .header("idempotency-key", Uuid::new_v4().to_string())
            .json(&body)
            .send()
            .await;
        let answer = match response {
            Err(_) => Answer::Unanswered,
            // 201: created already finished (answered from the URL cache).
            Ok(r) if matches!(r.status().as_u16(), 201 | 202) => {
                match r.json::<serde_json::Value>().await {
                    Ok(job) => job["id"]
                        .as_str()
                        .and_then(|s| Uuid::parse_str(s).ok())
                        .map_or(Answer::Unanswered, Answer::Accepted),
                    Err(_) => Answer::Unanswered,
                }
            }
            Ok(r) => Answer::Refused(r.status().as_u16()),
        };
        (answer, started.elapsed())
    }

    /// `GET /v1/jobs/{id}`; the HTTP status (None without an answer), the job's status field
    /// and how long it took.
    pub async fn get(&self, id: Uuid) -> (Option<u16>, Option<String>, Duration) {
        let started = Instant::now();
        let response = self
            .http
            .get(format!("{}/v1/jobs/{id}", self.base))
            .send()
            .await;
        match response {
            Err(_) => (None, None, started.elapsed()),
            Ok(r) => {
                let code = r.status().as_u16();
                let status = r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|j| j["status"].as_str().map(str::to_owned));
                (Some(code), status, started.elapsed())
            }
        }
    }
}

/// Every submission of a run and its answer; optionally tells a listener about each accepted
/// job (the duplicate publisher of the publish-twice scenario).
#[derive(Clone, Default)]
pub struct Ledger {
    submissions: Arc<Mutex<Vec<Submission>>>,
    on_accept: Arc<Mutex<Option<mpsc::UnboundedSender<Uuid>>>>,
}

impl Ledger {
    pub fn on_accept(&self, tx: mpsc::UnboundedSender<Uuid>) {
        *self.on_accept.lock().expect("ledger lock") = Some(tx);
    }

    /// Submits one job and records the answer.
    pub async fn submit(
        &self,
        client: &Client,
        url: String,
        tasks: &[&str],
        expect: Expect,
    ) -> (Answer, Duration) {
        let (answer, took) = client.submit(&url, tasks).await;
        if let Answer::Accepted(id) = answer
            && let Some(tx) = self.on_accept.lock().expect("ledger lock").as_ref()
        {
            let _ = tx.send(id);
        }
        self.submissions
            .lock()
            .expect("ledger lock")
            .push(Submission {
                url,
                expect,
                answer,
            });
        (answer, took)
    }

    /// Records a job accepted by other means than [`Ledger::submit`] (a batch's item).
    pub fn record(&self, url: String, expect: Expect, id: Uuid) {
        self.submissions
            .lock()
            .expect("ledger lock")
            .push(Submission {
                url,
                expect,
                answer: Answer::Accepted(id),
            });
    }

    pub fn submissions(&self) -> Vec<Submission> {
        self.submissions.lock().expect("ledger lock").clone()
    }

    pub fn accepted_ids(&self) -> Vec<Uuid> {
        self.submissions
            .lock()
            .expect("ledger lock")
            .iter()
            .filter_map(|s| match s.answer {
                Answer::Accepted(id) => Some(id),
                _ => None,
            })
            .collect()
    }
}
