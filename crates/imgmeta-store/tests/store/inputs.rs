//! Uploaded images as job inputs, against the real PostgreSQL: stored in the accepting
//! transaction, read back by the worker's claim, checked against their digest, and erased by
//! every purge (on request and by the retention sweep).

use crate::{drop_database, fresh_store, raw_pool};
use imgmeta_domain::{
    AccountId, ImageUrl, JobId, JobSpec, MinScore, Name, Source, TaskSet, Upload, UploadDigest,
};
use imgmeta_store::{
    Claim, Idempotency, JobLookup, NewAccount, NewJob, Owner, PurgeOutcome, Store, StoreError,
    Submitted,
};
use std::time::Duration;

async fn account(store: &Store, retention_days: u32) -> AccountId {
    store
        .create_account(&NewAccount {
            name: Name::parse("inputs").unwrap(),
            daily_quota: 1000,
            retention_days,
            redact_gps: false,
        })
        .await
        .unwrap()
        .id
}

fn upload_job(account: AccountId, content: &'static [u8]) -> NewJob {
    let upload = Upload::new(content.into()).unwrap();
    NewJob {
        id: JobId::new(),
        owner: Owner {
            account,
            key_id: None,
        },
        spec: JobSpec {
            source: Source::Upload(upload.digest().clone()),
            tasks: TaskSet::all(),
            min_score: MinScore::DEFAULT,
            dream: None,
            bypass_cache: false,
            webhook_url: None,
        },
        input: Some(upload),
        idempotency: None,
        trace_parent: None,
        admission: Default::default(),
    }
}

async fn stored_inputs(store_db: &str) -> i64 {
    let pool = raw_pool(store_db).await;
    let n = sqlx::query_scalar("SELECT count(*) FROM job_inputs")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn an_upload_is_stored_with_its_job_and_read_back_by_the_claiming_worker() {
    let (store, db) = fresh_store().await;
    let account = account(&store, 30).await;
    let job = upload_job(account, b"\x89PNG not really");
    let digest = job.input.as_ref().unwrap().digest().clone();
    let Submitted::Created(record) = store.insert_job(&job).await.unwrap() else {
        panic!("not created");
    };
    assert_eq!(record.spec.source, Source::Upload(digest.clone()));
    let JobLookup::Found(found) = store.get_job(account, job.id).await.unwrap() else {
        panic!("not found");
    };
    assert_eq!(found.spec, job.spec);

    let Claim::Claimed { spec, .. } = store
        .claim(job.id, "w", Duration::from_secs(30), 3)
        .await
        .unwrap()
    else {
        panic!("not claimed");
    };
    let Source::Upload(claimed) = &spec.source else {
        panic!("{spec:?}");
    };
    assert_eq!(
        store.job_input(job.id, claimed).await.unwrap().as_deref(),
        Some(&b"\x89PNG not really"[..])
    );
    // Bytes are only handed out for the digest they were stored under.
    let other = UploadDigest::of(b"something else").unwrap();
    assert_eq!(store.job_input(job.id, &other).await.unwrap(), None);
    drop_database(store, &db).await;
}

#[tokio::test]
async fn a_job_needs_its_input_to_match_its_source() {
    let (store, db) = fresh_store().await;
    let account = account(&store, 30).await;
    let mut without_bytes = upload_job(account, b"abc");
    without_bytes.input = None;
    let mut other_bytes = upload_job(account, b"abc");
    other_bytes.input = Some(Upload::new((&b"abd"[..]).into()).unwrap());
    let mut url_with_bytes = upload_job(account, b"abc");
    url_with_bytes.spec.source = Source::Url(ImageUrl::parse("https://example.com/a").unwrap());
    for job in [without_bytes, other_bytes, url_with_bytes] {
        assert!(matches!(
            store.insert_job(&job).await,
            Err(StoreError::MismatchedInput(_))
        ));
    }
    assert_eq!(stored_inputs(&db).await, 0);

    // The database holds the same rules: a job with neither a url nor an input, or bytes
    // under another digest, are refused.
    let pool = raw_pool(&db).await;
    let neither = sqlx::query(
        "INSERT INTO jobs (id, tasks, min_score, account_id) VALUES ($1, '{metadata}', 0.5, $2)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(account.as_uuid())
    .execute(&pool)
    .await;
    let refused = neither.expect_err("a job without url or input was accepted");
    assert!(
        refused.to_string().contains("jobs_url_or_input"),
        "{refused}"
    );
    let job = upload_job(account, b"abc");
    store.insert_job(&job).await.unwrap();
    let forged = sqlx::query("UPDATE job_inputs SET bytes = 'abd'::bytea WHERE job_id = $1")
        .bind(job.id.as_uuid())
        .execute(&pool)
        .await;
    let refused = forged.expect_err("bytes under another digest were accepted");
    assert!(
        refused.to_string().contains("job_inputs_check"),
        "{refused}"
    );
    pool.close().await;
    drop_database(store, &db).await;
}

#[tokio::test]
async fn an_idempotent_repeat_stores_no_second_input() {
    let (store, db) = fresh_store().await;
    let account = account(&store, 30).await;
    let mut job = upload_job(account, b"same image");
    job.idempotency = Some(Idempotency {
        key: "k1".into(),
        request_digest: "d1".into(),
    });
    let Submitted::Created(first) = store.insert_job(&job).await.unwrap() else {
        panic!("not created");
    };
    job.id = JobId::new();
    let Submitted::Existing(again) = store.insert_job(&job).await.unwrap() else {
        panic!("not replayed");
    };
    assert_eq!(again.id, first.id);
    assert_eq!(stored_inputs(&db).await, 1);
    drop_database(store, &db).await;
}

#[tokio::test]
async fn purging_erases_the_input_on_request_and_by_retention() {
    let (store, db) = fresh_store().await;
    let account = account(&store, 1).await;
    let requested = upload_job(account, b"purged on request");
    let expired = upload_job(account, b"purged by retention");
    let kept = upload_job(account, b"kept");
    for job in [&requested, &expired, &kept] {
        store.insert_job(job).await.unwrap();
    }
    assert_eq!(stored_inputs(&db).await, 3);

    let PurgeOutcome::Purged(tombstone) = store.purge(account, requested.id).await.unwrap() else {
        panic!("not purged");
    };
    // The tombstone still says what the job was given; the bytes are gone.
    assert_eq!(tombstone.spec.source, requested.spec.source);
    let digest = requested.input.as_ref().unwrap().digest();
    assert_eq!(store.job_input(requested.id, digest).await.unwrap(), None);
    assert_eq!(stored_inputs(&db).await, 2);

    // The retention sweep: finished two days ago, past the account's one day.
    let pool = raw_pool(&db).await;
    sqlx::query(
        "UPDATE jobs SET status = 'failed', error_code = 'not_an_image',
                finished_at = now() - interval '2 days' WHERE id = $1",
    )
    .bind(expired.id.as_uuid())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let purged = store.purge_expired(100).await.unwrap();
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0].jobs, 1);
    let digest = expired.input.as_ref().unwrap().digest();
    assert_eq!(store.job_input(expired.id, digest).await.unwrap(), None);
    let digest = kept.input.as_ref().unwrap().digest();
    assert!(store.job_input(kept.id, digest).await.unwrap().is_some());
    assert_eq!(stored_inputs(&db).await, 1);
    drop_database(store, &db).await;
}
