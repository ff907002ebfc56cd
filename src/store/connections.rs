//! Connections, which only fixtures create: the API flags them for termination.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{all, get_json, Stamp, Store, StoreError};

/// A connection, as far as termination cares. Connections come from fixtures only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub host_id: Uuid,
    #[serde(default)]
    pub terminated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_by: Option<Uuid>,
}

impl Store {
    /// Flags one connection for termination.
    pub fn connection_terminate(&self, id: Uuid, stamp: Stamp) -> Result<(), StoreError> {
        let record: ConnectionRecord = get_json(&self.connections, id.as_bytes())?
            .ok_or_else(|| StoreError::not_found("connection", id))?;
        self.connection_flag(record, stamp)
    }

    /// Flags every connection that `matches` for termination; none matching is fine.
    pub fn connections_terminate(
        &self,
        matches: impl Fn(&ConnectionRecord) -> bool,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        for entry in self.connections.iter() {
            let (_, value) = entry?;
            let record: ConnectionRecord = serde_json::from_slice(&value)?;
            if matches(&record) {
                self.connection_flag(record, stamp)?;
            }
        }
        Ok(())
    }

    fn connection_flag(
        &self,
        mut record: ConnectionRecord,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        if !record.terminated {
            record.terminated = true;
            record.terminated_at = Some(stamp.now);
            record.terminated_by = Some(stamp.actor);
            self.connections.insert(record.id.as_bytes(), serde_json::to_vec(&record)?)?;
        }
        Ok(())
    }

    /// Every connection, in id order.
    pub fn connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        all(&self.connections)
    }

    /// Stores a connection exactly as given unless one with its id exists (fixtures).
    pub(super) fn connection_insert_absent(
        &self,
        record: &ConnectionRecord,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record)?;
        // An existing record is kept: the comparison failing is the outcome wanted, not an error.
        let _kept =
            self.connections.compare_and_swap(record.id.as_bytes(), None::<&[u8]>, Some(json))?;
        Ok(())
    }
}
