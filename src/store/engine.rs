//! What a storage engine does: keep the records and their indexes, durably, and let one writer
//! at a time change what must stay consistent. The rules of the API (validation, stamps,
//! termination, sorting and paging of the small collections, secrets, fixtures and export) sit
//! above it in [`Store`](super::Store), once, for every engine.
//!
//! Two engines implement it: sled in the server's process ([`super::sled`]), the default, and
//! PostgreSQL shared by several servers ([`super::postgres`]). Every write method returns once
//! its write is durable (sled: flushed; PostgreSQL: committed), so a 2xx always follows a
//! durable write.
//!
//! The closures some methods take are how the rules above reach into an engine's transaction:
//! the engine reads what is stored under its lock (sled: an in-process lock; PostgreSQL: a row
//! lock or a transaction-scoped advisory lock, which holds across servers), the closure
//! decides, and the engine writes what it decided, all in one step.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{
    ConnectionRecord, CredentialRecord, ListenerRecord, Listing, Page, PasswordHash, StoreError,
    UserRecord,
};

/// A named JSON document the store keeps beside the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// The server's secrets (signing key, the admin's id and password hash, the OAuth
    /// client's secret hash): shared by every server on one database.
    Secret,
    /// A settings document (the default service options).
    Setting,
}

/// What a listener write decided, given every listener as stored.
#[derive(Debug)]
pub enum ListenerChange {
    /// Store this record (new or changed).
    Put(ListenerRecord),
    /// Delete this record.
    Delete(ListenerRecord),
    /// Write nothing; answer this record.
    Keep(ListenerRecord),
}

impl ListenerChange {
    /// The record the write answers with.
    pub fn record(self) -> ListenerRecord {
        match self {
            Self::Put(r) | Self::Delete(r) | Self::Keep(r) => r,
        }
    }
}

/// Decides a listener write from every listener as stored (all of them, closed ones too).
pub type ListenerDecision =
    Box<dyn FnOnce(Vec<ListenerRecord>) -> Result<ListenerChange, StoreError> + Send>;

/// Changes a stored user in place (the engine keeps its indexes in step).
pub type UserChange = Box<dyn FnOnce(&mut UserRecord) + Send>;

/// Changes a stored credential in place.
pub type CredentialChange = Box<dyn FnOnce(&mut CredentialRecord) + Send>;

/// Changes a stored connection in place; says whether it changed (only those are written).
pub type ConnectionChange = Box<dyn Fn(&mut ConnectionRecord) -> bool + Send + Sync>;

#[async_trait::async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Why writes are refused, if they are (a full disk, a database that does not answer).
    async fn health(&self) -> Result<(), StoreError>;

    /// Makes every write so far durable (at shutdown; writes are durable anyway).
    async fn flush(&self) -> Result<(), StoreError>;

    /// How many times the engine has flushed to disk, if it flushes by itself (sled's group
    /// commit; PostgreSQL commits each write instead).
    fn flushes(&self) -> Option<u64> {
        None
    }

    /// Whether other servers may write the same state (a database they share), so that what
    /// a server keeps in memory about it must be read again now and then.
    fn shared(&self) -> bool {
        false
    }

    /// How many times the engine has (re)opened its storage, or `None` for an engine other
    /// servers write too (PostgreSQL), of which this server cannot know every change. A store
    /// keeps reads in memory only over an engine that answers `Some`, and only while the
    /// number stays the same: a reopening may undo writes that were never acknowledged (sled
    /// after a disk fault), which reads before it may have seen.
    fn openings(&self) -> Option<u64>;

    /// Empties the store but for the server's secrets (test-control reset).
    async fn clear(&self) -> Result<(), StoreError>;

    /// The document `name` of `kind`, if one is stored.
    async fn document(
        &self,
        kind: DocumentKind,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    /// Stores `value` as document `name` unless one is stored; answers the stored one. The
    /// first writer wins, so servers starting together on one database agree on one value.
    async fn document_insert_absent(
        &self,
        kind: DocumentKind,
        name: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, StoreError>;

    /// Every document of `kind`, by name.
    async fn documents(
        &self,
        kind: DocumentKind,
    ) -> Result<BTreeMap<String, serde_json::Value>, StoreError>;

    /// Stores a new user and its indexes. A username taken (regardless of case) is
    /// `Duplicate`; an id taken is `Duplicate` too, unless `if_absent`, when the stored user is
    /// kept and the call succeeds (fixtures).
    async fn user_insert(&self, record: UserRecord, if_absent: bool) -> Result<(), StoreError>;

    /// Changes user `id` (with its password) by `change`, keeping its indexes in step;
    /// unknown is `NotFound`, a username taken by another user is `Duplicate`. A password is
    /// never removed by a change.
    async fn user_change(&self, id: Uuid, change: UserChange) -> Result<(), StoreError>;

    /// Deletes user `id`, its password, index entries and WebAuthn credentials at once.
    async fn user_delete(&self, id: Uuid) -> Result<(), StoreError>;

    /// User `id`'s JSON as stored: the API's `User`.
    async fn user_json(&self, id: Uuid) -> Result<Vec<u8>, StoreError>;

    /// User `id`'s password (`Some(None)`: the user has none), or `None` if there is no user
    /// `id`.
    async fn user_password(&self, id: Uuid) -> Result<Option<Option<PasswordHash>>, StoreError>;

    /// The user whose username is `username` regardless of case, with its password.
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    /// A page of users' JSON in creation (id) order, filtered by username (regardless of
    /// case) and/or id; `count` and `items` come from one state.
    async fn user_list(
        &self,
        username: Option<&str>,
        id: Option<Uuid>,
        page: Page,
    ) -> Result<Listing<Vec<u8>>, StoreError>;

    /// A page of the distinct tags of all users that contain `query` case-insensitively, in
    /// byte order (or its reverse).
    async fn user_tags(
        &self,
        query: Option<&str>,
        descending: bool,
        page: Page,
    ) -> Result<Vec<String>, StoreError>;

    /// Every user with its password, in id order (export).
    async fn users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// The credentials of user `user_id` in id order; an unknown user is `NotFound`.
    async fn credentials_of(&self, user_id: Uuid) -> Result<Vec<CredentialRecord>, StoreError>;

    /// Credential `id` of user `user_id`, if it exists.
    async fn credential(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<Option<CredentialRecord>, StoreError>;

    /// Stores a credential unless one with its ids exists; its user must exist (`NotFound`).
    async fn credential_insert_absent(&self, record: CredentialRecord) -> Result<(), StoreError>;

    /// Changes a credential by `change`; unknown is `NotFound`.
    async fn credential_change(
        &self,
        user_id: Uuid,
        id: Uuid,
        change: CredentialChange,
    ) -> Result<(), StoreError>;

    /// Deletes a credential; unknown is `NotFound`.
    async fn credential_delete(&self, user_id: Uuid, id: Uuid) -> Result<(), StoreError>;

    /// Every credential, in (user id, id) order (export).
    async fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError>;

    /// Every listener as stored (closed ones too), in id order.
    async fn listeners(&self) -> Result<Vec<ListenerRecord>, StoreError>;

    /// Listener `id` as stored, if there is one (it may be closed).
    async fn listener(&self, id: Uuid) -> Result<Option<ListenerRecord>, StoreError>;

    /// One listener write at a time (across every server on the store): `decide` sees every
    /// listener as stored and says what to write; answers the record it names.
    async fn listener_write(&self, decide: ListenerDecision) -> Result<ListenerRecord, StoreError>;

    /// Every connection as stored, in id order.
    async fn connections(&self) -> Result<Vec<ConnectionRecord>, StoreError>;

    /// Connection `id` as stored, if there is one.
    async fn connection(&self, id: Uuid) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Stores a connection unless one with its id exists; says whether it was stored.
    async fn connection_insert_absent(&self, record: ConnectionRecord) -> Result<bool, StoreError>;

    /// Applies `change` to connection `id` (or, with `None`, to every connection) under a
    /// lock on each, writing those it changed.
    async fn connections_change(
        &self,
        id: Option<Uuid>,
        change: ConnectionChange,
    ) -> Result<(), StoreError>;
}
