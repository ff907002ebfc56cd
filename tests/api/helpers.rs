//! `spawn_app`: a server on 127.0.0.1:0 over a fresh temporary store, and ways to reach it.

use std::path::PathBuf;

use dropshot::{ConfigLoggingLevel, HttpServer};
use privx_mock::client::{types, Client};
use privx_mock::client::{Error, ResponseValue};
use privx_mock::clock::Clock;
use privx_mock::http::Context;
use privx_mock::server::{self, Config};
use privx_mock::store::Store;
use tempfile::TempDir;

pub struct TestApp {
    server: Option<HttpServer<Context>>,
    pub client: Client,
    pub base_url: String,
    pub http: reqwest::Client,
    config: Config,
    _dir: TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn(None).await
}

/// A server started with `fixtures` (the `--fixtures` JSON document).
pub async fn spawn_app_with_fixtures(fixtures: serde_json::Value) -> TestApp {
    spawn(Some(fixtures)).await
}

async fn spawn(fixtures: Option<serde_json::Value>) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let fixtures = fixtures.map(|json| {
        let path = dir.path().join("fixtures.json");
        std::fs::write(&path, json.to_string()).expect("fixtures written");
        path
    });
    let config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        fixtures,
        log_level: ConfigLoggingLevel::Warn,
        clock: Clock::default(),
    };
    let server = server::start(config.clone()).await.expect("server starts");
    let base_url = format!("http://{}", server.local_addr());
    TestApp {
        server: Some(server),
        client: Client::new(&base_url),
        http: reqwest::Client::new(),
        base_url,
        config,
        _dir: dir,
    }
}

impl TestApp {
    /// Stops the server and starts a new one on the same data directory and fixtures.
    pub async fn restart(&mut self) {
        self.server
            .take()
            .expect("running")
            .close()
            .await
            .expect("clean shutdown");
        // The new server gets a new port; the store is what must survive.
        let server = server::start(self.config.clone())
            .await
            .expect("server restarts");
        self.base_url = format!("http://{}", server.local_addr());
        self.client = Client::new(&self.base_url);
        self.server = Some(server);
    }

    /// Moves the server's clock forward.
    pub fn advance_clock(&self, by: chrono::Duration) {
        self.config.clock.advance(by);
    }

    /// Stops the server and opens its store directly, to check what is on disk.
    pub async fn stop_and_open_store(mut self) -> Store {
        self.server
            .take()
            .expect("running")
            .close()
            .await
            .expect("clean shutdown");
        Store::open(&self.config.data_dir).expect("the store reopens")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Creates a user with `username` (and `tags`) and returns its id.
    pub async fn create_user(&self, username: &str, tags: &[&str]) -> uuid::Uuid {
        let body = types::UserRequest {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..user_request(username)
        };
        self.client
            .user_create()
            .body(body)
            .send()
            .await
            .expect("user created")
            .into_inner()
            .id
    }
}

/// A user request with just a username.
pub fn user_request(username: &str) -> types::UserRequest {
    serde_json::from_value(serde_json::json!({ "username": username })).expect("valid")
}

/// The status and PrivX error envelope of a call that must fail.
pub fn api_error<T: std::fmt::Debug>(
    result: Result<ResponseValue<T>, Error<types::Error>>,
) -> (u16, types::Error) {
    match result {
        Err(Error::ErrorResponse(response)) => {
            let status = response.status().as_u16();
            (status, response.into_inner())
        }
        other => panic!("expected an error response, got {other:?}"),
    }
}

/// Asserts that a raw response is a PrivX error envelope with `status`; returns the envelope.
pub async fn assert_envelope(response: reqwest::Response, status: u16) -> types::Error {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
    let body = response.text().await.expect("a body");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not a PrivX envelope ({e}): {body}"))
}

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}
