//! The store's integration tests against the real PostgreSQL, each in a database of its own:
//! uploaded inputs, batches, the content cache and the URL cache with its single flights.

mod batches;
mod content_cache;
mod inputs;
mod url_cache;

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
