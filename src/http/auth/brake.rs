//! The brute-force brake: failed logins in a row, counted per username and per client address,
//! lock that username or address out for a window that doubles with every further failure.
//!
//! A username may fail [`USER_FREE_FAILURES`] times in a row, an address
//! [`ADDRESS_FREE_FAILURES`] times (across usernames: password spraying), before each further
//! failure locks it for [`FIRST_LOCK`], then twice as long, up to [`LONGEST_LOCK`]. While
//! locked, a login for that username or from that address is answered at once (429 with
//! `Retry-After`) without checking the credentials, so it costs no argon2 run, tells nothing
//! and does not count. A successful login resets its username and address. Other usernames
//! (from other addresses) are untouched: an attacked account cannot slow anyone else's login.
//!
//! Windows run on the monotonic clock, not the server's (possibly logical) clock: the brake is
//! about real time. At most [`TRACKED_MAX`] usernames and addresses are tracked; when full,
//! those not locked are forgotten first, and while every tracked key is locked, new keys go
//! untracked (their address still is, unless it is new too).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row a username may have before the lock windows start.
pub const USER_FREE_FAILURES: u32 = 5;
/// Failures in a row an address may have (over all usernames) before the lock windows start.
pub const ADDRESS_FREE_FAILURES: u32 = 20;
/// The first lock window; each further failure doubles it.
pub const FIRST_LOCK: Duration = Duration::from_secs(1);
/// The longest lock window.
pub const LONGEST_LOCK: Duration = Duration::from_secs(900);
/// How many usernames and addresses are tracked at most (a few hundred kilobytes).
const TRACKED_MAX: usize = 16_384;

/// What is counted: a username (by a keyed hash of its lower-case form, so a long name costs
/// no memory) or a client address.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    User(u64),
    Address(IpAddr),
}

#[derive(Clone, Copy)]
struct Failures {
    in_a_row: u32,
    locked_until: Option<Instant>,
}

#[derive(Default)]
pub(super) struct Brake {
    failures: Mutex<HashMap<Key, Failures>>,
    hasher: RandomState,
}

/// Who is logging in: the keys a login is counted under.
pub(super) struct Attempt([Key; 2]);

impl Brake {
    pub(super) fn attempt(&self, username: &str, address: IpAddr) -> Attempt {
        let user = self.hasher.hash_one(username.to_lowercase());
        Attempt([Key::User(user), Key::Address(address)])
    }

    /// `Err(seconds)` while the attempt's username or address is locked.
    pub(super) fn check(&self, attempt: &Attempt) -> Result<(), u64> {
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let until = attempt
            .0
            .iter()
            .filter_map(|key| failures.get(key)?.locked_until)
            .filter(|&until| until > now)
            .max();
        match until {
            // Rounded up, so a client that waits that long finds the lock gone.
            Some(until) => Err((until - now).as_secs() + 1),
            None => Ok(()),
        }
    }

    /// Counts a failed login; past the free failures, locks the key for the next window.
    pub(super) fn failed(&self, attempt: &Attempt) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() + attempt.0.len() > TRACKED_MAX {
            failures.retain(|_, f| f.locked_until.is_some_and(|until| until > now));
        }
        for key in attempt.0 {
            if failures.len() >= TRACKED_MAX && !failures.contains_key(&key) {
                continue;
            }
            let free = match key {
                Key::User(_) => USER_FREE_FAILURES,
                Key::Address(_) => ADDRESS_FREE_FAILURES,
            };
            let entry = failures.entry(key).or_insert(Failures { in_a_row: 0, locked_until: None });
            entry.in_a_row = entry.in_a_row.saturating_add(1);
            if let Some(doublings) = entry.in_a_row.checked_sub(free + 1) {
                let window = FIRST_LOCK.saturating_mul(1 << doublings.min(20)).min(LONGEST_LOCK);
                entry.locked_until = Some(now + window);
            }
        }
    }

    /// A successful login: its username and address start afresh.
    pub(super) fn succeeded(&self, attempt: &Attempt) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in &attempt.0 {
            failures.remove(key);
        }
    }
}
