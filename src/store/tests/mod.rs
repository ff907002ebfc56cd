//! The store through its own interface, on a temporary sled directory: the user indexes
//! (username uniqueness, tag counts, the user count behind listings), credentials going with
//! their user, and a connection's termination over time. The read cache's tests are in
//! `read_cache.rs`.

use chrono::Utc;
use uuid::Uuid;

use super::*;

mod read_cache;

fn stamp() -> Stamp {
    Stamp { actor: Uuid::from_u128(0xad), now: Utc::now() }
}

/// Ids in creation order, as the server's UUIDv7 ids are.
fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn profile(username: &str, tags: &[&str]) -> UserProfile {
    UserProfile {
        username: username.to_string(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..UserProfile::default()
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

async fn create(store: &Store, n: u128, username: &str, tags: &[&str]) -> Result<(), StoreError> {
    store.user_create(id(n), profile(username, tags), None, stamp()).await.map(drop)
}

async fn usernames(store: &Store, page: Page) -> (u64, Vec<String>) {
    let listing = store.user_list(None, None, page).await.unwrap();
    (listing.count, listing.items.iter().map(|u| decode(u).profile.username).collect())
}

fn decode(json: &[u8]) -> UserRecord {
    serde_json::from_slice(json).unwrap()
}

async fn tags(store: &Store) -> Vec<String> {
    Vec::clone(&store.user_tags(None, false, Page { offset: 0, limit: 100 }).await.unwrap())
}

#[tokio::test]
async fn usernames_are_unique_and_found_regardless_of_case() {
    let (_dir, store) = open();
    create(&store, 1, "Alice", &[]).await.unwrap();
    let taken = create(&store, 2, "aLICE", &[]).await.unwrap_err();
    assert!(
        matches!(&taken, StoreError::Duplicate { property: "username", value } if value == "aLICE"),
        "{taken:?}"
    );
    assert_eq!(store.user_by_name("ALICE").await.unwrap().map(|u| u.id), Some(id(1)));

    // A user may change the case of its own name; renamed, the old name is free again.
    store.user_update(id(1), profile("ALICE", &[]), None, stamp()).await.unwrap();
    store.user_update(id(1), profile("bob", &[]), None, stamp()).await.unwrap();
    assert!(store.user_by_name("alice").await.unwrap().is_none());
    create(&store, 2, "alice", &[]).await.unwrap();
    let taken = store.user_update(id(2), profile("BOB", &[]), None, stamp()).await.unwrap_err();
    assert!(matches!(taken, StoreError::Duplicate { property: "username", .. }), "{taken:?}");
    assert_eq!(store.user_by_name("Bob").await.unwrap().map(|u| u.id), Some(id(1)));
}

#[tokio::test]
async fn the_tag_index_counts_the_users_carrying_each_tag() {
    let (_dir, store) = open();
    create(&store, 1, "a", &["ops", "db"]).await.unwrap();
    create(&store, 2, "b", &["db"]).await.unwrap();
    assert_eq!(tags(&store).await, ["db", "ops"]);

    store.user_delete(id(1)).await.unwrap();
    assert_eq!(tags(&store).await, ["db"], "db is still carried by b; ops by nobody");
    store.user_update(id(2), profile("b", &["web"]), None, stamp()).await.unwrap();
    assert_eq!(tags(&store).await, ["web"]);
    create(&store, 3, "c", &["Web2", "x"]).await.unwrap();

    let page = Page { offset: 0, limit: 10 };
    assert_eq!(*store.user_tags(Some("WEB"), false, page).await.unwrap(), ["Web2", "web"]);
    assert_eq!(*store.user_tags(None, true, Page { offset: 1, limit: 1 }).await.unwrap(), ["web"]);
}

/// A tag listed twice, an update that keeps some tags and drops others: the index follows the
/// net change of each distinct tag and ends empty with the users.
#[tokio::test]
async fn the_tag_index_follows_repeated_and_kept_tags() {
    let (_dir, store) = open();
    create(&store, 1, "a", &["ops", "ops", "db"]).await.unwrap();
    create(&store, 2, "b", &["ops"]).await.unwrap();
    store.user_update(id(1), profile("a", &["db", "web", "db"]), None, stamp()).await.unwrap();
    assert_eq!(tags(&store).await, ["db", "ops", "web"], "ops is still b's");
    store.user_delete(id(2)).await.unwrap();
    assert_eq!(tags(&store).await, ["db", "web"]);
    store.user_update(id(1), profile("a", &["web"]), None, stamp()).await.unwrap();
    assert_eq!(tags(&store).await, ["web"], "db was listed twice and goes with both");
    store.user_delete(id(1)).await.unwrap();
    assert_eq!(tags(&store).await, Vec::<String>::new());
}

#[tokio::test]
async fn listings_count_every_user_and_page_from_either_end() {
    let (_dir, store) = open();
    for n in 1..=5 {
        create(&store, n, &format!("user{n}"), &[]).await.unwrap();
    }
    let page = |offset, limit| Page { offset, limit };
    assert_eq!(usernames(&store, page(0, 2)).await, (5, vec!["user1".into(), "user2".into()]));
    // Past the middle, the walk starts from the end; the page is the same.
    assert_eq!(usernames(&store, page(3, 10)).await, (5, vec!["user4".into(), "user5".into()]));
    assert_eq!(usernames(&store, page(9, 10)).await, (5, vec![]));

    store.user_delete(id(2)).await.unwrap();
    assert_eq!(usernames(&store, page(1, 2)).await, (4, vec!["user3".into(), "user4".into()]));

    let by = |username: Option<&'static str>, user: Option<u128>| {
        let listing = store.user_list(username, user.map(id), page(0, 10));
        async move {
            let listing = listing.await.unwrap();
            (listing.count, listing.items.iter().map(|u| decode(u).id).collect::<Vec<_>>())
        }
    };
    assert_eq!(by(Some("USER3"), None).await, (1, vec![id(3)]));
    assert_eq!(by(None, Some(4)).await, (1, vec![id(4)]));
    let different = by(Some("user3"), Some(4)).await;
    assert_eq!(different, (0, vec![]), "name and id name different users");
    assert_eq!(by(Some("user2"), None).await, (0, vec![]), "deleted");
}

#[tokio::test]
async fn deleting_a_user_deletes_its_credentials_and_no_one_elses() {
    let (_dir, store) = open();
    create(&store, 1, "a", &[]).await.unwrap();
    create(&store, 2, "b", &[]).await.unwrap();
    for (user, credential) in [(1, 11), (1, 12), (2, 21)] {
        let record = CredentialRecord {
            id: id(credential),
            user_id: id(user),
            credential_id: None,
            name: Some(format!("key {credential}")),
            comment: None,
            last_used: None,
            authorship: Authorship::new(stamp()),
        };
        store.engine.credential_insert_absent(record).await.unwrap();
    }
    let page = Page { offset: 0, limit: 10 };
    let count = |user| store.credential_list(id(user), CredentialSort::Id, false, page);
    assert_eq!((count(1).await.unwrap().count, count(2).await.unwrap().count), (2, 1));
    store.user_delete(id(1)).await.unwrap();
    assert_eq!(count(2).await.unwrap().count, 1);
    let listed = count(1).await;
    assert!(matches!(listed, Err(StoreError::NotFound { kind: "user", .. })), "{listed:?}");
    assert!(matches!(store.credential_get(id(1), id(11)).await, Err(StoreError::NotFound { .. })));
}

fn connection(n: u128, user: u128, status: ConnectionStatus) -> ConnectionRecord {
    let fixture = serde_json::json!({
        "id": id(n), "user": {"id": id(user)}, "target_host": {"id": id(0x40)},
        "status": status, "connected": "2024-01-01T00:00:00Z",
    });
    serde_json::from_value::<FixtureConnection>(fixture).unwrap().record(stamp())
}

#[tokio::test]
async fn a_termination_ends_connected_connections_once_its_delay_has_passed() {
    let (_dir, store) = open();
    for record in [
        connection(1, 0xa, ConnectionStatus::Connected),
        connection(2, 0xb, ConnectionStatus::Connected),
        connection(3, 0xa, ConnectionStatus::Disconnected),
    ] {
        store.connection_create(record).await.unwrap();
    }
    let duplicate = store.connection_create(connection(1, 0xa, ConnectionStatus::Connected)).await;
    assert!(matches!(duplicate, Err(StoreError::Duplicate { .. })));
    let termination = Termination {
        reason: Some("why".to_string()),
        delay: chrono::Duration::seconds(10),
        stamp: stamp(),
    };
    let terminating =
        store.connections_terminate(|c| c.details.user.id == id(0xa), termination.clone());
    terminating.await.unwrap();
    let at = |secs: i64| {
        let now = termination.stamp.now + chrono::Duration::seconds(secs);
        let all = Page { offset: 0, limit: 10 };
        let listing = store.connection_list(|_| true, ConnectionSort::Id, false, all, now);
        async move {
            let items = listing.await.unwrap().items.into_iter();
            items.map(|c| (c.details.status, c.details.disconnected)).collect::<Vec<_>>()
        }
    };
    let end = termination.stamp.now + chrono::Duration::seconds(10);
    let before = at(9).await;
    assert_eq!(
        before,
        [
            (ConnectionStatus::Terminating, None),
            (ConnectionStatus::Connected, None),
            (ConnectionStatus::Disconnected, None)
        ]
    );
    let after = at(10).await;
    assert_eq!(after[0], (ConnectionStatus::Terminated, Some(end)));
    assert_eq!(after[1..], before[1..]);
    let stored = store.connection_get(id(1), end).await.unwrap();
    assert_eq!(stored.details.termination_reason.as_deref(), Some("why"));
    assert_eq!(stored.details.force_disconnect, Some(termination.stamp.now));
}
