//! Batches against the real PostgreSQL: an upload written in chunks in one transaction, the
//! counters the triggers keep as items run and end, completion, cancel, quotas, idempotency
//! and the results pages in line order.

use crate::{claim, drop_database, fresh_store, raw_pool};
use imgmeta_domain::{
    AccountId, BatchDefaults, BatchId, BatchItem, BatchStatus, ErrorBody, ErrorCode, ImageUrl,
    JobId, JobStatus, MinScore, Name, Rejected, TaskSet, ValidationError,
};
use imgmeta_store::{
    BatchBegun, BatchCancelled, BatchCounts, BatchFinished, BatchLine, BatchRecord, LineFilter,
    NewAccount, NewBatch, Owner, Store,
};
use serde_json::json;

pub(crate) async fn account(store: &Store, daily_quota: u32) -> AccountId {
    store
        .create_account(&NewAccount {
            name: Name::parse("bulk").unwrap(),
            daily_quota,
            retention_days: 30,
            redact_gps: false,
        })
        .await
        .unwrap()
        .id
}

pub(crate) fn new_batch(account: AccountId, key: Option<&str>) -> NewBatch {
    NewBatch {
        id: BatchId::new(),
        owner: Owner {
            account,
            key_id: None,
        },
        defaults: BatchDefaults {
            tasks: TaskSet::parse(&["metadata"]).unwrap(),
            min_score: MinScore::parse(0.5).unwrap(),
        },
        idempotency_key: key.map(str::to_owned),
        webhook_url: None,
    }
}

pub(crate) fn item(i: usize) -> BatchItem {
    BatchItem {
        url: ImageUrl::parse(&format!("http://images.example/{i}.jpg")).unwrap(),
        tasks: TaskSet::parse(&["metadata"]).unwrap(),
        min_score: MinScore::parse(0.5).unwrap(),
        external_id: Some(format!("row-{i}")),
    }
}

fn rejected(i: usize) -> Rejected {
    Rejected {
        error: ValidationError::new(ErrorCode::InvalidUrl, format!("bad url on {i}")),
        external_id: Some(format!("row-{i}")),
    }
}

/// Uploads `lines` lines: every `every`th rejected, the rest items.
async fn upload(store: &Store, new: &NewBatch, lines: usize, every: usize) -> BatchFinished {
    let BatchBegun::Started(mut upload) = store.begin_batch(new).await.unwrap() else {
        panic!("a new batch")
    };
    for i in 1..=lines {
        let line = i32::try_from(i).unwrap();
        if i % every == 0 {
            upload.reject(line, rejected(i)).await.unwrap();
        } else {
            upload.item(line, item(i)).await.unwrap();
        }
    }
    upload.finish(Some("digest-1")).await.unwrap()
}

pub(crate) fn created(finished: BatchFinished) -> BatchRecord {
    match finished {
        BatchFinished::Created(batch) => batch,
        other => panic!("not created: {other:?}"),
    }
}

async fn batch(store: &Store, account: AccountId, id: BatchId) -> BatchRecord {
    store.get_batch(account, id).await.unwrap().unwrap()
}

pub(crate) async fn job_at(store: &Store, id: BatchId, line: i32) -> JobId {
    match store
        .batch_lines(id, line - 1, LineFilter::All, 1)
        .await
        .unwrap()
        .remove(0)
    {
        BatchLine::Job { job, .. } => job.id,
        other => panic!("line {line} is not a job: {other:?}"),
    }
}

#[tokio::test]
async fn an_upload_is_written_in_chunks_counted_and_read_back_in_line_order() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 100_000).await;
    let new = new_batch(owner, None);
    // 4,500 items and 500 rejections: more than two chunks of each kind of row.
    let b = created(upload(&store, &new, 5_000, 10).await);
    assert_eq!(b.status, BatchStatus::Running);
    assert_eq!(
        b.counts,
        BatchCounts {
            queued: 4_500,
            rejected: 500,
            total: 5_000,
            ..BatchCounts::default()
        }
    );
    let db = raw_pool(&name).await;
    let (messages, used): (i64, i32) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox), (SELECT quota_used FROM accounts WHERE id = $1)",
    )
    .bind(owner.as_uuid())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (messages, used),
        (4_500, 4_500),
        "a message and a charge per item"
    );

    // Pages in line order, jobs and rejections merged, resumable after any line.
    let page = store
        .batch_lines(b.id, 0, LineFilter::All, 12)
        .await
        .unwrap();
    let lines: Vec<i32> = page.iter().map(BatchLine::line).collect();
    assert_eq!(lines, (1..=12).collect::<Vec<_>>());
    match &page[9] {
        BatchLine::Rejected {
            external_id, error, ..
        } => {
            assert_eq!(external_id.as_deref(), Some("row-10"));
            assert_eq!(
                error,
                &ErrorBody::new(ErrorCode::InvalidUrl, "bad url on 10")
            );
        }
        other => panic!("line 10 was rejected: {other:?}"),
    }
    match &page[0] {
        BatchLine::Job {
            external_id, job, ..
        } => {
            assert_eq!(external_id.as_deref(), Some("row-1"));
            assert_eq!(job.status, JobStatus::Queued);
            assert_eq!(
                job.spec.source.url().unwrap().as_str(),
                "http://images.example/1.jpg"
            );
        }
        other => panic!("line 1 is a job: {other:?}"),
    }
    let tail = store
        .batch_lines(b.id, 4_990, LineFilter::All, 100)
        .await
        .unwrap();
    assert_eq!(tail.len(), 10);
    let only_rejected = store
        .batch_lines(b.id, 0, LineFilter::Rejected, 1000)
        .await
        .unwrap();
    assert_eq!(only_rejected.len(), 500);
    assert!(only_rejected.iter().all(|l| l.line() % 10 == 0));
    let succeeded = store
        .batch_lines(b.id, 0, LineFilter::Status(JobStatus::Succeeded), 10)
        .await
        .unwrap();
    assert!(succeeded.is_empty());
    db.close().await;
    drop_database(store, &name).await;
}

#[tokio::test]
async fn counters_follow_items_as_they_run_and_end_and_the_last_one_completes_the_batch() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 1_000).await;
    let b = created(upload(&store, &new_batch(owner, None), 4, 4).await);
    let ids = [
        job_at(&store, b.id, 1).await,
        job_at(&store, b.id, 2).await,
        job_at(&store, b.id, 3).await,
    ];
    let attempts = [
        claim(&store, ids[0]).await,
        claim(&store, ids[1]).await,
        claim(&store, ids[2]).await,
    ];
    let now = batch(&store, owner, b.id).await;
    assert_eq!((now.counts.queued, now.counts.running), (0, 3));
    assert!(
        store
            .complete(ids[0], attempts[0], &json!({"image": {}}), &[])
            .await
            .unwrap()
    );
    let error = ErrorBody::new(ErrorCode::NotAnImage, "not an image");
    assert!(store.fail(ids[1], attempts[1], &error).await.unwrap());
    let now = batch(&store, owner, b.id).await;
    assert_eq!(
        (now.counts.running, now.counts.succeeded, now.counts.failed),
        (1, 1, 1)
    );
    assert_eq!(now.status, BatchStatus::Running);
    assert!(now.completed_at.is_none());
    assert!(
        store
            .complete(ids[2], attempts[2], &json!({"image": {}}), &[])
            .await
            .unwrap()
    );
    let done = batch(&store, owner, b.id).await;
    assert_eq!(done.status, BatchStatus::Completed);
    assert!(done.completed_at.is_some());
    assert_eq!(
        done.counts,
        BatchCounts {
            succeeded: 2,
            failed: 1,
            rejected: 1,
            total: 4,
            ..BatchCounts::default()
        }
    );
    // A batch of rejected lines only has nothing to run: completed at once.
    let BatchBegun::Started(mut empty) = store.begin_batch(&new_batch(owner, None)).await.unwrap()
    else {
        panic!("a new batch")
    };
    empty.reject(1, rejected(1)).await.unwrap();
    let empty = created(empty.finish(None).await.unwrap());
    assert_eq!(empty.status, BatchStatus::Completed);
    drop_database(store, &name).await;
}

#[tokio::test]
async fn cancel_stops_what_has_not_started_and_only_for_the_owner() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 1_000).await;
    let stranger = account(&store, 1_000).await;
    let b = created(upload(&store, &new_batch(owner, None), 5, 10).await);
    let first = job_at(&store, b.id, 1).await;
    let attempt = claim(&store, first).await;
    assert_eq!(
        store.cancel_batch(stranger, b.id).await.unwrap(),
        BatchCancelled::NotFound { foreign: true }
    );
    assert_eq!(
        store.cancel_batch(owner, BatchId::new()).await.unwrap(),
        BatchCancelled::NotFound { foreign: false }
    );
    let BatchCancelled::Cancelled { batch: c, items } =
        store.cancel_batch(owner, b.id).await.unwrap()
    else {
        panic!("cancelled")
    };
    assert_eq!(items, 4);
    assert_eq!(c.status, BatchStatus::Cancelled);
    assert_eq!((c.counts.running, c.counts.cancelled), (1, 4));
    assert!(c.completed_at.is_none(), "one item still runs");
    let db = raw_pool(&name).await;
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(messages, 1, "only the running item's message is left");
    // The running item finishes; the batch stays cancelled and is now over.
    assert!(
        store
            .complete(first, attempt, &json!({"image": {}}), &[])
            .await
            .unwrap()
    );
    let over = batch(&store, owner, b.id).await;
    assert_eq!(over.status, BatchStatus::Cancelled);
    assert!(over.completed_at.is_some());
    assert_eq!(store.get_batch(stranger, b.id).await.unwrap(), Err(true));
    db.close().await;
    drop_database(store, &name).await;
}

#[tokio::test]
async fn a_batch_over_the_quota_records_nothing_and_a_key_replays_its_batch() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 10).await;
    // 18 items do not fit in a quota of 10: nothing at all is recorded.
    assert_eq!(
        upload(&store, &new_batch(owner, None), 20, 10).await,
        BatchFinished::QuotaExceeded { items: 18 }
    );
    assert!(
        store
            .list_batches(owner, None, 10)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    // Nine fit; the same key finds the batch and the digest it was made with.
    let keyed = new_batch(owner, Some("upload-1"));
    let b = created(upload(&store, &keyed, 10, 10).await);
    match store
        .begin_batch(&new_batch(owner, Some("upload-1")))
        .await
        .unwrap()
    {
        BatchBegun::Existing {
            batch,
            request_digest,
        } => {
            assert_eq!(batch.id, b.id);
            assert_eq!(request_digest.as_deref(), Some("digest-1"));
        }
        BatchBegun::Started(_) => panic!("the key was used"),
    }
    let (listed, next) = store.list_batches(owner, None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|b| b.id).collect::<Vec<_>>(), [b.id]);
    assert!(next.is_none());
    drop_database(store, &name).await;
}
