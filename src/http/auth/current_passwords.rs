//! Which password each local user has now, by fingerprint, so a token issued against another
//! password (the user's old one, or a deleted user's) is refused on every use, the remembered
//! verified tokens included, with no store read on the hot path.
//!
//! A user's entry is read from the store the first time one of its tokens is used, then kept:
//! the write paths (user create, update with a password, password set, delete, and the
//! test-control reset and fixture loads, which forget every entry) set it as soon as their
//! store write is done, before they answer. A read that raced a write is not kept (the epoch
//! moved), so an entry is never older than the store.
//!
//! On a store other servers write too (a shared PostgreSQL database), this server does not see
//! their writes, so an entry is kept for [`SHARED_KEEP`] only: a user deleted, or given another
//! password, on another server loses its tokens here within that time.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::password::{self, Fingerprint};
use crate::store::{PasswordHash, Store, StoreError};

/// Users whose password is remembered at most; past that the memory starts afresh (and
/// refills from the store as tokens are used).
const REMEMBERED_MAX: usize = 100_000;

/// How long an entry is kept when other servers write the store too.
pub(super) const SHARED_KEEP: Duration = Duration::from_secs(1);

/// A local user's state as far as its tokens are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Current {
    /// No such user (deleted, or never was): none of its tokens hold.
    NoUser,
    /// The user, with its password if it has one.
    Password(Option<PasswordSet>),
}

/// A password: its fingerprint, and when it was set (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PasswordSet {
    fingerprint: Fingerprint,
    at: i64,
}

impl Current {
    fn of(password: Option<Option<&PasswordHash>>) -> Self {
        let set = |p: &PasswordHash| PasswordSet {
            fingerprint: password::fingerprint(&p.hash),
            at: p.created.timestamp(),
        };
        password.map_or(Self::NoUser, |password| Self::Password(password.map(set)))
    }

    /// Whether a token `issued` (its `iat`) against `password` (its `pv`) still holds. Every
    /// token this server issues to a local user names the password; one without (signed by
    /// whoever holds the key: tests, tools) holds while the user exists and was issued no
    /// earlier than the second its password was set.
    pub(super) fn admits(&self, password: Option<Fingerprint>, issued: i64) -> bool {
        match (self, password) {
            (Self::NoUser, _) => false,
            (Self::Password(set), Some(fingerprint)) => {
                set.is_some_and(|set| set.fingerprint == fingerprint)
            }
            (Self::Password(set), None) => set.is_none_or(|set| issued >= set.at),
        }
    }
}

pub(super) struct CurrentPasswords {
    remembered: RwLock<Remembered>,
    /// How long an entry holds: for ever when this server is the store's only writer.
    keep: Option<Duration>,
}

#[derive(Default)]
struct Remembered {
    /// Moves on every write, so a store read that overlapped one is not remembered.
    epoch: u64,
    /// Each user's state, and when it was learnt; read on every request, so hashed with
    /// foldhash (randomly seeded, cheaper than SipHash).
    by_user: foldhash::HashMap<Uuid, (Current, Instant)>,
}

impl CurrentPasswords {
    /// Entries kept for `keep` ([`SHARED_KEEP`] on a shared store), or for ever.
    pub(super) fn new(keep: Option<Duration>) -> Self {
        Self { remembered: RwLock::default(), keep }
    }

    fn remembered(&self) -> std::sync::RwLockWriteGuard<'_, Remembered> {
        self.remembered.write().unwrap_or_else(|p| p.into_inner())
    }

    /// User `id`'s password now.
    pub(super) async fn get(&self, store: &Store, id: Uuid) -> Result<Current, StoreError> {
        let epoch = {
            let remembered = self.remembered.read().unwrap_or_else(|p| p.into_inner());
            let fresh = |learnt: &Instant| self.keep.is_none_or(|keep| learnt.elapsed() < keep);
            if let Some((current, _)) = remembered.by_user.get(&id).filter(|(_, t)| fresh(t)) {
                return Ok(*current);
            }
            remembered.epoch
        };
        let stored = store.user_password(id).await?;
        let current = Current::of(stored.as_ref().map(Option::as_ref));
        let mut remembered = self.remembered();
        if remembered.epoch == epoch {
            remembered.keep(id, current);
        }
        Ok(current)
    }

    /// User `id` now has `password` (`None`: the user was deleted; `Some(None)`: created
    /// without a password).
    pub(super) fn set(&self, id: Uuid, password: Option<Option<&PasswordHash>>) {
        let mut remembered = self.remembered();
        remembered.epoch += 1;
        remembered.keep(id, Current::of(password));
    }

    /// Every user may have changed (a test-control reset or fixture load).
    pub(super) fn forget_all(&self) {
        let mut remembered = self.remembered();
        remembered.epoch += 1;
        remembered.by_user.clear();
    }
}

impl Remembered {
    fn keep(&mut self, id: Uuid, current: Current) {
        if self.by_user.len() >= REMEMBERED_MAX {
            self.by_user.clear();
        }
        self.by_user.insert(id, (current, Instant::now()));
    }
}
