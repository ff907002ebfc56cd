//! The store through its own interface, on a temporary sled directory: the user indexes
//! (username uniqueness, tag counts, the user count behind listings), credentials going with
//! their user, and a connection's termination over time.

use chrono::Utc;
use uuid::Uuid;

use super::*;

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
    store.user_tags(None, false, Page { offset: 0, limit: 100 }).await.unwrap()
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
    assert_eq!(store.user_tags(Some("WEB"), false, page).await.unwrap(), ["Web2", "web"]);
    assert_eq!(store.user_tags(None, true, Page { offset: 1, limit: 1 }).await.unwrap(), ["web"]);
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

/// The sled engine, counting the calls that reach it: a real engine, so the store over it
/// behaves as over sled.
struct Counting {
    sled: self::sled::Sled,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

impl Counting {
    fn reached(&self) {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Engine for Counting {
    async fn health(&self) -> Result<(), StoreError> {
        self.reached();
        self.sled.health().await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.reached();
        self.sled.flush().await
    }
    fn flushes(&self) -> Option<u64> {
        self.sled.flushes()
    }
    fn shared(&self) -> bool {
        self.sled.shared()
    }
    fn openings(&self) -> Option<u64> {
        self.sled.openings()
    }
    async fn clear(&self) -> Result<(), StoreError> {
        self.reached();
        self.sled.clear().await
    }
    async fn document(
        &self,
        kind: DocumentKind,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.reached();
        self.sled.document(kind, name).await
    }
    async fn document_insert_absent(
        &self,
        kind: DocumentKind,
        name: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        self.reached();
        self.sled.document_insert_absent(kind, name, value).await
    }
    async fn documents(
        &self,
        kind: DocumentKind,
    ) -> Result<std::collections::BTreeMap<String, serde_json::Value>, StoreError> {
        self.reached();
        self.sled.documents(kind).await
    }
    async fn user_insert(&self, record: UserRecord, if_absent: bool) -> Result<(), StoreError> {
        self.reached();
        self.sled.user_insert(record, if_absent).await
    }
    async fn user_change(&self, id: Uuid, change: engine::UserChange) -> Result<(), StoreError> {
        self.reached();
        self.sled.user_change(id, change).await
    }
    async fn user_delete(&self, id: Uuid) -> Result<(), StoreError> {
        self.reached();
        self.sled.user_delete(id).await
    }
    async fn user_json(&self, id: Uuid) -> Result<Vec<u8>, StoreError> {
        self.reached();
        self.sled.user_json(id).await
    }
    async fn user_password(&self, id: Uuid) -> Result<Option<Option<PasswordHash>>, StoreError> {
        self.reached();
        self.sled.user_password(id).await
    }
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.reached();
        self.sled.user_by_name(username).await
    }
    async fn user_list(
        &self,
        username: Option<&str>,
        id: Option<Uuid>,
        page: Page,
    ) -> Result<Listing<Vec<u8>>, StoreError> {
        self.reached();
        self.sled.user_list(username, id, page).await
    }
    async fn user_tags(
        &self,
        query: Option<&str>,
        descending: bool,
        page: Page,
    ) -> Result<Vec<String>, StoreError> {
        self.reached();
        self.sled.user_tags(query, descending, page).await
    }
    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.reached();
        self.sled.users().await
    }
    async fn credentials_of(&self, user_id: Uuid) -> Result<Vec<CredentialRecord>, StoreError> {
        self.reached();
        self.sled.credentials_of(user_id).await
    }
    async fn credential(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        self.reached();
        self.sled.credential(user_id, id).await
    }
    async fn credential_insert_absent(&self, record: CredentialRecord) -> Result<(), StoreError> {
        self.reached();
        self.sled.credential_insert_absent(record).await
    }
    async fn credential_change(
        &self,
        user_id: Uuid,
        id: Uuid,
        change: engine::CredentialChange,
    ) -> Result<(), StoreError> {
        self.reached();
        self.sled.credential_change(user_id, id, change).await
    }
    async fn credential_delete(&self, user_id: Uuid, id: Uuid) -> Result<(), StoreError> {
        self.reached();
        self.sled.credential_delete(user_id, id).await
    }
    async fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        self.reached();
        self.sled.credentials().await
    }
    async fn listeners(&self) -> Result<Vec<ListenerRecord>, StoreError> {
        self.reached();
        self.sled.listeners().await
    }
    async fn listener(&self, id: Uuid) -> Result<Option<ListenerRecord>, StoreError> {
        self.reached();
        self.sled.listener(id).await
    }
    async fn listener_write(
        &self,
        decide: engine::ListenerDecision,
    ) -> Result<ListenerRecord, StoreError> {
        self.reached();
        self.sled.listener_write(decide).await
    }
    async fn connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.reached();
        self.sled.connections().await
    }
    async fn connection(&self, id: Uuid) -> Result<Option<ConnectionRecord>, StoreError> {
        self.reached();
        self.sled.connection(id).await
    }
    async fn connection_insert_absent(&self, record: ConnectionRecord) -> Result<bool, StoreError> {
        self.reached();
        self.sled.connection_insert_absent(record).await
    }
    async fn connections_change(
        &self,
        id: Option<Uuid>,
        change: engine::ConnectionChange,
    ) -> Result<(), StoreError> {
        self.reached();
        self.sled.connections_change(id, change).await
    }
}

/// A store over [`Counting`] in a temporary directory, and a count of the engine calls so far.
fn open_counting() -> (tempfile::TempDir, Store, impl Fn() -> u64) {
    let dir = tempfile::tempdir().unwrap();
    let (sled, _) = self::sled::Sled::open(dir.path(), OnLostWrites::Refuse).unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let store = Store::new(Counting { sled, calls: Arc::clone(&calls) });
    (dir, store, move || calls.load(std::sync::atomic::Ordering::SeqCst))
}

#[tokio::test]
async fn repeated_reads_are_served_without_the_engine_until_users_change() {
    let (_dir, store, calls) = open_counting();
    create(&store, 1, "alice", &[]).await.unwrap();
    create(&store, 2, "bob", &[]).await.unwrap();
    let page = Page { offset: 0, limit: 10 };

    let before = calls();
    let first = store.user_list(None, None, page).await.unwrap();
    let json = store.user_json(id(1)).await.unwrap();
    assert_eq!(calls(), before + 2, "the first reads reach the engine");
    let again = store.user_list(None, None, page).await.unwrap();
    assert_eq!(store.user_json(id(1)).await.unwrap(), json);
    assert!(Arc::ptr_eq(&first, &again), "the same listing, kept");
    assert_eq!(calls(), before + 2, "repeated reads do not");
    // Another page, another filter, the username in another case: one listing kept each.
    store.user_list(Some("Alice"), None, page).await.unwrap();
    store.user_list(Some("aLICE"), None, page).await.unwrap();
    store.user_list(None, None, Page { offset: 1, limit: 10 }).await.unwrap();
    assert_eq!(calls(), before + 4);

    // Each write empties the cache: the next reads reach the engine and show it.
    store.user_update(id(1), profile("alice", &["ops"]), None, stamp()).await.unwrap();
    let written = calls();
    assert_eq!(decode(&store.user_json(id(1)).await.unwrap()).profile.tags, ["ops"]);
    assert_eq!(usernames(&store, page).await, (2, vec!["alice".into(), "bob".into()]));
    assert_eq!(calls(), written + 2);
    store.user_delete(id(2)).await.unwrap();
    assert_eq!(usernames(&store, page).await, (1, vec!["alice".into()]));
    // A write that fails moves the generation too (it may have changed what a read sees).
    let duplicate = create(&store, 3, "ALICE", &[]).await;
    assert!(matches!(duplicate, Err(StoreError::Duplicate { .. })), "{duplicate:?}");
    let written = calls();
    store.user_list(None, None, page).await.unwrap();
    assert_eq!(calls(), written + 1);
    store.clear().await.unwrap();
    assert_eq!(usernames(&store, page).await, (0, vec![]));
    let missing = store.user_json(id(1)).await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })), "{missing:?}");
}

#[tokio::test]
async fn the_cache_keeps_at_most_its_listings_and_no_listing_over_its_bound() {
    let (_dir, store, calls) = open_counting();
    create(&store, 1, "alice", &[]).await.unwrap();
    let page = |offset| Page { offset, limit: 1 };
    for offset in 0..=cache::MAX_LISTINGS as u64 {
        store.user_list(None, None, page(offset)).await.unwrap();
    }
    let before = calls();
    store.user_list(None, None, page(cache::MAX_LISTINGS as u64)).await.unwrap();
    store.user_list(None, None, page(1)).await.unwrap();
    assert_eq!(calls(), before, "the newest listings are kept");
    store.user_list(None, None, page(0)).await.unwrap();
    assert_eq!(calls(), before + 1, "the oldest went");

    // Users whose page is over the bound: that listing is read anew each time.
    let comment = "x".repeat(cache::MAX_ENTRY_BYTES / 4);
    for n in 2..=5 {
        let big = UserProfile { comment: Some(comment.clone()), ..profile(&format!("u{n}"), &[]) };
        store.user_create(id(n), big, None, stamp()).await.unwrap();
    }
    let all = Page { offset: 0, limit: 10 };
    assert_eq!(store.user_list(None, None, all).await.unwrap().count, 5);
    let before = calls();
    store.user_list(None, None, all).await.unwrap();
    assert_eq!(calls(), before + 1, "not kept");
    store.user_list(None, None, page(0)).await.unwrap();
    store.user_list(None, None, page(0)).await.unwrap();
    assert_eq!(calls(), before + 2, "a small page still is");
}

#[tokio::test]
async fn a_write_dropped_before_it_returned_turns_the_cache_off() {
    let (_dir, store, calls) = open_counting();
    create(&store, 1, "alice", &[]).await.unwrap();
    let page = Page { offset: 0, limit: 10 };
    store.user_list(None, None, page).await.unwrap();

    // Polled once, the update is on sled's writer thread; dropped, it still lands there.
    let mut update = Box::pin(store.user_update(id(1), profile("renamed", &[]), None, stamp()));
    assert!(futures::poll!(update.as_mut()).is_pending(), "the write waits for the writer");
    drop(update);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let before = calls();
        let (_, names) = usernames(&store, page).await;
        assert_eq!(calls(), before + 1, "every listing reaches the engine");
        if names == ["renamed"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the dropped write lands");
        tokio::task::yield_now().await;
    }
    let before = calls();
    store.user_json(id(1)).await.unwrap();
    store.user_json(id(1)).await.unwrap();
    assert_eq!(calls(), before + 2, "nothing is kept any more");
}
