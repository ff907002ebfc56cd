//! Upgrades of a store written by an earlier version of the server (see "Layout versions" in
//! the store's docs). Each step is idempotent, so an upgrade cut short just runs again.

use super::{read_u64, SledStore, StoreError};
use crate::store::connections::FixtureConnection;
use crate::store::{PasswordHash, Stamp, UserRecord};

const LAYOUT: &[u8] = b"layout";
/// The layout this code reads and writes.
const LAYOUT_VERSION: u64 = 4;

impl SledStore {
    /// Brings a store of an earlier layout to this one, and refuses a later one.
    pub(super) fn upgrade(&self) -> Result<(), StoreError> {
        let version = self.trees()?.meta.get(LAYOUT)?.map_or(1, |v| read_u64(&v));
        if version > LAYOUT_VERSION {
            return Err(StoreError::Storage(sled::Error::Unsupported(format!(
                "store layout {version} is not this server's ({LAYOUT_VERSION}): written by a \
                 newer server?"
            ))));
        }
        if version == LAYOUT_VERSION {
            return Ok(());
        }
        if version < 2 {
            self.move_password_hashes()?;
        }
        if version < 3 {
            self.rewrite_users()?;
        }
        self.complete_connections()?;
        self.trees()?.meta.insert(LAYOUT, &LAYOUT_VERSION.to_be_bytes())?;
        self.flush()
    }

    /// Layout 1 to 2: each password hash leaves its user's JSON for `passwords`.
    fn move_password_hashes(&self) -> Result<(), StoreError> {
        for entry in self.trees()?.users.iter() {
            let (id, json) = entry?;
            let mut user: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&json)?;
            let (Some(hash), created) =
                (user.remove("password_hash"), user.remove("password_created"))
            else {
                continue;
            };
            let password = PasswordHash {
                hash: serde_json::from_value(hash)?,
                created: serde_json::from_value(created.unwrap_or_default())?,
            };
            self.trees()?.passwords.insert(&id, serde_json::to_vec(&password)?)?;
            self.trees()?.users.insert(&id, serde_json::to_vec(&user)?)?;
        }
        Ok(())
    }

    /// Layout 2 to 3: each user's JSON is written again as a [`UserRecord`] writes it (with
    /// `tags` and `attributes` also when empty), since reads serve it as it is stored.
    fn rewrite_users(&self) -> Result<(), StoreError> {
        for entry in self.trees()?.users.iter() {
            let (id, json) = entry?;
            let user: UserRecord = serde_json::from_slice(&json)?;
            self.trees()?.users.insert(&id, serde_json::to_vec(&user)?)?;
        }
        Ok(())
    }

    /// Layout 3 to 4: each connection in the old `{id, user_id, host_id, terminated...}` form
    /// becomes a whole connection. The old form has no times: a flagged one is connected and
    /// terminated at its `terminated_at`, the others are connected at the Unix epoch.
    fn complete_connections(&self) -> Result<(), StoreError> {
        let stamp = Stamp { actor: uuid::Uuid::nil(), now: chrono::DateTime::UNIX_EPOCH };
        for entry in self.trees()?.connections.iter() {
            let (id, json) = entry?;
            if let FixtureConnection::Legacy(old) = serde_json::from_slice(&json)? {
                self.trees()?.connections.insert(&id, serde_json::to_vec(&old.record(stamp))?)?;
            }
        }
        Ok(())
    }
}
