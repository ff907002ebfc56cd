//! The test-control API, deterministic mode and the per-request log lines.

use std::time::Instant;

use privx_mock::clock::Clock;
use privx_mock::config::LogFormat;
use serde_json::{json, Value};

use crate::helpers::{assert_envelope, spawn, spawn_app, TestApp, ADMIN};

const CONTROL: &str = "/test-control/api/v1";
const USERS: &str = "/local-user-store/api/v1/users";

fn example_fixtures() -> Value {
    let text = std::fs::read_to_string(crate::helpers::repo_path("tests/fixtures/example.json"));
    serde_json::from_str(&text.unwrap()).unwrap()
}

async fn controlled() -> TestApp {
    spawn(Some(example_fixtures()), |config| config.test_control = true).await
}

async fn usernames(app: &TestApp) -> Vec<String> {
    let (_, list) = app.call("GET", &format!("{USERS}?limit=1000"), None).await;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> =
        items.iter().map(|u| u["username"].as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_test_control_api_is_off_by_default() {
    let app = spawn_app().await;
    let response = app.http.get(app.url(&format!("{CONTROL}/state"))).send().await.unwrap();
    let envelope = assert_envelope(response, 404).await;
    assert!(envelope.error_message.unwrap().contains("--test-control"));
}

#[tokio::test]
async fn reset_to_empty_or_to_the_start_fixtures_and_load_more() {
    let app = controlled().await;
    assert_eq!(app.create_user_raw("extra".into()).await, 201);
    assert_eq!(usernames(&app).await, ["alice", "bob", "extra"]);

    let (status, _) =
        app.call("POST", &format!("{CONTROL}/state/reset"), Some(json!({"to": "fixtures"}))).await;
    assert_eq!(status, 200);
    assert_eq!(usernames(&app).await, ["alice", "bob"]);

    app.call("POST", &format!("{CONTROL}/state/reset"), Some(json!({"to": "empty"}))).await;
    assert!(usernames(&app).await.is_empty());
    let (_, listeners) = app.call("GET", "/extender-service/api/v1/listeners", None).await;
    assert_eq!(listeners["count"], 0);
    assert_eq!(
        app.password_grant(ADMIN.0, ADMIN.1).await.status().as_u16(),
        200,
        "the admin stays"
    );

    let more =
        json!({"users": [{"id": "00000000-0000-4000-8000-0000000000c1", "username": "carol"}]});
    let (status, _) = app.call("POST", &format!("{CONTROL}/state/fixtures"), Some(more)).await;
    assert_eq!(status, 200);
    assert_eq!(usernames(&app).await, ["carol"]);
    let bad = json!({"users": [{"nope": 1}]});
    let (status, _) = app.call("POST", &format!("{CONTROL}/state/fixtures"), Some(bad)).await;
    assert_eq!(status, 400, "a fixtures document that does not parse");
}

#[tokio::test]
async fn export_answers_the_whole_state_in_the_fixtures_format() {
    let app = controlled().await;
    let (status, state) = app.call("GET", &format!("{CONTROL}/state"), None).await;
    assert_eq!(status, 200);
    crate::helpers::assert_matches_spec("state_export", 200, &state);
    let names: Vec<&str> = state["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(state["webauthn_credentials"].as_array().unwrap().len(), 1);
    assert_eq!(state["connections"].as_array().unwrap().len(), 1);
    assert!(state["users"][0]["password_hash"].as_str().unwrap().starts_with("$argon2id$"));

    // What an export says, a reset and a load bring back.
    app.call("POST", &format!("{CONTROL}/state/reset"), Some(json!({"to": "empty"}))).await;
    app.call("POST", &format!("{CONTROL}/state/fixtures"), Some(state.clone())).await;
    let (_, again) = app.call("GET", &format!("{CONTROL}/state"), None).await;
    assert_eq!(again["users"], state["users"]);
}

#[tokio::test]
async fn the_journal_lists_requests_without_their_bodies() {
    let app = controlled().await;
    app.call("DELETE", &format!("{CONTROL}/journal"), None).await;
    let body = json!({"username": "dana", "password": {"password": "Journal-Secret-1"}});
    app.call("POST", USERS, Some(body)).await;
    app.call("GET", &format!("{USERS}?username=dana"), None).await;
    app.call("GET", &format!("{USERS}/{}", uuid::Uuid::new_v4()), None).await;
    app.anonymous.get(app.url(USERS)).send().await.unwrap();

    let (status, journal) = app.call("GET", &format!("{CONTROL}/journal?path={USERS}"), None).await;
    assert_eq!(status, 200);
    crate::helpers::assert_matches_spec("journal_list", 200, &journal);
    let items = journal["items"].as_array().unwrap();
    let seen: Vec<(String, u64)> = items
        .iter()
        .map(|e| (e["method"].as_str().unwrap().to_string(), e["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [("GET".into(), 401), ("GET".into(), 404), ("GET".into(), 200), ("POST".into(), 201)],
        "newest first"
    );
    let list = &items[2];
    assert_eq!(list["query"], "username=dana");
    assert!(list["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(list["subject"].is_string(), "the caller of an authorized request");
    assert!(items[0].get("subject").is_none(), "no subject without a valid token");
    assert!(!journal.to_string().contains("Journal-Secret-1"));

    let (_, not_found) = app.call("GET", &format!("{CONTROL}/journal?status=404"), None).await;
    assert_eq!(not_found["count"], 1);
    let (_, newest) =
        app.call("GET", &format!("{CONTROL}/journal?path={USERS}&limit=1"), None).await;
    assert_eq!(newest["count"], 4, "all that match are counted");
    assert_eq!(newest["items"], json!([items[0]]));
}

/// Requests the router takes and the few dropshot answers before any endpoint runs (a path that
/// does not decode, a method no endpoint has) reach the journal by two ways: each request must
/// have exactly one entry.
#[tokio::test]
async fn every_request_has_one_journal_entry_whoever_answered_it() {
    let app = controlled().await;
    app.call("DELETE", &format!("{CONTROL}/journal"), None).await;
    let long = format!("{USERS}?username={}", "a".repeat(privx_mock::api::MAX_URI_BYTES));
    let undecodable = format!("{USERS}/%FF%FE");
    // Method, path, status, and whether the entry names the caller.
    let sent = [
        ("GET", USERS.to_string(), 200, true),
        ("HEAD", USERS.to_string(), 405, false),
        ("GET", "/healthz".to_string(), 200, false),
        ("GET", "/no/such/path".to_string(), 404, false),
        ("GET", long, 414, false),
        ("GET", undecodable.clone(), 400, false),
        ("PROPFIND", USERS.to_string(), 405, false),
    ];
    let mut ids = Vec::new();
    for (method, path, status, _) in &sent {
        let request = app.http.request(method.parse().unwrap(), app.url(path));
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), *status, "{method} {path}");
        ids.push(response.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    // A request target in absolute form, which dropshot logs whole: the entry has its path.
    let (id, status) = absolute_form_get(&app, &undecodable).await;
    assert_eq!(status, 400);
    let sent = [sent.as_slice(), &[("GET", undecodable, 400, false)]].concat();
    ids.push(id);

    let (_, journal) = app.call("GET", &format!("{CONTROL}/journal"), None).await;
    assert_eq!(journal["count"], sent.len() + 1, "these and the clearing request: {journal}");
    let items = journal["items"].as_array().unwrap();
    for ((method, path, status, named), id) in sent.iter().zip(&ids) {
        let entry = items.iter().find(|e| e["request_id"] == id.as_str()).expect("an entry");
        let (path, query) =
            path.split_once('?').map_or((path.as_str(), None), |(p, q)| (p, Some(q)));
        assert_eq!(
            (&entry["method"], &entry["path"], &entry["status"], entry.get("query")),
            (&json!(method), &json!(path), &json!(status), query.map(|q| json!(q)).as_ref()),
            "{method} {path}"
        );
        assert_eq!(entry.get("subject").is_some(), *named, "{entry}");
    }
}

/// Sends `GET http://ADDRESS{path}` (the absolute form of a request target) on a connection of
/// its own; answers the request id and status.
async fn absolute_form_get(app: &TestApp, path: &str) -> (String, u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = app.url(path);
    let address = url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!("GET {url} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let id = answer
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-request-id: ").map(str::to_string))
        .expect("a request id");
    (id, status)
}

/// A full journal writes each new entry over the oldest one's buffers: nothing of the old entry
/// (its query, its subject) may show in the new one.
#[tokio::test]
async fn a_full_journal_records_each_new_request_whole() {
    use privx_mock::http::journal::JOURNAL_CAPACITY;
    let app = controlled().await;
    // Three kinds in turn, so every entry is written over one of another kind: with a query
    // and a subject, without either, and with a subject only.
    let sent: Vec<(String, Option<String>, bool)> = (0..JOURNAL_CAPACITY + 10)
        .map(|i| match i % 3 {
            0 => (USERS.to_string(), Some(format!("offset={i}&limit=1")), true),
            1 => (format!("{USERS}/{}", uuid::Uuid::new_v4()), None, false),
            _ => (format!("{USERS}/{}", uuid::Uuid::new_v4()), None, true),
        })
        .collect();
    for (path, query, authorized) in &sent {
        let url = app.url(&match query {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        });
        let client = if *authorized { &app.http } else { &app.anonymous };
        client.get(url).send().await.unwrap();
    }

    let limit = JOURNAL_CAPACITY;
    let (status, journal) =
        app.call("GET", &format!("{CONTROL}/journal?limit={limit}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(journal["count"], JOURNAL_CAPACITY);
    let items = journal["items"].as_array().unwrap();
    let mut ids = std::collections::HashSet::new();
    for (item, (path, query, authorized)) in items.iter().zip(sent.iter().rev()) {
        assert_eq!(item["path"], path.as_str());
        assert_eq!(item.get("query").and_then(Value::as_str), query.as_deref(), "{item}");
        assert_eq!(item.get("subject").is_some(), *authorized, "{item}");
        assert!(ids.insert(item["request_id"].as_str().unwrap().to_string()), "{item}");
    }
}

#[tokio::test]
async fn injected_faults_delay_or_fail_calls_until_used_up_or_cleared() {
    let app = controlled().await;
    let fault = json!({"status": 503, "error_code": "MAX_LOAD", "count": 2});
    let (status, _) = app.call("PUT", &format!("{CONTROL}/faults/user_list"), Some(fault)).await;
    assert_eq!(status, 200);
    for _ in 0..2 {
        let response = app.http.get(app.url(USERS)).send().await.unwrap();
        let envelope = assert_envelope(response, 503).await;
        assert_eq!(envelope.error_code, privx_mock::client::types::ErrorCode::MaxLoad);
    }
    assert_eq!(app.call("GET", USERS, None).await.0, 200, "used up after two calls");

    let slow = json!({"latency_ms": 300});
    app.call("PUT", &format!("{CONTROL}/faults/user_view"), Some(slow)).await;
    let (_, faults) = app.call("GET", &format!("{CONTROL}/faults"), None).await;
    assert_eq!(faults["items"][0]["operation_id"], "user_view");
    let start = Instant::now();
    let alice = "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001";
    assert_eq!(app.call("GET", &format!("{USERS}/{alice}"), None).await.0, 200);
    assert!(start.elapsed().as_millis() >= 300, "the call waited the injected latency");
    app.call("DELETE", &format!("{CONTROL}/faults/user_view"), None).await;
    let (_, faults) = app.call("GET", &format!("{CONTROL}/faults"), None).await;
    assert_eq!(faults["items"], json!([]));

    for (op, fault, status) in [
        ("no_such_operation", json!({"status": 500}), 404),
        ("user_list", json!({"status": 200}), 400),
        ("user_list", json!({"latency_ms": -1}), 400),
        ("user_list", json!({}), 400),
    ] {
        let (got, _) =
            app.call("PUT", &format!("{CONTROL}/faults/{op}"), Some(fault.clone())).await;
        assert_eq!(got, status, "{op} {fault}");
    }
}

/// The same requests, in the same order, to two servers with the same seed.
async fn scripted_session(seed: u64) -> Vec<String> {
    // Listener addresses are in the answers: the sessions take theirs from a range no other
    // test uses, each one's port free again when it stops.
    let app = spawn(None, |config| {
        config.clock = Clock::deterministic(seed);
        config.relay.ports = 41000..=41099;
    })
    .await;
    let mut bodies = Vec::new();
    let token = app.password_grant(ADMIN.0, ADMIN.1).await.text().await.unwrap();
    bodies.push(token);
    for (method, path, body) in [
        ("POST", USERS.to_string(), Some(json!({"username": "ann", "tags": ["a"]}))),
        ("POST", USERS.to_string(), Some(json!({"username": "ben"}))),
        ("GET", USERS.to_string(), None),
        (
            "POST",
            "/extender-service/api/v1/listeners".to_string(),
            Some(json!({"network": "tcp", "destination": "e/d:1"})),
        ),
        ("GET", "/extender-service/api/v1/listeners".to_string(), None),
        ("GET", format!("{USERS}/tags"), None),
    ] {
        let mut request = app.http.request(method.parse().unwrap(), app.url(&path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        bodies.push(request.send().await.unwrap().text().await.unwrap());
    }
    app.stop().await;
    bodies
}

#[tokio::test]
async fn deterministic_mode_gives_byte_identical_answers() {
    let first = scripted_session(7).await;
    let second = scripted_session(7).await;
    assert_eq!(first, second);
    assert!(
        first[3].contains("\"created\":\"2024-01-01T00:00:07"),
        "the clock follows the seed: {}",
        first[3]
    );
    let other = scripted_session(8).await;
    assert_ne!(first[1], other[1], "another seed, other ids");
}

#[tokio::test]
async fn every_request_gets_one_json_log_line() {
    let app = spawn(None, |config| config.log_format = LogFormat::Json).await;
    app.create_user_raw("logged".into()).await;
    app.anonymous.get(app.url("/no/such/path")).send().await.unwrap();
    let undecodable = format!("{USERS}/%FF%FE");
    app.anonymous.get(app.url(&undecodable)).send().await.unwrap();
    let lines: Vec<Value> = app
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &Value| line["message"] == "request")
        .collect();
    let one = |method: &str, path: &str| {
        let mut found = lines.iter().filter(|l| l["method"] == method && l["path"] == path);
        let line = found.next().unwrap_or_else(|| panic!("a line for {method} {path}"));
        assert!(found.next().is_none(), "one line for {method} {path}");
        line
    };
    let create = one("POST", USERS);
    assert_eq!(create["status"], 201);
    assert!(create["request_id"].is_string() && create["latency_ms"].is_number());
    assert!(create["subject"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    let routed = one("GET", "/no/such/path");
    assert_eq!((routed["status"].as_u64(), routed["subject"].as_str()), (Some(404), Some("-")));
    // Answered by dropshot before any endpoint ran.
    assert_eq!(one("GET", &undecodable)["status"], 400);
}
