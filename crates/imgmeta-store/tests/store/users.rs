//! Users, sessions and the login throttle against the real PostgreSQL: sign-up in one
//! transaction with a hidden session key, sessions found by their token's hash and ended by
//! logout, idle or absolute expiry and password changes, and failed logins counted across
//! concurrent attempts.

use crate::{drop_database, fresh_store, raw_pool};
use imgmeta_domain::{Email, Name, UserId};
use imgmeta_store::{
    AdmissionOutcome, LoginAttempt, NewAccount, NewSessionKey, NewUser, Revoked, SessionLifetime,
    SignUp, Store, ThrottleSubject, UserRecord,
};
use std::time::Duration;

const LIFETIME: SessionLifetime = SessionLifetime {
    idle: Duration::from_secs(12 * 3600),
    max: Duration::from_secs(7 * 86_400),
};

fn new_user(email: &str, prefix: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: Email::parse(email).unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        account: NewAccount {
            name: Name::parse("ada").unwrap(),
            daily_quota: 100,
            retention_days: 30,
            redact_gps: false,
        },
        session_key: NewSessionKey {
            prefix: prefix.to_owned(),
            hash: [7; 32],
            rate_per_minute: 60,
            daily_quota: 100,
        },
    }
}

async fn sign_up(store: &Store, email: &str, prefix: &str) -> UserRecord {
    match store.create_user(&new_user(email, prefix)).await.unwrap() {
        SignUp::Created(user) => user,
        other => panic!("not created: {other:?}"),
    }
}

#[tokio::test]
async fn signing_up_makes_an_account_and_a_hidden_all_scopes_session_key() {
    let (store, name) = fresh_store().await;
    let user = sign_up(&store, "Ada@Example.com", "imk_sess0001").await;
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.email_verified_at, None);
    let account = store.get_account(user.account_id).await.unwrap().unwrap();
    assert_eq!(account.name, "ada");

    // The session key is nowhere an API key would show, and cannot be used as one.
    assert!(
        store
            .list_account_keys(user.account_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_api_keys().await.unwrap().is_empty());
    assert_eq!(store.count_active_api_keys().await.unwrap(), 0);
    assert_eq!(store.find_api_key("imk_sess0001").await.unwrap(), None);
    assert_eq!(
        store
            .revoke_account_key(user.account_id, "imk_sess0001")
            .await
            .unwrap(),
        Revoked::NotFound { foreign: false }
    );
    assert_eq!(store.revoke_api_key("imk_sess0001").await.unwrap(), None);

    // A session authenticates as it, and it is admitted like any key.
    let token_hash = [1u8; 32];
    store
        .create_session(user.id, &token_hash, LIFETIME)
        .await
        .unwrap();
    let session = store
        .find_session(&token_hash, LIFETIME.idle)
        .await
        .unwrap()
        .expect("a live session");
    assert_eq!(session.user, user);
    assert_eq!(session.key.prefix, "imk_sess0001");
    assert_eq!(session.key.account_id, user.account_id);
    assert_eq!(session.key.scopes, imgmeta_domain::ScopeSet::all());
    let admission = store.admit(session.key.id, true).await.unwrap();
    assert_eq!(admission.outcome, AdmissionOutcome::Allowed);
    assert_eq!(admission.limit, 60);
    drop_database(store, &name).await;
}

#[tokio::test]
async fn an_address_signs_up_once_whatever_its_case() {
    let (store, name) = fresh_store().await;
    sign_up(&store, "grace@example.com", "imk_sess0002").await;
    let accounts = store.list_accounts().await.unwrap().len();
    let again = store
        .create_user(&new_user("GRACE@example.COM", "imk_sess0003"))
        .await
        .unwrap();
    assert_eq!(again, SignUp::EmailTaken);
    assert_eq!(
        store.list_accounts().await.unwrap().len(),
        accounts,
        "a refused sign-up leaves no account behind"
    );
    let found = store
        .find_user_by_email(&Email::parse("Grace@Example.com").unwrap())
        .await
        .unwrap()
        .expect("found case-insensitively");
    assert_eq!(found.password_hash, new_user("x@y.z", "p").password_hash);
    // A taken key prefix is the caller's to redraw; nothing is created.
    assert_eq!(
        store
            .create_user(&new_user("hopper@example.com", "imk_sess0002"))
            .await
            .unwrap(),
        SignUp::KeyPrefixTaken
    );
    assert_eq!(store.list_accounts().await.unwrap().len(), accounts);
    drop_database(store, &name).await;
}

#[tokio::test]
async fn logout_and_expiry_end_a_session_and_its_row() {
    let (store, name) = fresh_store().await;
    let db = raw_pool(&name).await;
    let user = sign_up(&store, "ada@example.com", "imk_sess0004").await;
    let count = |hash: [u8; 32]| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sessions WHERE token_hash = $1")
                .bind(&hash[..])
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };

    // Logout deletes the row.
    store
        .create_session(user.id, &[2; 32], LIFETIME)
        .await
        .unwrap();
    assert!(store.delete_session(&[2; 32]).await.unwrap());
    assert!(
        store
            .find_session(&[2; 32], LIFETIME.idle)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(count([2; 32]).await, 0);

    // Idle expiry: presented after it, the session is gone, and so is its row.
    store
        .create_session(user.id, &[3; 32], LIFETIME)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE sessions SET idle_expires_at = now() - interval '1 second' WHERE token_hash = $1",
    )
    .bind(&[3u8; 32][..])
    .execute(&db)
    .await
    .unwrap();
    assert!(
        store
            .find_session(&[3; 32], LIFETIME.idle)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(count([3; 32]).await, 0);

    // Use moves the idle expiry forward, never past the absolute one.
    store
        .create_session(user.id, &[4; 32], LIFETIME)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE sessions SET idle_expires_at = now() + interval '10 minutes',
                             expires_at = now() + interval '1 hour' WHERE token_hash = $1",
    )
    .bind(&[4u8; 32][..])
    .execute(&db)
    .await
    .unwrap();
    assert!(
        store
            .find_session(&[4; 32], LIFETIME.idle)
            .await
            .unwrap()
            .is_some()
    );
    let at_cap: bool = sqlx::query_scalar(
        "SELECT idle_expires_at = expires_at FROM sessions WHERE token_hash = $1",
    )
    .bind(&[4u8; 32][..])
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(
        at_cap,
        "the idle expiry moved up to the absolute one and no further"
    );

    // Absolute expiry: reached, the session ends however recently it was used.
    sqlx::query(
        "UPDATE sessions SET expires_at = now() - interval '1 second',
                             idle_expires_at = now() - interval '1 second' WHERE token_hash = $1",
    )
    .bind(&[4u8; 32][..])
    .execute(&db)
    .await
    .unwrap();
    assert!(
        store
            .find_session(&[4; 32], LIFETIME.idle)
            .await
            .unwrap()
            .is_none()
    );

    // The sweep deletes ended sessions nobody presents again.
    store
        .create_session(user.id, &[5; 32], LIFETIME)
        .await
        .unwrap();
    store
        .create_session(user.id, &[6; 32], LIFETIME)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE sessions SET idle_expires_at = now() - interval '1 second' WHERE token_hash = $1",
    )
    .bind(&[5u8; 32][..])
    .execute(&db)
    .await
    .unwrap();
    let (swept, _) = store
        .sweep_sessions(Duration::from_secs(900), 100)
        .await
        .unwrap();
    assert_eq!(swept, 1);
    assert_eq!(count([5; 32]).await, 0);
    assert_eq!(count([6; 32]).await, 1);
    db.close().await;
    drop_database(store, &name).await;
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_of_the_user_only() {
    let (store, name) = fresh_store().await;
    let ada = sign_up(&store, "ada@example.com", "imk_sess0005").await;
    let grace = sign_up(&store, "grace@example.com", "imk_sess0006").await;
    for hash in [[10u8; 32], [11; 32], [12; 32]] {
        store.create_session(ada.id, &hash, LIFETIME).await.unwrap();
    }
    store
        .create_session(grace.id, &[13; 32], LIFETIME)
        .await
        .unwrap();
    let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3";
    let ended = store
        .change_password(ada.id, new_hash, &[10; 32])
        .await
        .unwrap();
    assert_eq!(ended, 2);
    assert!(
        store
            .find_session(&[10; 32], LIFETIME.idle)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_session(&[11; 32], LIFETIME.idle)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_session(&[12; 32], LIFETIME.idle)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_session(&[13; 32], LIFETIME.idle)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.count_sessions(ada.id).await.unwrap(), 1);
    assert_eq!(
        store.user_password_hash(ada.id).await.unwrap().as_deref(),
        Some(new_hash)
    );
    drop_database(store, &name).await;
}

fn subject(byte: u8, max_failures: u32) -> ThrottleSubject {
    ThrottleSubject {
        hash: [byte; 32],
        max_failures,
    }
}

const WINDOW: Duration = Duration::from_secs(900);

#[tokio::test]
async fn failures_past_the_limit_are_throttled_until_the_oldest_leaves_the_window() {
    let (store, name) = fresh_store().await;
    let (account, address) = (subject(1, 3), subject(2, 100));
    for _ in 0..3 {
        let attempt = store
            .begin_login_attempt(&[account, address], WINDOW)
            .await
            .unwrap();
        assert!(matches!(attempt, LoginAttempt::Admitted(_)));
    }
    match store
        .begin_login_attempt(&[account, address], WINDOW)
        .await
        .unwrap()
    {
        LoginAttempt::Throttled {
            subject,
            retry_after_secs,
        } => {
            assert_eq!(subject, 0, "the account's limit was reached");
            assert!((1..=900).contains(&retry_after_secs), "{retry_after_secs}");
        }
        other => panic!("not throttled: {other:?}"),
    }
    // Another account from the same address is not affected.
    let other = subject(3, 3);
    assert!(matches!(
        store
            .begin_login_attempt(&[other, address], WINDOW)
            .await
            .unwrap(),
        LoginAttempt::Admitted(_)
    ));
    // Failures older than the window do not count.
    let db = raw_pool(&name).await;
    sqlx::query("UPDATE login_failures SET at = at - interval '16 minutes' WHERE subject = $1")
        .bind(&account.hash[..])
        .execute(&db)
        .await
        .unwrap();
    assert!(matches!(
        store
            .begin_login_attempt(&[account, address], WINDOW)
            .await
            .unwrap(),
        LoginAttempt::Admitted(_)
    ));
    // ... and the sweep deletes them.
    let (_, swept) = store.sweep_sessions(WINDOW, 100).await.unwrap();
    assert_eq!(swept, 3);
    db.close().await;
    drop_database(store, &name).await;
}

#[tokio::test]
async fn a_success_clears_the_accounts_failures_but_not_the_addresss() {
    let (store, name) = fresh_store().await;
    let (account, address) = (subject(1, 2), subject(2, 3));
    let begin = |subjects: [ThrottleSubject; 2]| {
        let store = store.clone();
        async move { store.begin_login_attempt(&subjects, WINDOW).await.unwrap() }
    };
    assert!(matches!(
        begin([account, address]).await,
        LoginAttempt::Admitted(_)
    ));
    let LoginAttempt::Admitted(ok) = begin([account, address]).await else {
        panic!("throttled too early")
    };
    store.login_succeeded(&ok, Some(&account)).await.unwrap();
    // The account starts afresh: two more attempts are allowed for it ...
    assert!(matches!(
        begin([account, subject(9, 100)]).await,
        LoginAttempt::Admitted(_)
    ));
    // ... while the address keeps its one failure and takes two more before refusing.
    assert!(matches!(
        begin([subject(4, 100), address]).await,
        LoginAttempt::Admitted(_)
    ));
    assert!(matches!(
        begin([subject(5, 100), address]).await,
        LoginAttempt::Admitted(_)
    ));
    assert!(matches!(
        begin([subject(6, 100), address]).await,
        LoginAttempt::Throttled { subject: 1, .. }
    ));
    // An attempt that could not be decided does not count.
    let LoginAttempt::Admitted(undecided) = begin([subject(7, 1), subject(8, 100)]).await else {
        panic!("throttled too early")
    };
    store.forget_login_attempt(&undecided).await.unwrap();
    assert!(matches!(
        begin([subject(7, 1), subject(8, 100)]).await,
        LoginAttempt::Admitted(_)
    ));
    drop_database(store, &name).await;
}

#[tokio::test]
async fn concurrent_attempts_cannot_slip_past_the_limit() {
    let (store, name) = fresh_store().await;
    let attempts = (0..20).map(|i| {
        let store = store.clone();
        // The same account from twenty addresses at once.
        let subjects = [subject(1, 5), subject(100 + i, 100)];
        async move { store.begin_login_attempt(&subjects, WINDOW).await.unwrap() }
    });
    let outcomes = futures_join_all(attempts).await;
    let admitted = outcomes
        .iter()
        .filter(|o| matches!(o, LoginAttempt::Admitted(_)))
        .count();
    assert_eq!(admitted, 5, "attempts in flight count as failures");
    drop_database(store, &name).await;
}

/// Runs the futures concurrently (each its own task, so they race for the database).
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}
