//! The engine against a real PostgreSQL: each test makes a fresh database on the server that
//! `PRIVX_TEST_DATABASE_URL` names (a superuser URL; `scripts/postgres run -- cargo test --lib
//! postgres` starts a throw-away one), and is skipped, saying so, without it. Users here;
//! locks across connections, migrations and failures in `locks_and_failures`.

use std::sync::Arc;
use std::time::Duration;

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

mod locks_and_failures;

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
