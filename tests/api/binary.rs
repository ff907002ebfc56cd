//! The real `privx-mock` binary as a child process, for what only a process can show:
//! SIGKILL and SIGTERM, and the one-shot `--export`/`--import` commands.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::helpers::{database_for, ADMIN, OAUTH_CLIENT};

pub struct Process {
    pub child: Child,
    pub base_url: String,
    /// What the server wrote to standard error so far, but its listening line.
    stderr: Arc<Mutex<String>>,
}

/// The binary with the test credentials on the store in `data_dir` (on PostgreSQL, the
/// database of that directory: see `helpers::database_for`).
pub fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_privx-mock"));
    command.arg("--data-dir").arg(data_dir);
    if let Some(url) = database_for(data_dir) {
        command.arg("--database-url").arg(url);
    }
    command
        .args(["--admin-username", ADMIN.0, "--admin-password", ADMIN.1])
        .args(["--oauth-client-id", OAUTH_CLIENT.0, "--oauth-client-secret", OAUTH_CLIENT.1])
        .args(["--log-level", "error"])
        .env_clear()
        .stdin(Stdio::null());
    command
}

/// Starts the server on a free loopback port and returns once it is listening.
pub fn start(data_dir: &Path) -> Process {
    start_with(data_dir, |_| {})
}

/// [`start`] with a command that `adjust` changes first (more arguments, say).
pub fn start_with(data_dir: &Path, adjust: impl FnOnce(&mut Command)) -> Process {
    let mut command = command(data_dir);
    command.args(["--bind", "127.0.0.1:0"]).stdout(Stdio::null()).stderr(Stdio::piped());
    adjust(&mut command);
    let mut child = command.spawn().expect("the binary starts");
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let mut said = String::new();
    let base_url = loop {
        let line = lines.next().expect("the server says where it listens").expect("stderr");
        if let Some(url) = line.strip_prefix("privx-mock listening on ") {
            break url.to_string();
        }
        said.push_str(&line);
        said.push('\n');
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    let stderr = Arc::new(Mutex::new(said));
    let kept = stderr.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut kept = kept.lock().unwrap();
            kept.push_str(&line);
            kept.push('\n');
        }
    });
    Process { child, base_url, stderr }
}

/// Makes `command` start with `soft` and `hard` as its limits on open files.
pub fn limit_open_files(command: &mut Command, soft: u64, hard: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit is async-signal-safe and only reads `limit`.
    unsafe {
        command.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
}

/// Runs a one-shot command (`--export FILE`, `--import FILE`) to completion.
pub fn run(data_dir: &Path, args: &[&str]) {
    let output = command(data_dir).args(args).output().expect("the binary runs");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

impl Process {
    /// What the server wrote to standard error so far, but its listening line.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The admin's bearer token.
    pub async fn token(&self) -> String {
        let reply: serde_json::Value = reqwest::Client::new()
            .post(self.url("/auth/api/v1/oauth/token"))
            .basic_auth(OAUTH_CLIENT.0, Some(OAUTH_CLIENT.1))
            .form(&[("grant_type", "password"), ("username", ADMIN.0), ("password", ADMIN.1)])
            .send()
            .await
            .expect("the token endpoint answers")
            .json()
            .await
            .expect("a token reply");
        reply["access_token"].as_str().expect("a token").to_string()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
