//! Outbox, retries, idempotency and cancellation through the real API and worker.

use crate::helpers::{Options, TestApp};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::time::Duration;

fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_returns_the_original_job() {
    let app = TestApp::spawn_with(Options {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let key = format!("batch-7/item-{}", token());
    let body = json!({ "url": app.image_url("alpha.png"), "tasks": ["metadata"] });
    let post = |body: Value, key: String| {
        app.client
            .post(format!("{}/v1/jobs", app.base))
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };

    let first = post(body.clone(), key.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    // The same request in another spelling (explicit default min_score) is the same request.
    let mut same = body.clone();
    same["min_score"] = json!(0.25);
    let again = post(same, key.clone()).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    let different = post(json!({ "url": app.image_url("plain.bmp") }), key.clone())
        .await
        .unwrap();
    assert_eq!(different.status(), 422);
    let error: Value = different.json().await.unwrap();
    assert_eq!(error["error"]["code"], "idempotency_key_reused");

    let bad = post(body, "bad key with spaces".into()).await.unwrap();
    assert_eq!(bad.status(), 400);

    // One job, one message: nothing else was accepted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.ready_messages().await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.ready_messages().await, 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_is_skipped_and_a_finished_one_cannot_be_cancelled() {
    let mut app = TestApp::spawn_with(Options {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let cancelled = app
        .submit_ok(json!({ "url": app.image_url("alpha.png"), "tasks": ["metadata"] }))
        .await;
    let kept = app
        .submit_ok(json!({ "url": app.image_url("plain.bmp"), "tasks": ["metadata"] }))
        .await;

    let response = app
        .client
        .delete(format!("{}/v1/jobs/{cancelled}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["status"], "cancelled");

    app.start_worker();
    let kept_job = app.wait_terminal(&kept).await;
    assert_eq!(kept_job["status"], "succeeded");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.ready_messages().await > 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop_worker().await;
    let job: Value = app.get_job(&cancelled).await.json().await.unwrap();
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["attempts"], 0, "a cancelled job must never run");

    let again = app
        .client
        .delete(format!("{}/v1/jobs/{kept}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let error: Value = again.json().await.unwrap();
    assert_eq!(error["error"]["code"], "job_already_finished");
    let unknown = app
        .client
        .delete(format!("{}/v1/jobs/{}", app.base, uuid::Uuid::now_v7()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_upstream_failures_are_retried_and_permanent_ones_are_not() {
    let app = TestApp::spawn_with(Options {
        env: vec![("IMGMETA_MAX_ATTEMPTS", "3".into())],
        ..Default::default()
    })
    .await;
    let recovers = app
        .submit_ok(json!({ "url": format!("{}/flaky/2/{}/alpha.png", app.images, token()), "tasks": ["metadata"] }))
        .await;
    let never = app
        .submit_ok(json!({ "url": format!("{}/flaky/99/{}/alpha.png", app.images, token()), "tasks": ["metadata"] }))
        .await;
    let missing = app
        .submit_ok(json!({ "url": format!("{}/gone", app.images), "tasks": ["metadata"] }))
        .await;

    let job = app.wait_terminal(&recovers).await;
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(job["attempts"], 3);
    let job = app.wait_terminal(&never).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "upstream_unavailable");
    assert_eq!(
        job["attempts"], 3,
        "gives up after IMGMETA_MAX_ATTEMPTS runs"
    );
    let job = app.wait_terminal(&missing).await;
    assert_eq!(job["error"]["code"], "http_status");
    assert_eq!(job["attempts"], 1, "a 404 is permanent");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_for_its_retry_shows_why_its_last_run_failed() {
    // A long back-off, so the job is seen waiting between its runs.
    let app = TestApp::spawn_with(Options {
        env: vec![("IMGMETA_RETRY_BASE_MS", "30000".into())],
        ..Default::default()
    })
    .await;
    let id = app
        .submit_ok(json!({ "url": format!("{}/flaky/1/{}/alpha.png", app.images, token()), "tasks": ["metadata"] }))
        .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let waiting = loop {
        let job: Value = app.get_job(&id).await.json().await.unwrap();
        if job["attempts"] == 1 && job["status"] == "queued" {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(waiting["error"].is_null(), "{waiting:#}");
    assert_eq!(
        waiting["last_error"]["code"], "upstream_unavailable",
        "{waiting:#}"
    );
    assert!(
        waiting["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{waiting:#}"
    );
    let listed = app.get_value("/v1/jobs").await;
    assert_eq!(
        listed["jobs"][0]["last_error"]["code"],
        "upstream_unavailable"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_submissions_wait_in_the_outbox_up_to_the_backlog() {
    let down = TestApp::spawn_with(Options {
        start_worker: false,
        amqp_url: Some("amqp://guest:guest@127.0.0.1:1/%2f".into()),
        env: vec![("IMGMETA_OUTBOX_MAX_BACKLOG", "3".into())],
        ..Default::default()
    })
    .await;
    let mut accepted = Vec::new();
    // Distinct URLs: submissions of one URL would share one run (and one message).
    for i in 0..3 {
        let url = format!("{}?n={i}", down.image_url("alpha.png"));
        accepted.push(
            down.submit_ok(json!({ "url": url, "tasks": ["metadata"] }))
                .await,
        );
    }
    let refused = down
        .submit(json!({ "url": format!("{}?n=3", down.image_url("alpha.png")) }))
        .await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "service_unavailable");

    // The broker is back (a process that reaches it): the outbox drains and every accepted
    // job runs.
    let up = TestApp::spawn_with(Options {
        database: Some(down.db_name.clone()),
        api_key: Some(down.api_key.clone()),
        env: vec![("IMGMETA_QUEUE", down.settings.queue_prefix.clone())],
        ..Default::default()
    })
    .await;
    for id in &accepted {
        let job = up.wait_terminal(id).await;
        assert_eq!(job["status"], "succeeded", "{job:#}");
    }
    down.cleanup().await;
    up.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_fails_the_job_that_used_its_attempts_and_requeues_a_bystander() {
    // No broker and no sweeps: the relay must not publish (and delete) the outbox rows this
    // test counts, and the reconciler must not touch the jobs it arranges.
    let app = TestApp::spawn_with(Options {
        start_worker: false,
        amqp_url: Some("amqp://guest:guest@127.0.0.1:1/%2f".into()),
        env: vec![("IMGMETA_SWEEP_MS", "600000".into())],
        ..Default::default()
    })
    .await;
    let store = imgmeta_store::Store::connect_lazy(&app.settings.database.url, 2).unwrap();
    let pool = sqlx::PgPool::connect(app.settings.database.url.expose_secret())
        .await
        .unwrap();
    let url = app.image_url("alpha.png");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.submit_ok(json!({ "url": url, "tasks": ["metadata"] }))
                .await,
        );
    }
    let (culprit, bystander, finished) = (&ids[0], &ids[1], &ids[2]);
    // The culprit ran 4 times, its last worker gone (lease expired); the bystander ran once
    // and is queued again; the third job already succeeded.
    let set = |sql: &'static str, id: &str| {
        let pool = pool.clone();
        let id = uuid::Uuid::parse_str(id).unwrap();
        async move {
            sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
        }
    };
    set(
        "UPDATE jobs SET status = 'running', attempts = 4, lease_until = now() - interval '1 second' WHERE id = $1",
        culprit,
    )
    .await;
    set("UPDATE jobs SET attempts = 1 WHERE id = $1", bystander).await;
    set(
        "UPDATE jobs SET status = 'succeeded', attempts = 1, result = '{}', finished_at = now() WHERE id = $1",
        finished,
    )
    .await;
    let outbox = |id: &str| {
        let pool = pool.clone();
        let id = uuid::Uuid::parse_str(id).unwrap();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox WHERE job_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let messages_before = outbox(bystander).await;
    let record = |id: &str| {
        let store = store.clone();
        let id = imgmeta_domain::JobId::parse(id).unwrap();
        async move { store.dead_lettered(id, 5, 5).await.unwrap() }
    };

    assert_eq!(record(culprit).await, imgmeta_store::DeadLetter::Failed);
    assert_eq!(record(bystander).await, imgmeta_store::DeadLetter::Requeued);
    assert_eq!(record(finished).await, imgmeta_store::DeadLetter::Untouched);

    let job: Value = app.get_job(culprit).await.json().await.unwrap();
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "poison");
    let job: Value = app.get_job(bystander).await.json().await.unwrap();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(outbox(bystander).await, messages_before + 1);
    let job: Value = app.get_job(finished).await.json().await.unwrap();
    assert_eq!(job["status"], "succeeded");
    // A bystander dead-lettered again and again is failed once the dead letters use up its
    // attempts, so a crash loop cannot requeue it forever.
    for _ in 0..2 {
        assert_eq!(record(bystander).await, imgmeta_store::DeadLetter::Requeued);
    }
    assert_eq!(record(bystander).await, imgmeta_store::DeadLetter::Failed);
    app.cleanup().await;
}
