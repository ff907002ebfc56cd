//! A bounded in-memory map whose entries expire: the authorization-code flow's login sessions
//! and codes. They live seconds to minutes and a restart may forget them (the client logs in
//! again), so they are not stored; the bound keeps a client that starts flows and never ends
//! them from growing the server's memory.

use std::collections::HashMap;
use std::sync::Mutex;

/// How many entries are kept; far more than concurrent logins in a test run or load test.
const EXPIRING_MAX: usize = 4096;

/// Values by key, each with its expiry (seconds since the epoch).
pub(super) struct Expiring<V>(Mutex<HashMap<String, (V, i64)>>);

impl<V> Default for Expiring<V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<V: Clone> Expiring<V> {
    /// Keeps `value` under `key` until `expires`. When full, expired entries go first, then
    /// the one closest to expiry.
    pub(super) fn insert(&self, key: String, value: V, expires: i64, now: i64) {
        let mut entries = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= EXPIRING_MAX {
            entries.retain(|_, (_, at)| *at > now);
        }
        if entries.len() >= EXPIRING_MAX {
            let soonest = entries.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone());
            if let Some(soonest) = soonest {
                entries.remove(&soonest);
            }
        }
        entries.insert(key, (value, expires));
    }

    /// The value under `key`, if it has not expired; it stays.
    pub(super) fn get(&self, key: &str, now: i64) -> Option<V> {
        let entries = self.0.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(_, at)| *at > now).map(|(value, _)| value.clone())
    }

    /// The value under `key`, if it has not expired; it is removed either way (single use).
    pub(super) fn take(&self, key: &str, now: i64) -> Option<V> {
        let mut entries = self.0.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(key).filter(|(_, at)| *at > now).map(|(value, _)| value)
    }
}
