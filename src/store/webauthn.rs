//! WebAuthn credentials, keyed under their user so a user's credentials are one key range.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{get_json, insert_absent, sort_by_key, Listing, Page, Stamp, Store, StoreError};

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
    pub created: DateTime<Utc>,
    pub author: Uuid,
    pub updated: DateTime<Utc>,
    pub updated_by: Uuid,
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
    fn credentials_of(
        &self,
        user_id: Uuid,
    ) -> impl Iterator<Item = Result<CredentialRecord, StoreError>> {
        self.credentials
            .scan_prefix(user_id.as_bytes())
            .values()
            .map(|value| Ok(serde_json::from_slice(&value?)?))
    }

    pub fn credential_list(
        &self,
        user_id: Uuid,
        sort: CredentialSort,
        descending: bool,
        page: Page,
    ) -> Result<Listing<CredentialRecord>, StoreError> {
        let mut all = self.credentials_of(user_id).collect::<Result<Vec<_>, _>>()?;
        match sort {
            CredentialSort::Id => sort_by_key(&mut all, descending, |c| c.id),
            CredentialSort::UserId => sort_by_key(&mut all, descending, |c| c.user_id),
            CredentialSort::CredentialId => {
                sort_by_key(&mut all, descending, |c| c.credential_id.clone())
            }
            CredentialSort::Name => sort_by_key(&mut all, descending, |c| c.name.clone()),
            CredentialSort::LastUsed => sort_by_key(&mut all, descending, |c| c.last_used),
            CredentialSort::Author => sort_by_key(&mut all, descending, |c| c.author),
            CredentialSort::Created => sort_by_key(&mut all, descending, |c| c.created),
            CredentialSort::Updated => sort_by_key(&mut all, descending, |c| c.updated),
            CredentialSort::UpdatedBy => sort_by_key(&mut all, descending, |c| c.updated_by),
        }
        Ok(Listing { count: all.len() as u64, items: page.apply(all.into_iter()) })
    }

    pub fn credential_get(&self, user_id: Uuid, id: Uuid) -> Result<CredentialRecord, StoreError> {
        get_json(&self.credentials, &key(user_id, id))?
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
        let mut record = self.credential_get(user_id, id)?;
        record.name = name.or(record.name);
        record.comment = comment.or(record.comment);
        record.updated = stamp.now;
        record.updated_by = stamp.actor;
        self.credentials.insert(key(user_id, id), serde_json::to_vec(&record)?)?;
        Ok(())
    }

    pub fn credential_delete(&self, user_id: Uuid, id: Uuid) -> Result<(), StoreError> {
        match self.credentials.remove(key(user_id, id))? {
            Some(_) => Ok(()),
            None => Err(StoreError::not_found("webauthn credential", id)),
        }
    }

    pub(super) fn credentials_delete_of_user(&self, user_id: Uuid) -> Result<(), StoreError> {
        for key in self.credentials.scan_prefix(user_id.as_bytes()).keys() {
            self.credentials.remove(key?)?;
        }
        Ok(())
    }

    /// Inserts a credential exactly as given unless it exists (fixtures).
    pub(super) fn credential_insert_absent(
        &self,
        record: &CredentialRecord,
    ) -> Result<(), StoreError> {
        insert_absent(&self.credentials, &key(record.user_id, record.id), record)
    }
}
