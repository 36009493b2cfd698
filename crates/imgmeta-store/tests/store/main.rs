//! The store's integration tests against the real PostgreSQL, each in a database of its own:
//! answered jobs recorded in groups, uploaded inputs, batches, the content cache, the URL cache with its single flights,
//! webhook deliveries, users with their sessions and the login throttle, and rate-limit tokens taken
//! ahead.

mod answered;
mod batches;
mod content_cache;
mod inputs;
mod leases;
mod outbox;
mod url_cache;
mod users;
mod webhooks;

use imgmeta_domain::JobId;
use imgmeta_store::{Claim, Store};
use std::time::Duration;

/// A fresh database, migrated; dropped by [`drop_database`].
pub async fn fresh_store() -> (Store, String) {
    let name = format!("imgmeta_store_{}", uuid::Uuid::new_v4().simple());
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}").into();
    imgmeta_store::ensure_database(&url).await.unwrap();
    let store = Store::connect_lazy(&url, 4).unwrap();
    store.migrate().await.unwrap();
    (store, name)
}

pub async fn drop_database(store: Store, name: &str) {
    store.close().await;
    let admin = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
}

/// A plain pool on the test's database `name`, to move clocks and read rows directly.
pub async fn raw_pool(name: &str) -> sqlx::PgPool {
    sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
        .await
        .unwrap()
}

/// Claims queued job `id` as a worker would; its attempt number.
pub async fn claim(store: &Store, id: JobId) -> i32 {
    match store
        .claim(id, "w1", Duration::from_secs(60), 5)
        .await
        .unwrap()
    {
        Claim::Claimed { attempt, .. } => attempt,
        other => panic!("not claimed: {other:?}"),
    }
}

/// A URL job of `account`, admitted as `admission` says.
pub fn url_job(
    account: imgmeta_domain::AccountId,
    url: &imgmeta_domain::ImageUrl,
    admission: imgmeta_store::JobAdmission,
) -> imgmeta_store::NewJob {
    imgmeta_store::NewJob {
        id: JobId::new(),
        owner: imgmeta_store::Owner {
            account,
            key_id: None,
        },
        spec: imgmeta_domain::JobSpec {
            source: imgmeta_domain::Source::Url(url.clone()),
            tasks: imgmeta_domain::TaskSet::all(),
            min_score: imgmeta_domain::MinScore::DEFAULT,
            dream: None,
            bypass_cache: false,
            webhook_url: None,
        },
        input: None,
        idempotency: None,
        trace_parent: None,
        admission,
    }
}

pub async fn submit(store: &Store, new: &imgmeta_store::NewJob) -> JobId {
    match store.insert_job(new).await.unwrap() {
        imgmeta_store::Submitted::Created(job) => job.id,
        other => panic!("not created: {other:?}"),
    }
}

/// A key of `account` named and prefixed `prefix` (its hash: the prefix's bytes), with the
/// default scopes.
pub async fn api_key(
    store: &Store,
    account: imgmeta_domain::AccountId,
    prefix: &str,
    rate_per_minute: u32,
    daily_quota: u32,
) -> i64 {
    store
        .create_api_key(&imgmeta_store::NewApiKey {
            prefix: prefix.to_owned(),
            hash: {
                let mut hash = [0; 32];
                hash[..prefix.len()].copy_from_slice(prefix.as_bytes());
                hash
            },
            name: prefix.to_owned(),
            rate_per_minute,
            daily_quota,
            scopes: imgmeta_domain::ScopeSet::default_for_keys(),
            account: imgmeta_store::KeyAccount::Existing(account),
        })
        .await
        .unwrap()
        .unwrap()
        .id
}
