//! Writes across several trees that land together, or not at all, after a crash.
//!
//! sled 0.34 makes a transaction (or a `Batch`) atomic by writing and syncing its log buffer
//! twice per commit (`pin_log` rolls the I/O buffer before and after the commit), so every
//! user write cost two synchronous disk writes, more than all the rest of a create together,
//! and they could not be shared between concurrent writers.
//!
//! A [`Batch`] does it with single-key writes only, which sled logs in order and recovers as
//! a prefix of that order (a write past a gap in the log is dropped):
//!
//! 1. the whole batch, every key with its new value, goes into `meta` under `pending_writes`;
//! 2. each write is applied to its tree;
//! 3. `pending_writes` is removed.
//!
//! A crash before 1 is durable leaves none of the writes; after it, opening the store applies
//! the pending batch again ([`recover`]). Values are absolute (a count's new value, not "+1"),
//! so applying a batch twice is the same as applying it once. The caller serializes batches
//! (the users lock), so each one reads a state no other batch is changing, and reads its own
//! writes through [`Batch::get`].
//!
//! A batch keeps one write per key (a later write of a key replaces the earlier one where it
//! stands), indexed by tree and key, so reading or writing a key costs the same however many
//! writes the batch holds: a user with a thousand tags touches a thousand index keys in one
//! batch, and a scan of the pending writes per key made that quadratic.
//!
//! [`Batch::apply`] also hands over what the batch's keys held before it, so the store can
//! [`undo`] the batches no flush covered when a flush fails (see `disk`).

use std::collections::HashMap;

use sled::IVec;

use super::StoreError;

const PENDING: &[u8] = b"pending_writes";

struct Write {
    tree: sled::Tree,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// Writes collected for one atomic change; nothing is written before [`Batch::apply`].
pub(super) struct Batch {
    meta: sled::Tree,
    writes: Vec<Write>,
    /// Where each key's write is in `writes`: by tree name, then key.
    slots: HashMap<IVec, HashMap<Vec<u8>, usize>>,
}

impl Batch {
    /// A batch that keeps its pending record in `meta`.
    pub(super) fn new(meta: &sled::Tree) -> Self {
        Self { meta: meta.clone(), writes: Vec::new(), slots: HashMap::new() }
    }

    /// What this batch writes to `key` in `tree` (`Some(None)`: removes it), if it writes it.
    pub(super) fn pending(&self, tree: &sled::Tree, key: &[u8]) -> Option<Option<IVec>> {
        let slot = self.slots.get(&tree.name()).and_then(|keys| keys.get(key))?;
        Some(self.writes[*slot].value.as_deref().map(IVec::from))
    }

    /// The keys under `prefix` in `tree` that this batch writes a value to.
    pub(super) fn written_under(&self, tree: &sled::Tree, prefix: &[u8]) -> Vec<Vec<u8>> {
        let Some(keys) = self.slots.get(&tree.name()) else {
            return Vec::new();
        };
        let written = keys
            .iter()
            .filter(|(key, &slot)| key.starts_with(prefix) && self.writes[slot].value.is_some());
        written.map(|(key, _)| key.clone()).collect()
    }

    /// Adds `later`'s writes, as if they had been made here after this batch's own.
    pub(super) fn absorb(&mut self, later: Batch) {
        for write in later.writes {
            self.put(&write.tree, &write.key, write.value);
        }
    }

    /// How many keys the batch writes.
    pub(super) fn len(&self) -> usize {
        self.writes.len()
    }

    pub(super) fn insert(
        &mut self,
        tree: &sled::Tree,
        key: impl AsRef<[u8]>,
        value: impl Into<Vec<u8>>,
    ) {
        self.put(tree, key.as_ref(), Some(value.into()));
    }

    pub(super) fn remove(&mut self, tree: &sled::Tree, key: impl AsRef<[u8]>) {
        self.put(tree, key.as_ref(), None);
    }

    fn put(&mut self, tree: &sled::Tree, key: &[u8], value: Option<Vec<u8>>) {
        let keys = self.slots.entry(tree.name()).or_default();
        match keys.get(key) {
            Some(&slot) => self.writes[slot].value = value,
            None => {
                keys.insert(key.to_vec(), self.writes.len());
                self.writes.push(Write { tree: tree.clone(), key: key.to_vec(), value });
            }
        }
    }

    /// Writes the batch (see the module docs for why it survives a crash whole or not at all),
    /// then hands `note` what its keys held before, to undo it with: also when writing failed
    /// part way, since part of it may then be in the store.
    pub(super) fn apply(self, note: impl FnOnce(Undo)) -> Result<(), StoreError> {
        let mut undo = Vec::with_capacity(self.writes.len());
        let written = self.write(&mut undo);
        note(undo);
        written
    }

    fn write(self, undo: &mut Undo) -> Result<(), StoreError> {
        // One single-key write is whole by itself: no pending record needed.
        let pending = self.writes.len() > 1;
        if pending {
            self.meta.insert(PENDING, encode(&self.writes))?;
        }
        for write in self.writes {
            // sled answers the value each write replaces: the undo costs no extra read.
            let before = write_one(&write.tree, &write.key, write.value.as_deref())?;
            undo.push((write.tree.name(), write.key, before));
        }
        if pending {
            self.meta.remove(PENDING)?;
        }
        Ok(())
    }
}

/// What an applied batch's keys held before it, in its order: tree name, key, value.
pub(super) type Undo = Vec<(IVec, Vec<u8>, Option<IVec>)>;

/// Undoes applied batches, the latest first.
pub(super) fn undo<'a>(
    db: &sled::Db,
    batches: impl DoubleEndedIterator<Item = &'a Undo>,
) -> Result<(), StoreError> {
    for (tree, key, before) in batches.rev().flat_map(|batch| batch.iter().rev()) {
        write_one(&db.open_tree(tree)?, key, before.as_deref())?;
    }
    Ok(())
}

/// The crash [`recover`] is for: only step 1 of [`Batch::apply`] happens.
#[cfg(test)]
pub(super) fn crash_after_pending_record(batch: Batch) -> Result<(), StoreError> {
    batch.meta.insert(PENDING, encode(&batch.writes))?;
    Ok(())
}

/// Writes (or removes) one key; answers the value it replaces.
fn write_one(
    tree: &sled::Tree,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<Option<IVec>, StoreError> {
    Ok(match value {
        Some(value) => tree.insert(key, value)?,
        None => tree.remove(key)?,
    })
}

/// Applies the batch a crash interrupted, if there is one.
pub(super) fn recover(db: &sled::Db, meta: &sled::Tree) -> Result<(), StoreError> {
    let Some(pending) = meta.get(PENDING)? else {
        return Ok(());
    };
    for (tree, key, value) in decode(&pending).ok_or_else(malformed)? {
        write_one(&db.open_tree(tree)?, key, value)?;
    }
    meta.remove(PENDING)?;
    db.flush()?;
    Ok(())
}

fn malformed() -> StoreError {
    StoreError::Corrupt(serde::de::Error::custom("malformed pending_writes record"))
}

/// Each write as: tree name, key, and value (absent for a removal), each a u32 big-endian
/// length and its bytes, with a 0/1 byte before the value.
fn encode(writes: &[Write]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::new();
    for write in writes {
        field(&mut out, &write.tree.name());
        field(&mut out, &write.key);
        match &write.value {
            Some(value) => {
                out.push(1);
                field(&mut out, value);
            }
            None => out.push(0),
        }
    }
    out
}

type Decoded<'a> = Vec<(&'a [u8], &'a [u8], Option<&'a [u8]>)>;

fn decode(mut bytes: &[u8]) -> Option<Decoded<'_>> {
    fn field<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let (value, rest) = rest.split_at_checked(len)?;
        *bytes = rest;
        Some(value)
    }
    let mut writes = Vec::new();
    while !bytes.is_empty() {
        let tree = field(&mut bytes)?;
        let key = field(&mut bytes)?;
        let (&flag, rest) = bytes.split_first()?;
        bytes = rest;
        let value = match flag {
            0 => None,
            1 => Some(field(&mut bytes)?),
            _ => return None,
        };
        writes.push((tree, key, value));
    }
    Some(writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crash after the pending record was written but before all its writes were: `recover`
    /// (which opening the store runs) applies them all, and removals stay removals.
    #[test]
    fn recover_finishes_an_interrupted_batch() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (meta, users) = (db.open_tree("meta").unwrap(), db.open_tree("users").unwrap());
        users.insert("gone", "old").unwrap();
        let mut batch = Batch::new(&meta);
        batch.insert(&users, "a", "1");
        batch.remove(&users, "gone");
        batch.insert(&meta, "count", 7u64.to_be_bytes());
        assert_eq!(batch.pending(&users, b"a").flatten().as_deref(), Some(&b"1"[..]));
        assert_eq!(batch.pending(&users, b"gone"), Some(None), "reads see the removal");
        // The crash: only step 1 happened. (Reopening would add nothing: `SledStore::open` runs
        // `recover` on whatever `meta` holds, as here.)
        crash_after_pending_record(batch).unwrap();
        assert_eq!(users.get("a").unwrap(), None, "not applied yet");
        recover(&db, &meta).unwrap();
        assert_eq!(users.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(users.get("gone").unwrap(), None);
        assert_eq!(meta.get("count").unwrap().as_deref(), Some(&7u64.to_be_bytes()[..]));
        assert_eq!(meta.get(PENDING).unwrap(), None, "the record goes once applied");
    }

    /// A key written again is one write with the last value, found without a scan.
    #[test]
    fn a_key_written_twice_is_one_write_with_the_last_value() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (meta, users) = (db.open_tree("meta").unwrap(), db.open_tree("users").unwrap());
        users.insert("b", "old").unwrap();
        let mut batch = Batch::new(&meta);
        batch.insert(&users, "a", "1");
        batch.remove(&users, "b");
        batch.insert(&users, "a", "2");
        batch.insert(&meta, "a", "other tree");
        batch.insert(&users, "b", "3");
        assert_eq!(batch.writes.len(), 3);
        assert_eq!(batch.pending(&users, b"a").flatten().as_deref(), Some(&b"2"[..]));
        assert_eq!(batch.pending(&meta, b"a").flatten().as_deref(), Some(&b"other tree"[..]));
        batch.apply(drop).unwrap();
        assert_eq!(users.get("a").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(users.get("b").unwrap().as_deref(), Some(&b"3"[..]));
    }

    /// Undoing applied batches, the latest first, restores what their keys held, also a key
    /// two batches wrote and one a batch wrote twice.
    #[test]
    fn undo_restores_what_applied_batches_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (meta, users) = (db.open_tree("meta").unwrap(), db.open_tree("users").unwrap());
        users.insert("kept", "old").unwrap();
        let mut first = Batch::new(&meta);
        first.insert(&users, "kept", "first");
        first.insert(&users, "new", "1");
        first.insert(&users, "new", "2");
        let mut second = Batch::new(&meta);
        second.remove(&users, "kept");
        second.insert(&users, "other", "3");
        let mut applied = Vec::new();
        for batch in [first, second] {
            batch.apply(|undo| applied.push(undo)).unwrap();
        }
        assert_eq!(users.get("new").unwrap().as_deref(), Some(&b"2"[..]));
        undo(&db, applied.iter()).unwrap();
        assert_eq!(users.get("kept").unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(users.get("new").unwrap(), None);
        assert_eq!(users.get("other").unwrap(), None);
    }

    #[test]
    fn a_malformed_pending_record_is_reported_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert(PENDING, &[0, 0, 0, 9, 1][..]).unwrap();
        assert!(matches!(recover(&db, &meta), Err(StoreError::Corrupt(_))));
    }
}
