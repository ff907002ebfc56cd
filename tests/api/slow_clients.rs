//! Clients that are slow, stall or send too much at once: a body that never completes is cut
//! off with a 408, a shutdown cuts off what is still open at its deadline, and an over-long
//! URI or oversized headers get the PrivX envelope. Every wait is bounded.

use std::future::Future;
use std::time::{Duration, Instant};

use privx_mock::api::{MAX_HEADER_BYTES, MAX_URI_BYTES};
use privx_mock::client::types;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::binary;
use crate::helpers::{assert_envelope, bearer_client, spawn_app, spawn_app_with, TestApp, ADMIN};

const USERS: &str = "/local-user-store/api/v1/users";

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), test).await.expect("finished in time")
}

/// A connection to the server at `address` (on 127.0.0.1) from 127.0.0.2: its local port is
/// then never one that a listener test wants to bind on 127.0.0.1 (the listener ports lie in
/// the ephemeral range), however many connections these tests hold.
async fn connect(address: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.bind("127.0.0.2:0".parse().unwrap()).expect("bound on 127.0.0.2");
    socket.connect(address.parse().expect("an address")).await.expect("connected")
}

/// Sends the head of a `POST path` whose body is `length` bytes long but only the first
/// `sent` of them: a client that stalls half-way through its body.
async fn stalled_post(address: &str, path: &str, headers: &str, length: usize) -> TcpStream {
    let mut stream = connect(address).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Content-Length: {length}\r\n\r\n{{\"username\""
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    stream
}

/// Reads an HTTP/1.1 answer whose body has a `Content-Length`: its status and body.
async fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned)
                })
                .map(|l| l.trim().parse::<usize>().expect("a length"))
                .expect("a content-length");
            if body.len() >= length {
                let status = head.split(' ').nth(1).expect("a status").parse().expect("a number");
                return (status, body[..length].to_string());
            }
        }
        let read = stream.read(&mut chunk).await.expect("readable");
        assert!(read > 0, "closed before a whole answer: {text}");
        bytes.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test]
async fn a_body_that_never_completes_is_answered_408_and_closed() {
    bounded(async {
        let timeout_ms = 300;
        let app = spawn_app_with(|config| config.body_timeout_ms = timeout_ms).await;
        let address = app.base_url.trim_start_matches("http://").to_string();
        let token = app.token(ADMIN.0, ADMIN.1).await;
        let auth = format!("Authorization: Bearer {token}\r\nContent-Type: application/json\r\n");
        let started = Instant::now();
        let mut stream = stalled_post(&address, USERS, &auth, 1000).await;
        let (status, body) = read_answer(&mut stream).await;
        assert!(started.elapsed() >= Duration::from_millis(timeout_ms), "not before the timeout");
        assert_eq!(status, 408, "{body}");
        let envelope: types::Error = serde_json::from_str(&body).expect("the PrivX envelope");
        assert_eq!(envelope.error_code, types::ErrorCode::BadRequest);
        assert!(envelope.error_message.unwrap().contains(&format!("{timeout_ms} ms")));
        // The rest of the body can never be read as a request: the connection is closed.
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.expect("closed cleanly");
        // The server is free for everyone else meanwhile.
        let list = app.http.get(app.url(USERS)).send().await.unwrap();
        assert_eq!(list.status().as_u16(), 200);
    })
    .await;
}

#[tokio::test]
async fn a_token_request_body_that_never_completes_is_an_oauth_408() {
    bounded(async {
        let app = spawn_app_with(|config| config.body_timeout_ms = 200).await;
        let address = app.base_url.trim_start_matches("http://").to_string();
        let form = "Content-Type: application/x-www-form-urlencoded\r\n";
        let mut stream = stalled_post(&address, "/auth/api/v1/oauth/token", form, 500).await;
        let (status, body) = read_answer(&mut stream).await;
        assert_eq!(status, 408, "{body}");
        let reply: types::OAuthError = serde_json::from_str(&body).expect("an OAuth error");
        assert_eq!(reply.error, types::OAuthErrorError::InvalidRequest);
    })
    .await;
}

#[tokio::test]
async fn sigterm_exits_within_the_shutdown_timeout_despite_stalled_clients() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let mut server = binary::start_with(dir.path(), |command| {
            command.args(["--shutdown-timeout-ms", "500"]);
        });
        let token = server.token().await;
        let created = bearer_client(&token)
            .post(server.url(USERS))
            .json(&serde_json::json!({"username": "kept"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status().as_u16(), 201);
        let address = server.base_url.trim_start_matches("http://").to_string();
        // A body that never completes (the default body timeout is a minute away), which hyper
        // would wait for without end, and a connection that never sends a byte.
        let auth = format!("Authorization: Bearer {token}\r\nContent-Type: application/json\r\n");
        let _stalled = stalled_post(&address, USERS, &auth, 1000).await;
        let _silent = connect(&address).await;
        // Connections are accepted in order: once a later one is answered, both are open in
        // the server.
        let list = bearer_client(&token).get(server.url(USERS)).send().await.unwrap();
        assert_eq!(list.status().as_u16(), 200);

        let signalled = Instant::now();
        let pid = server.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                signalled.elapsed() < Duration::from_secs(10),
                "still running 10 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "exit status {status:?}");
        assert!(signalled.elapsed() >= Duration::from_millis(500), "it waited for the requests");
        let logged = loop {
            let stderr = server.stderr();
            if stderr.contains("shutdown timeout (500 ms) reached") {
                break stderr;
            }
            assert!(signalled.elapsed() < Duration::from_secs(10), "no cut-off line: {stderr}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(logged.contains("at most 500 ms"), "{logged}");
        // The stalled body's: the idle and the silent ones were closed when the shutdown began.
        assert!(logged.contains("cutting off the 1 connection(s) still open"), "{logged}");

        // What was acknowledged before is on disk.
        let restarted = binary::start(dir.path());
        let client = bearer_client(&restarted.token().await);
        let list: serde_json::Value =
            client.get(restarted.url(USERS)).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["items"][0]["username"], "kept");
    })
    .await;
}

#[tokio::test]
async fn an_over_long_uri_is_a_414_envelope() {
    let app = spawn_app().await;
    let filler = "a".repeat(MAX_URI_BYTES);
    let response = app.http.get(app.url(&format!("{USERS}?x={filler}"))).send().await.unwrap();
    let envelope = assert_envelope(response, 414).await;
    assert_eq!(envelope.error_code, types::ErrorCode::BadRequest);
    // Up to the limit, the URI is served.
    let filler = "a".repeat(MAX_URI_BYTES - USERS.len() - "?x=".len());
    let response = app.http.get(app.url(&format!("{USERS}?x={filler}"))).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn oversized_headers_are_a_431_envelope() {
    let app = spawn_app().await;
    let filler = "a".repeat(MAX_HEADER_BYTES);
    let response = app.http.get(app.url(USERS)).header("x-filler", filler).send().await.unwrap();
    let envelope = assert_envelope(response, 431).await;
    assert_eq!(envelope.error_code, types::ErrorCode::BadRequest);
    // Unauthenticated callers get the same answer: the limit is checked first.
    let response =
        app.anonymous.get(app.url(USERS)).header("x-filler", "a".repeat(MAX_HEADER_BYTES)).send();
    assert_envelope(response.await.unwrap(), 431).await;
}

#[tokio::test]
async fn idle_connections_past_the_soft_file_limit_lock_no_client_out() {
    bounded(async {
        let (soft, hard) = (256, 4096);
        let dir = tempfile::tempdir().unwrap();
        let server =
            binary::start_with(dir.path(), |command| binary::limit_open_files(command, soft, hard));
        assert!(
            server.stderr().contains(&format!("open file limit raised from {soft} to {hard}")),
            "{}",
            server.stderr()
        );
        let address = server.base_url.trim_start_matches("http://").to_string();
        // Twice the soft limit of connections that never send a byte, each accepted in turn.
        let mut idle = Vec::new();
        for _ in 0..2 * soft {
            idle.push(connect(&address).await);
        }
        let status = reqwest::get(server.url("/healthz")).await.expect("an answer").status();
        assert_eq!(status.as_u16(), 200);
    })
    .await;
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_closed_after_the_first_byte_timeout() {
    bounded(async {
        let timeout_ms = 300;
        let app = spawn_app_with(|config| config.first_byte_timeout_ms = timeout_ms).await;
        let address = app.base_url.trim_start_matches("http://").to_string();
        let connected = Instant::now();
        let mut silent = connect(&address).await;
        // One that speaks at once is served, before and after the silent one is closed.
        let list = app.http.get(app.url(USERS)).send().await.unwrap();
        assert_eq!(list.status().as_u16(), 200);
        let mut rest = Vec::new();
        silent.read_to_end(&mut rest).await.expect("closed cleanly");
        assert!(rest.is_empty(), "no answer to nothing");
        // Not before its time, give or take the kernel's clock tick (up to 10 ms), in which it
        // counts how long a connection has been silent.
        let elapsed = connected.elapsed();
        assert!(elapsed >= Duration::from_millis(timeout_ms - 20), "closed after {elapsed:?}");
        let list = app.http.get(app.url(USERS)).send().await.unwrap();
        assert_eq!(list.status().as_u16(), 200);
    })
    .await;
}

#[tokio::test]
async fn past_the_connection_cap_silent_connections_go_at_once_and_it_is_logged() {
    bounded(async {
        let cap = 4;
        // A first-byte timeout the test never reaches: only the cap can close them.
        let app = spawn_app_with(|config| {
            config.max_connections = cap;
            config.first_byte_timeout_ms = 600_000;
        })
        .await;
        let address = app.base_url.trim_start_matches("http://").to_string();
        let mut silent = Vec::new();
        for _ in 0..2 * cap {
            silent.push(connect(&address).await);
        }
        for stream in &mut silent {
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.expect("closed cleanly");
        }
        let list = app.http.get(app.url(USERS)).send().await.unwrap();
        assert_eq!(list.status().as_u16(), 200, "a client that talks is served");
        // The watcher logs once it has closed them, so the lines may trail the closing.
        wait_for_log(&app, &format!("connection cap ({cap}) reached")).await;
        wait_for_log(&app, "that sent nothing over the connection cap").await;
    })
    .await;
}

/// Sends `GET /healthz` on `stream` and reads its answer, which must be a 200.
async fn healthz(stream: &mut TcpStream, address: &str) {
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request sent");
    let (status, body) = read_answer(stream).await;
    assert_eq!(status, 200, "{body}");
}

/// Reads `stream` to its end, which must come without a byte, and says how long after
/// `since` it came. It must come well before hyper's own 30 s would have closed the
/// connection (for a test that waits for it, a watcher that misses the connection).
async fn closed_without_answer(stream: &mut TcpStream, since: Instant) -> Duration {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.expect("closed cleanly");
    let elapsed = since.elapsed();
    assert!(rest.is_empty(), "no answer: {}", String::from_utf8_lossy(&rest));
    assert!(elapsed < Duration::from_secs(10), "closed after {elapsed:?}");
    elapsed
}

/// Waits (a few seconds at most) until the server of `app` has logged `line`: the watcher
/// logs after the pass that closed a connection has ended.
async fn wait_for_log(app: &TestApp, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = app.log();
        if log.contains(line) {
            return;
        }
        assert!(Instant::now() < deadline, "no line {line:?} in {log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    bounded(async {
        let timeout_ms = 500;
        let app = spawn_app_with(|config| config.idle_timeout_ms = timeout_ms).await;
        let address = app.base_url.trim_start_matches("http://").to_string();
        let mut stream = connect(&address).await;
        healthz(&mut stream, &address).await;
        let answered = Instant::now();
        let elapsed = closed_without_answer(&mut stream, answered).await;
        // Not before its time, give or take the kernel's clock tick.
        assert!(elapsed >= Duration::from_millis(timeout_ms - 20), "closed after {elapsed:?}");
        wait_for_log(&app, &format!("no next request within {timeout_ms} ms")).await;
    })
    .await;
}

#[tokio::test]
async fn a_request_head_that_stalls_half_way_is_closed_after_the_header_timeout() {
    bounded(async {
        let timeout_ms = 600;
        // A shorter first-byte timeout: the stalled head is judged by the header timeout.
        let app = spawn_app_with(|config| {
            config.header_timeout_ms = timeout_ms;
            config.first_byte_timeout_ms = 200;
        })
        .await;
        let address = app.base_url.trim_start_matches("http://").to_string();
        let mut stream = connect(&address).await;
        let head = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nAccept:");
        stream.write_all(head.as_bytes()).await.expect("half a head sent");
        let stalled = Instant::now();
        let elapsed = closed_without_answer(&mut stream, stalled).await;
        assert!(elapsed >= Duration::from_millis(timeout_ms - 20), "closed after {elapsed:?}");
        wait_for_log(&app, &format!("nothing received for {timeout_ms} ms")).await;
    })
    .await;
}

#[tokio::test]
async fn a_connection_that_asks_less_often_than_the_idle_timeout_stays_open() {
    bounded(async {
        let (short_ms, idle_ms) = (150, 1500);
        let app = spawn_app_with(|config| {
            config.first_byte_timeout_ms = short_ms;
            config.header_timeout_ms = short_ms;
            config.idle_timeout_ms = idle_ms;
        })
        .await;
        let address = app.base_url.trim_start_matches("http://").to_string();
        let mut stream = connect(&address).await;
        // A client that pauses between requests for longer than the first-byte and header
        // timeouts, but less than the idle timeout, for longer in all than the idle timeout:
        // the pauses are the client's behaviour under test, not synchronisation.
        let pause = Duration::from_millis(3 * short_ms);
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2 * idle_ms) {
            healthz(&mut stream, &address).await;
            tokio::time::sleep(pause).await;
        }
        healthz(&mut stream, &address).await;
    })
    .await;
}
