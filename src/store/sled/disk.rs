//! The disk under the store: the sled opening the store reads and writes through, the record of
//! what was acknowledged, and what to do when the disk fails (see "Disk faults" in the store's
//! docs).
//!
//! - Every flush round is numbered. Before it flushes, the round writes its number into `meta`
//!   (`acknowledged`), after every write it covers; once the flush is done, the number goes
//!   into the file `acknowledged` beside sled's files (a `pwrite` of 21 bytes, not synced).
//!   sled recovers a prefix of its log, so a store that holds round N holds every write
//!   acknowledged by rounds up to N; one whose number is below the file's lost writes that
//!   were acknowledged, and opening it is refused (unless told to accept the loss).
//! - After each flush the `db` file is looked up by its path: if it is gone or another file
//!   (the data directory deleted, moved or replaced), nothing written from now on could be
//!   found again, so writes are refused for good.
//! - A flush that fails (sled then refuses every later write: it poisons itself) refuses writes
//!   and starts a thread that, every [`RETRY`], writes a probe of [`PROBE_BYTES`] into the data
//!   directory; once that works, the store reopens sled. The new opening holds what reached the
//!   disk, which may include part of what the failed flush was writing (up to the byte the disk
//!   took), so every user batch applied since the last flush that covered it is undone there
//!   ([`batch::undo`], from the values each batch replaced, kept in memory until then): no user
//!   write that was refused is kept. Listener, connection and settings writes keep no undo: one
//!   whose flush failed may be kept if all of it reached the disk.
//! - While writes are refused, [`Disk::writable`] refuses them before they reach sled.

use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use super::batch::{self, Undo};
use super::{read_u64, StoreError, Trees};

/// The `meta` key of the last flush round written, a u64 big-endian.
const ACKNOWLEDGED: &[u8] = b"acknowledged";
/// The file beside sled's holding the last round known to be on disk, 20 decimal digits and a
/// newline.
pub const RECORD_FILE: &str = "acknowledged";
/// How often a failed store looks for room to reopen.
pub const RETRY: std::time::Duration = std::time::Duration::from_millis(500);
/// How much a probe writes: two of sled's 512 KiB log segments.
const PROBE_BYTES: usize = 1024 * 1024;

/// Why the store refuses writes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Fault {
    #[error(
        "the disk holding the store {} is full ({detail}): writes are refused until there is \
         room again; the store then reopens by itself (it looks every {RETRY:?}), without the \
         writes whose flush failed",
        dir.display()
    )]
    NoSpace { dir: PathBuf, detail: String },
    #[error(
        "writing the store {} failed ({detail}): writes are refused until the store reopens by \
         itself (it tries every {RETRY:?}), without the writes whose flush failed",
        dir.display()
    )]
    Io { dir: PathBuf, detail: String },
    #[error(
        "the data directory {} was deleted or replaced while the server ran: no write can be \
         made durable any more, so writes are refused; what the server holds can still be \
         read. Restart it on a restored backup",
        dir.display()
    )]
    DataDirLost { dir: PathBuf },
}

impl Fault {
    /// The disk is full (or the quota used up).
    pub fn no_space(&self) -> bool {
        matches!(self, Self::NoSpace { .. })
    }
}

/// Whether `error` is a full disk or an exhausted quota. By its kind: sled hands out copies of
/// the error that poisoned it, which keep the kind but not the OS error number.
pub(crate) fn is_no_space(error: &sled::Error) -> bool {
    use std::io::ErrorKind::{QuotaExceeded, StorageFull};
    matches!(error, sled::Error::Io(e) if matches!(e.kind(), StorageFull | QuotaExceeded))
}

/// What opening does with a store that lost acknowledged writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLostWrites {
    /// Refuse to open it ([`StoreError::LostWrites`]).
    #[default]
    Refuse,
    /// Open it and take what is left as the new state (the record is reset to it).
    Accept,
    /// Open it and leave the record as it is, so the next opening still finds the loss
    /// (reading what is left, as `--export` does).
    Report,
}

/// How many flush rounds a store that lost writes had acknowledged, and how many it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostWrites {
    pub acknowledged: u64,
    pub found: u64,
}

/// The record file and the highest round written into it.
struct Record {
    file: std::fs::File,
    written: u64,
}

impl Record {
    fn put(&mut self, round: u64) -> std::io::Result<()> {
        self.file.write_all_at(format!("{round:020}\n").as_bytes(), 0)?;
        self.written = round;
        Ok(())
    }

    /// Records `round` unless a later one is recorded (a concurrent round may end first).
    fn advance(&mut self, round: u64) -> std::io::Result<()> {
        match round > self.written {
            true => self.put(round),
            false => Ok(()),
        }
    }
}

pub(super) struct Disk {
    dir: PathBuf,
    /// The current opening of sled; none while it is being reopened.
    trees: RwLock<Option<Arc<Trees>>>,
    fault: Mutex<Option<Fault>>,
    /// The last flush round started.
    rounds: AtomicU64,
    record: Mutex<Record>,
    /// Device and inode of the `db` file opened.
    db_file: (u64, u64),
    unflushed: Mutex<Unflushed>,
    /// How many times sled was opened in this process (see [`Disk::openings`]).
    openings: AtomicU64,
}

/// The user batches applied since the last flush round that covered them, numbered: what a
/// failed flush leaves to undo once sled is reopened (some of it may have reached the disk).
#[derive(Default)]
struct Unflushed {
    next: u64,
    batches: std::collections::VecDeque<(u64, Undo)>,
}

/// A flush round: its number, and the first batch it does not cover.
pub(super) struct Round {
    number: u64,
    covers: u64,
}

/// Device and inode of the file at `path`.
fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

fn io_error(error: std::io::Error) -> StoreError {
    StoreError::Storage(sled::Error::Io(error))
}

impl Disk {
    /// Opens sled in `dir` and compares what it holds with the record of acknowledged rounds.
    pub(super) fn open(
        dir: &Path,
        on_lost: OnLostWrites,
    ) -> Result<(Arc<Self>, Option<LostWrites>), StoreError> {
        let trees = Trees::open(dir)?;
        let found = trees.meta.get(ACKNOWLEDGED)?.map_or(0, |v| read_u64(&v));
        let path = dir.join(RECORD_FILE);
        let acknowledged = match std::fs::read_to_string(&path) {
            // Not a number: the record is never synced, so a power loss may leave it empty
            // (or zeros); that must not refuse an intact store, so it counts as none.
            Ok(text) => text.trim().parse::<u64>().ok(),
            // A store written before the record existed (or a new one): nothing to compare.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(e)),
        };
        let lost = acknowledged
            .filter(|&acknowledged| acknowledged > found)
            .map(|acknowledged| LostWrites { acknowledged, found });
        if let (Some(lost), OnLostWrites::Refuse) = (lost, on_lost) {
            return Err(StoreError::LostWrites { path: dir.to_path_buf(), lost });
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        let mut record = Record { file, written: 0 };
        match (lost, on_lost) {
            // Reading what is left: the record stays as it is, so the loss is still found.
            (Some(_), OnLostWrites::Report) => record.written = u64::MAX,
            _ if acknowledged != Some(found) => record.put(found).map_err(io_error)?,
            _ => record.written = found,
        }
        let disk = Self {
            dir: dir.to_path_buf(),
            db_file: identity(&dir.join("db")).map_err(io_error)?,
            trees: RwLock::new(Some(Arc::new(trees))),
            fault: Mutex::new(None),
            rounds: AtomicU64::new(found),
            record: Mutex::new(record),
            unflushed: Mutex::default(),
            openings: AtomicU64::new(1),
        };
        Ok((Arc::new(disk), lost))
    }

    /// How many times sled was opened in this process: what was read under one number may
    /// include writes a reopening undid.
    pub(super) fn openings(&self) -> u64 {
        self.openings.load(Ordering::SeqCst)
    }

    /// An error unless sled is still the opening numbered `opening` ([`Self::openings`]): a
    /// reopen since then undid the user batches no flush had covered, so writes made before it
    /// and flushed after it must not be acknowledged.
    pub(super) fn still_opening(&self, opening: u64) -> Result<(), StoreError> {
        if self.openings() == opening {
            return Ok(());
        }
        Err(StoreError::Unavailable(Fault::Io {
            dir: self.dir.clone(),
            detail: "the store was reopened after a disk fault before this write was flushed,                      which undid it"
                .to_string(),
        }))
    }

    /// The current opening of sled.
    pub(super) fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        match &*self.trees.read().unwrap_or_else(|p| p.into_inner()) {
            Some(trees) => Ok(trees.clone()),
            None => Err(self.unavailable()),
        }
    }

    /// The current opening of sled, unless writes are refused.
    pub(super) fn writable(&self) -> Result<Arc<Trees>, StoreError> {
        if let Some(fault) = self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(StoreError::Unavailable(fault));
        }
        self.trees()
    }

    fn unavailable(&self) -> StoreError {
        let fault = self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone();
        StoreError::Unavailable(fault.unwrap_or_else(|| Fault::Io {
            dir: self.dir.clone(),
            detail: "the store is being reopened".to_string(),
        }))
    }

    /// Why writes are refused, if they are; also notices a data directory gone since the last
    /// flush.
    pub(super) fn health(&self) -> Result<(), StoreError> {
        self.writable()?;
        self.check_linked()
    }

    /// Notes a user batch just applied, for undoing it if its flush fails.
    pub(super) fn applied(&self, undo: Undo) {
        let mut unflushed = self.unflushed.lock().unwrap_or_else(|p| p.into_inner());
        let number = unflushed.next;
        unflushed.next += 1;
        unflushed.batches.push_back((number, undo));
    }

    /// Starts a flush round: its number goes into `meta`, after every write it covers.
    pub(super) fn begin_round(self: &Arc<Self>, trees: &Trees) -> Result<Round, StoreError> {
        self.writable()?;
        let covers = self.unflushed.lock().unwrap_or_else(|p| p.into_inner()).next;
        let number = self.rounds.fetch_add(1, Ordering::Relaxed) + 1;
        trees.meta.insert(ACKNOWLEDGED, &number.to_be_bytes()).map_err(|e| self.fail(e))?;
        Ok(Round { number, covers })
    }

    /// Ends a round whose flush returned `flushed`: records it as acknowledged, or refuses
    /// writes from now on.
    pub(super) fn end_round(
        self: &Arc<Self>,
        round: Round,
        flushed: Result<(), sled::Error>,
    ) -> Result<(), StoreError> {
        flushed.map_err(|e| self.fail(e))?;
        self.check_linked()?;
        let mut unflushed = self.unflushed.lock().unwrap_or_else(|p| p.into_inner());
        while unflushed.batches.front().is_some_and(|(number, _)| *number < round.covers) {
            unflushed.batches.pop_front();
        }
        drop(unflushed);
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        record.advance(round.number).map_err(|e| self.fail(sled::Error::Io(e)))
    }

    fn check_linked(&self) -> Result<(), StoreError> {
        match identity(&self.dir.join("db")) {
            Ok(file) if file == self.db_file => Ok(()),
            _ => Err(StoreError::Unavailable(
                self.set_fault(Fault::DataDirLost { dir: self.dir.clone() }),
            )),
        }
    }

    /// Keeps the first fault (a later one is its consequence) and answers it.
    fn set_fault(&self, fault: Fault) -> Fault {
        let mut current = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_none() {
            eprintln!("privx-mock: {fault}");
            *current = Some(fault);
        }
        current.clone().expect("just set")
    }

    /// `error` if a write to sled failed with it: writes are then refused as after a failed
    /// flush (sled may have poisoned itself in a write of its own, with no flush to see it).
    pub(super) fn write_failed(self: &Arc<Self>, error: StoreError) -> StoreError {
        match error {
            StoreError::Storage(error) => self.fail(error),
            other => other,
        }
    }

    /// A write to sled failed: writes are refused until the store is reopened by a thread
    /// that waits for room on the disk.
    fn fail(self: &Arc<Self>, error: sled::Error) -> StoreError {
        let (dir, detail) = (self.dir.clone(), error.to_string());
        let fault = match is_no_space(&error) {
            true => Fault::NoSpace { dir, detail },
            false => Fault::Io { dir, detail },
        };
        let first = self.fault.lock().unwrap_or_else(|p| p.into_inner()).is_none();
        let fault = self.set_fault(fault);
        if first && !matches!(fault, Fault::DataDirLost { .. }) {
            let disk = Arc::downgrade(self);
            std::thread::spawn(move || reopen_when_possible(disk));
        }
        StoreError::Unavailable(fault)
    }

    /// Writes and removes a probe of [`PROBE_BYTES`]: whether the disk takes writes again.
    fn has_room(&self) -> bool {
        let path = self.dir.join("space-probe");
        let probe = std::fs::File::create(&path).and_then(|mut file| {
            file.write_all(&vec![0; PROBE_BYTES]).and_then(|()| file.sync_all())
        });
        let _ = std::fs::remove_file(&path);
        probe.is_ok()
    }

    /// Drops the failed opening of sled and opens it again, undoing the user batches no flush
    /// covered; the fault is cleared if that works.
    fn reopen(&self) -> Result<(), StoreError> {
        drop(self.trees.write().unwrap_or_else(|p| p.into_inner()).take());
        let trees = Trees::open(&self.dir)?;
        let mut unflushed = self.unflushed.lock().unwrap_or_else(|p| p.into_inner());
        batch::undo(&trees.db, unflushed.batches.iter().map(|(_, undo)| undo))?;
        trees.db.flush()?;
        unflushed.batches.clear();
        drop(unflushed);
        *self.trees.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(trees));
        // Only once the new opening is in place: a read that noted the old number may have read
        // the old opening.
        self.openings.fetch_add(1, Ordering::SeqCst);
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = None;
        eprintln!(
            "privx-mock: the store {} reopened; writes are accepted again",
            self.dir.display()
        );
        Ok(())
    }
}

/// The recovery thread of a failed store: it ends when the store reopens or is dropped.
fn reopen_when_possible(disk: Weak<Disk>) {
    loop {
        std::thread::sleep(RETRY);
        let Some(disk) = disk.upgrade() else { return };
        if !disk.has_room() {
            continue;
        }
        match disk.reopen() {
            Ok(()) => return,
            Err(e) => eprintln!("privx-mock: reopening the store {}: {e}", disk.dir.display()),
        }
    }
}
