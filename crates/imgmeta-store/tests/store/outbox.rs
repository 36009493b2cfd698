//! The outbox against the real PostgreSQL: a message published promptly writes nothing on its
//! job (its creation stands for its publication), a late one records when it was published,
//! and the stale-message sweep reads either; committing messages wakes this process's relay.

use crate::batches::account;
use crate::{claim, drop_database, fresh_store, raw_pool, submit, url_job};
use imgmeta_domain::{ImageUrl, JobId};
use imgmeta_store::Store;
use std::time::Duration;

#[tokio::test]
async fn prompt_messages_write_nothing_on_their_job_and_late_ones_record_their_publication() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 1_000).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let url = ImageUrl::parse(&format!("http://images.example/{i}.jpg")).unwrap();
        ids.push(submit(&store, &url_job(owner, &url, Default::default())).await);
    }
    let db = raw_pool(&name).await;
    // The second job's message was owed two minutes ago (the broker was away).
    sqlx::query("UPDATE jobs SET created_at = now() - interval '2 minutes' WHERE id = $1")
        .bind(ids[1].as_uuid())
        .execute(&db)
        .await
        .unwrap();
    let taken = store
        .take_due_messages(10, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    let late = |id: JobId| taken.iter().find(|m| m.job_id == id).unwrap().late;
    assert!(!late(ids[0]) && late(ids[1]));
    store.mark_published(&taken).await.unwrap();
    let published: Vec<(uuid::Uuid, Option<chrono::DateTime<chrono::Utc>>)> =
        sqlx::query_as("SELECT id, published_at FROM jobs ORDER BY created_at DESC")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(published[0].0, ids[0].as_uuid());
    assert!(published[0].1.is_none(), "prompt: nothing written");
    assert!(published[1].1.is_some(), "late: its publication recorded");
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(outbox, 0);

    // The sweep: the late job was published just now, the prompt one when it was created.
    assert_eq!(
        store
            .republish_stale(10, Duration::from_secs(60), false)
            .await
            .unwrap(),
        0
    );
    sqlx::query("UPDATE jobs SET created_at = now() - interval '2 minutes' WHERE id = $1")
        .bind(ids[0].as_uuid())
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(
        store
            .republish_stale(10, Duration::from_secs(60), true)
            .await
            .unwrap(),
        0,
        "not a batch item"
    );
    assert_eq!(
        store
            .republish_stale(10, Duration::from_secs(60), false)
            .await
            .unwrap(),
        1,
        "a prompt message's job created long ago, still queued, gets a new message"
    );
    db.close().await;
    drop_database(store, &name).await;
}

#[tokio::test]
async fn the_stale_message_sweep_never_gives_a_flight_follower_a_message_of_its_own() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 1_000).await;
    let url = ImageUrl::parse("http://images.example/viral.jpg").unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let flight = imgmeta_store::JobAdmission::Flight(url.cache_key());
        ids.push(submit(&store, &url_job(owner, &url, flight)).await);
    }
    let taken = store
        .take_due_messages(10, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "only the leader has a message");
    store.mark_published(&taken).await.unwrap();
    let db = raw_pool(&name).await;
    sqlx::query("UPDATE jobs SET created_at = now() - interval '2 minutes'")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(
        store
            .republish_stale(10, Duration::from_secs(60), false)
            .await
            .unwrap(),
        1,
        "the leader's message may be lost; the follower never had one"
    );
    let messages: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT job_id FROM outbox")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(messages, vec![ids[0].as_uuid()]);
    db.close().await;
    drop_database(store, &name).await;
}

/// Whether the store's outbox signal is raised now (polled once: a raised signal is kept for
/// the next waiter, so this needs no timing), consuming it.
async fn signalled(store: &Store) -> bool {
    tokio::time::timeout(Duration::ZERO, store.outbox_signalled())
        .await
        .is_ok()
}

#[tokio::test]
async fn committing_messages_signals_this_process_relay_and_no_other() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 1_000).await;
    // Another process's store of the same database: its relay finds these rows by polling.
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}").into();
    let elsewhere = Store::connect_lazy(&url, 2).unwrap();
    assert!(!signalled(&store).await, "nothing written yet");

    let image = ImageUrl::parse("http://images.example/signal.jpg").unwrap();
    let id = submit(&store, &url_job(owner, &image, Default::default())).await;
    // A clone and a store on its own pool share the signal: one process, one relay.
    assert!(
        signalled(&store.with_own_pool(1)).await,
        "a submission signals"
    );
    assert!(
        !signalled(&store).await,
        "the signal is consumed by its waiter"
    );
    assert!(!signalled(&elsewhere).await, "other processes poll");

    // A run handed back at shutdown owes a new message: signalled too.
    let attempt = claim(&store, id).await;
    assert!(!signalled(&store).await, "a claim writes no message");
    assert!(store.release(id, attempt).await.unwrap());
    assert!(signalled(&store.clone()).await, "a released run signals");

    // An expired lease re-queued by the reconciler's sweep signals; a sweep with nothing to
    // do does not.
    let attempt = claim(&store, id).await;
    assert_eq!(attempt, 1);
    assert_eq!(store.sweep_expired_leases(10, 5).await.unwrap().requeued, 0);
    assert!(!signalled(&store).await, "nothing swept");
    let db = raw_pool(&name).await;
    sqlx::query("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(id.as_uuid())
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    assert_eq!(store.sweep_expired_leases(10, 5).await.unwrap().requeued, 1);
    assert!(signalled(&store).await, "a re-queued job signals");
    elsewhere.close().await;
    drop_database(store, &name).await;
}
