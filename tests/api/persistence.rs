//! State survives a restart (and an upgrade of the store's layout), and loading the same
//! fixtures again changes nothing.

use privx_mock::client::types;
use serde_json::json;

use crate::helpers::{
    skip_on_postgres, spawn_app, spawn_app_with, spawn_app_with_fixtures, user_request,
};

#[tokio::test]
async fn writes_survive_a_restart() {
    let mut app = spawn_app().await;
    let alice = app.create_user("alice", &["ops"]).await;
    let body = types::ListenerCreate {
        network: "tcp".try_into().unwrap(),
        destination: "e/d:1".try_into().unwrap(),
        source: vec![],
        keep_open_sec: std::num::NonZeroU64::new(3600),
    };
    let listener = app.client.listener_create().body(body).send().await.unwrap().into_inner();
    let before = app.client.user_view().user_id(alice).send().await.unwrap().into_inner();

    app.restart().await;

    let after = app.client.user_view().user_id(alice).send().await.unwrap().into_inner();
    assert_eq!(serde_json::to_value(&after).unwrap(), serde_json::to_value(&before).unwrap());
    let list = app.client.user_list().send().await.unwrap().into_inner();
    assert_eq!(list.count, 1, "the user count survives too");
    let tags = app.client.user_tags_list().send().await.unwrap().into_inner();
    assert_eq!(tags, ["ops"]);
    let again =
        app.client.listener_view().id(listener.id.unwrap()).send().await.unwrap().into_inner();
    assert_eq!(again.address, listener.address);
    let duplicate = app.client.user_create().body(user_request("alice")).send().await;
    assert!(duplicate.is_err(), "the username index survives");
}

#[tokio::test]
async fn loading_fixtures_again_is_idempotent() {
    let id = "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001".parse::<uuid::Uuid>().unwrap();
    let mut app = spawn_app_with_fixtures(json!({
        "users": [{"id": id, "username": "fixture-user", "tags": ["t"], "password": "pw"}],
        "listeners": [{"id": "11111111-0000-4000-8000-000000000001", "network": "tcp", "destination": "e/d:1", "keep_open_sec": 3600}],
    }))
    .await;
    let body = user_request("renamed");
    app.client.user_update().user_id(id).body(body).send().await.unwrap();

    app.restart().await; // loads the same fixtures file again

    let users = app.client.user_list().send().await.unwrap().into_inner();
    assert_eq!(users.count, 1);
    assert_eq!(users.items[0].username.as_str(), "renamed", "an existing record is left as it is");
    assert_eq!(app.client.listener_list().send().await.unwrap().into_inner().count, 1);
}

#[tokio::test]
async fn the_example_fixtures_load() {
    let text =
        std::fs::read_to_string(crate::helpers::repo_path("tests/fixtures/example.json")).unwrap();
    let app = spawn_app_with_fixtures(serde_json::from_str(&text).unwrap()).await;
    let users = app.client.user_list().send().await.unwrap().into_inner();
    assert!(users.count >= 2);
}

/// A store of the first layout (each password hash inside its user's record) opens upgraded:
/// the password still logs in, the user reads back without any trace of it, and the upgrade
/// holds over a restart.
#[tokio::test]
async fn a_store_of_the_first_layout_is_upgraded_when_opened() {
    if skip_on_postgres("sled's store layout 1 upgrade") {
        return;
    }
    let id = "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0009".parse::<uuid::Uuid>().unwrap();
    let hash = privx_mock::password::hash("legacy-password");
    let mut app = spawn_app_with(|config| {
        let db = sled::open(&config.data_dir).unwrap();
        let record = json!({
            "id": id, "created": "2025-01-02T03:04:05Z", "updated": "2025-01-02T03:04:05Z",
            "author": id, "updated_by": id, "username": "legacy", "tags": ["old"],
            "password_hash": hash, "password_created": "2025-01-02T03:04:05Z",
            "password_change_required": false,
        });
        let users = db.open_tree("users").unwrap();
        users.insert(id.as_bytes(), serde_json::to_vec(&record).unwrap()).unwrap();
        db.open_tree("usernames").unwrap().insert("legacy", id.as_bytes()).unwrap();
        db.open_tree("tag_counts").unwrap().insert("old", &1u64.to_be_bytes()).unwrap();
        db.open_tree("meta").unwrap().insert("user_count", &1u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    })
    .await;
    for round in ["upgraded", "after a restart"] {
        app.token("legacy", "legacy-password").await;
        let url = app.url(&format!("/local-user-store/api/v1/users/{id}"));
        let raw = app.http.get(url).send().await.unwrap().text().await.unwrap();
        let user: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(user["username"], "legacy", "{round}: {raw}");
        assert_eq!(user["created"], "2025-01-02T03:04:05Z", "{round}: {raw}");
        assert!(!raw.contains("password_hash") && !raw.contains("argon2"), "{round}: {raw}");
        app.restart().await;
    }
}

/// A user stored by layout 2 (no `tags` when empty, no `attributes`) is rewritten when the
/// store opens, so its JSON, served as stored, has both; its other fields stay.
#[tokio::test]
async fn a_user_of_layout_2_reads_with_the_fields_of_today() {
    if skip_on_postgres("sled's store layout 2 upgrade") {
        return;
    }
    let id = "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a000a".parse::<uuid::Uuid>().unwrap();
    let app = spawn_app_with(|config| {
        let db = sled::open(&config.data_dir).unwrap();
        let record = json!({
            "id": id, "created": "2025-01-02T03:04:05Z", "updated": "2025-01-02T03:04:05Z",
            "author": id, "updated_by": id, "username": "layout2", "email": "l2@example.com",
            "password_change_required": true,
        });
        db.open_tree("users")
            .unwrap()
            .insert(id.as_bytes(), record.to_string().as_bytes())
            .unwrap();
        db.open_tree("usernames").unwrap().insert("layout2", id.as_bytes()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert("user_count", &1u64.to_be_bytes()).unwrap();
        meta.insert("layout", &2u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    })
    .await;
    let (status, user) =
        app.call("GET", &format!("/local-user-store/api/v1/users/{id}"), None).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!((&user["tags"], &user["attributes"]), (&json!([]), &json!([])), "{user}");
    assert_eq!(
        (&user["email"], &user["password_change_required"]),
        (&json!("l2@example.com"), &json!(true))
    );
    let (_, list) = app.call("GET", "/local-user-store/api/v1/users?username=layout2", None).await;
    assert_eq!(list["items"][0], user);
}

#[tokio::test]
async fn a_store_of_a_newer_layout_is_refused() {
    if skip_on_postgres("sled's layout version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    db.open_tree("meta").unwrap().insert("layout", &99u64.to_be_bytes()).unwrap();
    db.flush().unwrap();
    drop(db);
    let error = privx_mock::store::Store::open(dir.path()).err().expect("refused");
    assert!(error.to_string().contains("newer"), "{error}");
}

/// sled lets go of its lock from a background thread a moment after the previous handle is
/// dropped; opening waits for that instead of failing. Here the test holds the lock itself and
/// lets go only once the kernel shows the opener queued behind it.
#[test]
fn opening_waits_for_the_previous_holder_to_let_go() {
    if skip_on_postgres("sled's file lock") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    drop(privx_mock::store::Store::open(dir.path()).unwrap());
    let held = std::fs::File::open(dir.path().join("db")).unwrap();
    held.lock().unwrap();
    let inode = format!(":{}", held.metadata().unwrap().ino());
    let path = dir.path().to_path_buf();
    let opener = std::thread::spawn(move || privx_mock::store::Store::open(&path).map(drop));

    let queued = || {
        let locks = std::fs::read_to_string("/proc/locks").unwrap();
        locks.lines().any(|line| {
            line.contains("->") && line.split_whitespace().any(|field| field.ends_with(&inode))
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !queued() {
        assert!(std::time::Instant::now() < deadline, "the opener never waited for the lock");
        assert!(!opener.is_finished(), "the opener gave up while the lock was held");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    drop(held);
    opener.join().unwrap().expect("opens once the lock is released");
}

#[test]
fn a_store_in_use_is_refused_after_a_wait() {
    if skip_on_postgres("sled's file lock") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _running = privx_mock::store::Store::open(dir.path()).unwrap();
    let started = std::time::Instant::now();
    let error = privx_mock::store::Store::open(dir.path()).err().expect("refused");
    assert!(error.to_string().contains("in use by another process"), "{error}");
    assert!(started.elapsed() >= privx_mock::store::LOCK_WAIT, "it waited first");
}
