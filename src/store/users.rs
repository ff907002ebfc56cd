//! Local users, with their password, username index, tag index and count kept in step by
//! writing each change as one [`Batch`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::batch::Batch;
use super::{
    get_json, read_u64, Authorship, Listing, Page, Stamp, Store, StoreError, Trees, USER_COUNT,
};

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
/// what the `users` tree holds and reads serve as they are; the password is kept apart.
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
/// username it searches for).
fn username_key(username: &str) -> Vec<u8> {
    username.to_lowercase().into_bytes()
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

/// A user record from its stored JSON and its stored password, if it has one.
fn user_record(json: &[u8], password: Option<&[u8]>) -> Result<UserRecord, StoreError> {
    let mut user: UserRecord = serde_json::from_slice(json)?;
    user.password = password.map(serde_json::from_slice).transpose()?;
    Ok(user)
}

/// The trees a user write touches, through one [`Batch`].
pub(super) struct UserTx<'a> {
    pub(super) store: &'a Trees,
    pub(super) batch: Batch,
}

impl UserTx<'_> {
    fn get(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        let Some(json) = self.batch.get(&self.store.users, id.as_bytes())? else {
            return Ok(None);
        };
        let password = self.batch.get(&self.store.passwords, id.as_bytes())?;
        user_record(&json, password.as_deref()).map(Some)
    }

    /// Writes `new` in place of `old`, keeping every index in step.
    pub(super) fn put(
        &mut self,
        old: Option<&UserRecord>,
        new: &UserRecord,
    ) -> Result<(), StoreError> {
        let store = self.store;
        let name = username_key(&new.profile.username);
        if let Some(holder) = self.batch.get(&store.usernames, &name)? {
            if holder.as_ref() != new.id.as_bytes() {
                return Err(StoreError::Duplicate {
                    property: "username",
                    value: new.profile.username.clone(),
                });
            }
        }
        if let Some(old) = old {
            let old_name = username_key(&old.profile.username);
            if old_name != name {
                self.batch.remove(&store.usernames, old_name);
            }
        } else {
            self.add_to_count(1)?;
        }
        self.batch.insert(&store.usernames, name, new.id.as_bytes());
        let old_tags = old.map_or(&[][..], |o| &o.profile.tags[..]);
        self.count_tags(old_tags, &new.profile.tags)?;
        self.batch.insert(&store.users, new.id.as_bytes(), serde_json::to_vec(new)?);
        // A user never loses its password by an update, so only a new one is written.
        let old_password = old.and_then(|o| o.password.as_ref());
        if let Some(password) = new.password.as_ref().filter(|&p| old_password != Some(p)) {
            self.batch.insert(&store.passwords, new.id.as_bytes(), serde_json::to_vec(password)?);
        }
        Ok(())
    }

    fn remove(&mut self, old: &UserRecord) -> Result<(), StoreError> {
        let store = self.store;
        self.batch.remove(&store.users, old.id.as_bytes());
        self.batch.remove(&store.passwords, old.id.as_bytes());
        self.batch.remove(&store.usernames, username_key(&old.profile.username));
        self.credentials_remove_of_user(old.id)?;
        self.count_tags(&old.profile.tags, &[])?;
        self.add_to_count(-1)
    }

    /// Moves the tag counts from a user's `old` tags to its `new` ones; a tag nobody carries
    /// any more leaves the index. Each distinct tag whose count changes is read and written
    /// once, so the cost is linear in the number of tags, and an update that keeps a tag
    /// does not touch its count.
    fn count_tags(&mut self, old: &[String], new: &[String]) -> Result<(), StoreError> {
        let mut deltas: HashMap<&str, i64> = HashMap::new();
        for (tags, delta) in [(old, -1), (new, 1)] {
            for tag in tags {
                *deltas.entry(tag).or_default() += delta;
            }
        }
        let tree = &self.store.tag_counts;
        for (tag, delta) in deltas.into_iter().filter(|&(_, delta)| delta != 0) {
            let count = self.batch.get(tree, tag.as_bytes())?.map(|v| read_u64(&v)).unwrap_or(0);
            match count.saturating_add_signed(delta) {
                0 => self.batch.remove(tree, tag.as_bytes()),
                n => self.batch.insert(tree, tag.as_bytes(), n.to_be_bytes()),
            };
        }
        Ok(())
    }

    fn add_to_count(&mut self, delta: i64) -> Result<(), StoreError> {
        let meta = &self.store.meta;
        let count = self.batch.get(meta, USER_COUNT)?.map(|v| read_u64(&v)).unwrap_or(0);
        self.batch.insert(meta, USER_COUNT, count.saturating_add_signed(delta).to_be_bytes());
        Ok(())
    }
}

impl Store {
    /// Runs `f` on the user trees, then writes what it wrote all at once (nothing if it fails).
    pub(super) fn user_tx<T>(
        &self,
        f: impl FnOnce(&mut UserTx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _exclusive = self.users_lock.write().unwrap_or_else(|p| p.into_inner());
        let trees = self.writable()?;
        let mut tx = UserTx { store: &trees, batch: Batch::new(&trees.meta) };
        let out = f(&mut tx)?;
        let applied = tx.batch.apply(|undo| self.disk.applied(undo));
        applied.map_err(|e| self.disk.write_failed(e))?;
        Ok(out)
    }

    /// Creates a user; the username must be free.
    pub fn user_create(
        &self,
        id: Uuid,
        profile: UserProfile,
        password: Option<PasswordHash>,
        stamp: Stamp,
    ) -> Result<UserRecord, StoreError> {
        validate(&profile)?;
        let record = UserRecord { id, authorship: Authorship::new(stamp), profile, password };
        self.user_tx(|tx| tx.put(None, &record))?;
        Ok(record)
    }

    /// Inserts a user exactly as given unless one with its id exists (fixtures).
    pub(super) fn user_insert_absent(&self, record: &UserRecord) -> Result<(), StoreError> {
        validate(&record.profile)?;
        self.user_tx(|tx| match tx.get(record.id)? {
            Some(_) => Ok(()),
            None => tx.put(None, record),
        })
    }

    /// A user's JSON as stored, which is the API's `User` (see [`UserRecord`]).
    pub fn user_json(&self, id: Uuid) -> Result<Vec<u8>, StoreError> {
        let json = self.trees()?.users.get(id.as_bytes())?;
        json.map(|json| json.to_vec()).ok_or_else(|| StoreError::not_found("user", id))
    }

    /// The user stored under `id` as `json`, with its password.
    pub(super) fn user_with_password(
        &self,
        id: &[u8],
        json: &[u8],
    ) -> Result<UserRecord, StoreError> {
        user_record(json, self.trees()?.passwords.get(id)?.as_deref())
    }

    /// User `id`'s password (`Some(None)`: the user has none), or `None` if there is no user
    /// `id`.
    pub fn user_password(&self, id: Uuid) -> Result<Option<Option<PasswordHash>>, StoreError> {
        let trees = self.trees()?;
        if !trees.users.contains_key(id.as_bytes())? {
            return Ok(None);
        }
        let password = trees.passwords.get(id.as_bytes())?;
        Ok(Some(password.map(|p| serde_json::from_slice(&p)).transpose()?))
    }

    /// The user with `username`, with its password, if there is one.
    pub fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let Some(id) = self.trees()?.usernames.get(username_key(username))? else {
            return Ok(None);
        };
        let json = self.trees()?.users.get(&id)?.ok_or_else(corrupt_index)?;
        self.user_with_password(&id, &json).map(Some)
    }

    /// Users in creation order, filtered by exact `username` and/or `id`, decoded as `T`: the
    /// API's `User`, or any type with the same JSON field names.
    pub fn user_list<T: DeserializeOwned>(
        &self,
        username: Option<&str>,
        id: Option<Uuid>,
        page: Page,
    ) -> Result<Listing<T>, StoreError> {
        let _shared = self.users_lock.read().unwrap_or_else(|p| p.into_inner());
        let by_name = match username {
            Some(name) => match self.trees()?.usernames.get(username_key(name))? {
                Some(bytes) => Some(Uuid::from_slice(&bytes).map_err(|_| corrupt_index())?),
                None => return Ok(Listing { count: 0, items: Vec::new() }),
            },
            None => None,
        };
        let wanted = match (by_name, id) {
            (Some(a), Some(b)) if a != b => return Ok(Listing { count: 0, items: Vec::new() }),
            (a, b) => a.or(b),
        };
        if let Some(id) = wanted {
            let found: Option<T> = get_json(&self.trees()?.users, id.as_bytes())?;
            let count = u64::from(found.is_some());
            return Ok(Listing { count, items: page.apply(found.into_iter()) });
        }
        let count = self.trees()?.meta.get(USER_COUNT)?.map(|v| read_u64(&v)).unwrap_or(0);
        // sled has no positional access: walk from whichever end is nearer the page, so the
        // last page costs what the first does.
        let values = if page.offset > count / 2 {
            let end = page.offset.saturating_add(page.limit).min(count);
            let from_end = Page { offset: count - end, limit: end.saturating_sub(page.offset) };
            let mut values = from_end.apply(self.trees()?.users.iter().values().rev());
            values.reverse();
            values
        } else {
            page.apply(self.trees()?.users.iter().values())
        };
        let items = values
            .into_iter()
            .map(|value| Ok(serde_json::from_slice(&value?)?))
            .collect::<Result<_, StoreError>>()?;
        Ok(Listing { count, items })
    }

    /// Replaces a user's profile (and password, if one is given).
    pub fn user_update(
        &self,
        id: Uuid,
        profile: UserProfile,
        password: Option<PasswordHash>,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        validate(&profile)?;
        self.user_change(id, stamp, |user| {
            user.profile = profile.clone();
            if let Some(password) = &password {
                user.password = Some(password.clone());
            }
        })
    }

    pub fn user_password_set(
        &self,
        id: Uuid,
        password: PasswordHash,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        self.user_change(id, stamp, |user| user.password = Some(password.clone()))
    }

    /// Applies `change` to user `id` and stamps the change.
    fn user_change(
        &self,
        id: Uuid,
        stamp: Stamp,
        change: impl Fn(&mut UserRecord),
    ) -> Result<(), StoreError> {
        self.user_tx(|tx| {
            let Some(old) = tx.get(id)? else {
                return Err(StoreError::not_found("user", id));
            };
            let mut new = old.clone();
            change(&mut new);
            new.authorship.touch(stamp);
            tx.put(Some(&old), &new)
        })
    }

    /// Deletes a user, its index entries and its WebAuthn credentials, as one batch.
    pub fn user_delete(&self, id: Uuid) -> Result<(), StoreError> {
        self.user_tx(|tx| match tx.get(id)? {
            Some(old) => tx.remove(&old),
            None => Err(StoreError::not_found("user", id)),
        })
    }

    /// The distinct tags of all users that contain `query` (case-insensitively), sorted.
    pub fn user_tags(
        &self,
        query: Option<&str>,
        descending: bool,
        page: Page,
    ) -> Result<Vec<String>, StoreError> {
        let _shared = self.users_lock.read().unwrap_or_else(|p| p.into_inner());
        let query = query.map(str::to_lowercase);
        let mut tags: Vec<String> = Vec::new();
        for key in self.trees()?.tag_counts.iter().keys() {
            let key = key?;
            let tag = std::str::from_utf8(&key).map_err(|_| corrupt_index())?;
            if query.as_ref().is_none_or(|q| tag.to_lowercase().contains(q.as_str())) {
                tags.push(tag.to_string());
            }
        }
        // Keys are in byte order, which is the order of the strings; only descending is left.
        if descending {
            tags.reverse();
        }
        Ok(page.apply(tags.into_iter()))
    }
}

fn corrupt_index() -> StoreError {
    StoreError::Corrupt(serde::de::Error::custom("malformed index key"))
}
