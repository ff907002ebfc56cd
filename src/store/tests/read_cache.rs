//! The read cache (`store::cache`): reads served without the engine until users change, its
//! bounds, and a write dropped before it returned.

use super::*;

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
