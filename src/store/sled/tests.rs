//! The sled engine's own recovery (a user batch cut short by a crash) and its writer thread.

use chrono::Utc;
use uuid::Uuid;

use super::users::UserTx;
use super::*;
use crate::store::{Authorship, Page, PasswordHash, Stamp, UserProfile, UserRecord};

fn user(n: u128, username: &str, tags: &[&str]) -> UserRecord {
    let profile = UserProfile {
        username: username.to_string(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..UserProfile::default()
    };
    let stamp = Stamp { actor: Uuid::from_u128(0xad), now: Utc::now() };
    UserRecord {
        id: Uuid::from_u128(n),
        authorship: Authorship::new(stamp),
        profile,
        password: None,
    }
}

fn open(dir: &Path) -> SledStore {
    SledStore::open(dir, OnLostWrites::Refuse).unwrap().0
}

/// A crash after a user batch's pending record was written but before its writes were:
/// opening the store again finishes the batch, so the user and every index agree.
#[test]
fn reopening_finishes_a_user_batch_a_crash_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.user_insert(&user(1, "kept", &["t"]), false).unwrap();
    let mut recovered = user(2, "Recovered", &["t", "new"]);
    recovered.password =
        Some(PasswordHash { hash: "$argon2id$stand-in".into(), created: Utc::now() });
    let trees = store.trees().unwrap();
    let mut tx = UserTx { store: &trees, batch: batch::Batch::new(&trees.meta), gathered: None };
    tx.put(None, &recovered).unwrap();
    batch::crash_after_pending_record(tx.batch).unwrap();
    assert!(store.user_by_name("recovered").unwrap().is_none(), "nothing applied yet");
    drop(trees);
    store.flush().unwrap();
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.user_by_name("RECOVERED").unwrap(), Some(recovered));
    let all = Page { offset: 0, limit: 10 };
    assert_eq!(store.user_tags(None, false, all).unwrap(), ["new", "t"]);
    assert_eq!(store.user_list(None, None, all).unwrap().count, 2);
    let taken = store.user_insert(&user(3, "recovered", &[]), false).unwrap_err();
    assert!(matches!(taken, StoreError::Duplicate { .. }), "the name index has it: {taken:?}");
}

/// The writer thread survives a write that panics (its caller gets an error), and a write
/// that fails is answered without a flush round.
#[tokio::test]
async fn the_writer_goes_on_after_a_write_panics_or_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (sled, _) = Sled::open(dir.path(), OnLostWrites::Refuse).unwrap();
    let writer = &sled.writer;
    let panicked = writer.write(|_| -> Result<(), StoreError> { panic!("a write's bug") }).await;
    assert!(matches!(panicked, Err(StoreError::Database(_))), "{panicked:?}");
    let rounds = writer.rounds();
    let refused = writer.write(|_| Err::<(), _>(StoreError::not_found("user", 7))).await;
    assert!(matches!(refused, Err(StoreError::NotFound { .. })), "{refused:?}");
    assert_eq!(writer.rounds(), rounds, "a failed write waits for no flush");
    writer.write(|store| store.user_insert(&user(1, "after", &[]), false)).await.unwrap();
    assert_eq!(writer.rounds(), rounds + 1, "a write is answered after a flush");
    assert!(sled.store.user_by_name("after").unwrap().is_some());
}

/// The user writes of one writer round gather into one batch: each sees those before it (a
/// name taken earlier in the round is taken; a user deleted in the round takes along a
/// credential added earlier in the round), a failed one adds nothing, and settling writes the
/// outcome with the indexes and counts in step.
#[test]
fn writes_gathered_in_a_round_see_each_other_and_settle_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.user_insert(&user(9, "before", &["t"]), false).unwrap();
    store.gather();
    store.user_insert(&user(1, "gone", &["t", "x"]), false).unwrap();
    let stamp = Stamp { actor: Uuid::from_u128(0xad), now: Utc::now() };
    let credential = crate::store::CredentialRecord {
        id: Uuid::from_u128(100),
        user_id: Uuid::from_u128(1),
        credential_id: Some("c".into()),
        name: None,
        comment: None,
        last_used: None,
        authorship: Authorship::new(stamp),
    };
    store.credential_insert_absent(&credential).unwrap();
    let taken = store.user_insert(&user(2, "GONE", &[]), false).unwrap_err();
    assert!(matches!(taken, StoreError::Duplicate { .. }), "{taken:?}");
    store.user_delete(Uuid::from_u128(1)).unwrap();
    store.user_insert(&user(3, "gone", &["t"]), false).unwrap();
    assert!(store.user_by_name("gone").unwrap().is_none(), "nothing in sled before settling");
    store.settle().unwrap();

    assert_eq!(store.user_by_name("gone").unwrap().map(|u| u.id), Some(Uuid::from_u128(3)));
    assert!(store.trees().unwrap().credentials.is_empty(), "the credential went with its user");
    let all = Page { offset: 0, limit: 10 };
    assert_eq!(store.user_list(None, None, all).unwrap().count, 2);
    assert_eq!(store.user_tags(None, false, all).unwrap(), ["t"]);
    store.user_delete(Uuid::from_u128(9)).unwrap();
    store.user_delete(Uuid::from_u128(3)).unwrap();
    assert!(store.user_tags(None, false, all).unwrap().is_empty(), "tag counts in step");
    assert_eq!(store.user_list(None, None, all).unwrap().count, 0);
}

/// A reopen after a disk fault undoes the user writes no flush covered; a write made before
/// the reopen and flushed after it must then not be acknowledged, although that flush (on the
/// new opening) succeeds.
#[test]
fn a_write_undone_by_a_reopen_is_not_acknowledged_by_a_later_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let opening = store.disk.openings();
    store.user_insert(&user(1, "undone", &[]), false).unwrap();
    // A fault that leaves sled itself working (as a failed write of the record file does):
    // the store refuses writes and a thread reopens it.
    let io = std::io::Error::other("the record file could not be written");
    store.disk.write_failed(StoreError::Storage(sled::Error::Io(io)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.disk.openings() == opening {
        assert!(std::time::Instant::now() < deadline, "the store did not reopen");
        std::thread::yield_now();
    }
    store.flush().unwrap();
    assert!(store.user_by_name("undone").unwrap().is_none(), "the reopen undid the write");
    let answer = store.disk.still_opening(opening);
    assert!(matches!(answer, Err(StoreError::Unavailable(_))), "{answer:?}");
    assert!(store.disk.still_opening(store.disk.openings()).is_ok());
}
