//! WebAuthn credentials in sled, keyed under their user so a user's credentials are one key
//! range.
//!
//! Credentials are part of their user: they are written through the user's [`UserTx`] (under
//! the users lock, as one batch), so deleting a user takes its credentials along in the same
//! batch and no credential write can slip in between.

use uuid::Uuid;

use super::users::UserTx;
use super::{get_json, SledStore, StoreError};
use crate::store::engine::CredentialChange;
use crate::store::webauthn::not_found;
use crate::store::CredentialRecord;

fn key(user_id: Uuid, id: Uuid) -> [u8; 32] {
    let mut key = [0; 32];
    key[..16].copy_from_slice(user_id.as_bytes());
    key[16..].copy_from_slice(id.as_bytes());
    key
}

impl SledStore {
    /// The credentials of user `user_id`, who must exist.
    pub(super) fn credentials_of(
        &self,
        user_id: Uuid,
    ) -> Result<Vec<CredentialRecord>, StoreError> {
        let trees = self.trees()?;
        if !trees.users.contains_key(user_id.as_bytes())? {
            return Err(StoreError::not_found("user", user_id));
        }
        let credentials = trees.credentials.scan_prefix(user_id.as_bytes()).values();
        credentials.map(|value| Ok(serde_json::from_slice(&value?)?)).collect()
    }

    pub(super) fn credential(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        get_json(&self.trees()?.credentials, &key(user_id, id))
    }

    pub(super) fn credential_change(
        &self,
        user_id: Uuid,
        id: Uuid,
        change: CredentialChange,
    ) -> Result<(), StoreError> {
        self.user_tx(|tx| {
            let mut record = tx.credential(user_id, id)?.ok_or_else(|| not_found(id))?;
            change(&mut record);
            tx.credential_put(&record)
        })
    }

    pub(super) fn credential_delete(&self, user_id: Uuid, id: Uuid) -> Result<(), StoreError> {
        self.user_tx(|tx| {
            tx.credential(user_id, id)?.ok_or_else(|| not_found(id))?;
            tx.batch.remove(&tx.store.credentials, key(user_id, id));
            Ok(())
        })
    }

    /// Inserts a credential exactly as given unless it exists; its user must exist.
    pub(super) fn credential_insert_absent(
        &self,
        record: &CredentialRecord,
    ) -> Result<(), StoreError> {
        self.user_tx(|tx| {
            if !tx.user_exists(record.user_id)? {
                return Err(StoreError::not_found("user", record.user_id));
            }
            match tx.credential(record.user_id, record.id)? {
                Some(_) => Ok(()),
                None => tx.credential_put(record),
            }
        })
    }
}

impl UserTx<'_> {
    fn credential(&self, user_id: Uuid, id: Uuid) -> Result<Option<CredentialRecord>, StoreError> {
        let json = self.read(&self.store.credentials, &key(user_id, id))?;
        Ok(json.map(|json| serde_json::from_slice(&json)).transpose()?)
    }

    fn credential_put(&mut self, record: &CredentialRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record)?;
        self.batch.insert(&self.store.credentials, key(record.user_id, record.id), json);
        Ok(())
    }

    /// Removes every credential of `user_id` (with the user, in the user's batch).
    /// Also those written earlier in the writer's round, not yet in the tree.
    pub(super) fn credentials_remove_of_user(&mut self, user_id: Uuid) -> Result<(), StoreError> {
        let tree = &self.store.credentials;
        for key in tree.scan_prefix(user_id.as_bytes()).keys() {
            self.batch.remove(tree, key?);
        }
        let gathered = self.gathered.map(|g| g.written_under(tree, user_id.as_bytes()));
        for key in gathered.unwrap_or_default() {
            self.batch.remove(tree, key);
        }
        Ok(())
    }
}
