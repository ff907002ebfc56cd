//! Local users: what a user is, and the rules of writing one (the engine keeps the user, its
//! password and its indexes in step).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::cache::{ListingKey, Listings, TagLists, TagsKey, Users};
use super::{Authorship, Listing, Page, Stamp, Store, StoreError};

/// The fields of a user that a client sets. `tags` and `attributes` are always written, also
/// empty (clients index them); a missing or `null` one reads as empty (the Go SDK sends
/// `"attributes": null`, and layout 2 left empty tags out).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UserProfile {
    pub username: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attributes: Vec<UserAttribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub password_change_required: bool,
}

/// A free-form key-value attribute of a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserAttribute {
    pub key: String,
    pub value: String,
}

/// A `null` as the type's default, as if the field were left out.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::deserialize(deserializer)?.unwrap_or_default())
}

/// A user. Its JSON is exactly the API's `User` (what `GET /users/{id}` answers), so that is
/// what engines store and reads serve as it is; the password is kept apart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub id: Uuid,
    #[serde(flatten)]
    pub authorship: Authorship,
    #[serde(flatten)]
    pub profile: UserProfile,
    /// In the `passwords` tree, never in the user's JSON.
    #[serde(skip)]
    pub password: Option<PasswordHash>,
}

/// A password: only its argon2id hash (PHC string), and when it was set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PasswordHash {
    pub hash: String,
    pub created: DateTime<Utc>,
}

/// Usernames are unique, and found, regardless of case (the Python SDK lower-cases the
/// username it searches for): every engine indexes users by this key.
pub(crate) fn username_key(username: &str) -> String {
    username.to_lowercase()
}

fn validate(profile: &UserProfile) -> Result<(), StoreError> {
    if profile.username.is_empty() {
        return Err(StoreError::Invalid {
            property: "username",
            message: "username must not be empty".to_string(),
        });
    }
    Ok(())
}

impl Store {
    /// Creates a user; the username must be free.
    pub async fn user_create(
        &self,
        id: Uuid,
        profile: UserProfile,
        password: Option<PasswordHash>,
        stamp: Stamp,
    ) -> Result<UserRecord, StoreError> {
        validate(&profile)?;
        let record = UserRecord { id, authorship: Authorship::new(stamp), profile, password };
        self.changing_users(self.engine.user_insert(record.clone(), false)).await?;
        Ok(record)
    }

    /// Inserts a user exactly as given unless one with its id exists (fixtures).
    pub(super) async fn user_insert_absent(&self, record: UserRecord) -> Result<(), StoreError> {
        validate(&record.profile)?;
        self.changing_users(self.engine.user_insert(record, true)).await
    }

    /// A user's JSON as stored, which is the API's `User` (see [`UserRecord`]); repeated
    /// reads are served from memory (see [`cache`](super::cache)).
    pub async fn user_json(&self, id: Uuid) -> Result<Vec<u8>, StoreError> {
        let engine = &*self.engine;
        self.cache.read::<Users, _>(engine, id, || engine.user_json(id)).await
    }

    /// User `id`'s password (`Some(None)`: the user has none), or `None` if there is no user
    /// `id`.
    pub async fn user_password(
        &self,
        id: Uuid,
    ) -> Result<Option<Option<PasswordHash>>, StoreError> {
        self.engine.user_password(id).await
    }

    /// The user with `username` (regardless of case), with its password, if there is one.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.engine.user_by_name(username).await
    }

    /// Users' JSON as stored (each the API's `User`, see [`UserRecord`]) in creation order,
    /// filtered by `username` (regardless of case) and/or `id`; repeated listings are served
    /// from memory (see [`cache`](super::cache)).
    pub async fn user_list(
        &self,
        username: Option<&str>,
        id: Option<Uuid>,
        page: Page,
    ) -> Result<Arc<Listing<Vec<u8>>>, StoreError> {
        let engine = &*self.engine;
        let key = ListingKey::new(username, id, page);
        let read = || async { engine.user_list(username, id, page).await.map(Arc::new) };
        self.cache.read::<Listings, _>(engine, key, read).await
    }

    /// Replaces a user's profile (and password, if one is given).
    pub async fn user_update(
        &self,
        id: Uuid,
        profile: UserProfile,
        password: Option<PasswordHash>,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        validate(&profile)?;
        self.user_change(id, stamp, move |user| {
            user.profile = profile;
            if let Some(password) = password {
                user.password = Some(password);
            }
        })
        .await
    }

    pub async fn user_password_set(
        &self,
        id: Uuid,
        password: PasswordHash,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        self.user_change(id, stamp, move |user| user.password = Some(password)).await
    }

    /// Applies `change` to user `id` and stamps the change.
    async fn user_change(
        &self,
        id: Uuid,
        stamp: Stamp,
        change: impl FnOnce(&mut UserRecord) + Send + 'static,
    ) -> Result<(), StoreError> {
        let change = move |user: &mut UserRecord| {
            change(user);
            user.authorship.touch(stamp);
        };
        self.changing_users(self.engine.user_change(id, Box::new(change))).await
    }

    /// Deletes a user, its index entries and its WebAuthn credentials, at once.
    pub async fn user_delete(&self, id: Uuid) -> Result<(), StoreError> {
        self.changing_users(self.engine.user_delete(id)).await
    }

    /// The distinct tags of all users that contain `query` (case-insensitively), sorted;
    /// repeated lists are served from memory (see [`cache`](super::cache)).
    pub async fn user_tags(
        &self,
        query: Option<&str>,
        descending: bool,
        page: Page,
    ) -> Result<Arc<Vec<String>>, StoreError> {
        let engine = &*self.engine;
        let key = TagsKey::new(query, descending, page);
        let read = || async { engine.user_tags(query, descending, page).await.map(Arc::new) };
        self.cache.read::<TagLists, _>(engine, key, read).await
    }
}
