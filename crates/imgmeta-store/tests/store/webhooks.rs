//! Webhook deliveries against the real PostgreSQL: written by the triggers in the statement
//! that ends a job (or records it already ended) or completes a batch, once each; taken with a
//! hold; their body fixed once; attempts recorded until delivered, gone, or out of time; the
//! signing secrets and their rotation overlap.

use crate::batches::{account, created, item, job_at, new_batch};
use crate::{claim, drop_database, fresh_store, url_job};
use imgmeta_domain::{
    AccountId, DeliveryStatus, ErrorBody, ErrorCode, ImageUrl, JobId, WebhookEvent, WebhookUrl,
};
use imgmeta_store::{
    AttemptOutcome, BatchBegun, DeliveryFilter, JobAdmission, NewJob, Store, Submitted,
};
use serde_json::json;
use std::time::Duration;

const HOOK: &str = "http://hooks.example/imgmeta";

fn job(account: AccountId, webhook: bool, admission: JobAdmission) -> NewJob {
    let mut new = url_job(
        account,
        &ImageUrl::parse("http://images.example/a.jpg").unwrap(),
        admission,
    );
    new.spec.webhook_url = webhook.then(|| WebhookUrl::parse(HOOK).unwrap());
    new
}

async fn submit(store: &Store, new: NewJob) -> JobId {
    match store.insert_job(&new).await.unwrap() {
        Submitted::Created(job) => {
            assert_eq!(
                job.spec.webhook_url, new.spec.webhook_url,
                "the webhook URL is stored with the job"
            );
            job.id
        }
        other => panic!("not created: {other:?}"),
    }
}

async fn deliveries(store: &Store, account: AccountId) -> Vec<imgmeta_store::DeliveryRecord> {
    store
        .list_deliveries(account, &DeliveryFilter::default(), 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_ended_job_with_a_webhook_gets_exactly_one_delivery_whichever_way_it_ended() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 1_000).await;
    let other = account(&store, 1_000).await;

    // Queued, run, succeeded: one job.succeeded.
    let ok = submit(&store, job(owner, true, JobAdmission::Queued)).await;
    let silent = submit(&store, job(owner, false, JobAdmission::Queued)).await;
    assert!(
        deliveries(&store, owner).await.is_empty(),
        "nothing ended yet"
    );
    let a = claim(&store, ok).await;
    assert!(
        deliveries(&store, owner).await.is_empty(),
        "running is not an end"
    );
    assert!(
        store
            .complete(ok, a, &json!({"image": {}}), &[])
            .await
            .unwrap()
    );
    let b = claim(&store, silent).await;
    assert!(
        store
            .complete(silent, b, &json!({"image": {}}), &[])
            .await
            .unwrap()
    );
    // Failed: one job.failed.
    let bad = submit(&store, job(owner, true, JobAdmission::Queued)).await;
    let c = claim(&store, bad).await;
    let error = ErrorBody::new(ErrorCode::NotAnImage, "not an image");
    assert!(store.fail(bad, c, &error).await.unwrap());
    // Answered at submission (a cache hit): recorded already succeeded, told at once.
    let hit = submit(
        &store,
        job(
            owner,
            true,
            JobAdmission::Answered {
                result: json!({"image": {}, "cache": {"status": "hit"}}),
                error: None,
            },
        ),
    )
    .await;
    // Cancelled: no event.
    let gone = submit(&store, job(owner, true, JobAdmission::Queued)).await;
    store.cancel(owner, gone).await.unwrap();

    let mut seen: Vec<(WebhookEvent, Option<JobId>)> = deliveries(&store, owner)
        .await
        .into_iter()
        .map(|d| (d.event, d.job))
        .collect();
    seen.sort_by_key(|(e, j)| (e.as_str(), j.map(|j| j.as_uuid())));
    let mut expected = vec![
        (WebhookEvent::JobFailed, Some(bad)),
        (WebhookEvent::JobSucceeded, Some(ok)),
        (WebhookEvent::JobSucceeded, Some(hit)),
    ];
    expected.sort_by_key(|(e, j)| (e.as_str(), j.map(|j| j.as_uuid())));
    assert_eq!(seen, expected);
    let all = deliveries(&store, owner).await;
    assert!(
        all.iter()
            .all(|d| d.url == HOOK && d.status == DeliveryStatus::Pending && d.attempts == 0)
    );
    assert!(deliveries(&store, other).await.is_empty(), "per account");

    // A second write that touches an ended job does not tell it again.
    store.purge(owner, ok).await.unwrap();
    assert_eq!(deliveries(&store, owner).await.len(), 3);
    drop_database(store, &name).await;
}

#[tokio::test]
async fn a_batch_with_a_webhook_is_told_once_when_its_last_item_ends() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 1_000).await;
    let mut new = new_batch(owner, None);
    new.webhook_url = Some(WebhookUrl::parse(HOOK).unwrap());
    let BatchBegun::Started(mut upload) = store.begin_batch(&new).await.unwrap() else {
        panic!("a new batch")
    };
    for line in 1..=3 {
        upload
            .item(line, item(usize::try_from(line).unwrap()))
            .await
            .unwrap();
    }
    let b = created(upload.finish(None).await.unwrap());
    assert_eq!(
        b.webhook_url.as_ref().map(WebhookUrl::as_str),
        Some(HOOK),
        "stored with the batch"
    );
    let mut ids = Vec::new();
    for line in 1..=3 {
        ids.push(job_at(&store, b.id, line).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let attempt = claim(&store, *id).await;
        assert!(deliveries(&store, owner).await.is_empty(), "item {i}");
        assert!(
            store
                .complete(*id, attempt, &json!({"image": {}}), &[])
                .await
                .unwrap()
        );
    }
    let told = deliveries(&store, owner).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].event, WebhookEvent::BatchCompleted);
    assert_eq!(told[0].batch, Some(b.id));
    assert_eq!(told[0].job, None, "batch items are not told one by one");

    // A batch of rejected lines only completes at once, and is told too.
    let mut empty = new_batch(owner, None);
    empty.webhook_url = Some(WebhookUrl::parse(HOOK).unwrap());
    let BatchBegun::Started(mut upload) = store.begin_batch(&empty).await.unwrap() else {
        panic!("a new batch")
    };
    upload
        .reject(
            1,
            imgmeta_domain::Rejected {
                error: imgmeta_domain::ValidationError::new(ErrorCode::InvalidUrl, "bad"),
                external_id: None,
            },
        )
        .await
        .unwrap();
    created(upload.finish(None).await.unwrap());
    assert_eq!(
        store
            .list_deliveries(
                owner,
                &DeliveryFilter {
                    event: Some(WebhookEvent::BatchCompleted),
                    ..DeliveryFilter::default()
                },
                10
            )
            .await
            .unwrap()
            .len(),
        2
    );
    drop_database(store, &name).await;
}

#[tokio::test]
async fn deliveries_are_held_while_tried_and_recorded_until_delivered_gone_or_out_of_time() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 1_000).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = submit(&store, job(owner, true, JobAdmission::Queued)).await;
        let a = claim(&store, id).await;
        assert!(
            store
                .complete(id, a, &json!({"image": {}}), &[])
                .await
                .unwrap()
        );
        ids.push(id);
    }
    let hold = Duration::from_secs(60);
    let due = store.take_due_deliveries(10, hold).await.unwrap();
    assert_eq!(due.len(), 4);
    assert!(due.iter().all(|d| d.attempt == 1 && d.body.is_none()));
    assert!(
        store
            .take_due_deliveries(10, hold)
            .await
            .unwrap()
            .is_empty(),
        "held while in flight"
    );
    // The body is fixed by the first attempt; a later one cannot change it.
    let first = &due[0];
    assert_eq!(
        store
            .fix_delivery_body(first.seq, "{\"a\":1}")
            .await
            .unwrap(),
        "{\"a\":1}"
    );
    assert_eq!(
        store
            .fix_delivery_body(first.seq, "{\"b\":2}")
            .await
            .unwrap(),
        "{\"a\":1}"
    );

    let day = Duration::from_secs(86_400);
    let outcomes = [
        AttemptOutcome::Delivered { status: 204 },
        AttemptOutcome::Gone { status: 410 },
        AttemptOutcome::Retry {
            status: Some(500),
            error: "the receiver answered 500".to_owned(),
            after: Duration::ZERO,
        },
        AttemptOutcome::Failed {
            status: None,
            error: "blocked_destination: private address".to_owned(),
        },
    ];
    let mut statuses = Vec::new();
    for (d, outcome) in due.iter().zip(&outcomes) {
        statuses.push(
            store
                .record_delivery_attempt(d.seq, d.attempt, outcome, day)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        statuses,
        [
            Some(DeliveryStatus::Delivered),
            Some(DeliveryStatus::Gone),
            Some(DeliveryStatus::Pending),
            Some(DeliveryStatus::Failed)
        ]
    );
    // Recording again (a late duplicate) changes nothing once it ended.
    assert_eq!(
        store
            .record_delivery_attempt(due[0].seq, 1, &outcomes[2], day)
            .await
            .unwrap(),
        None,
        "a delivery that ended stays as it ended"
    );
    let again = store.take_due_deliveries(10, hold).await.unwrap();
    assert_eq!(again.len(), 1, "only the retried one comes due");
    assert_eq!(again[0].seq, due[2].seq);
    assert_eq!(again[0].attempt, 2);
    assert_eq!(
        again[0].id, due[2].id,
        "the same webhook-id on every attempt"
    );
    // The first attempt, outliving its hold, cannot record over the second.
    assert_eq!(
        store
            .record_delivery_attempt(
                again[0].seq,
                1,
                &AttemptOutcome::Delivered { status: 200 },
                day
            )
            .await
            .unwrap(),
        None
    );
    // A retry that would fall past the horizon fails the delivery instead.
    let status = store
        .record_delivery_attempt(
            again[0].seq,
            2,
            &AttemptOutcome::Retry {
                status: Some(503),
                error: "the receiver answered 503".to_owned(),
                after: Duration::from_secs(120),
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(status, Some(DeliveryStatus::Failed));

    let listed = deliveries(&store, owner).await;
    let by_status = |s: DeliveryStatus| listed.iter().filter(|d| d.status == s).count();
    assert_eq!(
        [
            by_status(DeliveryStatus::Delivered),
            by_status(DeliveryStatus::Gone),
            by_status(DeliveryStatus::Failed),
            by_status(DeliveryStatus::Pending)
        ],
        [1, 1, 2, 0]
    );
    let delivered = listed
        .iter()
        .find(|d| d.status == DeliveryStatus::Delivered)
        .unwrap();
    assert_eq!(delivered.last_status, Some(204));
    assert!(delivered.finished_at.is_some() && delivered.next_attempt_at.is_none());
    // Pages by seq, newest first.
    let page = store
        .list_deliveries(owner, &DeliveryFilter::default(), 2)
        .await
        .unwrap();
    let rest = store
        .list_deliveries(
            owner,
            &DeliveryFilter {
                before: Some(page[1].seq),
                ..DeliveryFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.len() + rest.len(), 4);
    assert!(page[0].seq > page[1].seq && page[1].seq > rest[0].seq);
    let one_job = store
        .list_deliveries(
            owner,
            &DeliveryFilter {
                job: Some(ids[3]),
                ..DeliveryFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(one_job.len(), 1);
    assert_eq!(one_job[0].job, Some(ids[3]));
    // Ended deliveries are forgotten after their retention; nothing ended a day ago here.
    assert_eq!(
        store
            .sweep_deliveries(Duration::from_secs(86_400), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.sweep_deliveries(Duration::ZERO, 100).await.unwrap(),
        4,
        "every delivery here has ended"
    );
    assert!(deliveries(&store, owner).await.is_empty());
    drop_database(store, &name).await;
}

#[tokio::test]
async fn a_rotated_secret_keeps_signing_beside_the_new_one_for_the_overlap_only() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, 1_000).await;
    assert_eq!(store.webhook_secrets(owner).await.unwrap(), None);
    let first = vec![1u8; 32];
    let second = vec![2u8; 32];
    let third = vec![3u8; 32];
    assert_eq!(
        store
            .rotate_webhook_secret(owner, &first, Duration::from_secs(3600))
            .await
            .unwrap(),
        None,
        "a first secret replaces nothing"
    );
    let secrets = store.webhook_secrets(owner).await.unwrap().unwrap();
    assert_eq!((secrets.current, secrets.previous), (first.clone(), vec![]));
    let until = store
        .rotate_webhook_secret(owner, &second, Duration::from_secs(3600))
        .await
        .unwrap()
        .expect("a rotation has an overlap");
    assert!(until > chrono::Utc::now() + chrono::Duration::minutes(59));
    let secrets = store.webhook_secrets(owner).await.unwrap().unwrap();
    assert_eq!(
        (secrets.current, secrets.previous),
        (second.clone(), vec![first.clone()])
    );
    // A second rotation within the overlap (a client retrying a rotation whose answer it lost)
    // keeps the first secret signing too: the receivers still hold it.
    store
        .rotate_webhook_secret(owner, &third, Duration::from_secs(60))
        .await
        .unwrap();
    let secrets = store.webhook_secrets(owner).await.unwrap().unwrap();
    assert_eq!(secrets.current, third);
    assert_eq!(secrets.previous, vec![first.clone(), second.clone()]);
    // No overlap: the replaced secret stops signing at once; earlier ones keep their own end.
    let fourth = vec![4u8; 32];
    store
        .rotate_webhook_secret(owner, &fourth, Duration::ZERO)
        .await
        .unwrap();
    let secrets = store.webhook_secrets(owner).await.unwrap().unwrap();
    assert_eq!(
        (secrets.current, secrets.previous),
        (fourth, vec![first, second])
    );
    drop_database(store, &name).await;
}
