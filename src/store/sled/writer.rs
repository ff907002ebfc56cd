//! The writer: one thread that runs every write of a [`SledStore`] and makes it durable, in
//! rounds (group commit).
//!
//! Writes are serialized anyway (a user write holds the users lock exclusively, a listener
//! write the listener lock), so running them all on one thread loses no parallelism. It saves
//! what running each on tokio's blocking pool cost: a hand-off to a pool thread and back per
//! write, writers of a burst parked and woken on the users lock, and a hand-off to sled's own
//! thread for every flush (`perf stat` counted 7 context switches per durable create).
//!
//! Two threads make a pipeline. The writer thread runs the writes waiting for it one after
//! the other as a round, gathering their user writes into one batch (`SledStore::gather`: one
//! pending record and one write of each count for the round instead of for each write),
//! writes that batch, and hands the round's writes to the flush thread; if writing the batch
//! fails, they are answered with the error. The flush thread takes every write handed over so
//! far, flushes sled once for all of them (a numbered round of the disk's
//! record, see "Disk faults") and only then answers them: a write is acknowledged after the
//! flush that covers it. While a flush waits for the disk, the writer thread runs the next
//! writes (the core would otherwise idle), and they share the next flush: the more writers
//! wait, the more writes each flush serves. A write that fails is answered at once (it wrote
//! nothing to wait for). A write that panics is answered with an error and the thread goes on.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, Weak};

use super::{SledStore, StoreError};

/// What the writer thread runs: the write, which answers its caller at once if it failed or
/// hands back how to answer it once its round is flushed.
/// A round takes at most this many writes, and stops taking more once its user writes write
/// this many keys: the gathered batch is one pending record (see `batch`), kept small.
const ROUND_WRITES: usize = 256;
const ROUND_KEYS: usize = 4096;

type Job = Box<dyn FnOnce(&SledStore) -> Option<Ack> + Send>;
type Ack = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// The handle of the writer thread; the thread ends when this is dropped.
pub(super) struct Writer {
    jobs: Sender<Job>,
    rounds: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer and flush threads of `store`. They hold the store only while they
    /// use it, so dropping the store's last handle closes it as before.
    pub(super) fn start(store: Weak<SledStore>) -> Self {
        let (jobs, queue) = mpsc::channel();
        let written = Arc::new(Written::default());
        let (flushes, rounds) = (written.clone(), Arc::new(AtomicU64::new(0)));
        let counted = rounds.clone();
        let flushed_store = store.clone();
        std::thread::Builder::new()
            .name("store-writer".to_string())
            .spawn(move || write(&queue, &store, &written))
            .expect("the store's writer thread starts");
        std::thread::Builder::new()
            .name("store-flush".to_string())
            .spawn(move || flush(&flushes, &flushed_store, &counted))
            .expect("the store's flush thread starts");
        Self { jobs, rounds }
    }

    /// Runs `work` on the writer thread and returns once what it wrote is durable.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SledStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |store| match work(store) {
            Ok(value) => Some(Box::new(move |flushed: Result<(), StoreError>| {
                // The caller may be gone (its client hung up): the write stands either way.
                let _ = reply.send(flushed.map(|()| value));
            })),
            Err(e) => {
                let _ = reply.send(Err(e));
                None
            }
        });
        self.jobs.send(job).map_err(|_| stopped())?;
        // No answer: the write panicked, or the store was dropped before it ran.
        answer.await.map_err(|_| stopped())?
    }

    /// How many flush rounds the writer has run.
    pub(super) fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }
}

impl SledStore {
    /// Writes everything to disk: one numbered round of the disk's record.
    pub fn flush(&self) -> Result<(), StoreError> {
        let trees = self.trees()?;
        let round = self.disk.begin_round(&trees)?;
        let flushed = trees.db.flush().map(drop);
        self.disk.end_round(round, flushed)
    }
}

fn stopped() -> StoreError {
    StoreError::Database("the store's write did not complete".to_string())
}

/// Writes run and not yet flushed, passed from the writer thread to the flush thread.
#[derive(Default)]
struct Written {
    state: Mutex<Handed>,
    more: Condvar,
}

#[derive(Default)]
struct Handed {
    /// Each with the opening of sled its round wrote to.
    acks: Vec<(u64, Ack)>,
    /// The writer thread has ended: the flush thread ends once nothing is left.
    closed: bool,
}

impl Written {
    fn state(&self) -> std::sync::MutexGuard<'_, Handed> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer thread: runs the writes waiting for it as one round, their user writes gathered
/// into one batch, until the store or the [`Writer`] is dropped.
fn write(queue: &Receiver<Job>, store: &Weak<SledStore>, written: &Written) {
    while let Ok(first) = queue.recv() {
        let Some(store) = store.upgrade() else {
            break;
        };
        // Which opening of sled the round writes to: its flush answers it only if that is
        // still the opening (see `Disk::still_opening`).
        let opening = store.disk.openings();
        store.gather();
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            // A panicking write drops its reply (its caller gets an error) but not the thread.
            if let Ok(Some(ack)) = std::panic::catch_unwind(AssertUnwindSafe(|| job(&store))) {
                acks.push(ack);
            }
            if acks.len() < ROUND_WRITES && store.gathered_len() < ROUND_KEYS {
                next = queue.try_recv().ok();
            }
        }
        match store.settle() {
            Ok(()) => {
                written.state().acks.extend(acks.into_iter().map(|ack| (opening, ack)));
                written.more.notify_one();
            }
            Err(e) => acks.into_iter().for_each(|ack| ack(Err(again(&e)))),
        }
    }
    written.state().closed = true;
    written.more.notify_one();
}

/// The flush thread: a round for everything written since the last one began.
fn flush(written: &Written, store: &Weak<SledStore>, rounds: &AtomicU64) {
    loop {
        let acks = {
            let mut state = written.state();
            while state.acks.is_empty() && !state.closed {
                state = written.more.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.acks.is_empty() {
                return;
            }
            std::mem::take(&mut state.acks)
        };
        // The store gone: the acks are dropped, and their callers get an error.
        let Some(store) = store.upgrade() else {
            return;
        };
        rounds.fetch_add(1, Ordering::Relaxed);
        // Every write handed over was run before this round begins, so the round covers it.
        let flushed = store.flush();
        for (opening, ack) in acks {
            let flushed = flushed.as_ref().map_err(again);
            ack(flushed.and_then(|_| store.disk.still_opening(opening)));
        }
    }
}

/// A failed round's error for each of its writes. A round fails only as the disk's fault
/// ([`StoreError::Unavailable`], see "Disk faults"), which every write shares.
fn again(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(fault) => StoreError::Unavailable(fault.clone()),
        other => StoreError::Database(other.to_string()),
    }
}
