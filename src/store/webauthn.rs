//! WebAuthn credentials. They are part of their user: engines delete them with it, in the
//! same write, and write a credential only while its user exists.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{listing, sort_by_key, Authorship, Listing, Page, Stamp, Store, StoreError};

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

impl Store {
    /// A page of the credentials of user `user_id`, who must exist.
    pub async fn credential_list(
        &self,
        user_id: Uuid,
        sort: CredentialSort,
        descending: bool,
        page: Page,
    ) -> Result<Listing<CredentialRecord>, StoreError> {
        let all = self.engine.credentials_of(user_id).await?;
        let sort = |all: &mut [CredentialRecord]| match sort {
            CredentialSort::Id => sort_by_key(all, descending, |c| c.id),
            CredentialSort::UserId => sort_by_key(all, descending, |c| c.user_id),
            CredentialSort::CredentialId => {
                sort_by_key(all, descending, |c| c.credential_id.clone())
            }
            CredentialSort::Name => sort_by_key(all, descending, |c| c.name.clone()),
            CredentialSort::LastUsed => sort_by_key(all, descending, |c| c.last_used),
            CredentialSort::Author => sort_by_key(all, descending, |c| c.authorship.author),
            CredentialSort::Created => sort_by_key(all, descending, |c| c.authorship.created),
            CredentialSort::Updated => sort_by_key(all, descending, |c| c.authorship.updated),
            CredentialSort::UpdatedBy => sort_by_key(all, descending, |c| c.authorship.updated_by),
        };
        Ok(listing(all, sort, page))
    }

    pub async fn credential_get(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<CredentialRecord, StoreError> {
        self.engine.credential(user_id, id).await?.ok_or_else(|| not_found(id))
    }

    /// Sets a credential's name and comment (a field left out keeps its value).
    pub async fn credential_update(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: Option<String>,
        comment: Option<String>,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        let change = move |record: &mut CredentialRecord| {
            record.name = name.or(record.name.take());
            record.comment = comment.or(record.comment.take());
            record.authorship.touch(stamp);
        };
        self.engine.credential_change(user_id, id, Box::new(change)).await
    }

    pub async fn credential_delete(&self, user_id: Uuid, id: Uuid) -> Result<(), StoreError> {
        self.engine.credential_delete(user_id, id).await
    }
}

/// The error engines answer for an unknown credential.
pub(super) fn not_found(id: Uuid) -> StoreError {
    StoreError::not_found("webauthn credential", id)
}
