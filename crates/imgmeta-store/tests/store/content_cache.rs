//! The content cache's table against the real PostgreSQL: entries by digest and model, parts
//! merged, hits counted, least recently used evicted first.

use crate::{drop_database, fresh_store};
use serde_json::json;

fn digest(n: u8) -> String {
    format!("{:064x}", n)
}

#[tokio::test]
async fn an_entry_is_found_under_its_digest_and_model_only_and_grows_by_parts() {
    let (store, name) = fresh_store().await;
    let sha = digest(1);
    store
        .keep_content(&sha, "model-a", Some(&json!({"width": 3})), None)
        .await
        .unwrap();
    let found = store
        .cached_content(&sha, "model-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.image, Some(json!({"width": 3})));
    assert_eq!(found.objects, None);
    assert!(found.age_s >= 0.0 && found.age_s < 60.0);

    // Another model's answers are not this one's; other bytes are not these.
    assert_eq!(store.cached_content(&sha, "model-b").await.unwrap(), None);
    assert_eq!(
        store.cached_content(&digest(2), "model-a").await.unwrap(),
        None
    );

    // A later analysis adds its objects and keeps the metadata it did not redo.
    store
        .keep_content(&sha, "model-a", None, Some(&json!({"detections": []})))
        .await
        .unwrap();
    let found = store
        .cached_content(&sha, "model-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.image, Some(json!({"width": 3})));
    assert_eq!(found.objects, Some(json!({"detections": []})));

    let stats = store.content_cache_stats().await.unwrap();
    assert_eq!((stats.entries, stats.hits), (1, 2));
    assert!(stats.bytes > 0);
    drop_database(store, &name).await;
}

#[tokio::test]
async fn eviction_keeps_the_most_recently_used_entries() {
    let (store, name) = fresh_store().await;
    for n in 1..=5 {
        store
            .keep_content(&digest(n), "m", Some(&json!({"n": n})), None)
            .await
            .unwrap();
    }
    // Entry 1, the oldest, is used again: it is now the most recent.
    store
        .cached_content(&digest(1), "m")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.evict_content(3).await.unwrap(), 2);
    let mut left = Vec::new();
    for n in 1..=5 {
        if store
            .cached_content(&digest(n), "m")
            .await
            .unwrap()
            .is_some()
        {
            left.push(n);
        }
    }
    assert_eq!(left, [1, 4, 5]);
    assert_eq!(store.purge_content_cache().await.unwrap(), 3);
    assert_eq!(store.content_cache_stats().await.unwrap().entries, 0);
    drop_database(store, &name).await;
}
