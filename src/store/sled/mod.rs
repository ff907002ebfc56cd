//! The embedded engine: the whole state in one sled database inside the server's process (the
//! default; it needs nothing but a directory). [`Sled`] is its [`Engine`].
//!
//! # Layout
//!
//! Every record is one JSON value (serde) under a binary key. Uuids are keys as their 16
//! bytes, so a tree of uuid keys iterates in uuid order; user and listener ids are UUIDv7,
//! which makes that order the order of creation.
//!
//! | tree          | key                                   | value                            |
//! |---------------|---------------------------------------|----------------------------------|
//! | `users`       | user id                               | [`UserRecord`]: the API's `User` |
//! | `passwords`   | user id                               | [`PasswordHash`]                 |
//! | `usernames`   | username, lower-cased (UTF-8)         | user id: the uniqueness index    |
//! | `tag_counts`  | tag (UTF-8)                           | times users carry it, u64 BE     |
//! | `credentials` | user id, credential id                | [`CredentialRecord`]             |
//! | `listeners`   | listener id                           | [`ListenerRecord`]               |
//! | `connections` | connection id                         | [`ConnectionRecord`]             |
//! | `settings`    | setting name (UTF-8)                  | the settings document            |
//! | `meta`        | `user_count`                          | number of users, u64 big-endian  |
//! | `meta`        | `layout`                              | this layout's version, u64 BE    |
//! | `meta`        | `pending_writes`                      | a batch being written (`batch`)  |
//! | `meta`        | `auth.` + name                        | server secrets (signing key, the |
//! |               |                                       | admin and OAuth client hashes)   |
//!
//! A user's JSON in `users` is exactly what the API answers for it, so reading a user is one
//! lookup and no decoding; its password (only ever a hash) is therefore kept apart, in
//! `passwords`. A user, its password, its WebAuthn credentials and its index entries
//! (`usernames`, `tag_counts`, `meta`) change together as one batch (see [`batch`]: sled's own
//! transactions cost two disk syncs each), so the indexes always agree with the records, also
//! after a crash; the distinct tags are the keys of `tag_counts`, so listing them costs the
//! number of tags, not of users. A tag a user lists twice counts twice (it always has, so
//! stores written before stay in step), and a write reads and writes each distinct tag's
//! count once, so its cost is linear in the user's tags.
//!
//! Layout versions: 1 (no `layout` key) kept the password hash inside the user's JSON; 2 left
//! a user's empty `tags` out and had no `attributes`; 3 kept a connection as `{id, user_id,
//! host_id}` and a termination flag. Opening an older store brings it to this layout, 4 (see
//! [`layout`]).
//!
//! A connection's JSON in `connections` is PrivX's connection object as stored; a read shows
//! it as it is at the time of reading (a termination's delay may have passed since: see
//! [`ConnectionRecord::at`]).
//!
//! # Durability and consistency
//!
//! A write is durable once [`SledStore::durable`] returns: it flushes sled (fsync) and shares each
//! flush between every writer waiting at the time (group commit), so concurrent writers cost
//! one flush per round rather than one each. User writes and user listings take `users_lock`
//! (exclusive and shared), so a listing's `count` and `items` come from one state.
//!
//! Opening waits (up to [`LOCK_WAIT`]) for sled's lock on the `db` file: sled 0.34 releases it
//! from a background thread a moment after the last handle of the previous `Db` is dropped
//! (spacejam/sled#1234), so reopening in the same process right after a close (every restart in
//! the tests), or starting while the previous server is still exiting, would otherwise be
//! refused at random. A store held for longer is in use by another server, and opening says so.
//!
//! # Disk faults
//!
//! The store reads and writes through one opening of sled ([`Trees`]), held by [`disk`], which
//! also keeps the record of what was acknowledged and the store's fault, if it has one:
//!
//! - each flush round writes its number into `meta` (`acknowledged`) before it flushes and
//!   into the file `acknowledged` beside sled's files after; sled recovers a prefix of its
//!   log, so a store whose number is below the file's lost acknowledged writes, and opening it
//!   is refused (see [`OnLostWrites`]). The file is not synced (a `pwrite` per round; an fsync
//!   per round would cost as much as the flush): a SIGKILL leaves it exact, a power loss may
//!   leave it older than the store or unreadable (counted as none), which weakens the check
//!   but never fails an intact store.
//!   A store without the file (written before it existed) opens as it is and gets one.
//! - after each flush (and on every health check) the `db` file must still be at its path: a
//!   data directory deleted, moved or replaced under the server makes every later write fail
//!   with [`Fault::DataDirLost`], for good.
//! - a failed flush (a full disk, an I/O error) poisons sled: it refuses every later write.
//!   The store then refuses writes ([`Fault::NoSpace`], [`Fault::Io`]) before they reach sled,
//!   and a thread reopens sled once a probe write succeeds. The new opening holds what reached
//!   the disk, possibly part of the failed flush, so the user batches no successful flush
//!   covered are undone there (each batch answers the values it replaced, kept until a flush
//!   covers it): a user write that got an error is not kept.
//!
//! Expired listeners are not deleted by a timer: every read filters them out by their
//! `closes_at`, and creating a listener may take over an expired listener's address. The store
//! keeps a listener's address; the socket bound there belongs to `crate::relay`.

mod batch;
mod commit;
mod disk;
mod layout;
mod records;
#[cfg(test)]
mod tests;
mod trees;
mod users;
mod webauthn;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::engine::{
    ConnectionChange, CredentialChange, DocumentKind, Engine, ListenerDecision, UserChange,
};
#[cfg(doc)]
use super::{ConnectionRecord, PasswordHash, UserRecord};
use super::{CredentialRecord, ListenerRecord, Listing, Page, StoreError};
use commit::Flusher;
pub(super) use disk::is_no_space;
pub use disk::{Fault, LostWrites, OnLostWrites, RECORD_FILE};
pub(crate) use trees::Trees;
pub use trees::LOCK_WAIT;

/// The sled store, read and written synchronously; [`Sled`] runs its writes off the async
/// workers.
pub struct SledStore {
    /// sled's current opening, the record of acknowledged writes and the disk's faults.
    disk: Arc<disk::Disk>,
    /// Serializes listener writes, which check address uniqueness on a scan of open listeners.
    listener_lock: std::sync::Mutex<()>,
    /// Writers of users hold it exclusively, listings shared: see "Durability and consistency".
    users_lock: std::sync::RwLock<()>,
    flusher: Flusher,
}

const USER_COUNT: &[u8] = b"user_count";

impl SledStore {
    /// Opens (or creates) the store in `dir`, doing `on_lost` if it lost acknowledged writes
    /// (and saying how many, then).
    pub fn open(
        dir: &Path,
        on_lost: OnLostWrites,
    ) -> Result<(Self, Option<LostWrites>), StoreError> {
        let (disk, lost) = disk::Disk::open(dir, on_lost)?;
        let store = Self {
            disk,
            listener_lock: std::sync::Mutex::new(()),
            users_lock: std::sync::RwLock::new(()),
            flusher: Flusher::default(),
        };
        store.upgrade()?;
        Ok((store, lost))
    }

    /// sled's current opening (an error while it is being reopened).
    fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        self.disk.trees()
    }

    /// sled's current opening to write to, unless the store refuses writes (see "Disk
    /// faults"): a write refused here never reaches sled, so it cannot be read either.
    fn writable(&self) -> Result<Arc<Trees>, StoreError> {
        self.disk.writable()
    }

    /// The tree and key prefix documents of `kind` live under.
    fn documents_at(trees: &Trees, kind: DocumentKind) -> (&sled::Tree, &'static str) {
        match kind {
            DocumentKind::Secret => (&trees.meta, SECRET_PREFIX),
            DocumentKind::Setting => (&trees.settings, ""),
        }
    }

    fn document(
        &self,
        kind: DocumentKind,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let trees = self.trees()?;
        let (tree, prefix) = Self::documents_at(&trees, kind);
        get_json(tree, format!("{prefix}{name}").as_bytes())
    }

    fn document_insert_absent(
        &self,
        kind: DocumentKind,
        name: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        let trees = self.writable()?;
        let (tree, prefix) = Self::documents_at(&trees, kind);
        let key = format!("{prefix}{name}");
        let swapped = tree.compare_and_swap(
            key.as_bytes(),
            None::<&[u8]>,
            Some(serde_json::to_vec(&value)?),
        )?;
        match swapped {
            Ok(()) => Ok(value),
            Err(stored) => Ok(serde_json::from_slice(&stored.current.unwrap_or_default())?),
        }
    }

    fn documents(
        &self,
        kind: DocumentKind,
    ) -> Result<BTreeMap<String, serde_json::Value>, StoreError> {
        let trees = self.trees()?;
        let (tree, prefix) = Self::documents_at(&trees, kind);
        tree.scan_prefix(prefix.as_bytes())
            .map(|entry| {
                let (key, value) = entry?;
                let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                Ok((name, serde_json::from_slice(&value)?))
            })
            .collect()
    }

    /// Empties the store but for the server's secrets (test-control reset).
    fn clear(&self) -> Result<(), StoreError> {
        let _users = self.users_lock.write().unwrap_or_else(|p| p.into_inner());
        let _listeners = self.listener_lock.lock().unwrap_or_else(|p| p.into_inner());
        let trees = self.writable()?;
        for tree in [
            &trees.users,
            &trees.passwords,
            &trees.usernames,
            &trees.tag_counts,
            &trees.credentials,
            &trees.listeners,
            &trees.connections,
            &trees.settings,
        ] {
            tree.clear()?;
        }
        trees.meta.remove(USER_COUNT)?;
        Ok(())
    }
}

/// Server secrets live in `meta` under this prefix.
const SECRET_PREFIX: &str = "auth.";

/// A count or version stored as a big-endian u64.
fn read_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

fn get_json<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

/// Every record of a tree.
fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
    tree.iter().values().map(|value| Ok(serde_json::from_slice(&value?)?)).collect()
}

/// The sled engine: reads run where they are called (sled reads are in memory and take no
/// lock but the users lock of a listing); writes, which take the store's locks and do work in
/// proportion to the request, run on tokio's blocking pool, so the async workers never wait
/// on them, and then wait for their flush (group commit). A write runs to its end even if the
/// request that asked for it is gone.
#[derive(Clone)]
pub struct Sled(Arc<SledStore>);

impl Sled {
    /// Opens (or creates) the store in `dir` (see [`SledStore::open`]).
    pub fn open(
        dir: &Path,
        on_lost: OnLostWrites,
    ) -> Result<(Self, Option<LostWrites>), StoreError> {
        SledStore::open(dir, on_lost).map(|(store, lost)| (Self(Arc::new(store)), lost))
    }

    /// Runs `work` on the blocking pool.
    async fn off_worker<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.0);
        let done = tokio::task::spawn_blocking(move || work(&store)).await;
        done.map_err(|e| StoreError::Database(format!("store work failed: {e}")))?
    }

    /// Runs the write `work` on the blocking pool and returns once it is durable.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let written = self.off_worker(work).await?;
        self.0.durable().await?;
        Ok(written)
    }
}

#[async_trait::async_trait]
impl Engine for Sled {
    async fn health(&self) -> Result<(), StoreError> {
        self.0.disk.health()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.off_worker(SledStore::flush).await
    }

    fn flushes(&self) -> Option<u64> {
        Some(self.0.flush_count())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.write(SledStore::clear).await
    }

    async fn document(
        &self,
        kind: DocumentKind,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.0.document(kind, name)
    }

    async fn document_insert_absent(
        &self,
        kind: DocumentKind,
        name: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        let name = name.to_owned();
        self.write(move |s| s.document_insert_absent(kind, &name, value)).await
    }

    async fn documents(
        &self,
        kind: DocumentKind,
    ) -> Result<BTreeMap<String, serde_json::Value>, StoreError> {
        self.0.documents(kind)
    }

    async fn user_insert(
        &self,
        record: super::UserRecord,
        if_absent: bool,
    ) -> Result<(), StoreError> {
        self.write(move |s| s.user_insert(&record, if_absent)).await
    }

    async fn user_change(&self, id: Uuid, change: UserChange) -> Result<(), StoreError> {
        self.write(move |s| s.user_change(id, change)).await
    }

    async fn user_delete(&self, id: Uuid) -> Result<(), StoreError> {
        self.write(move |s| s.user_delete(id)).await
    }

    async fn user_json(&self, id: Uuid) -> Result<Vec<u8>, StoreError> {
        self.0.user_json(id)
    }

    async fn user_password(
        &self,
        id: Uuid,
    ) -> Result<Option<Option<super::PasswordHash>>, StoreError> {
        self.0.user_password(id)
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<super::UserRecord>, StoreError> {
        self.0.user_by_name(username)
    }

    async fn user_list(
        &self,
        username: Option<&str>,
        id: Option<Uuid>,
        page: Page,
    ) -> Result<Listing<Vec<u8>>, StoreError> {
        // Takes the users lock, which a write may hold for a while.
        let username = username.map(str::to_owned);
        self.off_worker(move |s| s.user_list(username.as_deref(), id, page)).await
    }

    async fn user_tags(
        &self,
        query: Option<&str>,
        descending: bool,
        page: Page,
    ) -> Result<Vec<String>, StoreError> {
        let query = query.map(str::to_owned);
        self.off_worker(move |s| s.user_tags(query.as_deref(), descending, page)).await
    }

    async fn users(&self) -> Result<Vec<super::UserRecord>, StoreError> {
        self.off_worker(SledStore::users).await
    }

    async fn credentials_of(&self, user_id: Uuid) -> Result<Vec<CredentialRecord>, StoreError> {
        self.0.credentials_of(user_id)
    }

    async fn credential(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        self.0.credential(user_id, id)
    }

    async fn credential_insert_absent(&self, record: CredentialRecord) -> Result<(), StoreError> {
        self.write(move |s| s.credential_insert_absent(&record)).await
    }

    async fn credential_change(
        &self,
        user_id: Uuid,
        id: Uuid,
        change: CredentialChange,
    ) -> Result<(), StoreError> {
        self.write(move |s| s.credential_change(user_id, id, change)).await
    }

    async fn credential_delete(&self, user_id: Uuid, id: Uuid) -> Result<(), StoreError> {
        self.write(move |s| s.credential_delete(user_id, id)).await
    }

    async fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        all(&self.0.trees()?.credentials)
    }

    async fn listeners(&self) -> Result<Vec<ListenerRecord>, StoreError> {
        all(&self.0.trees()?.listeners)
    }

    async fn listener(&self, id: Uuid) -> Result<Option<ListenerRecord>, StoreError> {
        get_json(&self.0.trees()?.listeners, id.as_bytes())
    }

    async fn listener_write(&self, decide: ListenerDecision) -> Result<ListenerRecord, StoreError> {
        self.write(move |s| s.listener_write(decide)).await
    }

    async fn connections(&self) -> Result<Vec<super::ConnectionRecord>, StoreError> {
        all(&self.0.trees()?.connections)
    }

    async fn connection(&self, id: Uuid) -> Result<Option<super::ConnectionRecord>, StoreError> {
        get_json(&self.0.trees()?.connections, id.as_bytes())
    }

    async fn connection_insert_absent(
        &self,
        record: super::ConnectionRecord,
    ) -> Result<bool, StoreError> {
        self.write(move |s| s.connection_insert_absent(&record)).await
    }

    async fn connections_change(
        &self,
        id: Option<Uuid>,
        change: ConnectionChange,
    ) -> Result<(), StoreError> {
        self.write(move |s| s.connections_change(id, change)).await
    }
}
