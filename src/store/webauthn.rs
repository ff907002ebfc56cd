//! WebAuthn credentials, keyed under their user so a user's credentials are one key range.
//!
//! Credentials are part of their user: they are written through the user's [`UserTx`] (under
//! the users lock, as one batch), so deleting a user takes its credentials along in the same
//! batch and no credential write can slip in between.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::users::UserTx;
use super::{get_json, sort_by_key, Authorship, Listing, Page, Stamp, Store, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CredentialRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub authorship: Authorship,
}

/// The keys credentials can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSort {
    Id,
    UserId,
    CredentialId,
    Name,
    LastUsed,
    Author,
    Created,
    Updated,
    UpdatedBy,
}

fn key(user_id: Uuid, id: Uuid) -> [u8; 32] {
    let mut key = [0; 32];
    key[..16].copy_from_slice(user_id.as_bytes());
    key[16..].copy_from_slice(id.as_bytes());
    key
}

impl Store {
    pub(super) fn credentials_of(
        &self,
        user_id: Uuid,
    ) -> Result<impl Iterator<Item = Result<CredentialRecord, StoreError>>, StoreError> {
        let credentials = self.trees()?.credentials.scan_prefix(user_id.as_bytes()).values();
        Ok(credentials.map(|value| Ok(serde_json::from_slice(&value?)?)))
    }

    /// A page of the credentials of user `user_id`, who must exist.
    pub fn credential_list(
        &self,
        user_id: Uuid,
        sort: CredentialSort,
        descending: bool,
        page: Page,
    ) -> Result<Listing<CredentialRecord>, StoreError> {
        if !self.trees()?.users.contains_key(user_id.as_bytes())? {
            return Err(StoreError::not_found("user", user_id));
        }
        let mut all = self.credentials_of(user_id)?.collect::<Result<Vec<_>, _>>()?;
        match sort {
            CredentialSort::Id => sort_by_key(&mut all, descending, |c| c.id),
            CredentialSort::UserId => sort_by_key(&mut all, descending, |c| c.user_id),
            CredentialSort::CredentialId => {
                sort_by_key(&mut all, descending, |c| c.credential_id.clone())
            }
            CredentialSort::Name => sort_by_key(&mut all, descending, |c| c.name.clone()),
            CredentialSort::LastUsed => sort_by_key(&mut all, descending, |c| c.last_used),
            CredentialSort::Author => sort_by_key(&mut all, descending, |c| c.authorship.author),
            CredentialSort::Created => sort_by_key(&mut all, descending, |c| c.authorship.created),
            CredentialSort::Updated => sort_by_key(&mut all, descending, |c| c.authorship.updated),
            CredentialSort::UpdatedBy => {
                sort_by_key(&mut all, descending, |c| c.authorship.updated_by)
            }
        }
        Ok(Listing { count: all.len() as u64, items: page.apply(all.into_iter()) })
    }

    pub fn credential_get(&self, user_id: Uuid, id: Uuid) -> Result<CredentialRecord, StoreError> {
        get_json(&self.trees()?.credentials, &key(user_id, id))?
            .ok_or_else(|| StoreError::not_found("webauthn credential", id))
    }

    /// Sets a credential's name and comment (a field left out keeps its value).
    pub fn credential_update(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: Option<String>,
        comment: Option<String>,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        self.user_tx(|tx| {
            let mut record = tx.credential(user_id, id)?.ok_or_else(|| not_found(id))?;
            record.name = name.or(record.name);
            record.comment = comment.or(record.comment);
            record.authorship.touch(stamp);
            tx.credential_put(&record)
        })
    }

    pub fn credential_delete(&self, user_id: Uuid, id: Uuid) -> Result<(), StoreError> {
        self.user_tx(|tx| {
            tx.credential(user_id, id)?.ok_or_else(|| not_found(id))?;
            tx.batch.remove(&tx.store.credentials, key(user_id, id));
            Ok(())
        })
    }

    /// Inserts a credential exactly as given unless it exists (fixtures).
    pub(super) fn credential_insert_absent(
        &self,
        record: &CredentialRecord,
    ) -> Result<(), StoreError> {
        self.user_tx(|tx| match tx.credential(record.user_id, record.id)? {
            Some(_) => Ok(()),
            None => tx.credential_put(record),
        })
    }
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::not_found("webauthn credential", id)
}

impl UserTx<'_> {
    fn credential(&self, user_id: Uuid, id: Uuid) -> Result<Option<CredentialRecord>, StoreError> {
        let json = self.batch.get(&self.store.credentials, &key(user_id, id))?;
        Ok(json.map(|json| serde_json::from_slice(&json)).transpose()?)
    }

    fn credential_put(&mut self, record: &CredentialRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record)?;
        self.batch.insert(&self.store.credentials, key(record.user_id, record.id), json);
        Ok(())
    }

    /// Removes every credential of `user_id` (with the user, in the user's batch).
    pub(super) fn credentials_remove_of_user(&mut self, user_id: Uuid) -> Result<(), StoreError> {
        for key in self.store.credentials.scan_prefix(user_id.as_bytes()).keys() {
            self.batch.remove(&self.store.credentials, key?);
        }
        Ok(())
    }
}
