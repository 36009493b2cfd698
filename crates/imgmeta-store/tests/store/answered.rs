//! Answered jobs recorded in groups (`Store::insert_answered`): each with its own result and
//! status, in the order given, charged to its key's and account's quotas; a group that would
//! overflow any quota records nothing (its jobs then go one by one through `insert_job`).

use crate::batches::account;
use crate::{drop_database, fresh_store, url_job};
use imgmeta_domain::{AccountId, ErrorBody, ErrorCode, ImageUrl, JobStatus};
use imgmeta_store::{JobAdmission, JobLookup, NewJob, Owner, Store, StoreError, Submitted};
use serde_json::{Value, json};

async fn key(store: &Store, account: AccountId, prefix: &str, daily_quota: u32) -> i64 {
    crate::api_key(store, account, prefix, 1000, daily_quota).await
}

fn answered(account: AccountId, key_id: i64, result: Value, error: Option<ErrorBody>) -> NewJob {
    let url = ImageUrl::parse("https://viral.example/cat.jpg").unwrap();
    let mut job = url_job(account, &url, JobAdmission::Answered { result, error });
    job.owner = Owner {
        account,
        key_id: Some(key_id),
    };
    job
}

async fn used(store: &Store, account: AccountId, key_id: i64) -> (u32, u32) {
    let key = store.get_api_key(key_id).await.unwrap().unwrap();
    let account = store.get_account(account).await.unwrap().unwrap();
    (key.used_today, account.used_today)
}

#[tokio::test]
async fn a_group_is_recorded_in_order_each_job_with_its_result_and_charged() {
    let (store, name) = fresh_store().await;
    let (a, b) = (account(&store, 10).await, account(&store, 10).await);
    let (ka, kb) = (
        key(&store, a, "imk_answer01", 3).await,
        key(&store, b, "imk_answer02", 10).await,
    );
    let plain = json!({ "image": { "width": 4 }, "cache": { "status": "hit" } });
    let redacted = json!({ "image": { "width": 4, "exif": null }, "cache": { "status": "hit" } });
    let negative = json!({ "cache": { "status": "hit", "key": "url" } });
    let error = ErrorBody::new(ErrorCode::HttpStatus, "answered HTTP 404");
    let jobs = vec![
        answered(a, ka, plain.clone(), None),
        answered(b, kb, redacted.clone(), None),
        answered(a, ka, plain.clone(), None),
        answered(b, kb, negative.clone(), Some(error.clone())),
    ];

    let records = store.insert_answered(&jobs).await.unwrap().unwrap();

    let ids: Vec<_> = records.iter().map(|r| r.id).collect();
    assert_eq!(ids, jobs.iter().map(|j| j.id).collect::<Vec<_>>());
    let expected = [
        (a, JobStatus::Succeeded, &plain, None),
        (b, JobStatus::Succeeded, &redacted, None),
        (a, JobStatus::Succeeded, &plain, None),
        (b, JobStatus::Failed, &negative, Some(&error)),
    ];
    for (record, (owner, status, result, error)) in records.iter().zip(expected) {
        assert_eq!(record.status, status);
        assert_eq!(record.result.as_ref(), Some(result));
        let JobLookup::Found(stored) = store.get_job(owner, record.id).await.unwrap() else {
            panic!("job {} not stored in its account", record.id);
        };
        assert_eq!(stored.status, status);
        assert_eq!(stored.result.as_ref(), Some(result), "{}", record.id);
        assert_eq!(stored.error.as_ref(), error);
        assert!(stored.finished_at.is_some());
    }
    assert_eq!(used(&store, a, ka).await, (2, 2));
    assert_eq!(used(&store, b, kb).await, (2, 2));
    // An empty group records nothing and succeeds.
    assert_eq!(store.insert_answered(&[]).await.unwrap(), Some(Vec::new()));
    drop_database(store, &name).await;
}

#[tokio::test]
async fn a_group_that_would_overflow_a_quota_records_nothing() {
    let (store, name) = fresh_store().await;
    let roomy = account(&store, 100).await;
    let small_key = key(&store, roomy, "imk_answer03", 3).await;
    let result = json!({ "image": { "width": 4 } });
    let first = answered(roomy, small_key, result.clone(), None);
    assert!(matches!(
        store.insert_answered(std::slice::from_ref(&first)).await,
        Ok(Some(_))
    ));
    // The key has room for two more; a group of three does not fit, so nothing is recorded.
    let group: Vec<_> = (0..3)
        .map(|_| answered(roomy, small_key, result.clone(), None))
        .collect();
    assert_eq!(store.insert_answered(&group).await.unwrap(), None);
    for job in &group {
        assert!(matches!(
            store.get_job(roomy, job.id).await.unwrap(),
            JobLookup::NotFound { .. }
        ));
    }
    assert_eq!(used(&store, roomy, small_key).await, (1, 1));
    // One by one they get what `insert_job` gives each: two fit, the third does not.
    let mut outcomes = Vec::new();
    for job in &group {
        outcomes.push(match store.insert_job(job).await.unwrap() {
            Submitted::Created(_) => "created",
            Submitted::QuotaExceeded => "quota",
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(outcomes, ["created", "created", "quota"]);

    // The account's quota counts too: room for one, a group of two from two keys.
    let tight = account(&store, 1).await;
    let (k1, k2) = (
        key(&store, tight, "imk_answer04", 10).await,
        key(&store, tight, "imk_answer05", 10).await,
    );
    let pair = [
        answered(tight, k1, result.clone(), None),
        answered(tight, k2, result.clone(), None),
    ];
    assert_eq!(store.insert_answered(&pair).await.unwrap(), None);
    assert_eq!(used(&store, tight, k1).await, (0, 0));
    drop_database(store, &name).await;
}

#[tokio::test]
async fn only_answered_url_jobs_are_taken() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 10).await;
    let url = ImageUrl::parse("https://viral.example/cat.jpg").unwrap();
    let queued = url_job(owner, &url, JobAdmission::Queued);
    assert!(!imgmeta_store::is_answered(&queued));
    assert!(matches!(
        store.insert_answered(&[queued]).await,
        Err(StoreError::MismatchedInput(_))
    ));
    let mut replayable = url_job(
        owner,
        &url,
        JobAdmission::Answered {
            result: json!({}),
            error: None,
        },
    );
    assert!(imgmeta_store::is_answered(&replayable));
    replayable.idempotency = Some(imgmeta_store::Idempotency {
        key: "k".to_owned(),
        request_digest: "d".to_owned(),
    });
    assert!(!imgmeta_store::is_answered(&replayable));
    drop_database(store, &name).await;
}
