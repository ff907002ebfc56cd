//! The engine against a real PostgreSQL: each test makes a fresh database on the server that
//! `PRIVX_TEST_DATABASE_URL` names (a superuser URL; `scripts/postgres run -- cargo test --lib
//! postgres` starts a throw-away one), and is skipped, saying so, without it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::store::engine::{DocumentKind, Engine, ListenerChange};
use crate::store::{
    ConnectionRecord, CredentialRecord, ListenerRecord, Page, PasswordHash, UserRecord,
};

const WAIT: Duration = Duration::from_secs(10);
const ALL: Page = Page { offset: 0, limit: u64::MAX };

/// The admin URL, or `None` (and a visible line) when the tests have no database.
fn admin_url() -> Option<String> {
    let url = std::env::var("PRIVX_TEST_DATABASE_URL").ok();
    if url.is_none() {
        // Straight to stderr: the test harness hides `eprintln!` of tests that pass.
        let line = "SKIPPED (PRIVX_TEST_DATABASE_URL unset)\n";
        drop(std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()));
    }
    url
}

/// The URL of a new, empty database on the server of `admin` (same user and host).
async fn fresh_database(admin: &str) -> String {
    let name = format!("privx_t_{}", Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(admin, NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let (base, rest) = admin.rsplit_once('/').expect("a URL with a database path");
    let query = rest.find('?').map_or("", |at| &rest[at..]);
    format!("{base}/{name}{query}")
}

/// A connected engine on a fresh database, or `None` without a test database.
async fn engine() -> Option<Arc<Postgres>> {
    let url = fresh_database(&admin_url()?).await;
    Some(Arc::new(Postgres::connect(&url, WAIT).await.unwrap()))
}

fn user(username: &str, tags: &[&str]) -> UserRecord {
    let id = Uuid::now_v7();
    serde_json::from_value(json!({
        "id": id, "username": username, "tags": tags, "attributes": [],
        "created": "2024-01-01T00:00:00Z", "updated": "2024-01-01T00:00:00Z",
        "author": id, "updated_by": id,
    }))
    .unwrap()
}

fn credential(user_id: Uuid, name: &str) -> CredentialRecord {
    serde_json::from_value(json!({
        "id": Uuid::now_v7(), "user_id": user_id, "name": name,
        "created": "2024-01-01T00:00:00Z", "updated": "2024-01-01T00:00:00Z",
        "author": user_id, "updated_by": user_id,
    }))
    .unwrap()
}

fn listener(address: &str) -> ListenerRecord {
    let id = Uuid::now_v7();
    serde_json::from_value(json!({
        "id": id, "network": "tcp", "destination": "10.0.0.1:22", "source": [],
        "address": address, "closes_at": "2999-01-01T00:00:00Z",
        "created": "2024-01-01T00:00:00Z", "updated": "2024-01-01T00:00:00Z",
        "author": id, "updated_by": id,
    }))
    .unwrap()
}

fn connection() -> ConnectionRecord {
    let id = Uuid::now_v7();
    serde_json::from_value(json!({
        "id": id, "user": {"id": id}, "target_host": {"id": id},
        "connected": "2024-01-01T00:00:00Z",
        "created": "2024-01-01T00:00:00Z", "updated": "2024-01-01T00:00:00Z",
        "author": id, "updated_by": id,
    }))
    .unwrap()
}

fn password(hash: &str) -> PasswordHash {
    PasswordHash { hash: hash.to_string(), created: chrono::Utc::now() }
}

fn is_duplicate(result: &Result<(), StoreError>, property: &str) -> bool {
    matches!(result, Err(StoreError::Duplicate { property: p, .. }) if *p == property)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usernames_are_unique_regardless_of_case() {
    let Some(db) = engine().await else { return };
    warm(&db).await;
    let alice = user("Alice", &[]);
    db.user_insert(alice.clone(), false).await.unwrap();
    let stored = db.user_json(alice.id).await.unwrap();
    assert_eq!(stored, serde_json::to_vec(&alice).unwrap(), "stored byte for byte");

    let shouting = db.user_insert(user("ALICE", &[]), false).await;
    assert!(is_duplicate(&shouting, "username"), "{shouting:?}");
    let same_id = db.user_insert(user_with_id(alice.id, "alice2"), false).await;
    assert!(is_duplicate(&same_id, "id"), "{same_id:?}");
    // With `if_absent`, the stored user is kept and the call succeeds.
    db.user_insert(user_with_id(alice.id, "alice2"), true).await.unwrap();
    assert_eq!(db.user_json(alice.id).await.unwrap(), stored);
    assert_eq!(db.user_by_name("aLiCe").await.unwrap().map(|u| u.id), Some(alice.id));

    let names = ["bob", "Bob", "BOB", "boB"];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.user_insert(user(names[i % 4], &[]), false).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| is_duplicate(r, "username")));
    let listing = db.user_list(None, None, ALL).await.unwrap();
    assert_eq!(listing.count, 2);
}

fn user_with_id(id: Uuid, username: &str) -> UserRecord {
    UserRecord { id, ..user(username, &[]) }
}

#[tokio::test]
async fn user_change_keeps_the_indexes_in_step() {
    let Some(db) = engine().await else { return };
    let mut carol = user("carol", &["a", "b"]);
    carol.password = Some(password("first"));
    db.user_insert(carol.clone(), false).await.unwrap();
    db.user_insert(user("dave", &["d"]), false).await.unwrap();

    db.user_change(
        carol.id,
        Box::new(|u| {
            u.profile.username = "Caroline".to_string();
            u.profile.tags = vec!["b".to_string(), "c".to_string()];
            u.password = None;
        }),
    )
    .await
    .unwrap();
    assert!(db.user_by_name("carol").await.unwrap().is_none());
    let changed = db.user_by_name("CAROLINE").await.unwrap().unwrap();
    assert_eq!(changed.profile.tags, ["b", "c"]);
    assert_eq!(changed.password, carol.password, "a change never removes a password");
    assert_eq!(db.user_tags(None, false, ALL).await.unwrap(), ["b", "c", "d"]);
    // The old name is free again.
    db.user_insert(user("Carol", &[]), false).await.unwrap();

    let taken = db
        .user_change(
            carol.id,
            Box::new(|u| {
                u.profile.username = "DAVE".to_string();
                u.profile.tags = vec!["x".to_string()];
            }),
        )
        .await;
    assert!(is_duplicate(&taken, "username"), "{taken:?}");
    assert_eq!(db.user_by_name("caroline").await.unwrap().unwrap(), changed, "unchanged");
    assert_eq!(db.user_tags(None, false, ALL).await.unwrap(), ["b", "c", "d"]);

    let unknown = db.user_change(Uuid::now_v7(), Box::new(|_| {})).await;
    assert!(matches!(unknown, Err(StoreError::NotFound { .. })), "{unknown:?}");
}

#[tokio::test]
async fn deleting_a_user_deletes_its_credentials_and_tags() {
    let Some(db) = engine().await else { return };
    let erin = user("erin", &["e"]);
    let frank = user("frank", &["f"]);
    db.user_insert(erin.clone(), false).await.unwrap();
    db.user_insert(frank.clone(), false).await.unwrap();
    let (first, second) = (credential(erin.id, "one"), credential(erin.id, "two"));
    db.credential_insert_absent(first.clone()).await.unwrap();
    db.credential_insert_absent(second.clone()).await.unwrap();
    db.credential_insert_absent(credential(frank.id, "three")).await.unwrap();
    let orphan = db.credential_insert_absent(credential(Uuid::now_v7(), "none")).await;
    assert!(matches!(orphan, Err(StoreError::NotFound { kind: "user", .. })), "{orphan:?}");
    assert_eq!(db.credentials_of(erin.id).await.unwrap(), [first.clone(), second.clone()]);

    db.credential_change(erin.id, first.id, Box::new(|c| c.name = Some("renamed".to_string())))
        .await
        .unwrap();
    let renamed = db.credential(erin.id, first.id).await.unwrap().unwrap();
    assert_eq!(renamed.name.as_deref(), Some("renamed"));
    db.credential_delete(erin.id, second.id).await.unwrap();
    let again = db.credential_delete(erin.id, second.id).await;
    assert!(matches!(again, Err(StoreError::NotFound { .. })), "{again:?}");

    db.user_delete(erin.id).await.unwrap();
    assert!(matches!(db.credentials_of(erin.id).await, Err(StoreError::NotFound { .. })));
    assert!(db.credential(erin.id, first.id).await.unwrap().is_none());
    assert!(db.credentials().await.unwrap().iter().all(|c| c.user_id == frank.id));
    assert_eq!(db.user_tags(None, false, ALL).await.unwrap(), ["f"]);
    assert_eq!(db.user_password(erin.id).await.unwrap(), None);
    assert_eq!(db.user_password(frank.id).await.unwrap(), Some(None));
    assert!(matches!(db.user_delete(erin.id).await, Err(StoreError::NotFound { .. })));
    assert!(db.credentials_of(frank.id).await.unwrap().len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_list_pages_in_id_order_with_the_count() {
    let Some(db) = engine().await else { return };
    warm(&db).await;
    let mut users = Vec::new();
    for i in 0..5 {
        let u = user(&format!("User{i}"), &[]);
        db.user_insert(u.clone(), false).await.unwrap();
        users.push(u);
    }
    let page = db.user_list(None, None, Page { offset: 1, limit: 2 }).await.unwrap();
    assert_eq!(page.count, 5);
    let expected: Vec<Vec<u8>> =
        users[1..3].iter().map(|u| serde_json::to_vec(u).unwrap()).collect();
    assert_eq!(page.items, expected);
    let past = db.user_list(None, None, Page { offset: 10, limit: 2 }).await.unwrap();
    assert_eq!((past.count, past.items.len()), (5, 0));
    let by_name = db.user_list(Some("user3"), None, ALL).await.unwrap();
    assert_eq!((by_name.count, by_name.items), (1, vec![serde_json::to_vec(&users[3]).unwrap()]));
    let both = db.user_list(Some("user3"), Some(users[3].id), ALL).await.unwrap();
    assert_eq!(both.count, 1);
    let mismatch = db.user_list(Some("user3"), Some(users[2].id), ALL).await.unwrap();
    assert_eq!((mismatch.count, mismatch.items.len()), (0, 0));
    let by_id = db.user_list(None, Some(users[4].id), Page { offset: 1, limit: 1 }).await.unwrap();
    assert_eq!((by_id.count, by_id.items.len()), (1, 0));
    let exported: Vec<Uuid> = db.users().await.unwrap().iter().map(|u| u.id).collect();
    assert_eq!(exported, users.iter().map(|u| u.id).collect::<Vec<_>>());

    // While users come and go, every listing's count is the number of its items.
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for i in 0..150 {
                let u = user(&format!("churn{i}"), &[]);
                db.user_insert(u.clone(), false).await.unwrap();
                if i % 2 == 0 {
                    db.user_delete(u.id).await.unwrap();
                }
            }
        })
    };
    while !writer.is_finished() {
        let listing = db.user_list(None, None, ALL).await.unwrap();
        assert_eq!(listing.count, listing.items.len() as u64);
    }
    writer.await.unwrap();
    assert_eq!(db.user_list(None, None, ALL).await.unwrap().count, 5 + 75);
}

#[tokio::test]
async fn tags_are_listed_distinct_in_byte_order_and_filtered_regardless_of_case() {
    let Some(db) = engine().await else { return };
    db.user_insert(user("g", &["b", "Äb", "a", "b"]), false).await.unwrap();
    db.user_insert(user("h", &["B", "z", "a"]), false).await.unwrap();
    assert_eq!(db.user_tags(None, false, ALL).await.unwrap(), ["B", "a", "b", "z", "Äb"]);
    assert_eq!(db.user_tags(None, true, ALL).await.unwrap(), ["Äb", "z", "b", "a", "B"]);
    assert_eq!(db.user_tags(Some("B"), false, ALL).await.unwrap(), ["B", "b", "Äb"]);
    assert_eq!(db.user_tags(Some("äB"), false, ALL).await.unwrap(), ["Äb"]);
    let page = Page { offset: 1, limit: 2 };
    assert_eq!(db.user_tags(Some("b"), true, page).await.unwrap(), ["b", "B"]);

    // Any string is a tag or a username, a NUL character too (which SQL's text cannot hold).
    let nul = user("Nul\0Name", &["t\0g"]);
    db.user_insert(nul.clone(), false).await.unwrap();
    assert_eq!(db.user_by_name("nul\0name").await.unwrap().map(|u| u.id), Some(nul.id));
    assert_eq!(db.user_tags(Some("\0"), false, ALL).await.unwrap(), ["t\0g"]);
}

/// Opens the pool's connections, so that concurrent calls next run at once.
async fn warm(db: &Arc<Postgres>) {
    let checks: Vec<_> = (0..POOL_SIZE)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.health().await })
        })
        .collect();
    for check in checks {
        check.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listener_writes_are_one_at_a_time() {
    let Some(db) = engine().await else { return };
    warm(&db).await;
    // Twenty writers each put a listener at one address unless an open one has it.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.listener_write(Box::new(|all| {
                    let new = listener("127.0.0.1:9000");
                    match all.iter().any(|l| l.address == new.address) {
                        true => {
                            Err(StoreError::Duplicate { property: "address", value: new.address })
                        }
                        false => Ok(ListenerChange::Put(new)),
                    }
                }))
                .await
            })
        })
        .collect();
    let mut stored = Vec::new();
    for task in tasks {
        if let Ok(record) = task.await.unwrap() {
            stored.push(record);
        }
    }
    assert_eq!(stored.len(), 1);
    assert_eq!(db.listeners().await.unwrap(), stored);
    let id = stored[0].id;
    let kept = db.listener_write(Box::new(move |all| Ok(ListenerChange::Keep(all[0].clone()))));
    assert_eq!(kept.await.unwrap().id, id);
    let deleted =
        db.listener_write(Box::new(move |all| Ok(ListenerChange::Delete(all[0].clone()))));
    assert_eq!(deleted.await.unwrap().id, id);
    assert!(db.listener(id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_change_under_a_lock_on_each() {
    let Some(db) = engine().await else { return };
    warm(&db).await;
    let records: Vec<ConnectionRecord> = (0..3).map(|_| connection()).collect();
    for record in &records {
        assert!(db.connection_insert_absent(record.clone()).await.unwrap());
    }
    assert!(!db.connection_insert_absent(records[0].clone()).await.unwrap());
    // Concurrent read-modify-writes of one connection lose none of the changes.
    let target = records[1].id;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.connections_change(
                    Some(target),
                    Box::new(|c| {
                        c.details.bytes_in += 1;
                        true
                    }),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(db.connection(target).await.unwrap().unwrap().details.bytes_in, 10);
    // Only the connections the change says it changed are written.
    let first = records[0].id;
    db.connections_change(
        None,
        Box::new(move |c| {
            c.details.bytes_out = 7;
            c.id != first
        }),
    )
    .await
    .unwrap();
    let out: Vec<i64> =
        db.connections().await.unwrap().iter().map(|c| c.details.bytes_out).collect();
    assert_eq!(out, [0, 7, 7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_document_writer_wins_and_clear_keeps_secrets() {
    let Some(db) = engine().await else { return };
    warm(&db).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.document_insert_absent(DocumentKind::Secret, "signing_key", json!(i)).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().unwrap());
    }
    let stored = db.document(DocumentKind::Secret, "signing_key").await.unwrap().unwrap();
    assert!(answers.iter().all(|a| *a == stored), "{answers:?} vs {stored}");
    db.document_insert_absent(DocumentKind::Setting, "options", json!({"a": 1})).await.unwrap();
    assert_eq!(db.documents(DocumentKind::Setting).await.unwrap().len(), 1);

    db.user_insert(user("ivan", &["t"]), false).await.unwrap();
    db.listener_write(Box::new(|_| Ok(ListenerChange::Put(listener(""))))).await.unwrap();
    db.connection_insert_absent(connection()).await.unwrap();
    db.clear().await.unwrap();
    assert_eq!(db.user_list(None, None, ALL).await.unwrap().count, 0);
    assert!(db.user_tags(None, false, ALL).await.unwrap().is_empty());
    assert!(db.listeners().await.unwrap().is_empty());
    assert!(db.connections().await.unwrap().is_empty());
    assert!(db.documents(DocumentKind::Setting).await.unwrap().is_empty());
    let secrets = db.documents(DocumentKind::Secret).await.unwrap();
    assert_eq!(secrets.get("signing_key"), Some(&stored));
}

#[tokio::test]
async fn servers_connecting_together_migrate_once() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_database(&admin).await;
    let (a, b) = tokio::join!(Postgres::connect(&url, WAIT), Postgres::connect(&url, WAIT));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.shared(), "servers on one database share its state");
    let versions = a.query("SELECT version FROM schema_migrations", &[]).await.unwrap();
    let versions: Vec<i32> = versions.iter().map(|row| row.get(0)).collect();
    assert_eq!(versions, [1]);
    b.user_insert(user("shared", &[]), false).await.unwrap();
    assert!(a.user_by_name("SHARED").await.unwrap().is_some());

    // A database a newer server migrated is refused.
    a.execute("INSERT INTO schema_migrations (version) VALUES (1000)", &[]).await.unwrap();
    match Postgres::connect(&url, WAIT).await {
        Err(StoreError::Database(message)) => assert!(message.contains("newer"), "{message}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_within_the_wait() {
    if admin_url().is_none() {
        return;
    }
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let url = format!("postgres://privx:sekrit@127.0.0.1:{port}/privx");
    let wait = Duration::from_secs(1);
    let started = Instant::now();
    let result = Postgres::connect(&url, wait).await;
    let elapsed = started.elapsed();
    match result {
        Err(StoreError::Unreachable(message)) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.contains("\"privx\""), "{message}");
            assert!(!message.contains("sekrit"), "{message}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(elapsed >= wait - RETRY, "gave up early: {elapsed:?}");
    assert!(elapsed < wait + Duration::from_secs(2), "took {elapsed:?}");
}

#[tokio::test]
async fn a_database_that_refuses_fails_at_once() {
    let Some(admin) = admin_url() else { return };
    let (base, _) = admin.rsplit_once('/').unwrap();
    let missing = format!("{base}/privx_missing_{}", Uuid::new_v4().simple());
    let started = Instant::now();
    let result = Postgres::connect(&missing, WAIT).await;
    match result {
        Err(StoreError::Database(message)) => assert!(message.contains("privx_missing_")),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(started.elapsed() < WAIT / 2, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn service_recovers_when_its_connections_are_killed() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_database(&admin).await;
    let db = Postgres::connect(&url, WAIT).await.unwrap();
    db.health().await.unwrap();
    let before = user("before", &[]);
    db.user_insert(before.clone(), false).await.unwrap();
    // Every shared reader connection is opened.
    for _ in 0..READERS {
        db.user_json(before.id).await.unwrap();
    }
    let database = url.rsplit_once('/').unwrap().1.split('?').next().unwrap().to_string();
    let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.unwrap();
    tokio::spawn(connection);
    let killed = client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&database],
        )
        .await
        .unwrap();
    assert!(killed >= 1);
    // A killed connection may answer a request with `Unreachable`; service comes back
    // without a new `connect`.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match db.health().await {
            Ok(()) => break,
            Err(StoreError::Unreachable(_)) if Instant::now() < deadline => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    db.user_insert(user("after", &[]), false).await.unwrap();
    assert!(db.user_by_name("after").await.unwrap().is_some());
    // Each shared reader, found closed, is replaced: every point read works again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    while in_a_row < READERS {
        match db.user_json(before.id).await {
            Ok(_) => in_a_row += 1,
            Err(StoreError::Unreachable(_)) if Instant::now() < deadline => in_a_row = 0,
            Err(e) => panic!("{e:?}"),
        }
    }
}
