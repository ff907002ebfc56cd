//! Connections: the connection-manager read API (list, view, search), termination observed
//! through it, the user's own-connections rule, staging through the test-control API,
//! restarts and deterministic mode.

use chrono::{DateTime, Duration, Utc};
use privx_mock::client::types;
use privx_mock::clock::Clock;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{
    api_error, assert_envelope, bearer_client, skip_on_postgres, spawn, TestApp, ADMIN,
};

const C1: &str = "c0000000-0000-4000-8000-000000000001";
const C2: &str = "c0000000-0000-4000-8000-000000000002";
const C3: &str = "c0000000-0000-4000-8000-000000000003";
const C4: &str = "c0000000-0000-4000-8000-000000000004";
const HOST_A: &str = "a0000000-0000-4000-8000-00000000000a";
const HOST_B: &str = "a0000000-0000-4000-8000-00000000000b";
const ALICE: &str = "e0000000-0000-4000-8000-00000000000e";
const BOB: &str = "e0000000-0000-4000-8000-00000000000f";
const CONNECTIONS: &str = "/connection-manager/api/v1/connections";
const SEARCH: &str = "/connection-manager/api/v1/connections/search";
const STAGE: &str = "/test-control/api/v1/connections";

/// Alice on host A over SSH (C1), Bob on host A over RDP (C2), Bob on host B (C3), and an
/// ended session of Alice on host B (C4).
fn world() -> Value {
    json!({
        "users": [{"id": ALICE, "username": "alice", "password": "alice-password-1"},
                  {"id": BOB, "username": "bob", "password": "bob-password-1"}],
        "connections": [
            {"id": C1, "type": "SSH", "user": {"id": ALICE, "display_name": "Alice A"},
             "target_host": {"id": HOST_A, "common_name": "db.internal"},
             "target_host_address": "10.0.0.5", "target_host_account": "postgres",
             "remote_address": "192.168.1.10", "connected": "2024-05-01T10:00:00Z",
             "last_activity": "2024-05-01T10:30:00Z", "bytes_in": 300, "bytes_out": 10},
            {"id": C2, "type": "RDP", "mode": "PROXY", "proxy_id": "proxy-1",
             "user": {"id": BOB, "display_name": "Bob B"},
             "target_host": {"id": HOST_A, "common_name": "db.internal"},
             "remote_address": "192.168.1.11", "connected": "2024-05-01T12:00:00Z",
             "bytes_in": 100, "bytes_out": 30},
            {"id": C3, "user": {"id": BOB, "display_name": "Bob B"},
             "target_host": {"id": HOST_B, "common_name": "web.internal"},
             "connected": "2024-05-01T11:00:00Z", "bytes_in": 200, "bytes_out": 20},
            {"id": C4, "user": {"id": ALICE, "display_name": "Alice A"},
             "target_host": {"id": HOST_B, "common_name": "web.internal"},
             "status": "DISCONNECTED", "connected": "2024-04-30T08:00:00Z",
             "disconnected": "2024-04-30T09:00:00Z", "duration": 3600},
        ],
    })
}

/// The termination delay of these tests: long enough that a test's own run time never
/// passes it, so only `advance_clock` does.
const DELAY_MS: u64 = 60_000;

async fn app() -> TestApp {
    spawn(Some(world()), |config| {
        config.test_control = true;
        config.termination_delay_ms = DELAY_MS;
    })
    .await
}

async fn get(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, Value) {
    let response = client.get(app.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// The ids of a listing's items, in order.
fn ids(listing: &Value) -> Vec<&str> {
    listing["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect()
}

async fn search(app: &TestApp, query: &str, body: Value) -> Value {
    let (status, listing) = app.call("POST", &format!("{SEARCH}{query}"), Some(body)).await;
    assert_eq!(status, 200, "{listing}");
    listing
}

async fn view(app: &TestApp, id: &str) -> Value {
    let (status, connection) = app.call("GET", &format!("{CONNECTIONS}/{id}"), None).await;
    assert_eq!(status, 200, "{connection}");
    connection
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().expect("a time").parse().expect("RFC 3339")
}

async fn terminate(app: &TestApp, what: &str, id: &str, body: &str) {
    let url = app.url(&format!("/connection-manager/api/v1/terminate/{what}/{id}"));
    let request = app.http.post(url).header("content-type", "application/json");
    let response = request.body(body.to_string()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "terminate {what} {id}");
}

#[tokio::test]
async fn list_pages_and_sorts_and_counts_exactly() {
    let app = app().await;
    let (status, all) = app.call("GET", &format!("{CONNECTIONS}?fuzzycount=true"), None).await;
    assert_eq!(status, 200);
    assert_eq!(all["count"], 4);
    assert_eq!(ids(&all), [C4, C1, C3, C2], "by connected, ascending, by default");
    for (query, expected) in [
        ("sortkey=connected&sortdir=DESC", vec![C2, C3, C1, C4]),
        ("sortkey=bytes_in&sortdir=desc", vec![C1, C3, C2, C4]),
        ("sortkey=type&sortdir=ASC", vec![C2, C1, C3, C4]),
        ("sortkey=id", vec![C1, C2, C3, C4]),
        ("sortkey=user&offset=1&limit=2", vec![C4, C2]),
        ("offset=3&limit=5", vec![C2]),
        ("offset=9", vec![]),
        ("limit=0", vec![]),
    ] {
        let (status, page) = app.call("GET", &format!("{CONNECTIONS}?{query}"), None).await;
        assert_eq!((status, ids(&page)), (200, expected), "{query}");
        assert_eq!(page["count"], 4, "{query}: the count is of every match");
    }
    let (status, _) = app.call("GET", &format!("{CONNECTIONS}?sortkey=nope"), None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn view_answers_the_whole_connection_and_unknown_ids_are_404() {
    let app = app().await;
    let connection =
        app.client.connection_view().connection_id(C1.parse::<Uuid>().unwrap()).send().await;
    let connection = connection.unwrap().into_inner();
    assert_eq!(connection.type_, "SSH");
    assert_eq!(connection.mode, "UI", "the default mode");
    assert_eq!(connection.status, types::ConnectionStatus::Connected);
    assert_eq!(connection.target_host.id.to_string(), HOST_A);
    assert_eq!(connection.user.id.to_string(), ALICE);
    assert_eq!((connection.bytes_in, connection.bytes_out), (300, 10));
    assert_eq!(connection.disconnected, None);
    let ended = view(&app, C4).await;
    assert_eq!((&ended["status"], &ended["duration"]), (&json!("DISCONNECTED"), &json!(3600)));
    let unknown = app.client.connection_view().connection_id(Uuid::new_v4()).send().await;
    assert_eq!(api_error(unknown).0, 404);
    let (status, _) = app.call("GET", &format!("{CONNECTIONS}/not-a-uuid"), None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn search_applies_every_criterion_and_pages_like_the_list() {
    let app = app().await;
    let cases = [
        (json!({}), vec![C4, C1, C3, C2]),
        (json!({"id": [C1, C3]}), vec![C1, C3]),
        (json!({"user_id": [BOB]}), vec![C3, C2]),
        (json!({"target_host_id": [HOST_B]}), vec![C4, C3]),
        (json!({"type": ["RDP"]}), vec![C2]),
        (json!({"mode": ["UI"]}), vec![C4, C1, C3]),
        (json!({"proxy_id": ["proxy-1"]}), vec![C2]),
        (json!({"status": ["DISCONNECTED"]}), vec![C4]),
        (json!({"status": ["CONNECTED"], "user_id": [ALICE]}), vec![C1]),
        (json!({"user_display_name": ["Alice A"]}), vec![C4, C1]),
        (json!({"target_host_common_name": ["web.internal"]}), vec![C4, C3]),
        (json!({"target_host_address": ["10.0.0.5"]}), vec![C1]),
        (json!({"target_host_account": ["postgres"]}), vec![C1]),
        (json!({"remote_address": ["192.168.1.11"]}), vec![C2]),
        (json!({"connected": {"start": "2024-05-01T11:00:00Z"}}), vec![C3, C2]),
        (
            json!({"connected": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T11:00:00Z"}}),
            vec![C1, C3],
        ),
        (json!({"disconnected": {"end": "2024-12-31T00:00:00Z"}}), vec![C4]),
        (json!({"last_activity": {"start": "2024-05-01T00:00:00Z"}}), vec![C1]),
        (json!({"keywords": "POSTGRES nothing"}), vec![C1]),
        (json!({"keywords": "web"}), vec![C4, C3]),
        (json!({"keywords": "   "}), vec![C4, C1, C3, C2]),
        (json!({"user_id": []}), vec![C4, C1, C3, C2]),
        (json!({"keywords": null, "type": null, "connected": null}), vec![C4, C1, C3, C2]),
        (json!({"id": [C1], "type": ["RDP"]}), vec![]),
    ];
    for (body, expected) in cases {
        let found = search(&app, "", body.clone()).await;
        assert_eq!(ids(&found), expected, "{body}");
        assert_eq!(found["count"], expected.len(), "{body}");
    }
    let page = search(&app, "?sortkey=bytes_out&sortdir=DESC&offset=1&limit=1", json!({})).await;
    assert_eq!((ids(&page), &page["count"]), (vec![C3], &json!(4)));
    let bad_bodies = [
        json!({"id": ["nope"]}),
        json!({"status": ["GONE"]}),
        json!([]),
        json!({"connected": [null, null]}),
        json!({"connected": {"start": "yesterday"}}),
    ];
    for bad in bad_bodies {
        let (status, _) = app.call("POST", SEARCH, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}");
    }
}

/// A connection as it is after termination, checked field by field against the request.
fn assert_terminating(connection: &Value, reason: Option<&str>, requested: DateTime<Utc>) {
    assert_eq!(connection["status"], "TERMINATING", "{connection}");
    let forced = time(&connection["force_disconnect"]);
    assert!((forced - requested).num_seconds().abs() < 60, "{connection}");
    assert_eq!(connection["termination_reason"].as_str(), reason);
    assert!(connection.get("disconnected").is_none() && connection.get("duration").is_none());
}

#[tokio::test]
async fn terminating_by_id_goes_through_terminating_to_terminated_after_the_delay() {
    let app = app().await;
    let before = Utc::now();
    terminate(&app, "connection", C1, "\"Terminated by the security team\"").await;
    let terminating = view(&app, C1).await;
    assert_terminating(&terminating, Some("Terminated by the security team"), before);
    assert_ne!(terminating["updated_by"], terminating["author"], "the terminating admin");

    app.advance_clock(Duration::seconds(59));
    assert_eq!(view(&app, C1).await["status"], "TERMINATING", "the delay has not passed");
    app.advance_clock(Duration::seconds(1));
    let terminated = view(&app, C1).await;
    assert_eq!(terminated["status"], "TERMINATED");
    let forced = time(&terminated["force_disconnect"]);
    let disconnected = time(&terminated["disconnected"]);
    assert_eq!(disconnected - forced, Duration::seconds(60), "exactly the delay");
    let lasted = (disconnected - time(&terminated["connected"])).num_seconds();
    assert_eq!(terminated["duration"], lasted);

    // Terminating again, or an ended connection, changes nothing.
    terminate(&app, "connection", C1, "\"again\"").await;
    terminate(&app, "connection", C4, "").await;
    assert_eq!(view(&app, C1).await, terminated);
    assert_eq!(view(&app, C4).await["status"], "DISCONNECTED");
    let others = search(&app, "", json!({"status": ["CONNECTED"]})).await;
    assert_eq!(ids(&others), [C3, C2]);

    let unknown = app
        .client
        .connection_terminate()
        .connection_id(Uuid::new_v4())
        .body(types::TerminateRequest(Value::Null))
        .send()
        .await;
    assert_eq!(api_error(unknown).0, 404);
}

#[tokio::test]
async fn terminating_by_host_or_user_changes_exactly_their_connections() {
    let app = app().await;
    terminate(&app, "host", HOST_A, r#"{"reason": "host maintenance"}"#).await;
    terminate(&app, "host", &Uuid::new_v4().to_string(), "").await;
    let terminating = search(&app, "", json!({"status": ["TERMINATING"]})).await;
    assert_eq!(ids(&terminating), [C1, C2]);
    for connection in terminating["items"].as_array().unwrap() {
        assert_terminating(connection, Some("host maintenance"), Utc::now());
    }
    assert_eq!(ids(&search(&app, "", json!({"status": ["CONNECTED"]})).await), [C3]);

    let app = self::app().await;
    terminate(&app, "user", BOB, r#"{"termination_reason": "left"}"#).await;
    terminate(&app, "user", &Uuid::new_v4().to_string(), "").await;
    let terminating = search(&app, "", json!({"status": ["TERMINATING"]})).await;
    assert_eq!(ids(&terminating), [C3, C2]);
    assert_eq!(terminating["items"][0]["termination_reason"], "left");
    app.advance_clock(Duration::seconds(60));
    let terminated = search(&app, "", json!({"status": ["TERMINATED"]})).await;
    assert_eq!(ids(&terminated), [C3, C2]);
    let (_, alice) = app.call("POST", SEARCH, Some(json!({"user_id": [ALICE]}))).await;
    assert_eq!(alice["items"][1]["status"], "CONNECTED", "{alice}");
}

/// Every body the SDKs and the page send is accepted; a JSON string is the reason.
#[tokio::test]
async fn every_terminate_body_the_sdks_send_is_accepted() {
    let app = app().await;
    let url = app.url(&format!("/connection-manager/api/v1/terminate/connection/{C2}"));
    for body in ["", "\"string\"", "{\"reason\": \"done\"}", "null", "{\"reason\": 5}"] {
        let request = app.http.post(&url).header("content-type", "application/json");
        let response = request.body(body).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "body {body:?}");
    }
    let bare = app.http.post(&url).send().await.unwrap();
    assert_eq!(bare.status().as_u16(), 200, "no body and no content type");
    let terminated = view(&app, C2).await;
    assert!(
        terminated.get("termination_reason").is_none(),
        "the first (bodiless) request ended it"
    );
}

#[tokio::test]
async fn a_user_sees_only_their_own_connections() {
    let app = app().await;
    let alice = bearer_client(&app.token("alice", "alice-password-1").await);
    let (status, own) = get(&app, &alice, CONNECTIONS).await;
    assert_eq!((status, ids(&own), &own["count"]), (200, vec![C4, C1], &json!(2)));
    let response = alice.post(app.url(SEARCH)).json(&json!({"user_id": [BOB]})).send().await;
    let found: Value = response.unwrap().json().await.unwrap();
    assert_eq!((ids(&found), &found["count"]), (vec![], &json!(0)), "no one else's");
    assert_eq!(get(&app, &alice, &format!("{CONNECTIONS}/{C1}")).await.0, 200);
    let response = alice.get(app.url(&format!("{CONNECTIONS}/{C2}"))).send().await.unwrap();
    assert_envelope(response, 404).await;
    // A user may not terminate, an admin sees all.
    let url = app.url(&format!("/connection-manager/api/v1/terminate/connection/{C1}"));
    assert_envelope(alice.post(url).send().await.unwrap(), 403).await;
    let (_, all) = app.call("GET", CONNECTIONS, None).await;
    assert_eq!(all["count"], 4);
}

#[tokio::test]
async fn staged_connections_are_read_and_terminated_like_the_others() {
    let app = app().await;
    let body = json!({"user": {"id": ALICE}, "target_host": {"id": HOST_B}, "type": "VNC"});
    let (status, staged) = app.call("POST", STAGE, Some(body)).await;
    assert_eq!(status, 200, "{staged}");
    let id = staged["id"].as_str().unwrap().to_string();
    assert_eq!((&staged["status"], &staged["mode"]), (&json!("CONNECTED"), &json!("UI")));
    assert_eq!(view(&app, &id).await, staged);
    let with_id = json!({"id": C1, "user": {"id": ALICE}, "target_host": {"id": HOST_B}});
    let (status, error) = app.call("POST", STAGE, Some(with_id)).await;
    assert_eq!((status, &error["error_code"]), (400, &json!("VALUE_DUPLICATE")));
    let (status, _) = app.call("POST", STAGE, Some(json!({"user": {"id": ALICE}}))).await;
    assert_eq!(status, 400, "target_host is required");
    let negative = json!({"user": {"id": ALICE}, "target_host": {"id": HOST_B}, "bytes_in": -1});
    let (status, error) = app.call("POST", STAGE, Some(negative)).await;
    assert_eq!((status, &error["property"]), (400, &json!("bytes_in")), "{error}");
    terminate(&app, "host", HOST_B, "").await;
    let found = search(&app, "", json!({"type": ["VNC"], "status": ["TERMINATING"]})).await;
    assert_eq!(ids(&found), [id.as_str()]);
}

#[tokio::test]
async fn the_old_fixtures_form_still_loads_and_states_survive_a_restart() {
    let fixtures = json!({"connections": [
        {"id": C1, "host_id": HOST_A, "user_id": ALICE},
        {"id": C2, "host_id": HOST_A, "user_id": BOB, "terminated": true,
         "terminated_at": "2024-05-01T10:00:00Z"},
    ]});
    let mut app = spawn(Some(fixtures), |config| config.termination_delay_ms = DELAY_MS).await;
    let old = view(&app, C1).await;
    assert_eq!((&old["type"], &old["status"]), (&json!("SSH"), &json!("CONNECTED")));
    assert_eq!((&old["user"]["id"], &old["target_host"]["id"]), (&json!(ALICE), &json!(HOST_A)));
    let flagged = view(&app, C2).await;
    assert_eq!(flagged["status"], "TERMINATED");
    assert_eq!(flagged["disconnected"], "2024-05-01T10:00:00Z");

    terminate(&app, "user", ALICE, "\"bye\"").await;
    app.restart().await;
    assert_eq!(view(&app, C1).await["status"], "TERMINATING", "durable before the 200");
    app.advance_clock(Duration::seconds(60));
    app.restart().await;
    let terminated = view(&app, C1).await;
    assert_eq!(
        (&terminated["status"], &terminated["termination_reason"]),
        (&json!("TERMINATED"), &json!("bye"))
    );
    assert_eq!(view(&app, C2).await, flagged);
}

/// The same requests to two servers with the same seed: stage, terminate, view before and
/// after the delay, list and search.
async fn scripted_session(seed: u64) -> Vec<String> {
    let app = spawn(Some(world()), |config| {
        config.clock = Clock::deterministic(seed);
        config.test_control = true;
        config.termination_delay_ms = DELAY_MS;
    })
    .await;
    let token = app.password_grant(ADMIN.0, ADMIN.1).await.json::<Value>().await.unwrap();
    let admin = bearer_client(token["access_token"].as_str().unwrap());
    let send = |method: &str, path: String, body: Option<Value>| {
        let mut request = admin.request(method.parse().unwrap(), app.url(&path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let stage = json!({"user": {"id": BOB}, "target_host": {"id": HOST_B}});
    let c3 = format!("{CONNECTIONS}/{C3}");
    let mut bodies = vec![
        send("POST", STAGE.to_string(), Some(stage)).await,
        send("POST", format!("/connection-manager/api/v1/terminate/host/{HOST_B}"), None).await,
        send("GET", c3.clone(), None).await,
    ];
    app.advance_clock(Duration::seconds(60));
    bodies.push(send("GET", c3, None).await);
    bodies.push(send("GET", CONNECTIONS.to_string(), None).await);
    let terminated = json!({"status": ["TERMINATED"]});
    bodies.push(send("POST", SEARCH.to_string(), Some(terminated)).await);
    bodies
}

#[tokio::test]
async fn deterministic_mode_gives_byte_identical_bodies() {
    let first = scripted_session(11).await;
    assert_eq!(first, scripted_session(11).await);
    let before: Value = serde_json::from_str(&first[2]).unwrap();
    let after: Value = serde_json::from_str(&first[3]).unwrap();
    assert_eq!(
        (&before["status"], &after["status"]),
        (&json!("TERMINATING"), &json!("TERMINATED"))
    );
    let delay = time(&after["disconnected"]) - time(&after["force_disconnect"]);
    assert_eq!(delay, Duration::seconds(60));
    let found: Value = serde_json::from_str(&first[5]).unwrap();
    assert_eq!(found["count"], 2, "C3 and the staged connection: {found}");
}

/// A store of layout 3 kept connections as `{id, user_id, host_id}` and a termination flag;
/// opening it makes them whole connections, and a restart finds them so.
#[tokio::test]
async fn connections_of_layout_3_read_as_whole_connections() {
    if skip_on_postgres("sled's store layout 3 upgrade") {
        return;
    }
    let mut app = spawn(None, |config| {
        let db = sled::open(&config.data_dir).unwrap();
        let connections = db.open_tree("connections").unwrap();
        for record in [
            json!({"id": C1, "user_id": ALICE, "host_id": HOST_A, "terminated": false}),
            json!({"id": C2, "user_id": BOB, "host_id": HOST_B, "terminated": true,
                   "terminated_at": "2025-01-02T03:04:05Z", "terminated_by": ALICE}),
        ] {
            let id: Uuid = record["id"].as_str().unwrap().parse().unwrap();
            connections.insert(id.as_bytes(), record.to_string().as_bytes()).unwrap();
        }
        db.open_tree("meta").unwrap().insert("layout", &3u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    })
    .await;
    for round in ["upgraded", "after a restart"] {
        let open = view(&app, C1).await;
        assert_eq!((&open["status"], &open["user"]["id"]), (&json!("CONNECTED"), &json!(ALICE)));
        assert_eq!(open["connected"], "1970-01-01T00:00:00Z", "{round}: no time was kept");
        let ended = view(&app, C2).await;
        assert_eq!(ended["status"], "TERMINATED", "{round}");
        assert_eq!(ended["target_host"]["id"], HOST_B, "{round}");
        assert_eq!(ended["disconnected"], "2025-01-02T03:04:05Z", "{round}");
        assert_eq!(ended["force_disconnect"], "2025-01-02T03:04:05Z", "{round}");
        assert_eq!(ended["updated_by"], ALICE, "{round}");
        app.restart().await;
    }
}
