//! The real `privx-mock` binary as a child process, for what only a process can show:
//! SIGKILL and SIGTERM, and the one-shot `--export`/`--import` commands.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::helpers::{ADMIN, OAUTH_CLIENT};

pub struct Process {
    pub child: Child,
    pub base_url: String,
}

/// The binary with the test credentials on the store in `data_dir`.
pub fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_privx-mock"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--admin-username", ADMIN.0, "--admin-password", ADMIN.1])
        .args(["--oauth-client-id", OAUTH_CLIENT.0, "--oauth-client-secret", OAUTH_CLIENT.1])
        .args(["--log-level", "error"])
        .env_clear()
        .stdin(Stdio::null());
    command
}

/// Starts the server on a free loopback port and returns once it is listening.
pub fn start(data_dir: &Path) -> Process {
    let mut child = command(data_dir)
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let base_url = loop {
        let line = lines.next().expect("the server says where it listens").expect("stderr");
        if let Some(url) = line.strip_prefix("privx-mock listening on ") {
            break url.to_string();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Process { child, base_url }
}

/// Runs a one-shot command (`--export FILE`, `--import FILE`) to completion.
pub fn run(data_dir: &Path, args: &[&str]) {
    let output = command(data_dir).args(args).output().expect("the binary runs");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

impl Process {
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
