//! [`Sled`], the [`Engine`] over [`SledStore`]: where each call runs (point reads in place,
//! listings on the blocking pool, writes on the store's writer thread until their
//! group-commit flush).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use super::writer::Writer;
use super::{all, get_json, LostWrites, OnLostWrites, SledStore};
use crate::store::engine::{
    ConnectionChange, CredentialChange, DocumentKind, Engine, ListenerDecision, UserChange,
};
use crate::store::{
    ConnectionRecord, CredentialRecord, ListenerRecord, Listing, Page, PasswordHash, StoreError,
    UserRecord,
};

/// The sled engine: point reads run where they are called (sled reads are in memory and
/// take no lock); listings, which take the users lock, run on tokio's blocking pool; writes,
/// which take the store's locks and do work in proportion to the request, run on the store's
/// writer thread ([`Writer`]), which answers them once a flush covers them (group commit). So
/// the async workers never wait on a lock or a disk. A write runs to its end even if the
/// request that asked for it is gone.
#[derive(Clone)]
pub struct Sled {
    pub(super) store: Arc<SledStore>,
    pub(super) writer: Arc<Writer>,
}

impl Sled {
    /// Opens (or creates) the store in `dir` (see [`SledStore::open`]).
    pub fn open(
        dir: &Path,
        on_lost: OnLostWrites,
    ) -> Result<(Self, Option<LostWrites>), StoreError> {
        let (store, lost) = SledStore::open(dir, on_lost)?;
        let store = Arc::new(store);
        let writer = Arc::new(Writer::start(Arc::downgrade(&store)));
        Ok((Self { store, writer }, lost))
    }

    /// Runs `work` on the blocking pool.
    async fn off_worker<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.store);
        let done = tokio::task::spawn_blocking(move || work(&store)).await;
        done.map_err(|e| StoreError::Database(format!("store work failed: {e}")))?
    }

    /// Runs the write `work` on the writer thread and returns once it is durable.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.write(work).await
    }
}

#[async_trait::async_trait]
impl Engine for Sled {
    async fn health(&self) -> Result<(), StoreError> {
        self.store.disk.health()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.off_worker(SledStore::flush).await
    }

    fn flushes(&self) -> Option<u64> {
        Some(self.writer.rounds())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.write(SledStore::clear).await
    }

    async fn document(
        &self,
        kind: DocumentKind,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.store.document(kind, name)
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
        self.store.documents(kind)
    }

    async fn user_insert(&self, record: UserRecord, if_absent: bool) -> Result<(), StoreError> {
        self.write(move |s| s.user_insert(&record, if_absent)).await
    }

    async fn user_change(&self, id: Uuid, change: UserChange) -> Result<(), StoreError> {
        self.write(move |s| s.user_change(id, change)).await
    }

    async fn user_delete(&self, id: Uuid) -> Result<(), StoreError> {
        self.write(move |s| s.user_delete(id)).await
    }

    async fn user_json(&self, id: Uuid) -> Result<Vec<u8>, StoreError> {
        self.store.user_json(id)
    }

    async fn user_password(&self, id: Uuid) -> Result<Option<Option<PasswordHash>>, StoreError> {
        self.store.user_password(id)
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.store.user_by_name(username)
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

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.off_worker(SledStore::users).await
    }

    async fn credentials_of(&self, user_id: Uuid) -> Result<Vec<CredentialRecord>, StoreError> {
        self.store.credentials_of(user_id)
    }

    async fn credential(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        self.store.credential(user_id, id)
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
        all(&self.store.trees()?.credentials)
    }

    async fn listeners(&self) -> Result<Vec<ListenerRecord>, StoreError> {
        all(&self.store.trees()?.listeners)
    }

    async fn listener(&self, id: Uuid) -> Result<Option<ListenerRecord>, StoreError> {
        get_json(&self.store.trees()?.listeners, id.as_bytes())
    }

    async fn listener_write(&self, decide: ListenerDecision) -> Result<ListenerRecord, StoreError> {
        self.write(move |s| s.listener_write(decide)).await
    }

    async fn connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        all(&self.store.trees()?.connections)
    }

    async fn connection(&self, id: Uuid) -> Result<Option<ConnectionRecord>, StoreError> {
        get_json(&self.store.trees()?.connections, id.as_bytes())
    }

    async fn connection_insert_absent(&self, record: ConnectionRecord) -> Result<bool, StoreError> {
        self.write(move |s| s.connection_insert_absent(&record)).await
    }

    async fn connections_change(
        &self,
        id: Option<Uuid>,
        change: ConnectionChange,
    ) -> Result<(), StoreError> {
        self.write(move |s| s.connections_change(id, change)).await
    }

    fn openings(&self) -> Option<u64> {
        Some(self.store.disk.openings())
    }
}
