//! sled's database and its trees, as one opening of the store (the layout is in the store's
//! module docs), and the wait for the previous opening's lock that opening needs.

use std::path::Path;

use super::{batch, StoreError};

/// One opening of the sled database and its trees. The store reads and writes through the
/// current one, which it replaces when it recovers from a failed flush (see "Disk faults").
pub(crate) struct Trees {
    pub(super) db: sled::Db,
    pub(super) users: sled::Tree,
    pub(super) passwords: sled::Tree,
    pub(super) usernames: sled::Tree,
    pub(super) tag_counts: sled::Tree,
    pub(super) credentials: sled::Tree,
    pub(super) listeners: sled::Tree,
    pub(super) connections: sled::Tree,
    pub(super) settings: sled::Tree,
    pub(super) meta: sled::Tree,
}

impl Trees {
    /// Opens sled in `dir`, once no other handle holds it (see "Durability and consistency"),
    /// and finishes a batch a crash interrupted.
    pub(super) fn open(dir: &Path) -> Result<Self, StoreError> {
        wait_until_unlocked(dir)?;
        let db = sled::Config::new().path(dir).cache_capacity(64 * 1024 * 1024).open()?;
        let trees = Self {
            users: db.open_tree("users")?,
            passwords: db.open_tree("passwords")?,
            usernames: db.open_tree("usernames")?,
            tag_counts: db.open_tree("tag_counts")?,
            credentials: db.open_tree("credentials")?,
            listeners: db.open_tree("listeners")?,
            connections: db.open_tree("connections")?,
            settings: db.open_tree("settings")?,
            meta: db.open_tree("meta")?,
            db,
        };
        batch::recover(&trees.db, &trees.meta)?;
        Ok(trees)
    }
}

/// How long opening waits for another handle to let go of the store.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Returns once no one holds the lock sled takes on `dir/db` (an exclusive `flock`), or
/// `InUse` after [`LOCK_WAIT`]. The lock is taken blocking, in a thread of its own, so it is
/// granted the moment it is released; a thread that outlives the wait lets go as soon as it
/// gets the lock. Ours is released again before sled takes its own.
fn wait_until_unlocked(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join("db");
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(sled::Error::Io(e).into()),
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let locked = file.lock();
        let _ = sender.send(locked.map(|()| file));
    });
    match receiver.recv_timeout(LOCK_WAIT) {
        Ok(locked) => locked.map(drop).map_err(|e| sled::Error::Io(e).into()),
        Err(_) => Err(StoreError::InUse { path }),
    }
}
