//! Repeated user reads served from memory (the store's cache) never show a state older than
//! the last acknowledged write: after each kind of write the next GET, listing and tag list
//! show it, readers running beside a writer never go back, and a server on a shared database
//! sees another server's writes at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::{
    fresh_database, repo_path, skip_unless_postgres, spawn, spawn_app_with, TestApp,
};

const USERS: &str = "/local-user-store/api/v1/users";
const CONTROL: &str = "/test-control/api/v1";

/// GETs `path` twice (the second read is the one a cache would serve) and answers the status
/// and body, which must be the same both times.
async fn read(app: &TestApp, path: &str) -> (u16, Value) {
    let first = app.call("GET", path, None).await;
    let again = app.call("GET", path, None).await;
    assert_eq!(first, again, "GET {path} twice in a row, nothing written between");
    again
}

/// The full listing's count and usernames (sorted: fixtures' ids do not follow creation).
async fn listed(app: &TestApp) -> (u64, Vec<String>) {
    let (status, list) = read(app, &format!("{USERS}?limit=100")).await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    let mut names: Vec<String> =
        items.iter().map(|u| u["username"].as_str().unwrap().to_string()).collect();
    names.sort();
    (list["count"].as_u64().unwrap(), names)
}

/// User `id` as a GET answers it, as the listing filtered by its id shows it and as the
/// listing filtered by `username` shows it; each read twice. `None` where it is not found.
async fn user(app: &TestApp, id: &str, username: &str) -> [Option<Value>; 3] {
    let (status, by_get) = read(app, &format!("{USERS}/{id}")).await;
    assert!(status == 200 || status == 404, "{status} {by_get}");
    let first = |(status, list): (u16, Value)| {
        assert_eq!(status, 200, "{list}");
        list["items"].as_array().unwrap().first().cloned()
    };
    let by_id = first(read(app, &format!("{USERS}?id={id}")).await);
    let by_name = first(read(app, &format!("{USERS}?username={username}")).await);
    [(status == 200).then_some(by_get), by_id, by_name]
}

/// The users' tags as the tag list answers them (read twice).
async fn tags(app: &TestApp) -> Vec<String> {
    let (status, tags) = read(app, &format!("{USERS}/tags")).await;
    assert_eq!(status, 200, "{tags}");
    serde_json::from_value(tags).unwrap()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn every_kind_of_user_write_shows_in_the_next_get_listing_and_tag_list() {
    let text = std::fs::read_to_string(repo_path("tests/fixtures/example.json")).unwrap();
    let fixtures: Value = serde_json::from_str(&text).unwrap();
    let alice = fixtures["users"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(fixtures["users"][0]["username"], "alice");
    let mut app = spawn(Some(fixtures), |config| config.test_control = true).await;
    let start = (2, strings(&["alice", "bob"]));
    assert_eq!(listed(&app).await, start);
    let start_tags = strings(&["db", "ops", "web"]);
    assert_eq!(tags(&app).await, start_tags);
    let [before, ..] = user(&app, &alice, "alice").await;
    let before = before.expect("alice is there");

    // Create.
    let carol = json!({"username": "carol", "tags": ["qa"]});
    let (status, created) = app.call("POST", USERS, Some(carol)).await;
    assert_eq!(status, 201, "{created}");
    let carol = created["id"].as_str().unwrap().to_string();
    assert_eq!(listed(&app).await, (3, strings(&["alice", "bob", "carol"])));
    assert_eq!(tags(&app).await, strings(&["db", "ops", "qa", "web"]));
    assert!(user(&app, &carol, "carol").await.iter().all(Option::is_some));

    // Update: tags, then the username.
    let tagged = json!({"username": "alice", "tags": ["ops"]});
    assert_eq!(app.call("PUT", &format!("{USERS}/{alice}"), Some(tagged)).await.0, 200);
    for shown in user(&app, &alice, "ALICE").await {
        assert_eq!(shown.expect("alice is there")["tags"], json!(["ops"]));
    }
    assert_eq!(tags(&app).await, strings(&["ops", "qa", "web"]));
    let renamed = json!({"username": "alicia", "tags": ["ops"]});
    assert_eq!(app.call("PUT", &format!("{USERS}/{alice}"), Some(renamed)).await.0, 200);
    let [by_get, by_id, by_old_name] = user(&app, &alice, "alice").await;
    assert_eq!(by_get.unwrap()["username"], "alicia");
    assert_eq!(by_id.unwrap()["username"], "alicia");
    assert_eq!(by_old_name, None, "the old name finds no one");
    assert_eq!(listed(&app).await, (3, strings(&["alicia", "bob", "carol"])));

    // Password: the user's `updated` moves.
    let [stamped, ..] = user(&app, &alice, "alicia").await;
    app.advance_clock(chrono::Duration::seconds(5));
    let password = json!({"password": "a-new-password-9"});
    let path = format!("{USERS}/{alice}/password");
    assert_eq!(app.call("PUT", &path, Some(password)).await.0, 200);
    for shown in user(&app, &alice, "alicia").await {
        let (shown, stamped) = (shown.unwrap(), stamped.as_ref().unwrap());
        assert_ne!(shown["updated"], stamped["updated"], "{shown} after {stamped}");
    }

    // Delete.
    assert_eq!(app.call("DELETE", &format!("{USERS}/{carol}"), None).await.0, 200);
    assert_eq!(user(&app, &carol, "carol").await, [None, None, None]);
    assert_eq!(listed(&app).await, (2, strings(&["alicia", "bob"])));
    assert_eq!(tags(&app).await, strings(&["ops", "web"]));

    // Fixtures loaded into the running server, then both resets.
    let dave =
        json!({"id": "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a00dd", "username": "dave", "tags": ["hr"]});
    let more = json!({"users": [dave]});
    let (status, body) = app.call("POST", &format!("{CONTROL}/state/fixtures"), Some(more)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(listed(&app).await, (3, strings(&["alicia", "bob", "dave"])));
    assert_eq!(tags(&app).await, strings(&["hr", "ops", "web"]));
    let reset = format!("{CONTROL}/state/reset");
    let reset = |to| app.call("POST", &reset, Some(json!({"to": to})));
    assert_eq!(reset("fixtures").await.0, 200);
    assert_eq!(listed(&app).await, start);
    assert_eq!(tags(&app).await, start_tags);
    for shown in user(&app, &alice, "alice").await {
        let shown = shown.expect("alice is back");
        assert_eq!((&shown["username"], &shown["tags"]), (&before["username"], &before["tags"]));
    }
    assert_eq!(reset("empty").await.0, 200);
    assert_eq!(listed(&app).await, (0, vec![]));
    assert_eq!(tags(&app).await, Vec::<String>::new());
    assert_eq!(user(&app, &alice, "alice").await, [None, None, None]);

    // The start's fixtures, loaded again by a restart.
    app.restart().await;
    assert_eq!(listed(&app).await, start);
}

/// The version a writer put into a user's `comment` (`v7`), 0 before the first.
fn version(user: &Value) -> u64 {
    user["comment"].as_str().map_or(0, |c| c.trim_start_matches('v').parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_beside_a_writer_never_see_a_state_older_than_the_last_acknowledged_write() {
    const WRITES: u64 = 40;
    const READERS: usize = 3;
    let app = Arc::new(spawn_app_with(|_| {}).await);
    let id = app.create_user("target", &[]).await;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (app, acknowledged, done) = (app.clone(), acknowledged.clone(), done.clone());
            tokio::spawn(async move {
                let paths = [
                    format!("{USERS}/{id}"),
                    format!("{USERS}?id={id}"),
                    format!("{USERS}?username=TARGET"),
                    format!("{USERS}?limit=10"),
                ];
                let mut reads = 0;
                while !done.load(Ordering::SeqCst) {
                    for path in &paths {
                        // What was acknowledged before the read was sent: the floor.
                        let floor = acknowledged.load(Ordering::SeqCst);
                        let (status, body) = app.call("GET", path, None).await;
                        assert_eq!(status, 200, "{path}: {body}");
                        let user = body["items"].get(0).unwrap_or(&body);
                        let seen = version(user);
                        assert!(
                            seen >= floor,
                            "{path} showed v{seen} after v{floor} was acknowledged"
                        );
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();

    for v in 1..=WRITES {
        let body = json!({"username": "target", "comment": format!("v{v}")});
        let (status, answer) = app.call("PUT", &format!("{USERS}/{id}"), Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        acknowledged.store(v, Ordering::SeqCst);
    }
    done.store(true, Ordering::SeqCst);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("a reader saw only acknowledged states");
    }
    assert!(reads >= READERS * 4, "every reader read at least once ({reads} reads)");
    let (_, last) = app.call("GET", &format!("{USERS}/{id}"), None).await;
    assert_eq!(version(&last), WRITES);
}

#[tokio::test]
async fn a_server_on_a_shared_database_reads_another_servers_writes_at_once() {
    if skip_unless_postgres("several servers on one database need PostgreSQL") {
        return;
    }
    let database = fresh_database();
    let on_database = |config: &mut privx_mock::server::Config| {
        config.database_url = Some(database.clone());
        config.auth.signing_key = None;
    };
    let a = spawn_app_with(on_database).await;
    let b = spawn_app_with(on_database).await;
    let id = b.create_user("shared", &[]).await;
    let [before, ..] = user(&b, &id.to_string(), "shared").await;
    assert_eq!(before.unwrap()["comment"], Value::Null);
    let body = json!({"username": "shared", "comment": "written on A"});
    assert_eq!(a.call("PUT", &format!("{USERS}/{id}"), Some(body)).await.0, 200);
    for shown in user(&b, &id.to_string(), "shared").await {
        assert_eq!(shown.unwrap()["comment"], "written on A", "B after A's write");
    }
}
