//! The URL cache and its single flights against the real PostgreSQL: who leads and who
//! follows, followers completed or failed in their leader's commit with their own cut, the
//! hand-over when a leader is cancelled, the sweep's safety net, model changes, bounds, purge
//! and its announcement.

use crate::{claim, drop_database, fresh_store, raw_pool};
use imgmeta_domain::analysis::Analysis;
use imgmeta_domain::{
    AccountId, ErrorBody, ErrorCode, ImageUrl, JobId, JobSpec, MinScore, Name, Source,
};
use imgmeta_store::{
    FlightEnd, JobAdmission, JobLookup, NegativeEntry, NewAccount, NewJob, NewUrlEntry, Store,
    Submitted, UrlCacheBounds, UrlHits, UrlPurge,
};
use serde_json::json;
use std::time::Duration;

const URL: &str = "http://images.example/cat.jpg";
const MODEL: &str = "model-a";

async fn account(store: &Store, redact_gps: bool) -> AccountId {
    store
        .create_account(&NewAccount {
            name: Name::parse("flights").unwrap(),
            daily_quota: 1000,
            retention_days: 30,
            redact_gps,
        })
        .await
        .unwrap()
        .id
}

fn job(account: AccountId, min_score: f64, admission: JobAdmission) -> NewJob {
    let mut new = crate::url_job(account, &ImageUrl::parse(URL).unwrap(), admission);
    new.spec.min_score = MinScore::parse(min_score).unwrap();
    new
}

fn flight() -> JobAdmission {
    JobAdmission::Flight(ImageUrl::parse(URL).unwrap().cache_key())
}

async fn submit(store: &Store, new: NewJob) -> JobId {
    match store.insert_job(&new).await.unwrap() {
        Submitted::Created(job) => job.id,
        other => panic!("not created: {other:?}"),
    }
}

/// The jobs with a message owed to the broker.
async fn messages(db: &sqlx::PgPool) -> Vec<uuid::Uuid> {
    sqlx::query_scalar("SELECT job_id FROM outbox ORDER BY id")
        .fetch_all(db)
        .await
        .unwrap()
}

async fn found(store: &Store, account: AccountId, id: JobId) -> imgmeta_store::JobRecord {
    match store.get_job(account, id).await.unwrap() {
        JobLookup::Found(job) => job,
        other => panic!("{other:?}"),
    }
}

fn analysis() -> Analysis {
    Analysis {
        image: Some(json!({"exif": {"gps": {"latitude": 1.5}}, "warnings": []})),
        objects: Some(json!({"model": {"min_score": 0.05}, "detections": [
            {"label": "cat", "score": 0.9}, {"label": "cup", "score": 0.3}]})),
    }
}

fn entry<'a>(analysis: &'a Analysis, key: &'a str, fresh_for: Duration) -> NewUrlEntry<'a> {
    NewUrlEntry {
        url_key: key,
        model: MODEL,
        sha256: "ab".repeat(32).leak(),
        analysis,
        etag: Some("\"v1\""),
        last_modified: None,
        must_revalidate: false,
        fresh_for,
    }
}

/// Ends leading run `attempt` of `id` with `analysis`, kept as `key`'s entry for ten minutes:
/// how many followers it completed (`None`: the run no longer owns the job).
async fn complete_with_entry(
    store: &Store,
    id: JobId,
    attempt: i32,
    analysis: &Analysis,
    key: &str,
) -> Option<u64> {
    let end = FlightEnd {
        analysis: Some(analysis),
        entry: Some(entry(analysis, key, Duration::from_secs(600))),
    };
    store
        .complete_leading(id, attempt, &json!({}), &[], Some(&end), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_first_submission_leads_the_flight_and_the_rest_follow_then_complete_in_its_commit() {
    let (store, name) = fresh_store().await;
    let db = raw_pool(&name).await;
    let plain = account(&store, false).await;
    let private = account(&store, true).await;
    let leader = submit(&store, job(plain, 0.25, flight())).await;
    let follower = submit(&store, job(plain, 0.5, flight())).await;
    let other = submit(&store, job(private, 0.25, flight())).await;
    assert_eq!(
        messages(&db).await,
        [leader.as_uuid()],
        "only the leader is published"
    );

    let attempt = claim(&store, leader).await;
    let analysis = analysis();
    let key = ImageUrl::parse(URL).unwrap().cache_key();
    store.announce_model(MODEL).await.unwrap();
    let end = FlightEnd {
        analysis: Some(&analysis),
        entry: Some(entry(&analysis, &key, Duration::from_secs(600))),
    };
    let done = store
        .complete_leading(
            leader,
            attempt,
            &json!({"cache": {"status": "miss"}}),
            &[],
            Some(&end),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        done,
        Some(2),
        "both followers completed in the leader's commit"
    );

    let f = found(&store, plain, follower).await;
    assert_eq!(f.status.as_str(), "succeeded");
    let result = f.result.unwrap();
    assert_eq!(result["cache"]["status"], "coalesced");
    assert_eq!(
        result["objects"]["detections"].as_array().unwrap().len(),
        1,
        "cut at 0.5"
    );
    assert_eq!(result["image"]["exif"]["gps"]["latitude"], 1.5);
    let o = found(&store, private, other).await.result.unwrap();
    assert!(
        o["image"]["exif"]["gps"].is_null(),
        "its own account's GPS setting"
    );
    assert_eq!(o["objects"]["detections"].as_array().unwrap().len(), 2);

    // The entry answers the next lookup; a new submission starts no flight of its own.
    let lookup = store.lookup_url(&key, plain).await.unwrap();
    let hit = lookup.entry.unwrap();
    assert!(hit.is_fresh() && !lookup.in_flight);
    assert_eq!(hit.analysis, analysis);
    let again = submit(&store, job(plain, 0.25, flight())).await;
    assert_eq!(
        messages(&db).await.len(),
        2,
        "a new flight after the last ended: {again}"
    );
    db.close().await;
    drop_database(store, &name).await;
}

#[tokio::test]
async fn a_failed_leader_fails_its_followers_with_its_error_and_remembers_a_negative_entry() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, false).await;
    let leader = submit(&store, job(owner, 0.25, flight())).await;
    let follower = submit(&store, job(owner, 0.25, flight())).await;
    let attempt = claim(&store, leader).await;
    let key = ImageUrl::parse(URL).unwrap().cache_key();
    let error = ErrorBody::new(ErrorCode::HttpStatus, "answered HTTP 404");
    let negative = NegativeEntry {
        url_key: &key,
        model: MODEL,
        ttl: Duration::from_secs(60),
    };
    assert!(
        store
            .fail_leading(leader, attempt, &error, Some(&negative))
            .await
            .unwrap()
    );
    let f = found(&store, owner, follower).await;
    assert_eq!(f.status.as_str(), "failed");
    assert_eq!(f.error, Some(error.clone()));
    store.announce_model(MODEL).await.unwrap();
    let remembered = store.lookup_url(&key, owner).await.unwrap().entry.unwrap();
    assert_eq!(remembered.error, Some(error));
    assert!(remembered.fresh_for_s > 50.0);
    drop_database(store, &name).await;
}

#[tokio::test]
async fn a_cancelled_leader_hands_the_flight_to_its_oldest_follower() {
    let (store, name) = fresh_store().await;
    let db = raw_pool(&name).await;
    let owner = account(&store, false).await;
    let leader = submit(&store, job(owner, 0.25, flight())).await;
    let first = submit(&store, job(owner, 0.25, flight())).await;
    let second = submit(&store, job(owner, 0.25, flight())).await;
    store.cancel(owner, leader).await.unwrap();
    assert_eq!(
        messages(&db).await,
        [first.as_uuid()],
        "the oldest follower runs now"
    );
    let follows: Option<uuid::Uuid> = sqlx::query_scalar("SELECT follows FROM jobs WHERE id = $1")
        .bind(second.as_uuid())
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(follows, Some(first.as_uuid()));
    // It leads: its success completes the other.
    let attempt = claim(&store, first).await;
    let analysis = analysis();
    let end = FlightEnd {
        analysis: Some(&analysis),
        entry: None,
    };
    let done = store
        .complete_leading(first, attempt, &json!({}), &[], Some(&end), None)
        .await
        .unwrap();
    assert_eq!(done, Some(1));
    assert_eq!(
        found(&store, owner, second).await.status.as_str(),
        "succeeded"
    );
    db.close().await;
    drop_database(store, &name).await;
}

#[tokio::test]
async fn the_sweep_ends_flights_whose_leader_ended_elsewhere_so_no_follower_is_stranded() {
    let (store, name) = fresh_store().await;
    let db = raw_pool(&name).await;
    let owner = account(&store, false).await;
    let leader = submit(&store, job(owner, 0.25, flight())).await;
    let follower = submit(&store, job(owner, 0.25, flight())).await;
    // As a claim does to a job that killed every worker it ran on.
    sqlx::query(
        "UPDATE jobs SET status = 'failed', error_code = 'poison', error_message = 'x',
                finished_at = now() WHERE id = $1",
    )
    .bind(leader.as_uuid())
    .execute(&db)
    .await
    .unwrap();
    assert_eq!(store.sweep_flights().await.unwrap(), 1);
    let f = found(&store, owner, follower).await;
    assert_eq!(f.status.as_str(), "failed");
    assert_eq!(f.error.unwrap().code, ErrorCode::Poison);
    assert_eq!(
        store.sweep_flights().await.unwrap(),
        0,
        "nothing left to move"
    );
    db.close().await;
    drop_database(store, &name).await;
}

#[tokio::test]
async fn entries_of_a_model_no_worker_runs_are_never_answered() {
    let (store, name) = fresh_store().await;
    let db = raw_pool(&name).await;
    let owner = account(&store, false).await;
    let key = ImageUrl::parse(URL).unwrap().cache_key();
    let leader = submit(&store, job(owner, 0.25, flight())).await;
    let attempt = claim(&store, leader).await;
    let analysis = analysis();
    complete_with_entry(&store, leader, attempt, &analysis, &key).await;
    assert!(
        store.lookup_url(&key, owner).await.unwrap().entry.is_none(),
        "no worker announced model-a"
    );
    store.announce_model(MODEL).await.unwrap();
    assert!(store.lookup_url(&key, owner).await.unwrap().entry.is_some());
    // The workers move to another model: model-a's entries stop answering.
    sqlx::query("UPDATE models_seen SET seen_at = now() - interval '1 hour'")
        .execute(&db)
        .await
        .unwrap();
    store.announce_model("model-b").await.unwrap();
    assert!(store.lookup_url(&key, owner).await.unwrap().entry.is_none());
    // The worker's own lookup is by its model.
    assert!(store.url_entry(&key, MODEL).await.unwrap().is_some());
    assert!(store.url_entry(&key, "model-b").await.unwrap().is_none());
    db.close().await;
    drop_database(store, &name).await;
}

#[tokio::test]
async fn the_sweep_keeps_the_cache_in_bounds_and_purging_a_url_forgets_its_content_too() {
    let (store, name) = fresh_store().await;
    let owner = account(&store, false).await;
    let analysis = analysis();
    let keys: Vec<String> = (0..3)
        .map(|i| format!("http://images.example/{i}.jpg"))
        .collect();
    for key in &keys {
        let new = NewJob {
            spec: JobSpec {
                source: Source::Url(ImageUrl::parse(key).unwrap()),
                ..job(owner, 0.25, JobAdmission::Queued).spec
            },
            ..job(owner, 0.25, JobAdmission::Flight(key.clone()))
        };
        let id = submit(&store, new).await;
        let attempt = claim(&store, id).await;
        complete_with_entry(&store, id, attempt, &analysis, key).await;
    }
    assert_eq!(store.url_cache_stats().await.unwrap().entries, 3);
    // Hits tallied by an API make the oldest entry the most recently used; a tally for an
    // entry that is gone is skipped.
    let tally = |key: &str, hits| UrlHits {
        url_key: key.to_owned(),
        model: MODEL.to_owned(),
        hits,
    };
    store
        .count_url_hits(&[
            tally(&keys[0], 2),
            tally("http://images.example/gone.jpg", 5),
        ])
        .await
        .unwrap();
    store.count_url_hits(&[tally(&keys[0], 1)]).await.unwrap();
    let bounds = UrlCacheBounds {
        max_entries: 2,
        max_bytes: i64::MAX,
        max_stale: Duration::from_secs(3600),
    };
    assert_eq!(store.sweep_url_cache(&bounds).await.unwrap(), 1);
    let stats = store.url_cache_stats().await.unwrap();
    assert_eq!((stats.entries, stats.hits), (2, 3));
    store.announce_model(MODEL).await.unwrap();
    let left = |key: String| {
        let store = store.clone();
        async move { store.lookup_url(&key, owner).await.unwrap().entry.is_some() }
    };
    assert!(left(keys[0].clone()).await, "used last, kept");
    assert!(!left(keys[1].clone()).await, "least recently used, evicted");
    assert!(left(keys[2].clone()).await);
    let per_entry = stats.bytes / 2;
    assert!(per_entry > 0);
    let bytes_bound = UrlCacheBounds {
        max_bytes: per_entry,
        ..bounds
    };
    assert_eq!(store.sweep_url_cache(&bytes_bound).await.unwrap(), 1);

    store
        .keep_content(&"ab".repeat(32), MODEL, analysis.image.as_ref(), None)
        .await
        .unwrap();
    assert_eq!(
        store.purge_url(&keys[0]).await.unwrap(),
        1,
        "the most recently used is left"
    );
    assert_eq!(store.content_cache_stats().await.unwrap().entries, 0);
    assert_eq!(store.url_cache_stats().await.unwrap().entries, 0);
    drop_database(store, &name).await;
}

#[tokio::test]
async fn purges_are_announced_to_listeners_when_they_commit() {
    let (store, name) = fresh_store().await;
    let mut purges = store.url_purges().await.unwrap();
    async fn next(purges: &mut imgmeta_store::UrlPurges) -> UrlPurge {
        tokio::time::timeout(Duration::from_secs(5), purges.next())
            .await
            .expect("a purge announced")
            .unwrap()
    }
    let key = ImageUrl::parse(URL).unwrap().cache_key();
    // Announced even when nothing was stored under the URL: another process may hold a copy
    // of an entry this one never saw.
    assert_eq!(store.purge_url(&key).await.unwrap(), 0);
    assert_eq!(next(&mut purges).await, UrlPurge::Url(key.clone()));
    store.purge_url_cache().await.unwrap();
    assert_eq!(next(&mut purges).await, UrlPurge::All);
    // A key too long for a notification's payload announces a purge of everything.
    let long = format!("{key}?{}", "q".repeat(8_000));
    store.purge_url(&long).await.unwrap();
    assert_eq!(next(&mut purges).await, UrlPurge::All);
    drop(purges);
    drop_database(store, &name).await;
}

#[tokio::test]
async fn a_follower_joining_while_the_leader_completes_is_completed_in_the_leaders_commit() {
    let (store, name) = fresh_store().await;
    let db = raw_pool(&name).await;
    let plain = account(&store, false).await;
    let leader = submit(&store, job(plain, 0.25, flight())).await;
    let attempt = claim(&store, leader).await;
    // A follower admitted by another API: its join holds the flight's row lock until its
    // transaction commits, which happens only after the leader's completion has started.
    let late = submit(&store, job(plain, 0.25, JobAdmission::Queued)).await;
    let mut joining = db.begin().await.unwrap();
    let key = ImageUrl::parse(URL).unwrap().cache_key();
    let joined: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO url_flights (url_key, leader_job) VALUES ($1, $2)
         ON CONFLICT (url_key) DO UPDATE SET followers = url_flights.followers + 1
         RETURNING leader_job",
    )
    .bind(&key)
    .bind(late.as_uuid())
    .fetch_one(&mut *joining)
    .await
    .unwrap();
    assert_eq!(joined, leader.as_uuid());
    sqlx::query("UPDATE jobs SET follows = $2 WHERE id = $1")
        .bind(late.as_uuid())
        .bind(leader.as_uuid())
        .execute(&mut *joining)
        .await
        .unwrap();

    let analysis = analysis();
    let completing = {
        let (store, analysis, key) = (store.clone(), analysis.clone(), key.clone());
        tokio::spawn(async move {
            let end = FlightEnd {
                analysis: Some(&analysis),
                entry: Some(entry(&analysis, &key, Duration::from_secs(600))),
            };
            let content = imgmeta_store::NewContent {
                sha256: &"cd".repeat(32),
                model: MODEL,
                image: analysis.image.as_ref(),
                objects: analysis.objects.as_ref(),
            };
            store
                .complete_leading(
                    leader,
                    attempt,
                    &json!({"cache": {"status": "miss"}}),
                    &[],
                    Some(&end),
                    Some(&content),
                )
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !completing.is_finished(),
        "the completion waits for the joining transaction's lock"
    );
    joining.commit().await.unwrap();
    assert_eq!(completing.await.unwrap(), Some(1), "the late follower too");
    let f = found(&store, plain, late).await;
    assert_eq!(f.status.as_str(), "succeeded");
    assert_eq!(f.result.unwrap()["cache"]["status"], "coalesced");
    // Both caches were written in the same commit.
    let content = store.cached_content(&"cd".repeat(32), MODEL).await.unwrap();
    assert_eq!(content.unwrap().objects, analysis.objects);
    store.announce_model(MODEL).await.unwrap();
    let lookup = store.lookup_url(&key, plain).await.unwrap();
    assert_eq!(lookup.entry.unwrap().analysis, analysis);
    assert!(!lookup.in_flight, "the flight ended");
    db.close().await;
    drop_database(store, &name).await;
}

#[tokio::test]
async fn a_leaders_claim_reads_its_urls_entry_and_a_lone_leader_completes_without_followers() {
    let (store, name) = fresh_store().await;
    let plain = account(&store, false).await;
    let key = ImageUrl::parse(URL).unwrap().cache_key();
    // A first flight leaves an entry behind.
    let first = submit(&store, job(plain, 0.25, flight())).await;
    let attempt = claim(&store, first).await;
    let analysis = analysis();
    let done = complete_with_entry(&store, first, attempt, &analysis, &key).await;
    assert_eq!(done, Some(0));
    // The next leader of the URL reads that entry with its claim, under the model asked.
    let second = submit(&store, job(plain, 0.25, flight())).await;
    let claimed = store
        .claim_leading(second, "w", Duration::from_secs(60), 5, Some(MODEL))
        .await
        .unwrap();
    let imgmeta_store::Claim::Claimed {
        attempt,
        stored_url: Some(stored),
        ..
    } = claimed
    else {
        panic!("no entry with the claim: {claimed:?}");
    };
    assert_eq!(stored.analysis, analysis);
    assert_eq!(stored.etag.as_deref(), Some("\"v1\""));
    // Another model's claim reads nothing; a job in no flight reads nothing.
    let plain_job = submit(&store, job(plain, 0.25, JobAdmission::Queued)).await;
    let other = store
        .claim_leading(plain_job, "w", Duration::from_secs(60), 5, Some(MODEL))
        .await
        .unwrap();
    assert!(matches!(
        other,
        imgmeta_store::Claim::Claimed {
            stored_url: None,
            ..
        }
    ));
    // A stale run cannot complete the job.
    let stale = complete_with_entry(&store, second, attempt - 1, &analysis, &key).await;
    assert_eq!(stale, None);
    drop_database(store, &name).await;
}
