//! The store: all state of the server, behind one interface, and nothing about HTTP.
//!
//! [`Store`] is what the rest of the server calls. It holds the rules every engine shares -
//! validation, who wrote what and when ([`Stamp`]), termination, the sorting and paging of
//! listeners, connections and credentials, the server's secrets, fixtures and export - and
//! hands the storage itself to an [`Engine`](engine::Engine):
//!
//! - [`sled`]: the embedded default, one sled database in `--data-dir` inside the server's
//!   process; its module docs describe its trees, group commit and disk faults.
//! - [`postgres`]: one PostgreSQL database shared by any number of servers
//!   (`--database-url`); its module docs describe its tables beside the sled trees.
//!
//! Both keep the same records as the same JSON (a user's JSON is exactly the API's `User`,
//! its password hash kept apart), the same indexes (username regardless of case, the distinct
//! tags, a user's credentials under it) and the same guarantees: a write is durable before
//! its method returns (and so before its 2xx), a user and its indexes change together, a
//! listing's `count` and `items` come from one state, and listener writes run one at a time
//! so that open listeners' addresses stay unique.
//!
//! Over an engine no other server writes, the store serves repeated user reads from memory
//! until users change ([`cache`]).

mod cache;
mod connections;
pub mod engine;
mod fixtures;
mod listeners;
pub mod postgres;
mod rfc3339;
mod secrets;
pub mod sled;
#[cfg(test)]
mod tests;
mod users;
mod webauthn;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::sled::{Fault, LostWrites, OnLostWrites, LOCK_WAIT, RECORD_FILE};
use cache::Cache;
pub use connections::{
    ConnectionHost, ConnectionRecord, ConnectionSort, ConnectionStatus, ConnectionUser,
    FixtureConnection, Termination,
};
use engine::{DocumentKind, Engine};
pub use fixtures::Fixtures;
pub use listeners::{ListenerFields, ListenerRecord, ListenerSort};
pub use secrets::Secrets;
pub use users::{PasswordHash, UserAttribute, UserProfile, UserRecord};
pub use webauthn::{CredentialRecord, CredentialSort};

/// What can go wrong in the store. It knows nothing of HTTP; `crate::http` maps it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{property} {value:?} is already in use")]
    Duplicate { property: &'static str, value: String },
    #[error("{property}: {message}")]
    Invalid { property: &'static str, message: String },
    #[error("storage error: {0}")]
    Storage(#[from] ::sled::Error),
    #[error("corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the store {} is in use by another process (waited {LOCK_WAIT:?} for it)", path.display())]
    InUse { path: std::path::PathBuf },
    #[error(
        "the store {} lost acknowledged writes: its record says flush round {} was \
         acknowledged, but it holds only up to round {} (its `db` file was damaged, truncated \
         or replaced)",
        path.display(), lost.acknowledged, lost.found
    )]
    LostWrites { path: std::path::PathBuf, lost: LostWrites },
    /// Writes are refused: see "Disk faults".
    #[error("{0}")]
    Unavailable(Fault),
    /// The database (PostgreSQL) does not answer: nothing can be read or written until it
    /// does again.
    #[error("the database does not answer: {0}")]
    Unreachable(String),
    /// The database (PostgreSQL) refused a statement.
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// The disk is full (or the quota used up), now or when the store last flushed.
    pub fn no_space(&self) -> bool {
        match self {
            Self::Storage(error) => self::sled::is_no_space(error),
            Self::Unavailable(fault) => fault.no_space(),
            _ => false,
        }
    }

    fn not_found(kind: &'static str, id: impl ToString) -> Self {
        Self::NotFound { kind, id: id.to_string() }
    }
}

/// A page request: skip `offset` matches, return at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
}

impl Page {
    fn apply<T>(&self, items: impl Iterator<Item = T>) -> Vec<T> {
        items.skip(to_usize(self.offset)).take(to_usize(self.limit)).collect()
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A page of matches and how many matches there are in all.
#[derive(Debug)]
pub struct Listing<T> {
    pub count: u64,
    pub items: Vec<T>,
}

/// Who did a write, and when: the server sets `author`/`updated_by` and the timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub actor: Uuid,
    pub now: DateTime<Utc>,
}

/// When a record was made and last changed, and by whom: the same four fields of every record
/// that clients write, flattened into its JSON, so the stored and answered JSON carry them as
/// plain fields. The server sets them from the writes' [`Stamp`]s.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Authorship {
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub updated: DateTime<Utc>,
    pub author: Uuid,
    pub updated_by: Uuid,
}

impl Authorship {
    /// A record made by `stamp`.
    pub fn new(stamp: Stamp) -> Self {
        Self {
            created: stamp.now,
            updated: stamp.now,
            author: stamp.actor,
            updated_by: stamp.actor,
        }
    }

    /// Marks the record changed by `stamp`.
    pub fn touch(&mut self, stamp: Stamp) {
        self.updated = stamp.now;
        self.updated_by = stamp.actor;
    }
}

/// The store: the shared rules over one engine (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Store {
    engine: Arc<dyn Engine>,
    cache: Arc<Cache>,
}

impl Store {
    /// A store over `engine`.
    pub fn new(engine: impl Engine) -> Self {
        Self { engine: Arc::new(engine), cache: Arc::default() }
    }

    /// Opens (or creates) the sled store in `dir`; one that lost acknowledged writes is
    /// refused.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, OnLostWrites::Refuse).map(|(store, _)| store)
    }

    /// Opens (or creates) the sled store in `dir`, doing `on_lost` if it lost acknowledged
    /// writes (and saying how many, then).
    pub fn open_with(
        dir: &Path,
        on_lost: OnLostWrites,
    ) -> Result<(Self, Option<LostWrites>), StoreError> {
        let (engine, lost) = self::sled::Sled::open(dir, on_lost)?;
        Ok((Self::new(engine), lost))
    }

    /// Why writes are refused, if they are.
    pub async fn health(&self) -> Result<(), StoreError> {
        self.engine.health().await
    }

    /// Makes every write so far durable (at shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.engine.flush().await
    }

    /// Whether other servers may write this store too (see [`Engine::shared`]).
    pub fn shared(&self) -> bool {
        self.engine.shared()
    }

    /// How many times the engine flushed to disk, if it flushes by itself (sled).
    pub fn flush_count(&self) -> Option<u64> {
        self.engine.flushes()
    }

    /// The settings document `name`, if one was stored.
    pub async fn setting<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let document = self.engine.document(DocumentKind::Setting, name).await?;
        Ok(document.map(serde_json::from_value).transpose()?)
    }

    /// Empties the store but for the server's secrets (test-control reset).
    pub async fn clear(&self) -> Result<(), StoreError> {
        self.changing_users(self.engine.clear()).await
    }

    /// Runs `write`, which changes users, then empties the cache, whether it worked or not (see
    /// [`cache`]).
    async fn changing_users<T>(
        &self,
        write: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        /// Empties the cache when dropped. A write dropped before it returned (its caller went
        /// away, or it panicked) may still be running in the engine (sled finishes a write on
        /// its writer thread): as when it ends is unknown, the cache is then off for good.
        struct Changing<'a> {
            cache: &'a Cache,
            returned: bool,
        }
        impl Drop for Changing<'_> {
            fn drop(&mut self) {
                if self.returned {
                    self.cache.users_changed();
                } else {
                    self.cache.abandoned();
                }
            }
        }
        let mut changing = Changing { cache: &self.cache, returned: false };
        let written = write.await;
        changing.returned = true;
        written
    }
}

/// Sorts `items` by `key`, descending if asked.
fn sort_by_key<T, K: Ord>(items: &mut [T], descending: bool, key: impl Fn(&T) -> K) {
    items.sort_by(|a, b| {
        let order = key(a).cmp(&key(b));
        if descending {
            order.reverse()
        } else {
            order
        }
    });
}

/// Sorts `items`, then answers the page of them with their count.
fn listing<T>(mut items: Vec<T>, sort: impl FnOnce(&mut [T]), page: Page) -> Listing<T> {
    sort(&mut items);
    Listing { count: items.len() as u64, items: page.apply(items.into_iter()) }
}
