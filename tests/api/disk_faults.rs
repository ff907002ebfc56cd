//! Disk faults: a store that lost acknowledged writes is refused, a data directory deleted
//! under a running server is noticed, and a full disk refuses writes without keeping them and
//! recovers by itself once there is room again.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::binary;
use crate::helpers::{assert_envelope, skip_on_postgres, spawn_app, spawn_app_with, TestApp};

const USERS: &str = "/local-user-store/api/v1/users";

/// How long a test waits for the server to notice something before it fails.
const DEADLINE: Duration = Duration::from_secs(20);

async fn user_count(app: &TestApp) -> u64 {
    let (status, list) = app.call("GET", &format!("{USERS}?limit=1"), None).await;
    assert_eq!(status, 200, "{list}");
    list["count"].as_u64().unwrap()
}

/// `/healthz`: its status and the envelope's message when it is not 200.
async fn health(app: &TestApp) -> (u16, String) {
    let response = app.anonymous.get(app.url("/healthz")).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error_message"].as_str().unwrap_or_default().to_string())
}

/// Runs the binary on `data_dir` with `args` until it exits (within [`DEADLINE`]); returns
/// whether it succeeded and what it wrote to standard error.
fn run_to_exit(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let mut child = binary::command(data_dir)
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the server started on {} instead of refusing it", data_dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn a_store_that_lost_acknowledged_writes_is_refused_unless_the_loss_is_accepted() {
    if skip_on_postgres("a flipped byte in sled's log and its record of acknowledged writes") {
        return;
    }
    let app = spawn_app().await;
    const CREATED: u64 = 300;
    for i in 0..CREATED {
        assert_eq!(app.create_user_raw(format!("user-{i}")).await, 201);
    }
    let data = app.data_dir();
    let dir = app.stop().await;

    // One flipped byte in the middle of sled's log: sled recovers the log up to it.
    let db = data.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&db, bytes).unwrap();

    let (started, stderr) = run_to_exit(&data, &[]);
    assert!(!started, "refused with an error exit");
    for needle in ["lost acknowledged writes", "--export", "--accept-data-loss"] {
        assert!(stderr.contains(needle), "{needle:?} in: {stderr}");
    }

    // --export reads what is left (and leaves the record, so the loss is still reported).
    let export = dir.path().join("left.json");
    let (exported, stderr) = run_to_exit(&data, &["--export", export.to_str().unwrap()]);
    assert!(exported, "{stderr}");
    let left: Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    let left = left["users"].as_array().unwrap().len() as u64;
    assert!(left < CREATED, "the damage lost users ({left} left)");
    assert!(!run_to_exit(&data, &[]).0, "still refused after the export");

    // Accepting the loss serves what is left, and makes it the state from now on.
    let accepted = spawn_app_with(|config| {
        config.data_dir = data.clone();
        config.accept_data_loss = true;
    })
    .await;
    assert_eq!(user_count(&accepted).await, left);
    assert_eq!(accepted.create_user_raw("after-the-loss".into()).await, 201);
    accepted.stop().await;
    let again = spawn_app_with(|config| config.data_dir = data.clone()).await;
    assert_eq!(user_count(&again).await, left + 1, "a plain start serves the accepted state");
}

#[tokio::test]
async fn a_store_without_a_readable_record_opens() {
    if skip_on_postgres("sled's record of acknowledged writes") {
        return;
    }
    let mut app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let record = app.data_dir().join(privx_mock::store::RECORD_FILE);
    std::fs::remove_file(&record).expect("the store keeps a record of acknowledged writes");
    app.restart().await;
    assert_eq!(user_count(&app).await, 1);
    assert!(record.exists(), "the record is written again");
    // Never synced, it may be empty after a power loss: that refuses nothing either.
    std::fs::write(&record, "").unwrap();
    app.restart().await;
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn a_data_directory_deleted_under_the_server_is_noticed() {
    if skip_on_postgres(
        "sled's data directory deleted (shared_database.rs takes the database away instead)",
    ) {
        return;
    }
    let app = spawn_app().await;
    app.create_user("before", &[]).await;
    assert_eq!(health(&app).await.0, 200);
    std::fs::remove_dir_all(app.data_dir()).unwrap();

    // The directory is checked after each flush and by /healthz, whichever comes first.
    let response = app
        .http
        .post(app.url(USERS))
        .json(&serde_json::json!({"username": "after"}))
        .send()
        .await
        .unwrap();
    let envelope = assert_envelope(response, 503).await;
    assert_eq!(envelope.error_code.to_string(), "DATABASE_ERROR");
    let message = envelope.error_message.unwrap_or_default();
    assert!(message.contains("deleted or replaced"), "{message}");
    let (status, reason) = health(&app).await;
    assert_eq!((status, reason.as_str()), (503, message.as_str()));
    assert_eq!(app.create_user_raw("later".into()).await, 503, "every write is refused");
    let (status, found) = app.call("GET", &format!("{USERS}?username=before"), None).await;
    assert_eq!((status, &found["count"]), (200, &Value::from(1)), "reads keep working");
    let (_, found) = app.call("GET", &format!("{USERS}?username=later"), None).await;
    assert_eq!(found["count"], 0, "a refused write is not kept");
}

/// A tmpfs of `size` mounted on a new temporary directory, unmounted when dropped (also when
/// the test panics); `None`, said on standard error, where mounting is not allowed.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self { dir }),
            Ok(output) => {
                let reason = String::from_utf8_lossy(&output.stderr);
                eprintln!("SKIPPED: mounting a tmpfs is not allowed here (needs root): {reason}");
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: no mount command to make a small disk: {e}");
                None
            }
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |args: &[&str]| {
            std::process::Command::new("umount")
                .args(args)
                .arg(self.dir.path())
                .status()
                .is_ok_and(|s| s.success())
        };
        // Lazily if something still holds a file there (a panicking test's server).
        if !umount(&[]) {
            umount(&["-l"]);
        }
    }
}

/// Fills the file system of `path` with a file at `path`, up to the last byte.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5; 64 * 1024];
    loop {
        if let Err(e) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(28), "filled up to ENOSPC: {e}");
            break;
        }
    }
    for size in [4096, 512, 1] {
        while file.write_all(&chunk[..size]).and_then(|()| file.sync_all()).is_ok() {}
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_without_keeping_them_and_recovers_without_a_restart() {
    if skip_on_postgres("a full disk under sled's data directory") {
        return;
    }
    let Some(disk) = Tmpfs::mount("32m") else { return };
    let mut app = spawn_app_with(|config| config.data_dir = disk.path().join("data")).await;
    app.create_user("before", &[]).await;
    let filler = disk.path().join("filler");
    fill(&filler);

    // The first writes may still fit into pages sled has; one soon does not.
    let mut refused = None;
    let mut acknowledged = 1;
    for i in 0..2000 {
        let name = format!("full-{i}");
        let response =
            app.http.post(app.url(USERS)).json(&serde_json::json!({"username": name})).send();
        let response = response.await.unwrap();
        if response.status().as_u16() == 201 {
            acknowledged += 1;
            continue;
        }
        let envelope = assert_envelope(response, 507).await;
        assert_eq!(envelope.error_code.to_string(), "DATABASE_ERROR");
        let message = envelope.error_message.unwrap_or_default();
        assert!(message.contains("is full"), "{message}");
        refused = Some(name);
        break;
    }
    let refused = refused.expect("a write is refused once the disk is full");
    let (status, reason) = health(&app).await;
    assert_eq!(status, 503, "/healthz tells the truth");
    assert!(reason.contains("is full"), "{reason}");
    assert_eq!(app.create_user_raw("while-full".into()).await, 507);
    let (status, _) = app.call("GET", &format!("{USERS}?username=before"), None).await;
    assert_eq!(status, 200, "reads keep working");
    // Until the store reopens, reads may show the refused write (sled applied it before its
    // flush failed); the reopening undoes it, and must not leave such a read to be served.
    let while_full = user_count(&app).await;

    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    while health(&app).await.0 != 200 {
        assert!(
            started.elapsed() < DEADLINE,
            "recovered once there is room: {:?}",
            health(&app).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = user_count(&app).await;
    assert_eq!(count, acknowledged, "the refused write is not kept (read {while_full} while full)");
    assert_eq!(app.create_user_raw(refused.clone()).await, 201, "so it can be sent again");
    app.restart().await;
    assert_eq!(user_count(&app).await, acknowledged + 1);
    let (_, found) = app.call("GET", &format!("{USERS}?username={refused}"), None).await;
    assert_eq!(found["count"], 1);
    drop(app.stop().await);
    drop(disk);
}
