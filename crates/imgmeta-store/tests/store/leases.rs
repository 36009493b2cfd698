//! Admissions that take tokens ahead (`Store::admit_leasing`): up to what is asked and what the
//! bucket holds, one for the request and the rest for the process's lease; tokens given back
//! return to the bucket; an empty bucket or a revoked key takes nothing.

use crate::batches::account;
use crate::{drop_database, fresh_store};
use imgmeta_domain::AccountId;
use imgmeta_store::{AdmissionOutcome, Store};

/// A key of `account` with `rate_per_minute` and a quota it will not reach.
async fn key(store: &Store, account: AccountId, prefix: &str, rate_per_minute: u32) -> i64 {
    crate::api_key(store, account, prefix, rate_per_minute, 1000).await
}

#[tokio::test]
async fn a_lease_takes_what_it_asks_within_the_bucket_and_gives_back_what_it_returns() {
    let (store, name) = fresh_store().await;
    let account = account(&store, 1000).await;
    let prefix = "imk_lease001";
    // One token every six seconds: the test's own time refills nothing whole.
    let key = key(&store, account, prefix, 10).await;

    let first = store.admit_leasing(key, true, 4, 0).await.unwrap();
    assert_eq!(first.admission.outcome, AdmissionOutcome::Allowed);
    assert_eq!((first.extra, first.admission.remaining), (3, 6));
    assert!(!first.quota_used_up);

    // More than the bucket holds: all it holds.
    let second = store.admit_leasing(key, false, 10, 0).await.unwrap();
    assert_eq!(second.admission.outcome, AdmissionOutcome::Allowed);
    assert_eq!((second.extra, second.admission.remaining), (5, 0));

    // Empty: refused, nothing taken.
    let third = store.admit_leasing(key, false, 3, 0).await.unwrap();
    assert!(matches!(
        third.admission.outcome,
        AdmissionOutcome::RateLimited { .. }
    ));
    assert_eq!(third.extra, 0);

    // Three unused tokens given back: two of them taken again, one left in the bucket.
    let fourth = store.admit_leasing(key, false, 2, 3).await.unwrap();
    assert_eq!(fourth.admission.outcome, AdmissionOutcome::Allowed);
    assert_eq!((fourth.extra, fourth.admission.remaining), (1, 1));

    // The plain admission takes one token, as it always did.
    let plain = store.admit(key, false).await.unwrap();
    assert_eq!(
        (plain.outcome, plain.remaining),
        (AdmissionOutcome::Allowed, 0)
    );

    // A revoked key takes nothing, however much it asks.
    store.revoke_api_key(prefix).await.unwrap();
    let revoked = store.admit_leasing(key, false, 5, 2).await.unwrap();
    assert_eq!(revoked.admission.outcome, AdmissionOutcome::Revoked);
    assert_eq!(revoked.extra, 0);
    drop_database(store, &name).await;
}

/// Whether a change is announced within a second.
async fn announced(changes: &mut imgmeta_store::AdmissionChanges) -> bool {
    tokio::time::timeout(std::time::Duration::from_secs(1), changes.next())
        .await
        .is_ok_and(|next| next.unwrap())
}

#[tokio::test]
async fn changes_that_admissions_read_are_announced_and_quota_charges_are_not() {
    let (store, name) = fresh_store().await;
    let account = account(&store, 1000).await;
    let mut changes = store.admission_changes().await.unwrap();
    let prefix = "imk_lease002";
    let key = key(&store, account, prefix, 100).await;
    // A job charges the key's and the account's quotas: nothing to announce.
    let url = imgmeta_domain::ImageUrl::parse("https://example.com/a.jpg").unwrap();
    let mut job = crate::url_job(account, &url, imgmeta_store::JobAdmission::Queued);
    job.owner.key_id = Some(key);
    store.insert_job(&job).await.unwrap();
    assert!(
        !announced(&mut changes).await,
        "a quota charge was announced"
    );

    // The account's GPS setting: announced.
    store
        .update_account(
            account,
            &imgmeta_store::AccountChanges {
                redact_gps: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(announced(&mut changes).await, "the GPS setting");
    // A revocation: announced.
    store.revoke_api_key(prefix).await.unwrap();
    assert!(announced(&mut changes).await, "the revocation");
    drop(changes);
    drop_database(store, &name).await;
}
