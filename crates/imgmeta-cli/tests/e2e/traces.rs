//! Traces as a collector gets them: the real `imgmeta` binaries with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! pointing at a stand-in OTLP/HTTP collector on loopback that decodes what arrives. A job is
//! one trace, from the API's submission through the relay's publish to the worker's stages.

use crate::helpers::{photos_dir, spawn_image_server};
use crate::processes::{
    clean_up, collect, free_port, fresh_database, imgmeta, terminate, wait_terminal, wait_until_up,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prost::Message;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One span as exported, with its process's `service.name`.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, String>,
}

/// What the stand-in collector received: every span of every accepted request.
type Received = Arc<Mutex<Vec<Exported>>>;

/// Accepts `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`, as a collector's
/// OTLP/HTTP receiver does; anything else is refused, so a wrong path or encoding shows.
async fn spawn_collector() -> (SocketAddr, Received) {
    use axum::http::{HeaderMap, StatusCode, header};
    let received = Received::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                if headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    != Some("application/x-protobuf")
                {
                    return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
                }
                let request =
                    ExportTraceServiceRequest::decode(body).map_err(|_| StatusCode::BAD_REQUEST)?;
                sink.lock().unwrap().extend(flatten(request));
                Ok((
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                ))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<Exported> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default().attributes;
        let service = attributes(&resource)
            .remove("service.name")
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                out.push(Exported {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    out
}

/// Attribute values as text, whatever their type.
fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_spans_reach_the_otlp_collector_with_its_id_and_each_process_s_service_name() {
    let (collector, received) = spawn_collector().await;
    let (db, queue) = fresh_database().await;
    let images = spawn_image_server().await;
    let port = free_port();
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
        // Nothing is sent on a timer during the test (a batch is 512 spans): whatever arrives
        // was sent by the flush at exit, which is what this test holds the binary to.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
    ];
    let mut api = imgmeta(&db, &queue, port, "api", &otel);
    let mut worker = imgmeta(&db, &queue, 0, "worker", &otel);
    let (api_log, worker_log) = (collect(&mut api), collect(&mut worker));
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;

    // A job through the whole real pipeline: fetch, decode, metadata, objects, store.
    assert!(photos_dir().join("chelsea.png").exists());
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({
            "url": format!("http://{images}/photos/chelsea.png"),
            "tasks": ["metadata", "objects"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let job = wait_terminal(&client, &base, &id, deadline).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(
        received.lock().unwrap().is_empty(),
        "spans arrived before exit although the schedule delay is 10 minutes"
    );

    // A graceful stop flushes what each process still holds.
    let api_exit = terminate(&mut api, Duration::from_secs(60)).await;
    let worker_exit = terminate(&mut worker, Duration::from_secs(60)).await;
    let (api_lines, worker_lines) = (api_log.await.unwrap(), worker_log.await.unwrap());
    clean_up(&db, &queue).await;
    assert!(
        matches!(api_exit, Some((_, true))),
        "api exit {api_exit:?}: {api_lines:#?}"
    );
    assert!(
        matches!(worker_exit, Some((_, true))),
        "worker exit {worker_exit:?}: {worker_lines:#?}"
    );

    let spans = received.lock().unwrap().clone();
    let context = || format!("{spans:#?}\n{api_lines:#?}\n{worker_lines:#?}");
    let about_job = |s: &&Exported| s.attributes.get("job.id") == Some(&id);

    // The API's side: the submission, under the API's default service name.
    let submit = spans
        .iter()
        .filter(about_job)
        .find(|s| s.name == "submit")
        .unwrap_or_else(|| panic!("no submit span for {id}: {}", context()));
    assert_eq!(submit.service, "imgmeta-api");
    // The message the relay (of either process) published for it, in the submission's trace.
    let publish = spans
        .iter()
        .filter(about_job)
        .find(|s| s.name == "publish")
        .unwrap_or_else(|| panic!("no publish span for {id}: {}", context()));
    assert_eq!(publish.trace_id, submit.trace_id, "publish joins the trace");
    assert_eq!(publish.parent_span_id, submit.span_id);

    // The worker's side: the job span carries the id and every stage is its child, one trace.
    let job_span = spans
        .iter()
        .filter(about_job)
        .find(|s| s.name == "job")
        .unwrap_or_else(|| panic!("no job span for {id}: {}", context()));
    assert_eq!(job_span.service, "imgmeta-worker");
    // One trace from submission to result: the trace context crossed the outbox and the queue
    // (the message's traceparent header), and the run is a child of the submission.
    assert_eq!(
        job_span.trace_id,
        submit.trace_id,
        "the worker's run is not in the submission's trace: {}",
        context()
    );
    assert_eq!(job_span.parent_span_id, submit.span_id);
    assert_eq!(
        job_span.attributes.get("attempt").map(String::as_str),
        Some("1")
    );
    for stage in ["fetch", "decode", "metadata", "objects", "store"] {
        let span = spans
            .iter()
            .find(|s| s.name == stage && s.trace_id == job_span.trace_id)
            .unwrap_or_else(|| panic!("no {stage} span in the job's trace: {}", context()));
        assert_eq!(span.parent_span_id, job_span.span_id, "{stage}'s parent");
        assert_eq!(span.service, "imgmeta-worker");
    }
    let fetch = spans
        .iter()
        .find(|s| s.name == "fetch" && s.trace_id == job_span.trace_id)
        .unwrap();
    assert_eq!(
        fetch.attributes.get("image.url_host").map(String::as_str),
        Some("127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_neither_refuses_submissions_nor_holds_up_exit() {
    // Accepts connections and reads nothing back: every export waits for its timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = silent.local_addr().unwrap();
    let connections = Arc::new(Mutex::new(Vec::new()));
    let held = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = silent.accept().await {
            held.lock().unwrap().push(socket);
        }
    });
    let (db, queue) = fresh_database().await;
    let port = free_port();
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let mut api = imgmeta(&db, &queue, port, "api", &otel);
    let api_log = collect(&mut api);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;

    let client = reqwest::Client::new();
    for n in 0..5 {
        let started = tokio::time::Instant::now();
        let response = client
            .post(format!("{base}/v1/jobs"))
            .json(&json!({ "url": format!("http://127.0.0.1/{n}.png"), "tasks": ["metadata"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "submission {n} took {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The exporter sends from its own thread on its own schedule: give it time to try.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while connections.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempted = !connections.lock().unwrap().is_empty();

    let exit = terminate(&mut api, Duration::from_secs(60)).await;
    let lines = api_log.await.unwrap();
    clean_up(&db, &queue).await;
    assert!(
        attempted,
        "the exporter never tried the collector: {lines:#?}"
    );
    let (took, clean) =
        exit.unwrap_or_else(|| panic!("still running 60 s after SIGTERM: {lines:#?}"));
    assert!(clean, "{lines:#?}");
    // The flush at exit gives up after 5 s; the rest is the ordinary graceful stop.
    assert!(
        took < Duration::from_secs(20),
        "exit took {took:?}: {lines:#?}"
    );
}
