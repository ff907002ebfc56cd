//! Group commit: [`SledStore::durable`] flushes sled once for every writer waiting at the time
//! (see "Durability and consistency" in the store's module docs), each flush a numbered round
//! of the disk's record (see "Disk faults").

use super::{SledStore, StoreError};

/// Group commit: whoever finds no flush running flushes for everyone who has written so far.
#[derive(Default)]
pub(super) struct Flusher {
    /// Tickets handed out (one per `durable` call) and whether a flush is running.
    state: std::sync::Mutex<(u64, bool)>,
    /// The highest ticket known to be on disk.
    done: tokio::sync::watch::Sender<u64>,
    flushes: std::sync::atomic::AtomicU64,
}

/// Marks the running flush finished (also when its future is dropped) and wakes the waiters.
struct FlushRound<'a>(&'a Flusher);

impl Drop for FlushRound<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner()).1 = false;
        self.0.done.send_modify(|_| {});
    }
}

impl SledStore {
    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        let trees = self.trees()?;
        let round = self.disk.begin_round(&trees)?;
        let flushed = trees.db.flush().map(drop);
        self.disk.end_round(round, flushed)
    }

    /// Returns once everything written before the call is on disk. Concurrent callers share
    /// flushes: one flush serves every write that came before it.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let flusher = &self.flusher;
        let lock = || flusher.state.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = {
            let mut state = lock();
            state.0 += 1;
            state.0
        };
        let mut done = flusher.done.subscribe();
        loop {
            if *done.borrow_and_update() >= ticket {
                return Ok(());
            }
            let lead = {
                let mut state = lock();
                let lead = !state.1;
                state.1 = true;
                lead.then_some(state.0)
            };
            match lead {
                Some(covered) => {
                    let _round = FlushRound(flusher);
                    flusher.flushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let trees = self.trees()?;
                    let round = self.disk.begin_round(&trees)?;
                    let flushed = trees.db.flush_async().await.map(drop);
                    self.disk.end_round(round, flushed)?;
                    flusher.done.send_modify(|done| *done = (*done).max(covered));
                }
                // A flush is running; it may have started before our write, so look again
                // when it ends.
                None => done.changed().await.expect("the sender lives in the store"),
            }
        }
    }

    /// How many flushes `durable` has run (fewer than its calls when writers share them).
    pub fn flush_count(&self) -> u64 {
        self.flusher.flushes.load(std::sync::atomic::Ordering::Relaxed)
    }
}
