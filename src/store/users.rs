//! Local users, with their username index, tag index and count kept in step transactionally.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;
use uuid::Uuid;

use super::{abort, get_json, Listing, Page, Stamp, Store, StoreError, USER_COUNT};

/// The fields of a user that a client sets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UserProfile {
    pub username: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
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
}

/// A stored user. The password exists only as an argon2id hash (PHC string).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub id: Uuid,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub author: Uuid,
    pub updated_by: Uuid,
    #[serde(flatten)]
    pub profile: UserProfile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_created: Option<DateTime<Utc>>,
    #[serde(default)]
    pub password_change_required: bool,
}

/// A new password: its hash and when it was set.
#[derive(Debug, Clone)]
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

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// The trees a user write touches, inside one transaction.
struct UserTx<'a> {
    users: &'a TransactionalTree,
    usernames: &'a TransactionalTree,
    tag_counts: &'a TransactionalTree,
    meta: &'a TransactionalTree,
}

impl UserTx<'_> {
    fn get(&self, id: Uuid) -> TxResult<Option<UserRecord>> {
        match self.users.get(id.as_bytes())? {
            Some(bytes) => {
                serde_json::from_slice(&bytes).map(Some).or_else(|e| abort(StoreError::Corrupt(e)))
            }
            None => Ok(None),
        }
    }

    /// Writes `new` in place of `old`, keeping every index in step.
    fn put(&self, old: Option<&UserRecord>, new: &UserRecord) -> TxResult<()> {
        let name = username_key(&new.profile.username);
        if let Some(holder) = self.usernames.get(&name)? {
            if holder.as_ref() != new.id.as_bytes() {
                return abort(StoreError::Duplicate {
                    property: "username",
                    value: new.profile.username.clone(),
                });
            }
        }
        if let Some(old) = old {
            let old_name = username_key(&old.profile.username);
            if old_name != name {
                self.usernames.remove(old_name)?;
            }
            self.count_tags(&old.profile.tags, -1)?;
        } else {
            self.add_to_count(1)?;
        }
        self.usernames.insert(name, new.id.as_bytes())?;
        self.count_tags(&new.profile.tags, 1)?;
        let bytes = serde_json::to_vec(new).or_else(|e| abort(StoreError::Corrupt(e)))?;
        self.users.insert(new.id.as_bytes(), bytes)?;
        Ok(())
    }

    fn remove(&self, old: &UserRecord) -> TxResult<()> {
        self.users.remove(old.id.as_bytes())?;
        self.usernames.remove(username_key(&old.profile.username))?;
        self.count_tags(&old.profile.tags, -1)?;
        self.add_to_count(-1)
    }

    /// Adds `delta` to the number of users carrying each of `tags`; a tag nobody carries any
    /// more leaves the index.
    fn count_tags(&self, tags: &[String], delta: i64) -> TxResult<()> {
        for tag in tags {
            let count = self.tag_counts.get(tag.as_bytes())?.map(|v| read_u64(&v)).unwrap_or(0);
            match count.saturating_add_signed(delta) {
                0 => self.tag_counts.remove(tag.as_bytes())?,
                n => self.tag_counts.insert(tag.as_bytes(), &n.to_be_bytes())?,
            };
        }
        Ok(())
    }

    fn add_to_count(&self, delta: i64) -> TxResult<()> {
        let count = self.meta.get(USER_COUNT)?.map(|v| read_u64(&v)).unwrap_or(0);
        let count = count.saturating_add_signed(delta);
        self.meta.insert(USER_COUNT, &count.to_be_bytes())?;
        Ok(())
    }
}

fn read_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

impl Store {
    /// Runs `f` in one transaction over the user trees.
    fn user_tx<T>(&self, f: impl Fn(&UserTx) -> TxResult<T>) -> Result<T, StoreError> {
        let _exclusive = self.users_lock.write().unwrap_or_else(|p| p.into_inner());
        Ok((&self.users, &self.usernames, &self.tag_counts, &self.meta).transaction(
            |(users, usernames, tag_counts, meta)| {
                f(&UserTx { users, usernames, tag_counts, meta })
            },
        )?)
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
        let record = UserRecord {
            id,
            created: stamp.now,
            updated: stamp.now,
            author: stamp.actor,
            updated_by: stamp.actor,
            profile,
            password_created: password.as_ref().map(|p| p.created),
            password_hash: password.map(|p| p.hash),
            password_change_required: false,
        };
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

    /// A user, decoded as `T`: a [`UserRecord`], or any type with the same JSON field names
    /// (the HTTP layer reads its API type straight from the stored bytes).
    pub fn user_get<T: DeserializeOwned>(&self, id: Uuid) -> Result<T, StoreError> {
        get_json(&self.users, id.as_bytes())?.ok_or_else(|| StoreError::not_found("user", id))
    }

    /// The user with `username`, if there is one.
    pub fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        match self.usernames.get(username_key(username))? {
            Some(id) => get_json(&self.users, &id),
            None => Ok(None),
        }
    }

    /// Users in creation order, filtered by exact `username` and/or `id`, decoded as `T` (see
    /// [`Store::user_get`]).
    pub fn user_list<T: DeserializeOwned>(
        &self,
        username: Option<&str>,
        id: Option<Uuid>,
        page: Page,
    ) -> Result<Listing<T>, StoreError> {
        let _shared = self.users_lock.read().unwrap_or_else(|p| p.into_inner());
        let by_name = match username {
            Some(name) => match self.usernames.get(username_key(name))? {
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
            let found: Option<T> = get_json(&self.users, id.as_bytes())?;
            let count = u64::from(found.is_some());
            return Ok(Listing { count, items: page.apply(found.into_iter()) });
        }
        let count = self.meta.get(USER_COUNT)?.map(|v| read_u64(&v)).unwrap_or(0);
        // sled has no positional access: walk from whichever end is nearer the page, so the
        // last page costs what the first does.
        let values = if page.offset > count / 2 {
            let end = page.offset.saturating_add(page.limit).min(count);
            let from_end = Page { offset: count - end, limit: end.saturating_sub(page.offset) };
            let mut values = from_end.apply(self.users.iter().values().rev());
            values.reverse();
            values
        } else {
            page.apply(self.users.iter().values())
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
        self.user_tx(|tx| {
            let Some(old) = tx.get(id)? else {
                return abort(StoreError::not_found("user", id));
            };
            let mut new = old.clone();
            new.profile = profile.clone();
            new.updated = stamp.now;
            new.updated_by = stamp.actor;
            if let Some(password) = &password {
                new.password_hash = Some(password.hash.clone());
                new.password_created = Some(password.created);
            }
            tx.put(Some(&old), &new)
        })
    }

    pub fn user_password_set(
        &self,
        id: Uuid,
        password: PasswordHash,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        let profile = self.user_get::<UserRecord>(id)?.profile;
        self.user_update(id, profile, Some(password), stamp)
    }

    /// Deletes a user, its index entries and its WebAuthn credentials.
    pub fn user_delete(&self, id: Uuid) -> Result<(), StoreError> {
        self.user_tx(|tx| match tx.get(id)? {
            Some(old) => tx.remove(&old),
            None => abort(StoreError::not_found("user", id)),
        })?;
        self.credentials_delete_of_user(id)
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
        for key in self.tag_counts.iter().keys() {
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
