//! The server's time and randomness, in one place so both can be made repeatable.
//!
//! - System mode (the default): wall-clock time plus an offset that tests move forward (so
//!   listener expiry is testable without waiting); ids are UUIDv7 (creation-ordered) and
//!   secrets come from the OS.
//! - Deterministic mode (`--deterministic SEED`): time is logical, starting at
//!   2024-01-01T00:00:00Z plus SEED seconds and moving 1 ms at every reading; ids (still v7,
//!   on that logical time) and generated secrets come from a generator seeded with SEED. The
//!   same sequence of requests then gets byte-identical answers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::{RngCore, SeedableRng};
use uuid::Uuid;

#[derive(Debug, Clone, Default)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Milliseconds added to the system time, or the logical time in deterministic mode.
    offset_ms: AtomicI64,
    /// Set in deterministic mode.
    seeded: Option<Mutex<rand::rngs::StdRng>>,
    /// Wakes whoever waits for a time (`reached`) when the clock jumps forward.
    advanced: tokio::sync::Notify,
}

impl Clock {
    /// A clock whose time and randomness follow from `seed` alone.
    pub fn deterministic(seed: u64) -> Self {
        let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").expect("a valid date");
        let start_ms =
            start.timestamp_millis() + i64::try_from(seed % 1_000_000_000).unwrap_or(0) * 1000;
        Self {
            inner: Arc::new(Inner {
                offset_ms: AtomicI64::new(start_ms),
                seeded: Some(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed))),
                advanced: tokio::sync::Notify::new(),
            }),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_millis()).expect("a representable time")
    }

    /// The reading [`Self::now`] makes, as milliseconds since the epoch: for the paths every
    /// request takes, which only compare or keep the number (making a date of it costs more
    /// than reading the clock).
    pub fn now_millis(&self) -> i64 {
        let offset = &self.inner.offset_ms;
        match self.inner.seeded {
            Some(_) => offset.fetch_add(1, Ordering::SeqCst),
            None => system_millis() + offset.load(Ordering::SeqCst),
        }
    }

    /// The time now without moving a logical clock: for waiting on it, which must not change
    /// the times the answers carry.
    fn peek(&self) -> DateTime<Utc> {
        let offset = self.inner.offset_ms.load(Ordering::SeqCst);
        let ms = match self.inner.seeded {
            Some(_) => offset,
            None => system_millis() + offset,
        };
        DateTime::from_timestamp_millis(ms).expect("a representable time")
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.inner.offset_ms.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
        self.inner.advanced.notify_waiters();
    }

    /// Returns once this clock reads `deadline` or later: after the wall time it takes, or at
    /// once when `advance` jumps past it. A logical clock only gets there by `advance`.
    pub async fn reached(&self, deadline: DateTime<Utc>) {
        loop {
            let advanced = self.inner.advanced.notified();
            tokio::pin!(advanced);
            // Registered before the reading, so an advance right after it is not missed.
            advanced.as_mut().enable();
            let now = self.peek();
            if now >= deadline {
                return;
            }
            let wait = (deadline - now).to_std().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = advanced => {}
            }
        }
    }

    /// Random bytes: seeded in deterministic mode, from the OS otherwise.
    pub fn random_bytes<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0; N];
        match &self.inner.seeded {
            Some(rng) => rng.lock().unwrap_or_else(|p| p.into_inner()).fill_bytes(&mut bytes),
            None => rand::thread_rng().fill_bytes(&mut bytes),
        }
        bytes
    }

    /// A new record id: a UUIDv7 on this clock's time, so ids sort in creation order.
    pub fn new_id(&self) -> Uuid {
        let millis = u64::try_from(self.now().timestamp_millis()).unwrap_or(0);
        let random: [u8; 10] = self.random_bytes();
        uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
    }

    /// A secret the server makes itself: 32 random bytes, URL-safe base64.
    pub fn new_secret(&self) -> String {
        let bytes: [u8; 32] = self.random_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// The system time in milliseconds since the epoch, as `Utc::now().timestamp_millis()` reads it,
/// without the date that chrono makes on the way.
fn system_millis() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(_) => Utc::now().timestamp_millis(),
    }
}
