//! Listeners and connections in sled: one JSON record per id, in trees of their own.

use super::{all, SledStore, StoreError};
use crate::store::engine::{ConnectionChange, ListenerChange, ListenerDecision};
use crate::store::{ConnectionRecord, ListenerRecord};

impl SledStore {
    /// One listener write at a time: `decide` sees every listener, then its change is written.
    pub(super) fn listener_write(
        &self,
        decide: ListenerDecision,
    ) -> Result<ListenerRecord, StoreError> {
        let _guard = self.listener_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let change = decide(all(&self.trees()?.listeners)?)?;
        let tree = &self.writable()?.listeners;
        match &change {
            ListenerChange::Put(record) => {
                tree.insert(record.id.as_bytes(), serde_json::to_vec(record)?)?;
            }
            ListenerChange::Delete(record) => {
                tree.remove(record.id.as_bytes())?;
            }
            ListenerChange::Keep(_) => {}
        }
        Ok(change.record())
    }

    /// Stores a connection exactly as given unless one with its id exists; says whether it
    /// was stored.
    pub(super) fn connection_insert_absent(
        &self,
        record: &ConnectionRecord,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_vec(record)?;
        let swapped = self.writable()?.connections.compare_and_swap(
            record.id.as_bytes(),
            None::<&[u8]>,
            Some(json),
        )?;
        Ok(swapped.is_ok())
    }

    /// Writes every connection (or connection `id`) that `change` changes. Connection writes
    /// are single records with no index, and only termination changes them, which changes a
    /// record at most once, so they need no lock.
    pub(super) fn connections_change(
        &self,
        id: Option<uuid::Uuid>,
        change: ConnectionChange,
    ) -> Result<(), StoreError> {
        let records = match id {
            Some(id) => {
                super::get_json(&self.trees()?.connections, id.as_bytes())?.into_iter().collect()
            }
            None => all::<ConnectionRecord>(&self.trees()?.connections)?,
        };
        for mut record in records {
            if change(&mut record) {
                self.writable()?
                    .connections
                    .insert(record.id.as_bytes(), serde_json::to_vec(&record)?)?;
            }
        }
        Ok(())
    }
}
