//! Tenancy through the real API: every job and key belongs to an account, another account's
//! objects answer exactly as missing ones, scopes are enforced on every route, quotas hold per
//! account across API processes, results are purged on request and by retention, GPS can be
//! redacted, and the accounts migration keeps an older database's keys and jobs.

use crate::helpers::{Options, TestApp, authorized_client, key_in, store_of};
use imgmeta_domain::{AccountId, Name, ScopeSet};
use imgmeta_store::{AccountChanges, NewAccount, Store};
use serde_json::{Value, json};
use std::time::Duration;

fn options(env: &[(&'static str, &str)]) -> Options {
    Options {
        start_worker: false,
        env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        ..Default::default()
    }
}

async fn new_account(app: &TestApp, name: &str, daily_quota: u32) -> AccountId {
    store_of(app)
        .create_account(&NewAccount {
            name: Name::parse(name).unwrap(),
            daily_quota,
            retention_days: 30,
            redact_gps: false,
        })
        .await
        .unwrap()
        .id
}

/// Sends a request and reads its JSON answer, whatever its status.
trait SendJson {
    async fn send_json(self) -> Value;
}

impl SendJson for reqwest::RequestBuilder {
    async fn send_json(self) -> Value {
        self.send().await.unwrap().json().await.unwrap()
    }
}

/// Status and body text of a response.
async fn answer(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Polls `id` with `client` (a key of the job's account) until it is terminal.
async fn wait_terminal_as(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job: Value = client.get(format!("{base}/v1/jobs/{id}")).send_json().await;
        if matches!(
            job["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn code_of(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    value["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_job_answers_exactly_like_a_missing_one_on_every_route() {
    let mut app = TestApp::spawn_with(options(&[])).await;
    let team = new_account(&app, "team", 1_000).await;
    let a1 = authorized_client(&key_in(&app, Some(team), "jobs:write jobs:read").await);
    let a2 = authorized_client(&key_in(&app, Some(team), "jobs:write jobs:read").await);
    let b = authorized_client(&key_in(&app, None, "jobs:write jobs:read keys:manage").await);
    let body = json!({ "url": app.image_url("camera_north_east.jpg"), "tasks": ["metadata"] });
    let submitted = a1
        .post(format!("{}/v1/jobs", app.base))
        .header("Idempotency-Key", "order-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 202);
    let job: Value = submitted.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let missing = uuid::Uuid::now_v7().to_string();
    let base = app.base.clone();
    let url = |id: &str| format!("{base}/v1/jobs/{id}");

    // While the job is still queued, B can neither read, cancel nor purge it.
    for (what, foreign, absent) in [
        ("GET", b.get(url(&id)), b.get(url(&missing))),
        ("DELETE", b.delete(url(&id)), b.delete(url(&missing))),
        (
            "DELETE purge",
            b.delete(format!("{}?purge=true", url(&id))),
            b.delete(format!("{}?purge=true", url(&missing))),
        ),
    ] {
        let foreign = answer(foreign.send().await.unwrap()).await;
        let absent = answer(absent.send().await.unwrap()).await;
        assert_eq!(foreign.0, 404, "{what}");
        assert_eq!(code_of(&foreign.1), "job_not_found", "{what}");
        assert_eq!(foreign.1, absent.1.replace(&missing, &id), "{what}");
    }
    let replay_by_b = b
        .post(format!("{}/v1/jobs", app.base))
        .header("Idempotency-Key", "order-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay_by_b.status(), 202);
    assert!(replay_by_b.headers().get("idempotent-replayed").is_none());
    let b_job: Value = replay_by_b.json().await.unwrap();
    assert_ne!(b_job["id"], job["id"], "B got A's job by replaying its key");
    let replay_by_a2 = a2
        .post(format!("{}/v1/jobs", app.base))
        .header("Idempotency-Key", "order-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay_by_a2.headers()["idempotent-replayed"], "true");
    let a2_job: Value = replay_by_a2.json().await.unwrap();
    assert_eq!(a2_job["id"], job["id"]);

    app.start_worker();
    let finished = wait_terminal_as(&a1, &base, &id).await;
    assert_eq!(
        finished["status"], "succeeded",
        "B's DELETE touched A's job"
    );
    let seen_by_a2: Value = a2.get(url(&id)).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen_by_a2["result"], finished["result"]);
    assert!(seen_by_a2["result"]["image"]["exif"]["gps"].is_object());
    // A key of the account that may submit but not read gets the job back on a replay, but
    // not its result.
    let writer = authorized_client(&key_in(&app, Some(team), "jobs:write").await);
    let replayed: Value = writer
        .post(format!("{}/v1/jobs", app.base))
        .header("Idempotency-Key", "order-1")
        .json(&body)
        .send_json()
        .await;
    assert_eq!(replayed["id"], job["id"]);
    assert_eq!(replayed["status"], "succeeded");
    assert!(replayed["result"].is_null(), "{replayed}");
    let (status, text) = answer(b.get(url(&id)).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(!text.contains("latitude") && !text.contains("camera_north_east"));

    // Lists show only the account's own jobs.
    let listed_by_b: Value = b.get(format!("{}/v1/jobs", app.base)).send_json().await;
    let b_ids: Vec<&str> = listed_by_b["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(b_ids, [b_job["id"].as_str().unwrap()]);
    let listed_by_a2: Value = a2
        .get(format!("{}/v1/jobs?status=succeeded", app.base))
        .send_json()
        .await;
    assert_eq!(listed_by_a2["jobs"][0]["id"], job["id"]);
    assert!(listed_by_a2["jobs"][0].get("result").is_none());

    // Keys: B cannot revoke A's key; the answer is that of a prefix nobody has.
    let a1_prefix = store_of(&app)
        .list_account_keys(team)
        .await
        .unwrap()
        .remove(0)
        .prefix;
    let nobody = "imk_ZZZZZZZZ";
    let keys_url = |p: &str| format!("{}/v1/account/keys/{p}", app.base);
    let foreign = answer(b.delete(keys_url(&a1_prefix)).send().await.unwrap()).await;
    let absent = answer(b.delete(keys_url(nobody)).send().await.unwrap()).await;
    assert_eq!(foreign.0, 404);
    assert_eq!(code_of(&foreign.1), "key_not_found");
    assert_eq!(foreign.1, absent.1);
    assert_eq!(a1.get(url(&id)).send().await.unwrap().status(), 200);
    let b_keys: Value = b
        .get(format!("{}/v1/account/keys", app.base))
        .send_json()
        .await;
    assert_eq!(b_keys["keys"].as_array().unwrap().len(), 1);
    assert!(!b_keys.to_string().contains(&a1_prefix));

    // Probing is visible.
    let metrics = imgmeta_telemetry::render();
    assert!(
        metrics.contains("imgmeta_cross_account_misses_total{object=\"job\"}")
            && metrics.contains("imgmeta_cross_account_misses_total{object=\"key\"}"),
        "{metrics}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_its_scopes() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_LEGACY_WAIT_MS", "50")])).await;
    let account = new_account(&app, "scoped", 1_000).await;
    let image = app.image_url("camera_orientation6.jpg");
    let legacy = format!(
        "{}/img?{}",
        app.base,
        image.replace(':', "%3A").replace('/', "%2F")
    );
    let job = format!("{}/v1/jobs/{}", app.base, uuid::Uuid::now_v7());
    // route, what it needs, and a request for it.
    type Build = Box<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder>;
    let routes: Vec<(&str, &[&str], Build)> = vec![
        ("POST /v1/jobs", &["jobs:write"], {
            let (base, image) = (app.base.clone(), image.clone());
            Box::new(move |c| {
                c.post(format!("{base}/v1/jobs"))
                    .json(&json!({ "url": image, "tasks": ["metadata"] }))
            })
        }),
        ("GET /v1/jobs", &["jobs:read"], {
            let base = app.base.clone();
            Box::new(move |c| c.get(format!("{base}/v1/jobs")))
        }),
        ("GET /v1/jobs/{id}", &["jobs:read"], {
            let job = job.clone();
            Box::new(move |c| c.get(&job))
        }),
        ("DELETE /v1/jobs/{id}", &["jobs:write"], {
            let job = job.clone();
            Box::new(move |c| c.delete(&job))
        }),
        ("DELETE /v1/jobs/{id}?purge=true", &["jobs:write"], {
            let job = format!("{job}?purge=true");
            Box::new(move |c| c.delete(&job))
        }),
        ("POST /img", &["jobs:write", "jobs:read"], {
            let legacy = legacy.clone();
            Box::new(move |c| c.post(&legacy))
        }),
        ("GET /v1/account", &[], {
            let base = app.base.clone();
            Box::new(move |c| c.get(format!("{base}/v1/account")))
        }),
        ("GET /v1/account/keys", &["keys:manage"], {
            let base = app.base.clone();
            Box::new(move |c| c.get(format!("{base}/v1/account/keys")))
        }),
        ("POST /v1/account/keys", &["keys:manage"], {
            let base = app.base.clone();
            Box::new(move |c| {
                c.post(format!("{base}/v1/account/keys"))
                    .json(&json!({ "name": "minted", "scopes": ["keys:manage"] }))
            })
        }),
        ("DELETE /v1/account/keys/{prefix}", &["keys:manage"], {
            let base = app.base.clone();
            Box::new(move |c| c.delete(format!("{base}/v1/account/keys/imk_ZZZZZZZZ")))
        }),
    ];
    let key_scopes = [
        "jobs:write",
        "jobs:read",
        "keys:manage",
        "jobs:write jobs:read",
        "jobs:write jobs:read keys:manage",
    ];
    for scopes in key_scopes {
        let client = authorized_client(&key_in(&app, Some(account), scopes).await);
        let held: Vec<&str> = scopes.split(' ').collect();
        for (route, needs, build) in &routes {
            let (status, body) = answer(build(&client).send().await.unwrap()).await;
            let missing: Vec<&&str> = needs.iter().filter(|n| !held.contains(n)).collect();
            match missing.first() {
                Some(scope) => {
                    assert_eq!(status, 403, "{route} with [{scopes}]: {body}");
                    assert_eq!(code_of(&body), "insufficient_scope", "{route}");
                    let message: Value = serde_json::from_str(&body).unwrap();
                    assert!(
                        message["error"]["message"]
                            .as_str()
                            .unwrap()
                            .contains(**scope),
                        "{route}: {body}"
                    );
                }
                None => {
                    assert!(
                        ![401, 403].contains(&status),
                        "{route} with [{scopes}] refused: {status} {body}"
                    );
                    assert!(status < 500, "{route}: {status} {body}");
                }
            }
        }
    }
    // A key grants only scopes it holds.
    let manager = authorized_client(&key_in(&app, Some(account), "keys:manage").await);
    let escalation = manager
        .post(format!("{}/v1/account/keys", app.base))
        .json(&json!({ "name": "reader", "scopes": ["jobs:read"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(escalation.status(), 403);
    assert_eq!(
        code_of(&escalation.text().await.unwrap()),
        "insufficient_scope"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_quota_caps_all_its_keys_across_api_processes_and_counts_accepted_jobs_only() {
    let first = TestApp::spawn_with(options(&[])).await;
    let second = TestApp::spawn_with(Options {
        database: Some(first.db_name.clone()),
        ..options(&[])
    })
    .await;
    let account = new_account(&first, "capped", 3).await;
    let k1 = authorized_client(&key_in(&first, Some(account), "jobs:write jobs:read").await);
    let k2 = authorized_client(&key_in(&first, Some(account), "jobs:write jobs:read").await);
    let image = first.image_url("camera_orientation6.jpg");

    // Refusals cost nothing.
    for (client, app) in [(&k1, &first), (&k2, &second)] {
        let refused = client
            .post(format!("{}/v1/jobs", app.base))
            .json(&json!({ "url": "ftp://example.com/a.jpg" }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let bad_key = client
            .post(format!("{}/v1/jobs", app.base))
            .header("Idempotency-Key", "")
            .json(&json!({ "url": image }))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_key.status(), 400);
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..8 {
        let (client, app) = if i % 2 == 0 {
            (&k1, &first)
        } else {
            (&k2, &second)
        };
        let response = client
            .post(format!("{}/v1/jobs", app.base))
            .header("Idempotency-Key", format!("job-{i}"))
            .json(&json!({ "url": image, "tasks": ["metadata"] }))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => accepted.push((
                i,
                response.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )),
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                let body = response.text().await.unwrap();
                assert_eq!(code_of(&body), "quota_exceeded");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(accepted.len(), 3, "{accepted:?}");
    assert_eq!(refused, 5);
    // A replay of an accepted job is answered even with the quota used up, and costs nothing.
    let (i, id) = &accepted[0];
    let replay = k2
        .post(format!("{}/v1/jobs", second.base))
        .header("Idempotency-Key", format!("job-{i}"))
        .json(&json!({ "url": image, "tasks": ["metadata"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], id.as_str());
    let usage: Value = k1
        .get(format!("{}/v1/account", first.base))
        .send_json()
        .await;
    assert_eq!(usage["id"], account.to_string());
    assert_eq!(usage["limits"]["daily_quota"], 3);
    assert_eq!(usage["usage"]["submissions"], 3);
    assert_eq!(usage["usage"]["remaining"], 0);
    // Another account is not affected.
    assert_eq!(
        first
            .submit(json!({ "url": image, "tasks": ["metadata"] }))
            .await
            .status(),
        202
    );
    second.cleanup().await;
    first.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_and_the_retention_sweep_erase_results_and_keep_tombstones() {
    let mut app = TestApp::spawn_with(Options {
        start_worker: true,
        ..options(&[])
    })
    .await;
    let store = store_of(&app);
    // With an artifact each (the annotated image), which every purge erases too.
    let body = json!({
        "url": app.image_url("camera_north_east.jpg"),
        "tasks": ["metadata", "annotate"],
    });
    let purged_now = app.submit_ok(body.clone()).await;
    let kept = app.submit_ok(body.clone()).await;
    let expiring = app.submit_ok(body.clone()).await;
    for id in [&purged_now, &kept, &expiring] {
        assert_eq!(app.wait_terminal(id).await["status"], "succeeded");
    }
    let url = |id: &str| format!("{}/v1/jobs/{id}", app.base);

    let not_purged = app.client.delete(url(&purged_now)).send().await.unwrap();
    assert_eq!(not_purged.status(), 409);
    let purged: Value = app
        .client
        .delete(format!("{}?purge=true", url(&purged_now)))
        .send_json()
        .await;
    assert_eq!(purged["status"], "succeeded");
    assert!(purged["result"].is_null());
    assert!(purged["purged_at"].is_string());
    let again: Value = app.get_job(&purged_now).await.json().await.unwrap();
    assert_eq!(again["purged_at"], purged["purged_at"]);
    assert!(again["result"].is_null());

    // Retention: one day for this account; one job finished two days ago.
    let pool = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(
        &app.settings.database.url,
    ))
    .await
    .unwrap();
    let account: uuid::Uuid = sqlx::query_scalar("SELECT account_id FROM jobs WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&expiring).unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    store
        .update_account(
            AccountId::from_uuid(account),
            &AccountChanges {
                retention_days: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE jobs SET finished_at = now() - interval '2 days' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&expiring).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    // The API process's reconciler sweeps every 500 ms here.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let job: Value = app.get_job(&expiring).await.json().await.unwrap();
        if job["purged_at"].is_string() {
            assert!(job["result"].is_null());
            assert_eq!(job["status"], "succeeded");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never purged: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: Vec<(uuid::Uuid, bool, bool)> =
        sqlx::query_as("SELECT id, result IS NULL, purged_at IS NOT NULL FROM jobs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let state_of = |id: &str| {
        let id = uuid::Uuid::parse_str(id).unwrap();
        rows.iter().find(|r| r.0 == id).map(|r| (r.1, r.2)).unwrap()
    };
    assert_eq!(state_of(&purged_now), (true, true));
    assert_eq!(state_of(&expiring), (true, true));
    assert_eq!(
        state_of(&kept),
        (false, false),
        "a recent result was purged"
    );
    let with_artifacts: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT DISTINCT job_id FROM job_artifacts")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        with_artifacts,
        vec![uuid::Uuid::parse_str(&kept).unwrap()],
        "the purge and the retention sweep erased the purged jobs' artifacts"
    );

    // Purging a live job cancels it in the same step (with no worker, it stays queued).
    app.stop_worker().await;
    let queued = app.submit_ok(body.clone()).await;
    let tombstone: Value = app
        .client
        .delete(format!("{}/v1/jobs/{queued}?purge=true", app.base))
        .send_json()
        .await;
    assert_eq!(tombstone["status"], "cancelled");
    assert!(tombstone["purged_at"].is_string());
    pool.close().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_redacts_gps_stores_no_coordinates() {
    let mut app = TestApp::spawn_with(options(&[])).await;
    let private = new_account(&app, "private", 1_000).await;
    store_of(&app)
        .update_account(
            private,
            &AccountChanges {
                redact_gps: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let redacting = authorized_client(&key_in(&app, Some(private), "jobs:write jobs:read").await);
    let body = json!({ "url": app.image_url("camera_north_east.jpg"), "tasks": ["metadata"] });
    let redacted: Value = redacting
        .post(format!("{}/v1/jobs", app.base))
        .json(&body)
        .send_json()
        .await;
    let redacted = redacted["id"].as_str().unwrap().to_owned();
    let plain = app.submit_ok(body).await;
    app.start_worker();
    app.wait_terminal(&plain).await;
    wait_terminal_as(&redacting, &app.base, &redacted).await;

    let pool = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(
        &app.settings.database.url,
    ))
    .await
    .unwrap();
    let stored = |id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, Value>("SELECT result FROM jobs WHERE id = $1")
                .bind(uuid::Uuid::parse_str(&id).unwrap())
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let redacted_row = stored(redacted).await;
    let plain_row = stored(plain).await;
    assert_eq!(redacted_row["image"]["exif"]["gps"], Value::Null);
    let text = redacted_row.to_string();
    assert!(
        !text.contains("latitude") && !text.contains("48.858"),
        "{text}"
    );
    assert_eq!(redacted_row["image"]["exif"]["make"], "Imgmeta Optics");
    assert!(plain_row["image"]["exif"]["gps"]["latitude"].is_number());
    pool.close().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_disabled_everything_belongs_to_the_built_in_account() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_AUTH", "disabled")])).await;
    let anonymous = reqwest::Client::new();
    let submitted: Value = anonymous
        .post(format!("{}/v1/jobs", app.base))
        .json(&json!({ "url": app.image_url("camera_orientation6.jpg") }))
        .send_json()
        .await;
    let id = submitted["id"].as_str().unwrap();
    let read = anonymous
        .get(format!("{}/v1/jobs/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let account: Value = anonymous
        .get(format!("{}/v1/account", app.base))
        .send_json()
        .await;
    assert_eq!(account["id"], AccountId::BUILT_IN.to_string());
    assert!(account["key"].is_null());
    let owner: uuid::Uuid = sqlx::query_scalar("SELECT account_id FROM jobs WHERE id = $1")
        .bind(uuid::Uuid::parse_str(id).unwrap())
        .fetch_one(
            &sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(
                &app.settings.database.url,
            ))
            .await
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(owner, AccountId::BUILT_IN.as_uuid());
    app.cleanup().await;
}

/// The schema version before accounts existed.
const BEFORE_ACCOUNTS: i64 = 20261127000020;

/// Builds a database of the previous schema with `keys` keys and two jobs, then migrates it.
/// Returns the database's name, the keys' secrets and the jobs' ids.
async fn upgraded_database(keys: usize) -> (String, Vec<String>, Vec<uuid::Uuid>) {
    let name = format!("imgmeta_test_{}", uuid::Uuid::new_v4().simple());
    let url: secrecy::SecretString = format!("postgres://postgres@127.0.0.1:5432/{name}").into();
    imgmeta_store::ensure_database(&url).await.unwrap();
    let store = Store::connect_lazy(&url, 2).unwrap();
    store.migrate_up_to(BEFORE_ACCOUNTS).await.unwrap();
    let pool = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(&url))
        .await
        .unwrap();
    let mut secrets = Vec::new();
    for i in 0..keys {
        let key = imgmeta_auth::ApiKey::generate();
        sqlx::query(
            "INSERT INTO api_keys (prefix, key_hash, name, rate_per_minute, daily_quota, tokens)
             VALUES ($1, $2, $3, 1000, 77, 1000)",
        )
        .bind(key.prefix().to_string())
        .bind(&key.hash().as_bytes()[..])
        .bind(format!("old key {i}"))
        .execute(&pool)
        .await
        .unwrap();
        secrets.push(key.expose().to_owned());
    }
    let mut jobs = Vec::new();
    for (status, result) in [
        ("succeeded", Some(json!({ "image": { "width": 1 } }))),
        ("queued", None),
    ] {
        let id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO jobs (id, url, tasks, min_score, status, result, idempotency_key)
             VALUES ($1, 'http://images.example/a.jpg', ARRAY['metadata'], 0.25, $2, $3, $4)",
        )
        .bind(id)
        .bind(status)
        .bind(result)
        .bind(format!("old-{status}"))
        .execute(&pool)
        .await
        .unwrap();
        jobs.push(id);
    }
    store.migrate().await.unwrap();
    pool.close().await;
    store.close().await;
    (name, secrets, jobs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accounts_migration_keeps_every_key_and_job_of_an_older_database() {
    // Several keys: each gets an account of its own; the jobs, whose submitter was never
    // recorded, go to the built-in account.
    let (name, secrets, jobs) = upgraded_database(2).await;
    let app = TestApp::spawn_with(Options {
        database: Some(name.clone()),
        ..options(&[])
    })
    .await;
    let store = store_of(&app);
    let keys = store.list_api_keys().await.unwrap();
    let old: Vec<_> = keys
        .iter()
        .filter(|k| k.name.starts_with("old key"))
        .collect();
    assert_eq!(old.len(), 2);
    assert_ne!(old[0].account_id, old[1].account_id);
    for key in &old {
        assert_eq!(key.scopes, ScopeSet::default_for_keys());
        let account = store.get_account(key.account_id).await.unwrap().unwrap();
        assert_eq!(account.name, key.name);
        assert_eq!(account.daily_quota, 77);
    }
    for secret in &secrets {
        let response = authorized_client(secret)
            .get(format!("{}/v1/jobs/{}", app.base, jobs[0]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "a key saw an unattributed job");
    }
    let pool = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(
        &app.settings.database.url,
    ))
    .await
    .unwrap();
    let owners: Vec<(uuid::Uuid, String, bool)> = sqlx::query_as(
        "SELECT account_id, status, result IS NOT NULL FROM jobs WHERE id = ANY($1) ORDER BY id",
    )
    .bind(&jobs)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        owners,
        [
            (AccountId::BUILT_IN.as_uuid(), "succeeded".to_owned(), true),
            (AccountId::BUILT_IN.as_uuid(), "queued".to_owned(), false),
        ]
    );
    pool.close().await;
    app.cleanup().await;

    // A single key: the jobs were its jobs, and it still reads them.
    let (name, secrets, jobs) = upgraded_database(1).await;
    let app = TestApp::spawn_with(Options {
        database: Some(name),
        ..options(&[])
    })
    .await;
    let old = authorized_client(&secrets[0]);
    let job: Value = old
        .get(format!("{}/v1/jobs/{}", app.base, jobs[0]))
        .send_json()
        .await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["result"]["image"]["width"], 1);
    // Its idempotency keys still replay within its account.
    let replay = old
        .post(format!("{}/v1/jobs", app.base))
        .header("Idempotency-Key", "old-queued")
        .json(&json!({ "url": "http://images.example/a.jpg", "tasks": ["metadata"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        422,
        "the old key's digest differs, so: reused"
    );
    // The test's own key (a new account) does not see it.
    assert_eq!(app.get_job(&jobs[0].to_string()).await.status(), 404);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_shared_keys_made_with_the_cli_own_their_jobs() {
    let app = TestApp::spawn_with(options(&[])).await;
    let imgmeta = |args: &[&str]| {
        let output = crate::processes::run_cli(&app.settings, args);
        assert!(output.status.success(), "imgmeta {args:?}: {output:?}");
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };

    let team = imgmeta(&["accounts", "create", "--name", "team-cli"]);
    let team_id = team["id"].as_str().unwrap();
    let k1 = imgmeta(&["keys", "create", "--name", "k1", "--account", "team-cli"]);
    let k2 = imgmeta(&["keys", "create", "--name", "k2", "--account", team_id]);
    let solo = imgmeta(&["keys", "create", "--name", "k1"]);
    let manager = imgmeta(&[
        "keys",
        "create",
        "--name",
        "manager",
        "--account",
        team_id,
        "--scopes",
        "keys:manage",
    ]);
    assert_eq!(k1["account"], team_id);
    assert_eq!(k2["account"], team_id);
    assert_ne!(solo["account"], team_id);
    assert_eq!(k1["scopes"], json!(["jobs:write", "jobs:read"]));
    assert_eq!(manager["scopes"], json!(["keys:manage"]));
    // A name two accounts now share ("k1" the account of the solo key, not "team-cli") is fine;
    // an ambiguous one is refused.
    imgmeta(&["keys", "create", "--name", "k1"]);
    let ambiguous = crate::processes::run_cli(
        &app.settings,
        &["keys", "create", "--name", "x", "--account", "k1"],
    );
    assert!(!ambiguous.status.success());
    assert!(String::from_utf8_lossy(&ambiguous.stderr).contains("use an id"));

    let key = |v: &Value| authorized_client(v["key"].as_str().unwrap());
    let submitted: Value = key(&k1)
        .post(format!("{}/v1/jobs", app.base))
        .json(&json!({ "url": app.image_url("camera_orientation6.jpg") }))
        .send_json()
        .await;
    let job = format!("{}/v1/jobs/{}", app.base, submitted["id"].as_str().unwrap());
    assert_eq!(key(&k2).get(&job).send().await.unwrap().status(), 200);
    assert_eq!(key(&solo).get(&job).send().await.unwrap().status(), 404);
    let manager_read = key(&manager).get(&job).send().await.unwrap();
    assert_eq!(manager_read.status(), 403);
    let listed: Value = key(&manager)
        .get(format!("{}/v1/account/keys", app.base))
        .send_json()
        .await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3);

    let changed = imgmeta(&[
        "accounts",
        "set",
        team_id,
        "--retention-days",
        "7",
        "--redact-gps",
        "true",
    ]);
    assert_eq!(changed["retention_days"], 7);
    assert_eq!(changed["redact_gps"], true);
    let output = crate::processes::run_cli(&app.settings, &["accounts", "list"]);
    let accounts: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        accounts
            .iter()
            .any(|a| a["id"] == team_id && a["name"] == "team-cli")
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_mint_keys_into_an_existing_account_over_http() {
    let token = "an-admin-token-for-tenancy";
    let app = TestApp::spawn_with(options(&[("IMGMETA_ADMIN_TOKEN", token)])).await;
    let team = new_account(&app, "http-team", 1_000).await;
    let admin = authorized_client(token);
    let keys_url = format!("{}/v1/keys", app.base);
    let mint = |body: Value| admin.post(&keys_url).json(&body).send();

    let joined: Value =
        mint(json!({ "name": "joined", "account": team.to_string(), "scopes": ["jobs:read"] }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let by_name: Value = mint(json!({ "name": "by name", "account": "http-team" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alone: Value = mint(json!({ "name": "alone" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let missing = mint(json!({ "name": "x", "account": "no-such-team" }))
        .await
        .unwrap();
    let bad_scope = mint(json!({ "name": "x", "scopes": ["jobs:everything"] }))
        .await
        .unwrap();

    assert_eq!(joined["account"], team.to_string());
    assert_eq!(joined["scopes"], json!(["jobs:read"]));
    assert_eq!(by_name["account"], team.to_string());
    assert_ne!(alone["account"], team.to_string());
    assert_eq!(missing.status(), 404);
    assert_eq!(code_of(&missing.text().await.unwrap()), "account_not_found");
    assert_eq!(bad_scope.status(), 400);
    assert_eq!(code_of(&bad_scope.text().await.unwrap()), "invalid_scope");
    // The joined key reads what the account's other key submitted, and may not submit.
    let writer = authorized_client(by_name["key"].as_str().unwrap());
    let reader = authorized_client(joined["key"].as_str().unwrap());
    let submitted: Value = writer
        .post(format!("{}/v1/jobs", app.base))
        .json(&json!({ "url": app.image_url("alpha.png") }))
        .send_json()
        .await;
    let job = format!("{}/v1/jobs/{}", app.base, submitted["id"].as_str().unwrap());
    assert_eq!(reader.get(&job).send().await.unwrap().status(), 200);
    let refused = reader
        .post(format!("{}/v1/jobs", app.base))
        .json(&json!({ "url": app.image_url("alpha.png") }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        authorized_client(alone["key"].as_str().unwrap())
            .get(&job)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.cleanup().await;
}
