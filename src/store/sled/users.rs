//! Users in sled, with their password, username index, tag index and count kept in step by
//! writing each change as one [`Batch`].

use std::collections::HashMap;

use sled::IVec;
use uuid::Uuid;

use super::batch::Batch;
use super::{read_u64, SledStore, StoreError, Trees, USER_COUNT};
use crate::store::engine::UserChange;
use crate::store::users::username_key;
use crate::store::{Listing, Page, PasswordHash, UserRecord};

/// A user record from its stored JSON and its stored password, if it has one.
fn user_record(json: &[u8], password: Option<&[u8]>) -> Result<UserRecord, StoreError> {
    let mut user: UserRecord = serde_json::from_slice(json)?;
    user.password = password.map(serde_json::from_slice).transpose()?;
    Ok(user)
}

/// The trees a user write touches, through one [`Batch`], on top of the writes gathered
/// before it in the writer's round (see [`SledStore::gather`]).
pub(super) struct UserTx<'a> {
    pub(super) store: &'a Trees,
    pub(super) batch: Batch,
    pub(super) gathered: Option<&'a Batch>,
}

impl UserTx<'_> {
    /// The value of `key` in `tree` as this write and those gathered before it leave it.
    pub(super) fn read(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        let pending = || self.gathered.and_then(|gathered| gathered.pending(tree, key));
        match self.batch.pending(tree, key).or_else(pending) {
            Some(value) => Ok(value),
            None => Ok(tree.get(key)?),
        }
    }

    pub(super) fn user_exists(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(self.read(&self.store.users, id.as_bytes())?.is_some())
    }

    fn get(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        let Some(json) = self.read(&self.store.users, id.as_bytes())? else {
            return Ok(None);
        };
        let password = self.read(&self.store.passwords, id.as_bytes())?;
        user_record(&json, password.as_deref()).map(Some)
    }

    /// Writes `new` in place of `old`, keeping every index in step.
    pub(super) fn put(
        &mut self,
        old: Option<&UserRecord>,
        new: &UserRecord,
    ) -> Result<(), StoreError> {
        let store = self.store;
        let name = username_key(&new.profile.username).into_bytes();
        if let Some(holder) = self.read(&store.usernames, &name)? {
            if holder.as_ref() != new.id.as_bytes() {
                return Err(StoreError::Duplicate {
                    property: "username",
                    value: new.profile.username.clone(),
                });
            }
        }
        if let Some(old) = old {
            let old_name = username_key(&old.profile.username).into_bytes();
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
        self.batch.remove(&store.usernames, username_key(&old.profile.username).into_bytes());
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
            let count = self.read(tree, tag.as_bytes())?.map(|v| read_u64(&v)).unwrap_or(0);
            match count.saturating_add_signed(delta) {
                0 => self.batch.remove(tree, tag.as_bytes()),
                n => self.batch.insert(tree, tag.as_bytes(), n.to_be_bytes()),
            };
        }
        Ok(())
    }

    fn add_to_count(&mut self, delta: i64) -> Result<(), StoreError> {
        let meta = &self.store.meta;
        let count = self.read(meta, USER_COUNT)?.map(|v| read_u64(&v)).unwrap_or(0);
        self.batch.insert(meta, USER_COUNT, count.saturating_add_signed(delta).to_be_bytes());
        Ok(())
    }
}

impl SledStore {
    /// Runs `f` on the user trees, then writes what it wrote all at once (nothing if it fails):
    /// into the writes gathered for the writer's round if one is gathering, else to sled.
    pub(super) fn user_tx<T>(
        &self,
        f: impl FnOnce(&mut UserTx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _exclusive = self.users_lock.write().unwrap_or_else(|p| p.into_inner());
        let trees = self.writable()?;
        let mut gathered = self.gathered.lock().unwrap_or_else(|p| p.into_inner());
        let batch = Batch::new(&trees.meta);
        let mut tx = UserTx { store: &trees, batch, gathered: gathered.as_ref() };
        let out = f(&mut tx)?;
        let batch = tx.batch;
        match gathered.as_mut() {
            Some(gathered) => gathered.absorb(batch),
            None => self.apply(batch)?,
        }
        Ok(out)
    }

    /// Writes a user batch to sled, noting what it replaced for undoing it (see "Disk faults").
    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let applied = batch.apply(|undo| self.disk.applied(undo));
        applied.map_err(|e| self.disk.write_failed(e))
    }

    /// From now until [`Self::settle`], user writes gather into one batch instead of each
    /// being written at once (the writer thread's round: one pending record, one write of the
    /// user count and of each tag count for all of them). After a failed flush in between,
    /// settling fails (the flush poisoned that opening of sled) and the round's writes get the
    /// error; the store cannot reopen while the batch holds the old opening's trees (sled's
    /// file lock).
    pub(super) fn gather(&self) {
        if let Ok(trees) = self.trees() {
            *self.gathered.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Batch::new(&trees.meta));
        }
    }

    /// How many keys the user writes gathered so far write.
    pub(super) fn gathered_len(&self) -> usize {
        let gathered = self.gathered.lock().unwrap_or_else(|p| p.into_inner());
        gathered.as_ref().map_or(0, Batch::len)
    }

    /// Writes what was gathered since [`Self::gather`] to sled, and stops gathering.
    pub(super) fn settle(&self) -> Result<(), StoreError> {
        let _exclusive = self.users_lock.write().unwrap_or_else(|p| p.into_inner());
        self.settle_locked()
    }

    /// [`Self::settle`] for a caller that holds the users lock.
    pub(super) fn settle_locked(&self) -> Result<(), StoreError> {
        let gathered = self.gathered.lock().unwrap_or_else(|p| p.into_inner()).take();
        match gathered {
            Some(batch) if batch.len() > 0 => self.apply(batch),
            _ => Ok(()),
        }
    }

    /// Stores a new user; with `if_absent`, a user stored under its id is kept instead.
    pub(super) fn user_insert(
        &self,
        record: &UserRecord,
        if_absent: bool,
    ) -> Result<(), StoreError> {
        self.user_tx(|tx| match tx.get(record.id)? {
            Some(_) if if_absent => Ok(()),
            Some(_) => Err(StoreError::Duplicate { property: "id", value: record.id.to_string() }),
            None => tx.put(None, record),
        })
    }

    /// A user's JSON as stored, which is the API's `User` (see [`UserRecord`]).
    pub(super) fn user_json(&self, id: Uuid) -> Result<Vec<u8>, StoreError> {
        let json = self.trees()?.users.get(id.as_bytes())?;
        json.map(|json| json.to_vec()).ok_or_else(|| StoreError::not_found("user", id))
    }

    /// User `id`'s password (`Some(None)`: the user has none), or `None` if there is no user
    /// `id`.
    pub(super) fn user_password(
        &self,
        id: Uuid,
    ) -> Result<Option<Option<PasswordHash>>, StoreError> {
        let trees = self.trees()?;
        if !trees.users.contains_key(id.as_bytes())? {
            return Ok(None);
        }
        let password = trees.passwords.get(id.as_bytes())?;
        Ok(Some(password.map(|p| serde_json::from_slice(&p)).transpose()?))
    }

    /// The user with `username`, with its password, if there is one.
    pub(super) fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let Some(id) = self.trees()?.usernames.get(username_key(username))? else {
            return Ok(None);
        };
        let trees = self.trees()?;
        let json = trees.users.get(&id)?.ok_or_else(corrupt_index)?;
        user_record(&json, trees.passwords.get(&id)?.as_deref()).map(Some)
    }

    /// Users' JSON in creation order, filtered by `username` and/or `id`.
    pub(super) fn user_list(
        &self,
        username: Option<&str>,
        id: Option<Uuid>,
        page: Page,
    ) -> Result<Listing<Vec<u8>>, StoreError> {
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
            let found = self.trees()?.users.get(id.as_bytes())?.map(|json| json.to_vec());
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
            .map(|value| Ok(value?.to_vec()))
            .collect::<Result<_, StoreError>>()?;
        Ok(Listing { count, items })
    }

    /// Applies `change` to user `id`.
    pub(super) fn user_change(&self, id: Uuid, change: UserChange) -> Result<(), StoreError> {
        self.user_tx(|tx| {
            let Some(old) = tx.get(id)? else {
                return Err(StoreError::not_found("user", id));
            };
            let mut new = old.clone();
            change(&mut new);
            tx.put(Some(&old), &new)
        })
    }

    /// Deletes a user, its index entries and its WebAuthn credentials, as one batch.
    pub(super) fn user_delete(&self, id: Uuid) -> Result<(), StoreError> {
        self.user_tx(|tx| match tx.get(id)? {
            Some(old) => tx.remove(&old),
            None => Err(StoreError::not_found("user", id)),
        })
    }

    /// The distinct tags of all users that contain `query` (case-insensitively), sorted.
    pub(super) fn user_tags(
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

    /// Every user with its password, in id order.
    pub(super) fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let _shared = self.users_lock.read().unwrap_or_else(|p| p.into_inner());
        let trees = self.trees()?;
        trees
            .users
            .iter()
            .map(|entry| {
                let (id, json) = entry?;
                user_record(&json, trees.passwords.get(&id)?.as_deref())
            })
            .collect()
    }
}

fn corrupt_index() -> StoreError {
    StoreError::Corrupt(serde::de::Error::custom("malformed index key"))
}
