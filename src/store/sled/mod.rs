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
//! A write is durable once [`Sled`] answers it: every write runs on the store's writer thread
//! and is answered after a flush of sled (fsync) that covers it, each flush shared by every
//! write run since the last one began (group commit, see `writer`), so concurrent writers cost
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
mod disk;
mod engine;
mod layout;
mod records;
#[cfg(test)]
mod tests;
mod trees;
mod users;
mod webauthn;
mod writer;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::engine::DocumentKind;
#[cfg(doc)]
use super::engine::Engine;
use super::StoreError;
#[cfg(doc)]
use super::{ConnectionRecord, CredentialRecord, ListenerRecord, PasswordHash, UserRecord};
pub(super) use disk::is_no_space;
pub use disk::{Fault, LostWrites, OnLostWrites, RECORD_FILE};
pub use engine::Sled;
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
    /// User writes of the writer's round not yet written to sled (see [`SledStore::gather`]).
    gathered: std::sync::Mutex<Option<batch::Batch>>,
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
            gathered: std::sync::Mutex::new(None),
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
        // Users written earlier in the writer's round go first, then with everything else.
        self.settle_locked()?;
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
