//! Hostile clients through the real API on loopback, each bounded in count and time: requests
//! refused from their headers alone, slow-body floods that must not lock out other keys,
//! clients that never read, idle keep-alives, connection floods, invented methods, and the
//! JSON envelope on the answers the HTTP layer makes itself.

use crate::helpers::{Options, TestApp};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn options(env: &[(&'static str, &str)]) -> Options {
    Options {
        start_worker: false,
        env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        ..Default::default()
    }
}

fn addr_of(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads what the server sends until it closes, it has sent one whole JSON answer, or
/// `limit` passes.
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + limit;
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&answer);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok());
                    if length.is_some_and(|n| body.len() >= n) {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends `request` on a new connection and returns the answer.
async fn raw(app: &TestApp, request: &str) -> String {
    let mut stream = TcpStream::connect(addr_of(app)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_answer(&mut stream, Duration::from_secs(5)).await
}

fn body_of(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_key_are_refused_from_their_headers_alone() {
    let app = TestApp::spawn_with(options(&[])).await;
    let addr = addr_of(&app);

    // Expect: 100-continue and no key: 401 at once, never "100 Continue".
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert_eq!(body_of(&answer)["error"]["code"], "unauthorized");

    // A declared body over the limit: 413 before any of it is sent, even with a key.
    let answer = raw(
        &app,
        &format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n",
            app.api_key
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(body_of(&answer)["error"]["code"], "payload_too_large");

    // With a key, Expect: 100-continue gets its 100 and then the answer.
    let body = json!({ "url": app.image_url("alpha.png") }).to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nExpect: 100-continue\r\n\
                 Content-Length: {}\r\n\r\n",
                app.api_key,
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut continued = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut continued))
        .await
        .expect("no 100 Continue")
        .unwrap();
    assert!(continued.starts_with(b"HTTP/1.1 100 Continue"));
    stream.write_all(body.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(3)).await;
    assert!(answer.contains("HTTP/1.1 202"), "{answer}");
    app.cleanup().await;
}

/// Opens a connection that sends a `POST /v1/jobs` head announcing 1,000 body bytes and then
/// one byte, and holds it.
async fn slow_body(addr: &str, key: Option<&str>) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    Some(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_floods_from_anonymous_clients_and_one_key_do_not_lock_out_another_key() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_BODY_READ_TIMEOUT_MS", "3000")])).await;
    let addr = addr_of(&app);
    let store = imgmeta_store::Store::connect_lazy(&app.settings.database.url, 2).unwrap();
    let flooder = imgmeta_api::issue_key(
        &store,
        &imgmeta_api::KeyRequest::in_new_account(
            imgmeta_domain::Name::parse("flooder").unwrap(),
            1_000_000,
            1_000_000,
            30,
        ),
        "test",
    )
    .await
    .unwrap()
    .key;
    // 2,000 anonymous slow bodies and 500 from one valid key, all open at once.
    let mut anonymous = Vec::new();
    for _ in 0..2_000 {
        anonymous.extend(slow_body(&addr, None).await);
    }
    let mut keyed = Vec::new();
    for _ in 0..500 {
        keyed.extend(slow_body(&addr, Some(&flooder)).await);
    }
    assert!(anonymous.len() >= 1_900 && keyed.len() >= 450);

    // Meanwhile another key submits 200 jobs, all accepted, and readiness stays green.
    let image = app.image_url("alpha.png");
    let mut accepted = 0;
    for i in 0..200 {
        let response = app
            .submit(json!({ "url": image, "tasks": ["metadata"] }))
            .await;
        assert_eq!(response.status(), 202, "submission {i} during the flood");
        accepted += 1;
    }
    let ready = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(accepted, 200);

    // The anonymous ones were answered 401 from their headers; of the key's, its share got
    // to wait for the body deadline (408) and the rest were refused at once (503).
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for mut stream in anonymous.into_iter().take(50).chain(keyed) {
        let answer = read_answer(&mut stream, Duration::from_secs(8)).await;
        let status = answer.get(9..12).unwrap_or("none").to_owned();
        *codes.entry(status).or_default() += 1;
    }
    assert_eq!(codes.get("401"), Some(&50), "{codes:?}");
    let timed_out = codes.get("408").copied().unwrap_or(0);
    let refused = codes.get("503").copied().unwrap_or(0);
    assert!(timed_out <= 64, "{codes:?}");
    assert!(timed_out + refused >= 450, "{codes:?}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_by_the_write_deadline() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_RESPONSE_WRITE_TIMEOUT_MS", "500")])).await;
    let addr = addr_of(&app);
    let page = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .len();
    // Enough pipelined requests for the metrics page that their answers (32 MiB) cannot all
    // wait in the kernel's socket buffers (4 MiB at most here): the server must block writing.
    let requests = ((32 << 20) / page.max(1)).clamp(400, 20_000);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let one = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let pipelined = one.repeat(requests);
    // The server stops reading requests while it cannot write: the write may never finish.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        stream.write_all(pipelined.as_bytes()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Now read: the server must have given up and closed, so the stream ends.
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection was never closed");
    assert!(
        received < page * requests,
        "every answer was delivered: the server never gave up ({received} bytes)"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_KEEP_ALIVE_IDLE_MS", "300")])).await;
    let addr = addr_of(&app);
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let idle_from = Instant::now();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "still open: {closed:?}"
    );
    assert!(idle_from.elapsed() >= Duration::from_millis(250));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_connection_attempts_leave_the_server_serving() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_MAX_CONNECTIONS", "300")])).await;
    let addr = addr_of(&app);
    let mut attempts = 0;
    for _wave in 0..8 {
        let mut held = Vec::new();
        for _ in 0..2_500 {
            attempts += 1;
            if let Ok(stream) = TcpStream::connect(&addr).await {
                held.push(stream);
            }
        }
        // Idle connections over the cap were closed to make room: a new client is served.
        let health = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
        assert_eq!(health.status(), 200);
        let job = app.get_job(&uuid::Uuid::now_v7().to_string()).await;
        assert_eq!(job.status(), 404);
        drop(held);
    }
    assert_eq!(attempts, 20_000);
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("imgmeta_http_connections_closed_total{reason=\"shed\"}"),
        "no idle connection was shed"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_share_one_metric_label() {
    let app = TestApp::spawn_with(options(&[])).await;
    let addr = addr_of(&app);
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let mut names = Vec::new();
    // 10,000 invented methods, pipelined on a handful of connections.
    for batch in 0..10 {
        let mut requests = String::new();
        for i in 0..1_000 {
            let name = format!("INVENTED{batch}X{i}{}", "Q".repeat(40));
            requests.push_str(&format!("{name} /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n"));
            names.push(name);
        }
        stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(requests.as_bytes()).await.unwrap();
        let mut seen = 0;
        let mut buf = vec![0u8; 1 << 16];
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen < 1_000 && Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => {
                    seen += String::from_utf8_lossy(&buf[..n])
                        .matches("HTTP/1.1 ")
                        .count()
                }
            }
        }
    }
    drop(stream);
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("INVENTED"),
        "an invented method became a label"
    );
    let standard = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "other",
    ];
    for line in metrics.lines().filter(|l| l.contains("method=\"")) {
        let value = line
            .split("method=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(standard.contains(&value), "{line}");
    }
    assert!(metrics.contains("method=\"other\""));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_the_http_layer_makes_carries_the_envelope() {
    let app = TestApp::spawn_with(options(&[])).await;
    let addr = addr_of(&app);
    let key = app.api_key.clone();
    let many_headers: String = (0..100).map(|i| format!("X-Filler-{i}: 1\r\n")).collect();
    let cases = [
        (
            "too many headers",
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            "one huge header",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\n\r\n",
                "a".repeat(70 * 1024)
            ),
            431,
            "headers_too_large",
        ),
        (
            "garbage request line",
            "THIS IS NOT HTTP\r\n\r\n".to_owned(),
            400,
            "bad_request",
        ),
        (
            "bad Transfer-Encoding",
            format!(
                "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
                 Transfer-Encoding: gzip\r\n\r\n"
            ),
            400,
            "bad_request",
        ),
        (
            "broken chunked body",
            format!(
                "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n{{}}\r\n0\r\n\r\n"
            ),
            400,
            "bad_request",
        ),
        (
            "repeated Authorization",
            format!(
                "GET /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
                 Authorization: Bearer {key}\r\n\r\n"
            ),
            400,
            "duplicate_header",
        ),
        (
            "repeated Content-Type",
            format!(
                "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Type: text/plain\r\n\
                 Content-Length: 2\r\n\r\n{{}}"
            ),
            400,
            "duplicate_header",
        ),
        (
            "a JSON array for the job",
            {
                let body = format!(r#"["{}"]"#, app.image_url("alpha.png"));
                format!(
                    "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            },
            400,
            "invalid_json",
        ),
    ];
    for (what, request, status, code) in cases {
        let answer = raw(&app, &request).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {answer}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{what}: {answer}"
        );
        assert_eq!(body_of(&answer)["error"]["code"], code, "{what}: {answer}");
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_body_is_counted_as_client_closed_not_413() {
    let app = TestApp::spawn_with(options(&[])).await;
    let addr = addr_of(&app);
    let before = imgmeta_telemetry::render();
    let count = |text: &str, code: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("imgmeta_request_errors_total{{code=\"{code}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let mut stream = slow_body(&addr, Some(&app.api_key)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.shutdown().await.unwrap();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = imgmeta_telemetry::render();
        if count(&now, "client_closed") > count(&before, "client_closed") {
            break;
        }
        assert!(Instant::now() < deadline, "never counted as client_closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_route_refuses_from_the_head_too() {
    let token = "an-admin-token-for-hostile";
    let app = TestApp::spawn_with(options(&[("IMGMETA_ADMIN_TOKEN", token)])).await;
    let addr = addr_of(&app);
    for auth in [
        String::new(),
        "Authorization: Bearer wrong-token-000000\r\n".to_owned(),
    ] {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "POST /v1/keys HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
                     Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let answer = read_answer(&mut stream, Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(!answer.contains("100 Continue"), "{answer}");
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_shed_at_the_cap_close_at_once_even_mid_head() {
    let app = TestApp::spawn_with(options(&[("IMGMETA_MAX_CONNECTIONS", "100")])).await;
    let addr = addr_of(&app);
    // Each sends part of a request head and stops: a graceful close would wait for the
    // header deadline (10 s); at the cap they must go at once.
    let mut held = Vec::new();
    for _ in 0..400 {
        if let Ok(mut stream) = TcpStream::connect(&addr).await {
            let _ = stream
                .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n").as_bytes())
                .await;
            held.push(stream);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut closed = 0;
    for stream in &mut held {
        let mut buf = [0u8; 16];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert!(closed >= 250, "only {closed} of 400 were closed");
    let ready = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(ready.status(), 200);
    app.cleanup().await;
}
