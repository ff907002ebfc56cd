//! Several servers on one PostgreSQL database serve one state: a token from one works on the
//! other, a write on one is read on the other at once, a username stays unique across both, a
//! user deleted on one loses its tokens on the other, a listener deleted through one stops
//! listening on the other, a SIGKILLed server loses none of its acknowledged writes, a database
//! that goes away mid-run gives 503 envelopes and then service again, and two servers starting
//! together on a fresh database both come up. PostgreSQL only: on sled each test says so in
//! one line and returns.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use privx_mock::relay::RelayConfig;
use privx_mock::server::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::binary;
use crate::helpers::{
    bearer_client, database_for, fresh_database, repo_path, skip_unless_postgres, spawn_app_with,
    TestApp, ADMIN,
};

const USERS: &str = "/local-user-store/api/v1/users";
const LISTENERS: &str = "/extender-service/api/v1/listeners";
/// How long a request, or the wait for a server to recover, may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);
const WHY: &str = "several servers on one database need PostgreSQL";

/// A server on `database` without a configured signing key, so that it signs its tokens with
/// the key kept in the database.
async fn server_on(database: &str) -> TestApp {
    spawn_app_with(|config| {
        config.database_url = Some(database.to_string());
        config.auth.signing_key = None;
    })
    .await
}

/// Sends a user create to `app`; returns the status and the JSON answer.
async fn create(app: &TestApp, username: &str) -> (u16, Value) {
    let request = app.http.post(app.url(USERS)).json(&json!({ "username": username }));
    let response = tokio::time::timeout(DEADLINE, request.send())
        .await
        .unwrap_or_else(|_| panic!("a create on {} hung", app.base_url))
        .expect("an answer");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_token_and_a_write_of_one_server_work_on_the_other_at_once() {
    if skip_unless_postgres(WHY) {
        return;
    }
    let database = fresh_database();
    let a = server_on(&database).await;
    let b = server_on(&database).await;
    for (from, to) in [(&a, &b), (&b, &a)] {
        let token = from.token(ADMIN.0, ADMIN.1).await;
        let response = bearer_client(&token).get(to.url(USERS)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{}'s token on {}", from.base_url, to.base_url);
    }

    let body = json!({"username": "shared", "tags": ["both"], "comment": "made on A"});
    let (status, created) = a.call("POST", USERS, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let user = format!("{USERS}/{}", created["id"].as_str().unwrap());
    let (status, on_b) = b.call("GET", &user, None).await;
    assert_eq!((status, &on_b["comment"]), (200, &json!("made on A")), "{on_b}");
    let (_, tags) = b.call("GET", &format!("{USERS}/tags"), None).await;
    assert_eq!(tags, json!(["both"]));

    let body = json!({"username": "shared", "tags": ["both"], "comment": "changed on B"});
    assert_eq!(b.call("PUT", &user, Some(body)).await.0, 200);
    let (_, on_a) = a.call("GET", &user, None).await;
    assert_eq!(on_a["comment"], "changed on B");
    assert_eq!(b.call("DELETE", &user, None).await.0, 200);
    assert_eq!(a.call("GET", &user, None).await.0, 404);
}

/// How long what one server cached (a user's password, the listeners it relays) may lag
/// behind a write on another: each re-reads the store every second (`SHARED_KEEP` in
/// `http/auth/current_passwords.rs`, `FOLLOW_EVERY` in `http/listeners.rs`), with room for a
/// busy machine.
const FOLLOW_DEADLINE: Duration = Duration::from_secs(5);

/// Calls `probe` until it says yes, for at most [`FOLLOW_DEADLINE`]; `what` names the wait.
async fn eventually<F: Future<Output = bool>>(what: &str, mut probe: impl FnMut() -> F) {
    let deadline = Instant::now() + FOLLOW_DEADLINE;
    while !probe().await {
        assert!(Instant::now() < deadline, "{what} within {FOLLOW_DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_user_deleted_on_one_server_loses_its_tokens_on_the_other() {
    if skip_unless_postgres(WHY) {
        return;
    }
    let database = fresh_database();
    let a = server_on(&database).await;
    let b = server_on(&database).await;
    let body = json!({"username": "leaver", "password": {"password": "leaver-password-1"}});
    let (status, created) = a.call("POST", USERS, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let own = b.url(&format!("/role-store/api/v1/users/{id}/webauthn-credentials"));
    let mut tokens = Vec::new();
    for server in [&a, &b] {
        let token = bearer_client(&server.token("leaver", "leaver-password-1").await);
        // Used on B first, so that B remembers the user's password as current.
        assert_eq!(token.get(&own).send().await.unwrap().status().as_u16(), 200);
        tokens.push(token);
    }

    assert_eq!(a.call("DELETE", &format!("{USERS}/{id}"), None).await.0, 200);
    for (token, from) in tokens.iter().zip(["A", "B"]) {
        eventually(&format!("B refuses the deleted user's token from {from}"), || async {
            token.get(&own).send().await.unwrap().status().as_u16() == 401
        })
        .await;
    }
}

/// A destination on 127.0.0.1 that echoes what it reads; returns its port.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    port
}

/// A free port on 127.0.0.1 outside the relay's default range: the relay tests running
/// meanwhile take ports from that range lowest free first, so one of them would soon listen
/// on a port of that range that a test saw closed.
fn private_port() -> u16 {
    loop {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        if !RelayConfig::default().ports.contains(&port) {
            return port;
        }
    }
}

#[tokio::test]
async fn a_listener_deleted_through_another_server_stops_listening() {
    if skip_unless_postgres(WHY) {
        return;
    }
    let database = fresh_database();
    let port = private_port();
    let relaying = |config: &mut Config| {
        config.database_url = Some(database.clone());
        config.relay.ports = port..=port;
    };
    let a = spawn_app_with(relaying).await;
    let b = spawn_app_with(relaying).await;
    let echo = echo_server().await;
    let body = json!({
        "network": "tcp", "destination": format!("ext/127.0.0.1:{echo}"),
        "source": ["127.0.0.1"], "keep_open_sec": 600,
    });
    let (status, listener) = a.call("POST", LISTENERS, Some(body)).await;
    assert_eq!(status, 201, "{listener}");
    let address: SocketAddr = listener["address"].as_str().unwrap().parse().unwrap();
    let mut relayed = TcpStream::connect(address).await.expect("A relays the listener");
    relayed.write_all(b"ping").await.unwrap();
    let mut echoed = [0; 4];
    relayed.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");
    drop(relayed);

    let path = format!("{LISTENERS}/{}", listener["id"].as_str().unwrap());
    assert_eq!(b.call("GET", &path, None).await.0, 200, "B reads A's listener");
    assert_eq!(b.call("DELETE", &path, None).await.0, 200);
    eventually(&format!("A closes {address}"), || async {
        match TcpStream::connect(address).await {
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
            Ok(_) => false,
        }
    })
    .await;
    let (_, listing) = a.call("GET", LISTENERS, None).await;
    let ids: Vec<&Value> = listing["items"].as_array().unwrap().iter().map(|l| &l["id"]).collect();
    assert!(!ids.contains(&&listener["id"]), "A still lists it: {listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_creates_of_one_username_on_two_servers_make_one_user() {
    if skip_unless_postgres(WHY) {
        return;
    }
    let database = fresh_database();
    let servers = [server_on(&database).await, server_on(&database).await];
    // Half of them spell it in capitals: a username is unique regardless of case.
    let creates = (0..40).map(|i| create(&servers[i % 2], ["racer", "RACER"][i / 2 % 2]));
    let answers = futures::future::join_all(creates).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 201) {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["error_code"], "VALUE_DUPLICATE", "{body}");
    }
    for server in &servers {
        let (_, list) = server.call("GET", USERS, None).await;
        assert_eq!(list["count"], 1, "{list}");
    }
}

#[tokio::test]
async fn a_sigkilled_server_loses_none_of_its_acknowledged_writes() {
    if skip_unless_postgres(WHY) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut a = binary::start(dir.path());
    let b = spawn_app_with(|config| config.database_url = database_for(dir.path())).await;
    let client = bearer_client(&a.token().await);
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    const KILL_AFTER: usize = 200;

    let mut writers = Vec::new();
    for writer in 0..8 {
        let (client, base) = (client.clone(), a.base_url.clone());
        let (acknowledged, count) = (acknowledged.clone(), count.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..1000 {
                let name = format!("w{writer}-{i}");
                let request =
                    client.post(format!("{base}{USERS}")).json(&json!({"username": name}));
                let Ok(response) = request.send().await else { return };
                assert_eq!(response.status().as_u16(), 201);
                let Ok(reply) = response.json::<Value>().await else { return };
                let id = reply["id"].as_str().unwrap().to_string();
                acknowledged.lock().unwrap().push((name, id));
                count.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // Kill once enough creates were acknowledged, with every writer still mid-flight.
    while count.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::task::yield_now().await;
        assert!(!writers.iter().all(|w| w.is_finished()), "writers stopped before the kill");
    }
    a.child.kill().expect("SIGKILL");
    a.child.wait().unwrap();
    for writer in writers {
        writer.await.expect("a writer panicked: the server answered something unexpected");
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    for (name, id) in &acknowledged {
        let (status, user) = b.call("GET", &format!("{USERS}/{id}"), None).await;
        assert_eq!((status, &user["username"]), (200, &json!(name)), "{name} was acknowledged");
    }
    let (_, list) = b.call("GET", USERS, None).await;
    assert!(list["count"].as_u64().unwrap() as usize >= acknowledged.len(), "{list}");
    // What the killed server held (connections, row locks) does not stand in B's way.
    assert_eq!(create(&b, "after-the-kill").await.0, 201);
}

/// A PostgreSQL cluster of one test's own (`scripts/postgres start`), for a test that stops
/// and restarts its database: the cluster of `PRIVX_TEST_DATABASE_URL` serves the tests that
/// run meanwhile. Stopped when dropped.
struct Cluster {
    dir: PathBuf,
    url: String,
    _base: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let base = tempfile::tempdir().unwrap();
        // As root, the cluster belongs to the `postgres` user, who must reach into it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = base.path().join("cluster");
        let said = postgres(&["start", dir.to_str().unwrap()]);
        let url = said
            .lines()
            .find_map(|line| line.strip_prefix("export PRIVX_TEST_DATABASE_URL="))
            .unwrap_or_else(|| panic!("scripts/postgres start said no URL: {said}"))
            .to_string();
        Cluster { dir, url, _base: base }
    }

    /// Runs `scripts/postgres ACTION` on the cluster, without blocking the servers of this
    /// test's runtime.
    async fn run(&self, action: &str) {
        let dir = self.dir.clone();
        let action = action.to_string();
        tokio::task::spawn_blocking(move || postgres(&[&action, dir.to_str().unwrap()]))
            .await
            .unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Also while a failed test unwinds: a second panic here would abort the test binary.
        let _ = std::process::Command::new(repo_path("scripts/postgres"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// Runs `scripts/postgres` with `args`; returns what it printed.
fn postgres(args: &[&str]) -> String {
    let output = std::process::Command::new(repo_path("scripts/postgres"))
        .args(args)
        .output()
        .expect("scripts/postgres runs");
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    assert!(output.status.success(), "scripts/postgres {args:?}: {}", said(&output.stderr));
    said(&output.stdout)
}

/// Creates users on `servers` in turn until `action` is done; every answer must be a 201 or
/// a 503 `DATABASE_ERROR` envelope.
async fn writing_during(servers: &[&TestApp], action: impl Future<Output = ()>) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let mut action = std::pin::pin!(action);
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("during-{n}");
        tokio::select! {
            () = &mut action => return,
            _ = checked_create(servers[n % servers.len()], &name) => {}
        }
    }
}

/// A create on `app` whose answer must be a 201 or a 503 `DATABASE_ERROR` envelope (never a
/// 500 or a hang); returns the status.
async fn checked_create(app: &TestApp, username: &str) -> u16 {
    let (status, body) = create(app, username).await;
    if status != 201 {
        assert_eq!((status, &body["error_code"]), (503, &json!("DATABASE_ERROR")), "{body}");
    }
    status
}

#[tokio::test]
async fn a_database_restarted_during_writes_gives_503_envelopes_then_service_again() {
    if skip_unless_postgres(WHY) {
        return;
    }
    let cluster = Cluster::start();
    let a = server_on(&cluster.url).await;
    let b = server_on(&cluster.url).await;
    let servers = [&a, &b];
    assert_eq!(create(&a, "before-a").await.0, 201);
    assert_eq!(create(&b, "before-b").await.0, 201);

    writing_during(&servers, cluster.run("stop")).await;
    for server in servers {
        assert_eq!(checked_create(server, &format!("down-{}", server.base_url)).await, 503);
    }
    writing_during(&servers, cluster.run("restart")).await;

    // Back without a restart of either server: the pools make new connections.
    let deadline = Instant::now() + DEADLINE;
    for (i, server) in servers.into_iter().enumerate() {
        let mut tries = 0;
        while checked_create(server, &format!("after-{i}-{tries}")).await != 201 {
            assert!(Instant::now() < deadline, "{} never recovered", server.base_url);
            tries += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for name in ["before-a", "before-b"] {
        let (_, list) = b.call("GET", &format!("{USERS}?username={name}"), None).await;
        assert_eq!(list["count"], 1, "{name} survived the restart: {list}");
    }
}

/// Both binaries on the store of `dir` (on PostgreSQL, one database), started at once.
fn start_two_at_once(dir: &Path) -> (binary::Process, binary::Process) {
    // The database first, so that the servers race for its migrations and secrets.
    database_for(dir);
    std::thread::scope(|scope| {
        let a = scope.spawn(|| binary::start(dir));
        let b = scope.spawn(|| binary::start(dir));
        (a.join().expect("A starts"), b.join().expect("B starts"))
    })
}

#[tokio::test]
async fn two_servers_starting_together_on_a_fresh_database_share_one_signing_key() {
    if skip_unless_postgres(WHY) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = start_two_at_once(dir.path());
    for (from, to) in [(&a, &b), (&b, &a)] {
        let response = bearer_client(&from.token().await).get(to.url(USERS)).send().await;
        let status = response.unwrap().status().as_u16();
        assert_eq!(status, 200, "{}'s token on {}: {}", from.base_url, to.base_url, to.stderr());
    }
}
