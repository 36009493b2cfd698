//! Sign-up and sessions through the real API: the cookie's attributes, a session doing what an
//! all-scopes key of its account does (and nothing in another account), CSRF on everything a
//! session changes, logout, password changes ending other sessions, uniform login failures,
//! the login throttle, the sign-up switch, the hidden session key, and the security log.

use crate::helpers::{Options, TestApp};
use crate::processes::{
    clean_up, collect, free_port, fresh_database, imgmeta, terminate, wait_until_up,
};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";

fn options(env: &[(&'static str, &str)]) -> Options {
    Options {
        start_worker: false,
        env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        ..Default::default()
    }
}

/// A browser's view of one session: its cookie and CSRF token (sent by hand, so each test
/// says exactly what a request carries).
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
    user: Value,
}

/// The session a sign-up or login answer hands out, after checking its cookie's attributes.
async fn session_of(response: reqwest::Response) -> Session {
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a Set-Cookie")
        .to_str()
        .unwrap()
        .to_owned();
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    let (name, value) = attributes[0].split_once('=').unwrap();
    assert_eq!(name, "imgmeta_session");
    assert_eq!(value.len(), 43, "256 bits in base64url");
    for wanted in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            attributes.contains(&wanted),
            "{wanted} missing: {set_cookie}"
        );
    }
    assert!(
        !attributes.iter().any(|a| a.eq_ignore_ascii_case("secure")),
        "no Secure on a loopback API: {set_cookie}"
    );
    assert_eq!(
        response.headers().get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let body: Value = response.json().await.unwrap();
    Session {
        cookie: format!("imgmeta_session={value}"),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        user: body["user"].clone(),
    }
}

/// A request with no key, no cookie store: what the browser sends is added per request.
fn bare(app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, format!("{}{path}", app.base))
}

/// A request made with `session`'s cookie (and, when `csrf`, its CSRF token).
fn with(
    app: &TestApp,
    session: &Session,
    method: Method,
    path: &str,
    csrf: bool,
) -> reqwest::RequestBuilder {
    let request = bare(app, method, path).header(header::COOKIE, &session.cookie);
    if csrf {
        request.header("x-csrf-token", &session.csrf)
    } else {
        request
    }
}

async fn sign_up(app: &TestApp, email: &str) -> Session {
    let response = bare(app, Method::POST, "/v1/signup")
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    session_of(response).await
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    bare(app, Method::POST, "/v1/session")
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

/// Status and error code of an answer.
async fn refusal(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn session_key_prefix(app: &TestApp, user_id: &str) -> String {
    let db = sqlx::PgPool::connect(&format!(
        "postgres://postgres@127.0.0.1:5432/{}",
        app.db_name
    ))
    .await
    .unwrap();
    let prefix: String = sqlx::query_scalar(
        "SELECT k.prefix FROM users u JOIN api_keys k ON k.id = u.session_key_id WHERE u.id = $1::uuid",
    )
    .bind(user_id)
    .fetch_one(&db)
    .await
    .unwrap();
    db.close().await;
    prefix
}

#[tokio::test]
async fn a_session_works_like_an_all_scopes_key_of_its_own_account_and_needs_csrf_to_change_anything()
 {
    let app = TestApp::spawn_with(options(&[("IMGMETA_SIGNUP", "open")])).await;
    let response = bare(&app, Method::POST, "/v1/signup")
        .json(&json!({ "email": "Ada@Example.com", "password": PASSWORD, "account_name": "Ada's lab" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let ada = session_of(response).await;
    assert_eq!(ada.user["email"], "ada@example.com");
    let user_id = ada.user["id"].as_str().unwrap().to_owned();
    let account_id = ada.user["account_id"].as_str().unwrap().to_owned();
    assert!(ada.user["created_at"].is_string());

    // Who is logged in, with the same CSRF token.
    let me: Value = with(&app, &ada, Method::GET, "/v1/session", false)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], ada.user);
    assert_eq!(me["csrf_token"], ada.csrf.as_str());
    let account: Value = with(&app, &ada, Method::GET, "/v1/account", false)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["id"], account_id.as_str());
    assert_eq!(account["name"], "Ada's lab");
    assert_eq!(account["key"], Value::Null, "the session key is not shown");

    // A job submitted with the session belongs to its account, and reads back.
    let job = json!({ "url": app.image_url("tiny.png"), "tasks": ["metadata"] });
    let response = with(&app, &ada, Method::POST, "/v1/jobs", true)
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(
        response.headers().contains_key("ratelimit-limit"),
        "admitted like a key"
    );
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let read: Value = with(&app, &ada, Method::GET, &format!("/v1/jobs/{id}"), false)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["id"], id.as_str());

    // Another account's job is not found through the session.
    let foreign = app.submit_ok(job.clone()).await;
    let (status, code) = refusal(
        with(
            &app,
            &ada,
            Method::GET,
            &format!("/v1/jobs/{foreign}"),
            false,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "job_not_found")
    );

    // With a Bearer key as well, the key decides: its account's job, not the session's.
    let both = with(
        &app,
        &ada,
        Method::GET,
        &format!("/v1/jobs/{foreign}"),
        false,
    )
    .bearer_auth(&app.api_key)
    .send()
    .await
    .unwrap();
    assert_eq!(both.status(), StatusCode::OK);

    // CSRF: a state change without the token, or with a wrong one, is refused and does nothing.
    let (status, code) = refusal(
        with(&app, &ada, Method::POST, "/v1/jobs", false)
            .json(&job)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "csrf_failed")
    );
    let wrong = with(&app, &ada, Method::POST, "/v1/jobs", false)
        .header("x-csrf-token", format!("{}x", &ada.csrf[1..]))
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refusal(wrong).await,
        (StatusCode::FORBIDDEN, "csrf_failed".to_owned())
    );
    let (status, code) = refusal(
        with(&app, &ada, Method::DELETE, &format!("/v1/jobs/{id}"), false)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "csrf_failed")
    );
    let list: Value = with(&app, &ada, Method::GET, "/v1/jobs", false)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jobs = list["jobs"].as_array().expect("a job list");
    assert_eq!(
        jobs.len(),
        1,
        "the refused submissions created nothing: {list}"
    );
    assert_eq!(
        jobs[0]["status"], "queued",
        "the refused cancel changed nothing"
    );

    // The session key is not listed and cannot be revoked; a key minted with the session works.
    let keys: Value = with(&app, &ada, Method::GET, "/v1/account/keys", false)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys["keys"], json!([]));
    let prefix = session_key_prefix(&app, &user_id).await;
    let (status, code) = refusal(
        with(
            &app,
            &ada,
            Method::DELETE,
            &format!("/v1/account/keys/{prefix}"),
            true,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "key_not_found")
    );
    let (status, code) = refusal(
        with(&app, &ada, Method::POST, "/v1/account/keys", false)
            .json(&json!({ "name": "ci" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "csrf_failed")
    );
    let minted = with(&app, &ada, Method::POST, "/v1/account/keys", true)
        .json(&json!({ "name": "ci", "scopes": ["jobs:read", "jobs:write"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), StatusCode::CREATED);
    let minted: Value = minted.json().await.unwrap();
    let key = minted["key"].as_str().unwrap();
    assert_eq!(minted["account"], account_id.as_str());
    let by_key = bare(&app, Method::GET, &format!("/v1/jobs/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), StatusCode::OK);
    let keys: Value = with(&app, &ada, Method::GET, "/v1/account/keys", false)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        1,
        "only the minted key: {keys}"
    );

    // Logout needs the token too, then ends the session: the cookie reads nothing any more.
    let (status, code) = refusal(
        with(&app, &ada, Method::DELETE, "/v1/session", false)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "csrf_failed")
    );
    let out = with(&app, &ada, Method::DELETE, "/v1/session", true)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = out
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        cleared.starts_with("imgmeta_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, code) = refusal(
        with(&app, &ada, Method::GET, &format!("/v1/jobs/{id}"), false)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, _) = refusal(
        with(&app, &ada, Method::GET, "/v1/session", false)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The minted key outlives the session.
    let by_key = bare(&app, Method::GET, &format!("/v1/jobs/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), StatusCode::OK);

    // Two logins, then a password change from one ends the other.
    let first = login(&app, "ADA@example.com", PASSWORD).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first = session_of(first).await;
    assert_eq!(first.user["id"], user_id.as_str());
    let second = session_of(login(&app, "ada@example.com", PASSWORD).await).await;
    assert_ne!(first.cookie, second.cookie);
    assert_ne!(first.csrf, second.csrf);
    let change =
        json!({ "current_password": PASSWORD, "new_password": "a much better passphrase" });
    let (status, code) = refusal(
        with(&app, &first, Method::POST, "/v1/session/password", false)
            .json(&change)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "csrf_failed")
    );
    let wrong_current =
        json!({ "current_password": "not my password", "new_password": "whatever it is" });
    let (status, code) = refusal(
        with(&app, &first, Method::POST, "/v1/session/password", true)
            .json(&wrong_current)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let too_short = json!({ "current_password": PASSWORD, "new_password": "short" });
    let (status, code) = refusal(
        with(&app, &first, Method::POST, "/v1/session/password", true)
            .json(&too_short)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_signup")
    );
    let changed = with(&app, &first, Method::POST, "/v1/session/password", true)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        with(&app, &second, Method::GET, "/v1/session", false)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED,
        "the other session ended"
    );
    assert_eq!(
        with(&app, &first, Method::GET, "/v1/session", false)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "the session that changed it lives on"
    );

    // Wrong password and unknown address: the same answer.
    let wrong = refusal(login(&app, "ada@example.com", PASSWORD).await).await;
    assert_eq!(
        wrong,
        (StatusCode::UNAUTHORIZED, "invalid_credentials".to_owned())
    );
    let unknown = login(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown: Value = unknown.json().await.unwrap();
    let wrong_body: Value = login(&app, "ada@example.com", "not the password")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unknown, wrong_body);
    assert_eq!(
        login(&app, "ada@example.com", "a much better passphrase")
            .await
            .status(),
        StatusCode::OK
    );

    // Sign-up and login from another origin's page are refused.
    let cross = bare(&app, Method::POST, "/v1/session")
        .header(header::ORIGIN, "http://evil.example")
        .json(&json!({ "email": "ada@example.com", "password": "a much better passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refusal(cross).await,
        (StatusCode::FORBIDDEN, "csrf_failed".to_owned())
    );
    let same = bare(&app, Method::POST, "/v1/session")
        .header(header::ORIGIN, app.base.as_str())
        .json(&json!({ "email": "ada@example.com", "password": "a much better passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn sign_up_refuses_a_taken_address_in_any_case_and_bad_input() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_SIGNUP", "open")])).await;
    let grace = sign_up(&app, "grace@example.com").await;
    assert_eq!(grace.user["email"], "grace@example.com");
    let signup = |body: Value| {
        let request = bare(&app, Method::POST, "/v1/signup").json(&body);
        async move { refusal(request.send().await.unwrap()).await }
    };
    let taken = signup(json!({ "email": " GRACE@Example.COM ", "password": PASSWORD })).await;
    assert_eq!(taken, (StatusCode::CONFLICT, "email_taken".to_owned()));
    for bad in [
        json!({ "email": "grace", "password": PASSWORD }),
        json!({ "email": "hopper@example.com", "password": "too short" }),
        json!({ "email": "hopper@example.com", "password": "x".repeat(1025) }),
        json!({ "email": "hopper@example.com", "password": PASSWORD, "account_name": "" }),
    ] {
        assert_eq!(
            signup(bad).await,
            (StatusCode::BAD_REQUEST, "invalid_signup".to_owned())
        );
    }
    // The account's name defaults to the address's local part.
    let hopper = sign_up(&app, "hopper@example.com").await;
    let account: Value = with(&app, &hopper, Method::GET, "/v1/account", false)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["name"], "hopper");
    assert_ne!(
        hopper.user["account_id"], grace.user["account_id"],
        "each sign-up is its own account"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn sign_up_is_closed_unless_opened() {
    let app = TestApp::spawn_with(options(&[])).await;
    let response = bare(&app, Method::POST, "/v1/signup")
        .json(&json!({ "email": "ada@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(
        refusal(response).await,
        (StatusCode::FORBIDDEN, "signup_closed".to_owned())
    );
    // Login itself is there (for users an operator made), and fails as for anyone unknown.
    let (status, code) = refusal(login(&app, "ada@example.com", PASSWORD).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let (status, code) =
        refusal(bare(&app, Method::GET, "/v1/session").send().await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    app.cleanup().await;
}

#[tokio::test]
async fn repeated_failures_throttle_logins_per_account_and_per_address() {
    let app = TestApp::spawn_with(options(&[
        ("IMGMETA_SIGNUP", "open"),
        ("IMGMETA_LOGIN_MAX_FAILURES_PER_ACCOUNT", "5"),
        ("IMGMETA_LOGIN_MAX_FAILURES_PER_ADDRESS", "8"),
    ]))
    .await;
    sign_up(&app, "ada@example.com").await;
    for _ in 0..5 {
        let (status, code) = refusal(login(&app, "ada@example.com", "wrong password").await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
    }
    // Locked: even the right password is refused until the window passes.
    let locked = login(&app, "Ada@example.com", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = locked.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    assert_eq!(refusal(locked).await.1, "login_throttled");
    // Other addresses' logins go on from this client until it has 8 failures of its own.
    for n in 0..3 {
        let (status, _) =
            refusal(login(&app, &format!("stranger{n}@example.com"), "guess guess").await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let from_here = refusal(login(&app, "someone.else@example.com", "guess guess").await).await;
    assert_eq!(
        from_here,
        (StatusCode::TOO_MANY_REQUESTS, "login_throttled".to_owned())
    );
    app.cleanup().await;
}

/// The security log of a real `imgmeta api`: every sign-up and session event is there, named
/// by user id (or a hash of the address tried), and no password, session token, CSRF token or
/// whole e-mail address is ever written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_log_records_session_events_without_secrets() {
    let (db, queue) = fresh_database().await;
    let port = free_port();
    let mut api = imgmeta(
        &db,
        &queue,
        port,
        "api",
        &[
            ("IMGMETA_AUTH", "enabled".into()),
            ("IMGMETA_SIGNUP", "open".into()),
        ],
    );
    let log = collect(&mut api);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&base).await;
    let client = reqwest::Client::new();
    let email = "Secret.Person@Example.org";
    let signup = client
        .post(format!("{base}/v1/signup"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    let session = session_of(signup).await;
    let user_id = session.user["id"].as_str().unwrap().to_owned();
    let failed = client
        .post(format!("{base}/v1/session"))
        .json(&json!({ "email": email, "password": "hunter2 is wrong" }))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let unknown = client
        .post(format!("{base}/v1/session"))
        .json(&json!({ "email": "nobody.here@example.org", "password": "hunter2 is wrong" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let no_csrf = client
        .post(format!("{base}/v1/jobs"))
        .header(header::COOKIE, &session.cookie)
        .json(&json!({ "url": "http://127.0.0.1:9/x.png" }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let changed = client
        .post(format!("{base}/v1/session/password"))
        .header(header::COOKIE, &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .json(&json!({ "current_password": PASSWORD, "new_password": "the new secret phrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let relogin = client
        .post(format!("{base}/v1/session"))
        .json(&json!({ "email": email, "password": "the new secret phrase" }))
        .send()
        .await
        .unwrap();
    let relogin = session_of(relogin).await;
    // The successful login cleared the account's failures: six more, and the sixth is refused.
    for _ in 0..6 {
        client
            .post(format!("{base}/v1/session"))
            .json(&json!({ "email": email, "password": "hunter2 is wrong" }))
            .send()
            .await
            .unwrap();
    }
    let out = client
        .delete(format!("{base}/v1/session"))
        .header(header::COOKIE, &relogin.cookie)
        .header("x-csrf-token", &relogin.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    terminate(&mut api, Duration::from_secs(20))
        .await
        .expect("the api stops");
    let lines = log.await.unwrap();

    let events: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["kind"] == "security" || v["kind"] == "security")
        .collect();
    let event = |name: &str| {
        events
            .iter()
            .find(|v| v["fields"]["event"] == name || v["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event in {events:#?}"))
            .to_string()
    };
    for name in [
        "signup",
        "login",
        "password_changed",
        "logout",
        "csrf_failed",
    ] {
        assert!(
            event(name).contains(&user_id),
            "{name} names the user: {}",
            event(name)
        );
    }
    // The log tells an unknown address from a wrong password (the client cannot).
    let failures: Vec<&str> = events
        .iter()
        .filter(|v| v["event"] == "login_failed" || v["fields"]["event"] == "login_failed")
        .filter_map(|v| v["reason"].as_str().or(v["fields"]["reason"].as_str()))
        .collect();
    assert!(failures.contains(&"unknown_email"), "{failures:?}");
    assert!(failures.contains(&"wrong_password"), "{failures:?}");
    for name in ["login_failed", "login_throttled"] {
        let line = event(name);
        assert!(
            line.contains("email.hash"),
            "{name} names the address by hash: {line}"
        );
    }
    let everything = lines.join("\n");
    for secret in [
        PASSWORD,
        "hunter2",
        "the new secret phrase",
        &session.cookie["imgmeta_session=".len()..],
        &relogin.cookie["imgmeta_session=".len()..],
        &session.csrf,
        "secret.person@example.org",
        "Secret.Person",
        "nobody.here",
    ] {
        assert!(!everything.contains(secret), "the log leaks {secret:?}");
    }
    clean_up(&db, &queue).await;
}
