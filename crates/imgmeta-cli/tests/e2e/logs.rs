//! Logs as operators get them: the real `imgmeta` binary with `IMGMETA_LOG_FORMAT=json`.

use crate::helpers::spawn_image_server;
use crate::processes::{
    clean_up, collect, free_port, fresh_database, imgmeta, terminate, wait_terminal, wait_until_up,
};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_and_carry_kind_and_the_job_id_from_api_to_worker() {
    let (db, queue) = fresh_database().await;
    let port = free_port();
    let images = spawn_image_server().await;
    let mut api = imgmeta(&db, &queue, port, "api", &[]);
    let mut worker = imgmeta(&db, &queue, 0, "worker", &[]);
    let (api_log, worker_log) = (collect(&mut api), collect(&mut worker));

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut ids = Vec::new();
    for name in ["alpha.png", "page.html"] {
        let response = client
            .post(format!("{base}/v1/jobs"))
            .json(
                &json!({ "url": format!("http://{images}/images/{name}"), "tasks": ["metadata"] }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let job: Value = response.json().await.unwrap();
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        wait_terminal(&client, &base, id, deadline).await;
    }
    // A refused submission shows in the log too, with its code.
    let refused = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({ "url": "ftp://example.com/a.jpg" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    // SIGTERM: both stop gracefully and close their logs.
    terminate(&mut api, Duration::from_secs(30)).await;
    terminate(&mut worker, Duration::from_secs(30)).await;
    let api_lines = api_log.await.unwrap();
    let worker_lines = worker_log.await.unwrap();

    let parse = |lines: &[String]| -> Vec<Value> {
        lines
            .iter()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    };
    let (api_events, worker_events) = (parse(&api_lines), parse(&worker_lines));
    let mentions = |e: &Value, id: &str| {
        e["job.id"] == id
            || e["span"]["job.id"] == id
            || e.get("spans").is_some_and(|s| s.to_string().contains(id))
    };
    let kinds = |events: &[Value], kind: &str, event: &str, id: &str| {
        events
            .iter()
            .any(|e| e["kind"] == kind && e["event"] == event && mentions(e, id))
    };
    assert!(
        kinds(&api_events, "analytics", "job_submitted", &ids[0]),
        "{api_lines:#?}"
    );
    assert!(
        kinds(&worker_events, "analytics", "job_succeeded", &ids[0]),
        "{worker_lines:#?}"
    );
    assert!(
        kinds(&worker_events, "analytics", "job_failed", &ids[1]),
        "{worker_lines:#?}"
    );
    assert!(
        api_events.iter().any(|e| e["kind"] == "analytics"
            && e["event"] == "request_refused"
            && e["code"] == "invalid_url"
            && e["http.status"] == 400
            && e["http.route"] == "/v1/jobs"),
        "{api_lines:#?}"
    );
    // Every worker line about a job names it.
    let about_jobs: Vec<&Value> = worker_events
        .iter()
        .filter(|e| ids.iter().any(|id| e.to_string().contains(id.as_str())))
        .collect();
    assert!(about_jobs.len() >= 4);
    assert!(
        about_jobs
            .iter()
            .all(|e| ids.iter().any(|id| mentions(e, id)))
    );
    // Loud warnings for the development settings.
    assert!(
        worker_lines
            .iter()
            .any(|l| l.contains("IMGMETA_FETCH_ALLOW_PRIVATE"))
    );

    clean_up(&db, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_log_names_keys_by_prefix_and_never_contains_a_key_or_the_admin_token() {
    let (db, queue) = fresh_database().await;
    let port = free_port();
    let admin_token = format!("admin-{}", uuid::Uuid::new_v4().simple());
    let mut api = imgmeta(
        &db,
        &queue,
        port,
        "api",
        &[
            ("IMGMETA_AUTH", "enabled".to_owned()),
            ("IMGMETA_ADMIN_TOKEN", admin_token.clone()),
        ],
    );
    let api_log = collect(&mut api);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let job_url = format!("{base}/v1/jobs/{}", uuid::Uuid::now_v7());

    // A key with a rate of 1 request a minute, signed up over HTTP with the admin token.
    let issued: Value = client
        .post(format!("{base}/v1/keys"))
        .bearer_auth(&admin_token)
        .json(&json!({"name": "log test", "rate_per_minute": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = issued["key"].as_str().expect("a key").to_owned();
    let prefix = issued["prefix"].as_str().unwrap().to_owned();
    // Used once (404: no such job), then over its rate (429).
    let first = client.get(&job_url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(first.status(), 404);
    let second = client.get(&job_url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(second.status(), 429);
    // A well-formed key nobody issued, and a mistyped one (401 each).
    let unknown = imgmeta_auth::ApiKey::generate();
    // The last character changed (to one it is not: a key ending in `x` stays mistyped).
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let mistyped = format!("{}{last}", &key[..key.len() - 1]);
    for presented in [unknown.expose(), mistyped.as_str()] {
        let refused = client
            .get(&job_url)
            .bearer_auth(presented)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
    }
    // A wrong admin token.
    let refused = client
        .post(format!("{base}/v1/keys"))
        .bearer_auth(format!("{admin_token}-wrong"))
        .json(&json!({"name": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    terminate(&mut api, Duration::from_secs(30)).await;
    let lines = api_log.await.unwrap();

    let secrets = [
        key.as_str(),
        unknown.expose(),
        mistyped.as_str(),
        admin_token.as_str(),
    ];
    for line in &lines {
        for secret in secrets {
            assert!(!line.contains(secret), "a secret reached the log: {line}");
        }
    }
    let events: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "security")
        .collect();
    let has = |event: &str, key_prefix: &str| {
        events
            .iter()
            .any(|e| e["event"] == event && e["key.prefix"] == key_prefix)
    };
    assert!(has("key_created", &prefix), "{events:#?}");
    assert!(has("rate_limited", &prefix), "{events:#?}");
    assert!(has("auth_failed", unknown.prefix().as_str()), "{events:#?}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "auth_failed" && e["reason"] == "bad_admin_token"),
        "{events:#?}"
    );
    clean_up(&db, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_paths_but_never_query_strings() {
    let (db, queue) = fresh_database().await;
    let port = free_port();
    let images = spawn_image_server().await;
    // Debug level too: every span and event the service has.
    let env = [("RUST_LOG", "debug".to_owned())];
    let mut api = imgmeta(&db, &queue, port, "api", &env);
    let mut worker = imgmeta(&db, &queue, 0, "worker", &env);
    let (api_log, worker_log) = (collect(&mut api), collect(&mut worker));
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;

    // A signed URL whose fetch fails (the failure message quotes the URL), by both routes.
    let signed = format!("http://{images}/gone?X-Amz-Signature=SECRETSIG");
    let job: Value = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({ "url": signed, "tasks": ["metadata"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let finished = wait_terminal(&client, &base, &id, deadline).await;
    let legacy = client
        .post(format!(
            "{base}/img?http%3A%2F%2F{images}%2Fgone%3Fsig%3DSECRETSIG"
        ))
        .send()
        .await
        .unwrap();
    assert!(legacy.status().is_success());
    terminate(&mut api, Duration::from_secs(30)).await;
    terminate(&mut worker, Duration::from_secs(30)).await;
    let lines: Vec<String> = api_log
        .await
        .unwrap()
        .into_iter()
        .chain(worker_log.await.unwrap())
        .collect();

    assert_eq!(finished["error"]["code"], "http_status", "{finished}");
    assert!(
        finished["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/gone?…"),
        "{finished}"
    );
    assert!(
        lines.iter().any(|l| l.contains("/gone")),
        "the path is logged"
    );
    let leaks: Vec<&String> = lines.iter().filter(|l| l.contains("SECRETSIG")).collect();
    assert!(leaks.is_empty(), "query strings in the logs: {leaks:#?}");
    clean_up(&db, &queue).await;
}
