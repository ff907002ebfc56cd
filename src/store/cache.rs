//! Repeated user reads served from memory: users' JSON by id ([`user_json`]), pages of the
//! user listing ([`user_list`]) and of the users' tags ([`user_tags`]), kept until users change.
//!
//! Clients (the Terraform provider, scripts, CI farms) read the same users and pages over and
//! over between writes. sled has no positional access, so every page walks the users tree (and
//! takes the users lock, on the blocking pool), and every tag list scans the tag index; a hit
//! here is a map lookup under a read lock: no engine call, no blocking pool, no users lock.
//!
//! What is kept is never older than the last acknowledged write, by two counters:
//!
//! - the generation: every write of users (create, fixtures' inserts, update, password, delete,
//!   clear) moves it once its engine call has returned, `Ok` or `Err` (a failed write may have
//!   changed what a read sees, until the engine undoes it), and that empties the cache. Only
//!   then does the write return, so its acknowledgement follows the emptying. A write dropped
//!   before it returned may still land (sled finishes it on its writer thread) at a time no
//!   one knows: the cache is then off for good (handlers run to their end, so that is only at
//!   shutdown).
//! - the engine's openings ([`Engine::openings`]): sled reopened after a disk fault has undone
//!   the writes no flush covered, so nothing read from an earlier opening is served.
//!
//! A miss notes both before it asks the engine and keeps the answer only if both are unchanged
//! when it stores it, under the lock the generation moves under: a read that raced a write
//! never leaves what it read behind. An engine other servers write too (PostgreSQL, whose
//! openings are `None`) gets nothing kept: a write elsewhere would not move this generation.
//!
//! Bounds: at most [`MAX_LISTINGS`] listings of users and as many of tags, and [`MAX_BYTES`] in
//! all (each entry counted as its JSON, or its tags' text, plus [`ENTRY_OVERHEAD`]); an entry
//! over [`MAX_ENTRY_BYTES`] is not kept. Past a bound the oldest entries go first, listings of
//! users, then of tags, then users.
//!
//! [`user_json`]: super::Store::user_json
//! [`user_list`]: super::Store::user_list
//! [`user_tags`]: super::Store::user_tags

use std::collections::VecDeque;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;

use super::engine::Engine;
use super::users::username_key;
use super::{Listing, Page, StoreError};

/// At most this many listings of users, and as many of tags, are kept.
pub const MAX_LISTINGS: usize = 64;
/// At most this many bytes are kept in all, listings (of users and of tags) and users.
pub const MAX_BYTES: usize = 8 << 20;
/// A listing (or user) larger than this is not kept.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;
/// What an entry is counted for beside its JSON: its key, the map's and the queue's slots.
pub const ENTRY_OVERHEAD: usize = 128;

/// A page of the user listing as asked for: the username as the engines match it (regardless
/// of case), the id, the page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListingKey {
    username: Option<String>,
    id: Option<Uuid>,
    offset: u64,
    limit: u64,
}

impl ListingKey {
    pub fn new(username: Option<&str>, id: Option<Uuid>, page: Page) -> Self {
        let username = username.map(username_key);
        Self { username, id, offset: page.offset, limit: page.limit }
    }
}

/// A page of the users' tags as asked for: the text they contain (as given: the engines match it
/// regardless of case, so another case is another entry with the same answer), the order, the
/// page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagsKey {
    query: Option<String>,
    descending: bool,
    offset: u64,
    limit: u64,
}

impl TagsKey {
    pub fn new(query: Option<&str>, descending: bool, page: Page) -> Self {
        let query = query.map(str::to_string);
        Self { query, descending, offset: page.offset, limit: page.limit }
    }
}

/// A kind of read kept: its key, what it answers, where it is kept and its bounds.
pub trait Kind {
    type Key: Clone + Eq + Hash;
    type Value: Clone;
    /// At most this many entries of the kind are kept.
    const MAX_ENTRIES: usize;
    /// The bytes an answer holds.
    fn bytes(value: &Self::Value) -> usize;
    fn shelf(state: &State) -> &Shelf<Self::Key, Self::Value>;
    fn shelf_mut(state: &mut State) -> &mut Shelf<Self::Key, Self::Value>;
}

/// Pages of the user listing.
pub struct Listings;

impl Kind for Listings {
    type Key = ListingKey;
    type Value = Arc<Listing<Vec<u8>>>;
    const MAX_ENTRIES: usize = MAX_LISTINGS;

    fn bytes(value: &Self::Value) -> usize {
        value.items.iter().map(Vec::len).sum()
    }

    fn shelf(state: &State) -> &Shelf<Self::Key, Self::Value> {
        &state.listings
    }

    fn shelf_mut(state: &mut State) -> &mut Shelf<Self::Key, Self::Value> {
        &mut state.listings
    }
}

/// Pages of the users' tags.
pub struct TagLists;

impl Kind for TagLists {
    type Key = TagsKey;
    type Value = Arc<Vec<String>>;
    const MAX_ENTRIES: usize = MAX_LISTINGS;

    fn bytes(value: &Self::Value) -> usize {
        value.iter().map(String::len).sum()
    }

    fn shelf(state: &State) -> &Shelf<Self::Key, Self::Value> {
        &state.tag_lists
    }

    fn shelf_mut(state: &mut State) -> &mut Shelf<Self::Key, Self::Value> {
        &mut state.tag_lists
    }
}

/// Users' JSON by id.
pub struct Users;

impl Kind for Users {
    type Key = Uuid;
    type Value = Vec<u8>;
    const MAX_ENTRIES: usize = usize::MAX;

    fn bytes(value: &Self::Value) -> usize {
        value.len()
    }

    fn shelf(state: &State) -> &Shelf<Self::Key, Self::Value> {
        &state.users
    }

    fn shelf_mut(state: &mut State) -> &mut Shelf<Self::Key, Self::Value> {
        &mut state.users
    }
}

/// The entries of one kind, and their keys oldest first. Looked up on every read of a user:
/// foldhash, randomly seeded like SipHash but cheaper (as the request path's other maps).
pub struct Shelf<K, V> {
    entries: foldhash::HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K, V> Default for Shelf<K, V> {
    fn default() -> Self {
        Self { entries: foldhash::HashMap::default(), order: VecDeque::new() }
    }
}

impl<K: Clone + Eq + Hash, V> Shelf<K, V> {
    fn pop_oldest(&mut self) -> Option<V> {
        let key = self.order.pop_front()?;
        self.entries.remove(&key)
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

/// What the cache holds, under its lock.
#[derive(Default)]
pub struct State {
    generation: u64,
    /// A write of users was dropped before it returned (see [`Cache::abandoned`]).
    abandoned: bool,
    /// The engine's openings the entries were read under.
    openings: u64,
    /// The bytes kept, overheads included.
    bytes: usize,
    listings: Shelf<ListingKey, Arc<Listing<Vec<u8>>>>,
    tag_lists: Shelf<TagsKey, Arc<Vec<String>>>,
    users: Shelf<Uuid, Vec<u8>>,
}

impl State {
    fn clear(&mut self) {
        self.listings.clear();
        self.tag_lists.clear();
        self.users.clear();
        self.bytes = 0;
    }

    /// Drops the oldest entry of `K`; says whether there was one.
    fn drop_oldest<K: Kind>(&mut self) -> bool {
        let dropped = K::shelf_mut(self).pop_oldest();
        let freed = dropped.as_ref().map_or(0, |value| K::bytes(value) + ENTRY_OVERHEAD);
        self.bytes -= freed;
        dropped.is_some()
    }

    /// Stores `value` under `key` within the bounds, dropping the oldest entries as needed.
    fn keep<K: Kind>(&mut self, key: K::Key, value: K::Value, size: usize) {
        if K::shelf(self).entries.contains_key(&key) {
            return; // kept by a read that raced this one, from the same state
        }
        if K::shelf(self).entries.len() >= K::MAX_ENTRIES {
            self.drop_oldest::<K>();
        }
        while self.bytes + size > MAX_BYTES
            && (self.drop_oldest::<Listings>()
                || self.drop_oldest::<TagLists>()
                || self.drop_oldest::<Users>())
        {}
        self.bytes += size;
        let shelf = K::shelf_mut(self);
        shelf.order.push_back(key.clone());
        shelf.entries.insert(key, value);
    }
}

/// The cache of one store (see the module docs).
#[derive(Default)]
pub struct Cache {
    state: RwLock<State>,
}

impl Cache {
    /// The answer of `read` (a read of `K` under `key`) from memory if it is kept, else from
    /// `read`, keeping it if nothing changed users meanwhile.
    pub async fn read<K: Kind, F>(
        &self,
        engine: &dyn Engine,
        key: K::Key,
        read: impl FnOnce() -> F,
    ) -> Result<K::Value, StoreError>
    where
        F: Future<Output = Result<K::Value, StoreError>>,
    {
        let Some(openings) = engine.openings() else { return read().await };
        let generation = {
            let state = self.state();
            if state.openings == openings {
                if let Some(value) = K::shelf(&state).entries.get(&key) {
                    return Ok(value.clone());
                }
            }
            state.generation
        };
        let value = read().await?;
        let size = K::bytes(&value) + ENTRY_OVERHEAD;
        if size <= MAX_ENTRY_BYTES {
            let mut state = self.state_mut();
            let unchanged = state.generation == generation && engine.openings() == Some(openings);
            if unchanged && !state.abandoned {
                if state.openings != openings {
                    state.clear();
                    state.openings = openings;
                }
                state.keep::<K>(key, value.clone(), size);
            }
        }
        Ok(value)
    }

    /// Users changed (or may have): nothing read before is served again.
    pub fn users_changed(&self) {
        let mut state = self.state_mut();
        state.generation += 1;
        state.clear();
    }

    /// A write of users was dropped before it returned, and may land at any time from now:
    /// nothing is kept any more.
    pub fn abandoned(&self) {
        self.state_mut().abandoned = true;
        self.users_changed();
    }

    fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}
