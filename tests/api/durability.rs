//! Nothing acknowledged is lost: SIGKILL mid-run, clean shutdown on SIGTERM, shared flushes,
//! and a full export/import round trip.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::binary;
use crate::helpers::{bearer_client, spawn_app, spawn_app_with, spawn_app_with_fixtures, TestApp};

const USERS: &str = "/local-user-store/api/v1/users";

/// What a writer knows for sure about one user: the last acknowledged comment, and a comment
/// sent but not acknowledged when the server died (which may or may not have been applied).
#[derive(Debug, Default, Clone)]
struct Known {
    id: String,
    comment: Option<String>,
    in_flight: Option<String>,
    deleted: bool,
    delete_in_flight: bool,
}

#[tokio::test]
async fn sigkill_mid_run_loses_no_acknowledged_write_and_leaves_no_half_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = binary::start(dir.path());
    let client = bearer_client(&server.token().await);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let known: Arc<Mutex<BTreeMap<String, Known>>> = Arc::default();
    let created_in_flight: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    const KILL_AFTER: usize = 300;

    let mut writers = Vec::new();
    for writer in 0..8 {
        let (client, base) = (client.clone(), server.base_url.clone());
        let (acknowledged, known, created_in_flight) =
            (acknowledged.clone(), known.clone(), created_in_flight.clone());
        writers.push(tokio::spawn(async move {
            // Each writer's requests are sequential: at most one is in flight when it dies.
            for i in 0..1000 {
                let name = format!("w{writer}-{i}");
                created_in_flight.lock().unwrap().insert(name.clone());
                let body = json!({"username": name, "tags": [format!("tag{writer}")]});
                let Ok(response) = client.post(format!("{base}{USERS}")).json(&body).send().await
                else {
                    return;
                };
                assert_eq!(response.status().as_u16(), 201);
                let Ok(reply) = response.json::<Value>().await else { return };
                created_in_flight.lock().unwrap().remove(&name);
                let id = reply["id"].as_str().unwrap().to_string();
                known
                    .lock()
                    .unwrap()
                    .insert(name.clone(), Known { id: id.clone(), ..Default::default() });
                acknowledged.fetch_add(1, Ordering::SeqCst);

                let comment = format!("comment {i}");
                known.lock().unwrap().get_mut(&name).unwrap().in_flight = Some(comment.clone());
                let body =
                    json!({"username": name, "comment": comment, "tags": [format!("tag{writer}")]});
                let Ok(response) =
                    client.put(format!("{base}{USERS}/{id}")).json(&body).send().await
                else {
                    return;
                };
                assert_eq!(response.status().as_u16(), 200);
                {
                    let mut known = known.lock().unwrap();
                    let entry = known.get_mut(&name).unwrap();
                    entry.comment = entry.in_flight.take();
                }
                acknowledged.fetch_add(1, Ordering::SeqCst);

                if i % 3 == 0 {
                    known.lock().unwrap().get_mut(&name).unwrap().delete_in_flight = true;
                    let Ok(response) = client.delete(format!("{base}{USERS}/{id}")).send().await
                    else {
                        return;
                    };
                    assert_eq!(response.status().as_u16(), 200);
                    known.lock().unwrap().get_mut(&name).unwrap().deleted = true;
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Kill once enough writes were acknowledged, with every writer still mid-flight.
    while acknowledged.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::task::yield_now().await;
        assert!(!writers.iter().all(|w| w.is_finished()), "writers stopped before the kill");
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    for writer in writers {
        writer.await.expect("a writer panicked: the server answered something unexpected");
    }

    let restarted = binary::start(dir.path());
    let client = bearer_client(&restarted.token().await);
    let get = |path: String| {
        let client = client.clone();
        let url = restarted.url(&path);
        async move {
            let response = client.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let known = known.lock().unwrap().clone();
    assert!(known.len() > 50);
    for (name, k) in &known {
        let (status, user) = get(format!("{USERS}/{}", k.id)).await;
        if k.deleted {
            assert_eq!(status, 404, "{name} was deleted and acknowledged");
            continue;
        }
        if status == 404 {
            assert!(k.delete_in_flight, "{name} was acknowledged and never deleted");
            continue;
        }
        assert_eq!(status, 200);
        let comment = user["comment"].as_str().map(str::to_string);
        assert!(
            comment == k.comment || comment == k.in_flight,
            "{name}: comment {comment:?}, acknowledged {:?}, in flight {:?}",
            k.comment,
            k.in_flight
        );
    }

    // The indexes agree with the records: the count, the username index, the tag index.
    let (_, list) = get(format!("{USERS}?limit=100000")).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(list["count"].as_u64().unwrap() as usize, items.len());
    let mut tags = BTreeSet::new();
    for user in items {
        let name = user["username"].as_str().unwrap();
        let (_, found) = get(format!("{USERS}?username={name}")).await;
        assert_eq!(found["items"][0]["id"], user["id"], "the username index finds {name}");
        tags.extend(
            user["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()),
        );
    }
    let (_, listed_tags) = get(format!("{USERS}/tags?limit=1000")).await;
    let listed_tags: BTreeSet<String> = serde_json::from_value(listed_tags).unwrap();
    assert_eq!(listed_tags, tags, "the tag index agrees with the users");
    // A user created in flight either exists whole or not at all: its name is free again.
    let listed: BTreeSet<&str> = items.iter().map(|u| u["username"].as_str().unwrap()).collect();
    let in_flight = created_in_flight.lock().unwrap().clone();
    for name in in_flight.iter().filter(|n| !listed.contains(n.as_str())) {
        let response =
            client.post(restarted.url(USERS)).json(&json!({"username": name})).send().await;
        assert_eq!(response.unwrap().status().as_u16(), 201, "{name} left an orphan index entry");
    }
}

#[tokio::test]
async fn sigterm_finishes_and_exits_zero_with_writes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = binary::start(dir.path());
    let client = bearer_client(&server.token().await);
    let response = client.post(server.url(USERS)).json(&json!({"username": "kept"})).send().await;
    assert_eq!(response.unwrap().status().as_u16(), 201);
    let pid = server.child.id().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");

    let restarted = binary::start(dir.path());
    let client = bearer_client(&restarted.token().await);
    let list: Value = client.get(restarted.url(USERS)).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"][0]["username"], "kept");
}

#[tokio::test]
async fn concurrent_writers_share_flushes() {
    let app = spawn_app().await;
    let before = app.flush_count();
    let creates = (0..64).map(|i| app.create_user_raw(format!("u{i}")));
    let statuses = futures::future::join_all(creates).await;
    assert!(statuses.iter().all(|s| *s == 201));
    let flushes = app.flush_count() - before;
    assert!(flushes >= 1, "every acknowledged write was flushed");
    assert!(flushes < 64, "64 concurrent creates took {flushes} flushes: none were shared");
}

/// Everything the API shows of a server, for comparing two of them.
async fn snapshot(app: &TestApp) -> Value {
    let get = |path: &str| {
        let request = app.http.get(app.url(path));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let alice = "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001";
    json!({
        "users": get("/local-user-store/api/v1/users?limit=1000").await,
        "tags": get("/local-user-store/api/v1/users/tags").await,
        "listeners": get("/extender-service/api/v1/listeners").await,
        "credentials": get(&format!("/role-store/api/v1/users/{alice}/webauthn-credentials")).await,
        "settings": get("/host-store/api/v1/settings/default_service_options").await,
    })
}

#[tokio::test]
async fn export_then_import_restores_the_whole_state() {
    let text = std::fs::read_to_string(crate::helpers::repo_path("tests/fixtures/example.json"));
    let app = spawn_app_with_fixtures(serde_json::from_str(&text.unwrap()).unwrap()).await;
    let body = json!({"username": "zed", "tags": ["z"], "password": {"password": "zed-password"}});
    let response = app.http.post(app.url(USERS)).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let listener = json!({"network": "tcp", "destination": "e/x:1", "keep_open_sec": 600});
    app.http
        .post(app.url("/extender-service/api/v1/listeners"))
        .json(&listener)
        .send()
        .await
        .unwrap();
    let before = snapshot(&app).await;
    let source = app.data_dir();
    let _kept = app.stop().await;

    let scratch = tempfile::tempdir().unwrap();
    let export = scratch.path().join("export.json");
    binary::run(&source, &["--export", export.to_str().unwrap()]);

    let restored = scratch.path().join("restored");
    binary::run(&restored, &["--import", export.to_str().unwrap()]);

    let app = spawn_app_with(|config| config.data_dir = restored.clone()).await;
    let after = snapshot(&app).await;
    // closed_in_sec counts down between the two reads; everything else is identical.
    let strip = |mut v: Value| {
        let shown = v.to_string();
        let listeners = v["listeners"]["items"].as_array_mut();
        for l in listeners.unwrap_or_else(|| panic!("no listeners in {shown}")) {
            l.as_object_mut().unwrap().remove("closed_in_sec");
        }
        v
    };
    assert_eq!(strip(after), strip(before));
    assert_eq!(app.password_grant("zed", "zed-password").await.status().as_u16(), 200, "hash kept");
    let connections = app.stop_and_open_store().await.connections().await.unwrap();
    assert_eq!(connections.len(), 1);
}
