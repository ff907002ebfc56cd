//! Assembles the server: opens the store, bootstraps authentication, loads fixtures,
//! registers the generated API (which also serves the spec and docs pages), starts dropshot
//! (HTTP or HTTPS) and, beside it, the closing of silent connections (`crate::silent`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dropshot::{
    ApiDescription, ConfigDropshot, ConfigTls, HandlerTaskMode, HttpServer, ServerBuilder,
};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::clock::Clock;
use crate::config::{AuthConfig, LogFormat};
use crate::http::auth::Auth;
use crate::http::journal::{log_dispatch, Journal, RequestLog};
use crate::http::test_control::TestControl;
use crate::http::{Context, PrivxApiImpl};
use crate::password;
use crate::relay::{RelayConfig, Relays};
use crate::store::{Fixtures, OnLostWrites, Stamp, Store, StoreError};

/// Request bodies up to this size are accepted (dropshot's default is 1 KiB).
pub const REQUEST_BODY_MAX_BYTES: usize = 1024 * 1024;

/// The identity written into `author`/`updated_by` of records loaded from fixtures.
pub const FIXTURES_AUTHOR: uuid::Uuid =
    uuid::Uuid::from_u128(0x5e7c_e000_0000_4000_8000_0000_0000_0001);

/// How long a terminated connection stays TERMINATING unless configured.
pub const DEFAULT_TERMINATION_DELAY_MS: u64 = 2000;
/// The longest termination delay accepted (a day), so every planned end is a valid time.
pub const MAX_TERMINATION_DELAY_MS: u64 = 86_400_000;
/// How long a request body may take to arrive unless configured: a PrivX client sends at most
/// [`REQUEST_BODY_MAX_BYTES`], which takes seconds even on a slow link. Below the header
/// timeout's default, so a body that stops altogether gets its 408 before the silence closes
/// its connection without an answer.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 20_000;
/// How long a shutdown waits for requests in flight unless configured: this server's own
/// operations take milliseconds, and orchestrators kill a process after 30 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 10_000;
/// How long a new connection may stay silent unless configured: a PrivX client sends its
/// request (or its TLS hello) as soon as it is connected.
pub const DEFAULT_FIRST_BYTE_TIMEOUT_MS: u64 = 10_000;
/// How long a kept-alive connection may wait for its next request unless configured: hyper's
/// own header timeout, which bounds that wait anyway, so by default nothing changes for a
/// client; a client that finds its idle connection closed opens another.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;
/// How long a connection may receive nothing in the middle of a request, or while it waits
/// for its answer, unless configured: hyper's own header timeout, which bounds a head anyway;
/// a PrivX client sends a request without pausing, and this server answers in milliseconds
/// (under a second when password hashes queue up: a full queue is refused with a 503), far
/// below it.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 30_000;
/// How many open connections are fine unless configured: far more than any set of PrivX
/// clients opens, and far fewer than the open-file limit once it is raised.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long starting waits for the database to answer unless configured: long enough for a
/// database started beside the server (a compose file, a CI service) to come up.
pub const DEFAULT_DATABASE_WAIT_MS: u64 = 30_000;

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub fixtures: Option<PathBuf>,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
    /// Log to this file instead of standard error.
    pub log_file: Option<PathBuf>,
    /// Serve the test-control API.
    pub test_control: bool,
    /// Serve HTTPS with this certificate chain and private key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    pub auth: AuthConfig,
    /// Where extender listeners bind and where their destinations lead.
    pub relay: RelayConfig,
    pub clock: Clock,
    /// How long a terminated connection stays TERMINATING before it is TERMINATED.
    pub termination_delay_ms: u64,
    /// How long a request's whole body may take to arrive (408 after that).
    pub body_timeout_ms: u64,
    /// How long a shutdown waits for requests in flight before it cuts them off.
    pub shutdown_timeout_ms: u64,
    /// How long a connection may go without sending its first byte before it is closed.
    pub first_byte_timeout_ms: u64,
    /// How long a connection may wait for its next request once its last one was answered.
    pub idle_timeout_ms: u64,
    /// How long a connection may receive nothing while a request is arriving or waits for its
    /// answer.
    pub header_timeout_ms: u64,
    /// Past this many open connections, those that have sent nothing are closed at once.
    pub max_connections: usize,
    /// Serve a store that lost acknowledged writes (what is left becomes the state).
    pub accept_data_loss: bool,
    /// Keep the state in this PostgreSQL database instead of sled in `data_dir`.
    pub database_url: Option<String>,
    /// How long starting waits for the database to answer.
    pub database_wait_ms: u64,
}

impl Config {
    /// Where this configuration keeps the state.
    pub fn store_at(&self) -> StoreAt {
        StoreAt {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            database_wait: Duration::from_millis(self.database_wait_ms),
        }
    }
}

/// Where the state lives: the PostgreSQL database at `database_url` if there is one, else the
/// sled store in `data_dir`.
#[derive(Debug, Clone)]
pub struct StoreAt {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// How long opening waits for the database to answer.
    pub database_wait: Duration,
}

/// The full API description the server serves: the generated API, whose router also serves
/// the unpublished pages (the spec, the API reference, `/healthz`; see `crate::api::unrouted`),
/// since dropshot's router can hold nothing beside its catch-all endpoints.
pub fn api_description() -> anyhow::Result<ApiDescription<Context>> {
    crate::api::api_description::<PrivxApiImpl>()
        .map_err(|e| anyhow::anyhow!("the generated API description is invalid: {e}"))
}

/// Loads a fixtures (or export) file into `store`; records already there are kept.
async fn load(store: &Store, path: &Path, clock: &Clock) -> anyhow::Result<()> {
    let fixtures = Fixtures::read(path).map_err(anyhow::Error::msg)?;
    let stamp = Stamp { actor: FIXTURES_AUTHOR, now: clock.now() };
    let fixtures = tokio::task::spawn_blocking(move || fixtures.hash_passwords(password::hash));
    store
        .load_fixtures(fixtures.await?, stamp)
        .await
        .with_context(|| format!("loading fixtures {}", path.display()))
}

/// What to do about a store that lost acknowledged writes, told to whoever opened it.
const WAY_OUT: &str = "The way out: write what is left to a file with --export FILE (it \
    reads such a store) and restore a backup (--import into a new --data-dir), or start with \
    --accept-data-loss (PRIVX_ACCEPT_DATA_LOSS=true) to serve what is left as the new state";

/// Opens the store `at` says (see [`StoreAt`]).
pub async fn open_store(at: &StoreAt, on_lost: OnLostWrites) -> anyhow::Result<Store> {
    match &at.database_url {
        Some(url) => open_database(url, at.database_wait).await,
        None => {
            // Opening may wait for a previous server's handle to let go (see `Store::open`);
            // the runtime's own threads stay free meanwhile.
            let data_dir = at.data_dir.clone();
            tokio::task::spawn_blocking(move || open_sled(&data_dir, on_lost)).await?
        }
    }
}

/// Opens the PostgreSQL store at `url`, waiting at most `wait` for the database to answer.
async fn open_database(url: &str, wait: Duration) -> anyhow::Result<Store> {
    // The engine's errors name the database, host, port and user, never the URL itself,
    // which may hold a password.
    let engine = crate::store::postgres::Postgres::connect(url, wait)
        .await
        .context("opening the PostgreSQL store")?;
    Ok(Store::new(engine))
}

fn open_sled(data_dir: &Path, on_lost: OnLostWrites) -> anyhow::Result<Store> {
    let opening = || format!("opening the store in {}", data_dir.display());
    match Store::open_with(data_dir, on_lost) {
        Ok((store, lost)) => {
            if let Some(lost) = lost {
                eprintln!(
                    "privx-mock: warning: the store in {} lost acknowledged writes (flush round \
                     {} was acknowledged, it holds up to {}); {}",
                    data_dir.display(),
                    lost.acknowledged,
                    lost.found,
                    match on_lost {
                        OnLostWrites::Accept => "serving what is left (--accept-data-loss)",
                        _ => "reading what is left",
                    }
                );
            }
            Ok(store)
        }
        Err(e @ StoreError::LostWrites { .. }) => {
            Err(anyhow::anyhow!("{e}.\n{WAY_OUT}")).with_context(opening)
        }
        Err(e) => Err(e).with_context(opening),
    }
}

fn on_lost(accept_data_loss: bool) -> OnLostWrites {
    match accept_data_loss {
        true => OnLostWrites::Accept,
        false => OnLostWrites::Refuse,
    }
}

/// `--export FILE`: writes the whole state of the store to `file` as JSON; a sled store that
/// lost acknowledged writes is read as it is (with a warning).
pub async fn export(at: &StoreAt, file: &Path) -> anyhow::Result<()> {
    let store = open_store(at, OnLostWrites::Report).await?;
    let json = serde_json::to_vec_pretty(&store.export().await?)?;
    std::fs::write(file, json).with_context(|| format!("writing {}", file.display()))
}

/// `--import FILE`: loads an export (or fixtures) into the store.
pub async fn import(at: &StoreAt, file: &Path, accept_data_loss: bool) -> anyhow::Result<()> {
    let store = open_store(at, on_lost(accept_data_loss)).await?;
    load(&store, file, &Clock::default()).await
}

/// Serves until SIGINT or SIGTERM, then stops accepting, lets in-flight requests finish (for
/// at most the shutdown timeout) and flushes the store.
pub async fn serve_until_signalled(server: HttpServer<Context>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let store = server.app_private().store.clone();
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let stopped = server.wait_for_shutdown();
    tokio::select! {
        result = stopped => result.map_err(|e| anyhow::anyhow!(e))?,
        _ = tokio::signal::ctrl_c() => shut_down(server, "SIGINT").await?,
        _ = terminate.recv() => shut_down(server, "SIGTERM").await?,
    }
    store.flush().await.context("flushing the store")?;
    Ok(())
}

async fn shut_down(server: HttpServer<Context>, signal: &str) -> anyhow::Result<()> {
    let timeout = server.app_private().shutdown_timeout.as_millis();
    eprintln!("privx-mock: {signal}: finishing in-flight requests (for at most {timeout} ms)");
    stop(server).await
}

/// Closes every extender listener (and the connections it relays), so their ports are free
/// for whoever starts next on the same store, then stops serving: no new connections, and the
/// requests in flight get the shutdown timeout to finish. What is still open then (a body that
/// never completes, an answer the client never reads, a connection that never sent a byte,
/// which hyper would wait for without end) is left behind, and said so; the process exits
/// next, which closes it.
pub async fn stop(server: HttpServer<Context>) -> anyhow::Result<()> {
    let (timeout, address) = (server.app_private().shutdown_timeout, server.local_addr());
    server.app_private().relays.shut_down().await;
    match tokio::time::timeout(timeout, server.close()).await {
        Ok(closed) => closed.map_err(|e| anyhow::anyhow!(e)),
        Err(_) => {
            eprintln!(
                "privx-mock: shutdown timeout ({} ms) reached: cutting off the {} connection(s) \
                 still open and their requests",
                timeout.as_millis(),
                crate::silent::count_open(address)
            );
            Ok(())
        }
    }
}

/// Raises the process's soft limit on open files to its hard limit, and says so: every
/// connection, idle or not, holds a file, and at the usual soft limit of 1,024 a thousand idle
/// connections would leave none for the next client (dropshot retries the accept until one is
/// free). Returns the limits before and after.
pub fn raise_open_file_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if before != limit.rlim_max && libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((before, limit.rlim_cur))
    }
}

/// Authentication from the configuration and the secrets the store keeps; a secret generated
/// now is shown this once.
async fn authentication(store: &Store, config: &AuthConfig, clock: &Clock) -> anyhow::Result<Auth> {
    let secrets = store.bootstrap_secrets(config, clock).await;
    let secrets = secrets.context("setting up the server's secrets")?;
    let shown_once = "(shown only now)";
    if let Some(secret) = &secrets.generated_oauth_client_secret {
        let id = config.oauth_client_id();
        eprintln!("privx-mock: generated OAuth client: id {id:?}, secret {secret:?} {shown_once}");
    }
    if let Some(password) = &secrets.generated_admin_password {
        let name = config.admin_username();
        eprintln!(
            "privx-mock: generated admin: username {name:?}, password {password:?} {shown_once}"
        );
    }
    Ok(Auth::new(config, secrets, clock, store.shared()))
}

/// Where log lines go: standard error or the log file.
fn log_lines(config: &Config) -> anyhow::Result<tracing::Dispatch> {
    let writer = match &config.log_file {
        None => BoxMakeWriter::new(std::io::stderr),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the log file {}", path.display()))?;
            BoxMakeWriter::new(std::sync::Mutex::new(file))
        }
    };
    Ok(log_dispatch(config.log_level, config.log_format, writer))
}

/// Opens the store, loads the fixtures (if any) and starts serving.
pub async fn start(config: Config) -> anyhow::Result<HttpServer<Context>> {
    let store = open_store(&config.store_at(), on_lost(config.accept_data_loss)).await?;
    let auth = authentication(&store, &config.auth, &config.clock).await?;
    if let Some(path) = &config.fixtures {
        load(&store, path, &config.clock).await?;
    }
    let lines = log_lines(&config)?;
    let journal = Arc::new(Journal::new(config.clock.clone(), config.log_level, lines.clone()));
    let log = RequestLog::logger(journal.clone(), config.log_level, lines.clone());
    let relays = Relays::new(config.relay.clone(), config.clock.clone(), lines.clone());
    let dropshot = ConfigDropshot {
        bind_address: config.bind,
        default_request_body_max_bytes: REQUEST_BODY_MAX_BYTES,
        // A client that hangs up must not cancel a write half-way.
        default_handler_task_mode: HandlerTaskMode::Detached,
        ..Default::default()
    };
    let tls = config.tls.as_ref().map(|(cert_file, key_file)| ConfigTls::AsFile {
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
    });
    let context = Context {
        store,
        clock: config.clock.clone(),
        auth,
        journal,
        faults: Default::default(),
        test_control: config
            .test_control
            .then(|| TestControl { fixtures: config.fixtures.clone() }),
        started: config.clock.now(),
        termination_delay: chrono::Duration::milliseconds(
            i64::try_from(config.termination_delay_ms.min(MAX_TERMINATION_DELAY_MS))
                .unwrap_or_default(),
        ),
        relays: Arc::new(relays),
        body_timeout: Duration::from_millis(config.body_timeout_ms),
        shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
    };
    for failure in
        crate::http::reopen_listeners(&context).await.map_err(|e| anyhow::anyhow!("{e}"))?
    {
        eprintln!("privx-mock: {failure}");
    }
    if context.store.shared() {
        let relays = Arc::downgrade(&context.relays);
        crate::http::follow_shared_store(context.store.clone(), relays, context.clock.clone());
    }
    let server = ServerBuilder::new(api_description()?, context, log)
        .config(dropshot)
        .tls(tls)
        .start()
        .map_err(|e| anyhow::anyhow!("starting the server on {}: {e}", config.bind))?;
    // For as long as the server's context lives.
    let alive = Arc::downgrade(&server.app_private().relays);
    let limits = crate::silent::Limits {
        first_byte_timeout: Duration::from_millis(config.first_byte_timeout_ms),
        idle_timeout: Duration::from_millis(config.idle_timeout_ms),
        header_timeout: Duration::from_millis(config.header_timeout_ms),
        max_connections: config.max_connections,
    };
    crate::silent::watch(server.local_addr(), limits, alive, lines);
    Ok(server)
}
