//! `spawn_app`: a server on 127.0.0.1:0 over a fresh temporary store, and ways to reach it.

use std::path::PathBuf;

use dropshot::HttpServer;
use privx_mock::client::{types, Client, Error, ResponseValue};
use privx_mock::clock::Clock;
use privx_mock::config::AuthConfig;
use privx_mock::http::Context;
use privx_mock::relay::RelayConfig;
use privx_mock::server::{self, Config};
use privx_mock::store::Store;
use tempfile::TempDir;

/// The test servers' credentials (see `auth_config`).
pub const SIGNING_KEY: &str = "test-signing-key-0123456789abcdef";
pub const OAUTH_CLIENT: (&str, &str) = ("test-client", "test-client-secret");
pub const ADMIN: (&str, &str) = ("admin", "admin-password-Xy7");
pub const API_CLIENT: (&str, &str) = ("terraform", "terraform-secret-Qw9");
pub const API_CLIENT_SCOPES: &[&str] = &["usersView", "usersManage"];

/// The config file every test server gets, written as a user would write it.
pub fn auth_config() -> AuthConfig {
    toml::from_str(&format!(
        r#"
        signing_key = "{SIGNING_KEY}"
        oauth_client = {{ id = "{}", secret = "{}" }}
        admin = {{ username = "{}", password = "{}" }}
        [[api_clients]]
        name = "{}"
        secret = "{}"
        scopes = {API_CLIENT_SCOPES:?}
        "#,
        OAUTH_CLIENT.0, OAUTH_CLIENT.1, ADMIN.0, ADMIN.1, API_CLIENT.0, API_CLIENT.1
    ))
    .expect("a valid config")
}

pub struct TestApp {
    server: Option<HttpServer<Context>>,
    /// The generated client, logged in as the admin (scopes `admin` and `user`).
    pub client: Client,
    pub base_url: String,
    /// A plain HTTP client that sends the admin's bearer token.
    pub http: reqwest::Client,
    /// A plain HTTP client without credentials.
    pub anonymous: reqwest::Client,
    config: Config,
    dir: TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn(None, |_| {}).await
}

/// A server started with `fixtures` (the `--fixtures` JSON document).
pub async fn spawn_app_with_fixtures(fixtures: serde_json::Value) -> TestApp {
    spawn(Some(fixtures), |_| {}).await
}

/// A server whose config `adjust` changes first (TLS, say).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn(None, adjust).await
}

/// A server with `fixtures` whose config `adjust` changes first.
pub async fn spawn(
    fixtures: Option<serde_json::Value>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let fixtures = fixtures.map(|json| {
        let path = dir.path().join("fixtures.json");
        std::fs::write(&path, json.to_string()).expect("fixtures written");
        path
    });
    let mut config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        fixtures,
        log_level: tracing::Level::DEBUG,
        log_format: Default::default(),
        log_file: Some(dir.path().join("server.log")),
        test_control: false,
        tls: None,
        auth: auth_config(),
        relay: RelayConfig::default(),
        clock: Clock::default(),
        termination_delay_ms: server::DEFAULT_TERMINATION_DELAY_MS,
        body_timeout_ms: server::DEFAULT_BODY_TIMEOUT_MS,
        shutdown_timeout_ms: server::DEFAULT_SHUTDOWN_TIMEOUT_MS,
        first_byte_timeout_ms: server::DEFAULT_FIRST_BYTE_TIMEOUT_MS,
        idle_timeout_ms: server::DEFAULT_IDLE_TIMEOUT_MS,
        header_timeout_ms: server::DEFAULT_HEADER_TIMEOUT_MS,
        max_connections: server::DEFAULT_MAX_CONNECTIONS,
        accept_data_loss: false,
        database_url: None,
        database_wait_ms: server::DEFAULT_DATABASE_WAIT_MS,
    };
    adjust(&mut config);
    let server = server::start(config.clone()).await.expect("server starts");
    let scheme = if server.using_tls() { "https" } else { "http" };
    let base_url = format!("{scheme}://{}", server.local_addr());
    let mut app = TestApp {
        server: Some(server),
        client: Client::new(&base_url),
        http: reqwest::Client::new(),
        anonymous: reqwest::Client::new(),
        base_url,
        config,
        dir,
    };
    if !app.server.as_ref().unwrap().using_tls() {
        app.log_in_as_admin().await;
    }
    app
}

/// A reqwest client that sends `Authorization: Bearer token`.
pub fn bearer_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {token}").parse().expect("a header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().expect("a client")
}

impl TestApp {
    /// Stops the server and starts a new one on the same data directory and fixtures.
    pub async fn restart(&mut self) {
        server::stop(self.server.take().expect("running")).await.expect("clean shutdown");
        // The new server gets a new port; the store is what must survive.
        let server = server::start(self.config.clone()).await.expect("server restarts");
        self.base_url = format!("http://{}", server.local_addr());
        self.server = Some(server);
        self.log_in_as_admin().await;
    }

    /// The store's directory.
    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// How many flushes the store has run so far.
    pub fn flush_count(&self) -> u64 {
        let store = &self.server.as_ref().expect("running").app_private().store;
        store.flush_count().expect("the engine flushes by itself (sled)")
    }

    /// Stops the server (cleanly); the returned directory holds its store until dropped.
    pub async fn stop(mut self) -> TempDir {
        server::stop(self.server.take().expect("running")).await.expect("clean shutdown");
        self.dir
    }

    /// Moves the server's clock forward.
    pub fn advance_clock(&self, by: chrono::Duration) {
        self.config.clock.advance(by);
    }

    /// Stops the server and opens its store directly, to check what is on disk.
    pub async fn stop_and_open_store(mut self) -> Store {
        server::stop(self.server.take().expect("running")).await.expect("clean shutdown");
        Store::open(&self.config.data_dir).expect("the store reopens")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends `method path` (with a JSON body, if any) as the admin; returns the status and the
    /// JSON answer (null when there is none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("an answer");
        (response.status().as_u16(), response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Asks for a token with the password grant, as the PrivX SDKs do.
    pub async fn password_grant(&self, username: &str, password: &str) -> reqwest::Response {
        self.anonymous
            .post(self.url("/auth/api/v1/oauth/token"))
            .basic_auth(OAUTH_CLIENT.0, Some(OAUTH_CLIENT.1))
            .form(&[("grant_type", "password"), ("username", username), ("password", password)])
            .send()
            .await
            .expect("the token endpoint answers")
    }

    /// The access token of a password grant that must succeed.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let response = self.password_grant(username, password).await;
        assert_eq!(response.status().as_u16(), 200, "logging in as {username}");
        let reply: types::TokenResponse = response.json().await.expect("a token reply");
        reply.access_token
    }

    async fn log_in_as_admin(&mut self) {
        let token = self.token(ADMIN.0, ADMIN.1).await;
        self.http = bearer_client(&token);
        self.client = Client::new_with_client(&self.base_url, self.http.clone());
    }

    /// Sends a user create with just `username`; returns the status.
    pub async fn create_user_raw(&self, username: String) -> u16 {
        let body = serde_json::json!({ "username": username });
        let response = self.http.post(self.url("/local-user-store/api/v1/users")).json(&body);
        response.send().await.expect("an answer").status().as_u16()
    }

    /// Creates a user with `username` (and `tags`) and returns its id.
    pub async fn create_user(&self, username: &str, tags: &[&str]) -> uuid::Uuid {
        let body = types::UserRequest {
            tags: tags.iter().map(|t| t.parse().expect("a tag within bounds")).collect(),
            ..user_request(username)
        };
        self.client.user_create().body(body).send().await.expect("user created").into_inner().id
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
    assert_eq!(response.status().as_u16(), status, "status of {}", response.url());
    let body = response.text().await.expect("a body");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not a PrivX envelope ({e}): {body}"))
}

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Asserts that `body`, answered with `status` by `operation_id`, is what the spec says that
/// operation answers (its response schema, resolved against the spec's components).
pub fn assert_matches_spec(operation_id: &str, status: u16, body: &serde_json::Value) {
    let operation = crate::spec::spec()["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .find(|op| op["operationId"] == operation_id)
        .unwrap_or_else(|| panic!("no operation {operation_id} in the spec"));
    let response = crate::spec::resolved(&operation["responses"][status.to_string()]);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "{operation_id} has no JSON body for {status}");
    let errors = crate::spec::schema_errors(schema, body);
    assert!(
        errors.is_empty(),
        "{operation_id} {status} does not match the spec: {errors:?}\n{body}"
    );
}
