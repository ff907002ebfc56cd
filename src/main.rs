//! `privx-mock`: the command line. Every flag can also be given by its environment variable;
//! a flag wins over the environment, and both win over the config file.

mod allocator;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use privx_mock::clock::Clock;
use privx_mock::config::{self, ConfigFile, LogFormat, PortRange};
use privx_mock::relay::RelayConfig;
use privx_mock::server::{
    self, Config, DEFAULT_BODY_TIMEOUT_MS, DEFAULT_DATABASE_WAIT_MS, DEFAULT_FIRST_BYTE_TIMEOUT_MS,
    DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SHUTDOWN_TIMEOUT_MS, DEFAULT_TERMINATION_DELAY_MS, MAX_TERMINATION_DELAY_MS,
};

#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

/// A stateful, spec-first server for part of the PrivX REST API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (HTTPS when --tls-cert and --tls-key are given).
    #[arg(long, env = "PRIVX_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Directory of the embedded store; created if missing, kept across restarts (unused with
    /// --database-url).
    #[arg(long, env = "PRIVX_DATA_DIR", default_value = "privx-data")]
    data_dir: PathBuf,
    /// Keep the state in this PostgreSQL database (postgres://USER:PASSWORD@HOST:PORT/DB)
    /// instead of the embedded store, shared with every server started on it [default: the
    /// config file's `database_url`, else the embedded store].
    #[arg(long, env = "PRIVX_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// How long, in milliseconds, starting waits for the database to answer.
    #[arg(long, env = "PRIVX_DATABASE_WAIT_MS", default_value_t = DEFAULT_DATABASE_WAIT_MS)]
    database_wait_ms: u64,
    /// JSON fixtures to load at start (users, webauthn_credentials, connections, listeners,
    /// settings); records whose id is already stored are left alone.
    #[arg(long, env = "PRIVX_FIXTURES")]
    fixtures: Option<PathBuf>,
    /// TOML config file: OAuth client, admin, API clients with secrets and scopes, token
    /// lifetime, signing key; `[listeners]`: host, ports and routes of extender listeners.
    #[arg(long, env = "PRIVX_CONFIG")]
    config: Option<PathBuf>,
    /// PEM certificate chain for HTTPS.
    #[arg(long, env = "PRIVX_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM (PKCS #8) private key for HTTPS.
    #[arg(long, env = "PRIVX_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Username of the bootstrap admin [default: admin].
    #[arg(long, env = "PRIVX_ADMIN_USERNAME")]
    admin_username: Option<String>,
    /// Password of the bootstrap admin [default: generated at first start, printed once].
    #[arg(long, env = "PRIVX_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Id of the OAuth client the SDKs authenticate as (HTTP Basic, password grant) [default:
    /// privx-external]. The authorization-code flow uses the public client privx-ui.
    #[arg(long, env = "PRIVX_OAUTH_CLIENT_ID")]
    oauth_client_id: Option<String>,
    /// Secret of the OAuth client [default: generated at first start, printed once].
    #[arg(long, env = "PRIVX_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    oauth_client_secret: Option<String>,
    /// Host extender listeners bind on [default: 127.0.0.1, or the config file's].
    #[arg(long, env = "PRIVX_LISTENER_HOST")]
    listener_host: Option<std::net::IpAddr>,
    /// Ports extender listeners are given, FIRST-LAST [default: 40000-40999, or the config
    /// file's].
    #[arg(long, env = "PRIVX_LISTENER_PORTS", value_name = "FIRST-LAST")]
    listener_ports: Option<PortRange>,
    /// Log level: trace, debug, info, warn or error.
    #[arg(long, env = "PRIVX_LOG_LEVEL", default_value = "info")]
    log_level: tracing::Level,
    /// Log format: one line per request, `pretty` for people or `json` for machines.
    #[arg(long, env = "PRIVX_LOG_FORMAT", value_enum, default_value = "pretty")]
    log_format: LogFormat,
    /// Write the log to this file instead of standard error.
    #[arg(long, env = "PRIVX_LOG_FILE")]
    log_file: Option<PathBuf>,
    /// Serve the test-control API under /test-control/api/v1 (reset, fixtures, export,
    /// request journal, fault injection; `admin` scope).
    #[arg(long, env = "PRIVX_TEST_CONTROL")]
    test_control: bool,
    /// Make ids, generated secrets and the clock follow from SEED, so the same requests get
    /// byte-identical answers (for snapshot tests).
    #[arg(long, env = "PRIVX_DETERMINISTIC", value_name = "SEED")]
    deterministic: Option<u64>,
    /// How long, in milliseconds, a terminated connection stays TERMINATING before it is
    /// TERMINATED (its `disconnected` is the termination request's time plus this, exactly;
    /// at most a day).
    #[arg(
        long,
        env = "PRIVX_TERMINATION_DELAY_MS",
        default_value_t = DEFAULT_TERMINATION_DELAY_MS,
        value_parser = clap::value_parser!(u64).range(0..=MAX_TERMINATION_DELAY_MS)
    )]
    termination_delay_ms: u64,
    /// How long, in milliseconds, a request's whole body may take to arrive once its
    /// operation starts reading it; a slower one is answered 408.
    #[arg(long, env = "PRIVX_BODY_TIMEOUT_MS", default_value_t = DEFAULT_BODY_TIMEOUT_MS)]
    body_timeout_ms: u64,
    /// How long, in milliseconds, SIGTERM or SIGINT waits for requests in flight before it
    /// cuts off what is still open, flushes the store and exits.
    #[arg(long, env = "PRIVX_SHUTDOWN_TIMEOUT_MS", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_MS)]
    shutdown_timeout_ms: u64,
    /// How long, in milliseconds, a new connection may stay silent (not one byte of a request
    /// or TLS hello) before the server closes it.
    #[arg(long, env = "PRIVX_FIRST_BYTE_TIMEOUT_MS", default_value_t = DEFAULT_FIRST_BYTE_TIMEOUT_MS)]
    first_byte_timeout_ms: u64,
    /// How long, in milliseconds, a kept-alive connection may wait for its next request after
    /// its last answer before the server closes it (hyper closes it after 30 s in any case).
    #[arg(long, env = "PRIVX_IDLE_TIMEOUT_MS", default_value_t = DEFAULT_IDLE_TIMEOUT_MS)]
    idle_timeout_ms: u64,
    /// How long, in milliseconds, a connection may receive nothing in the middle of a request
    /// (head or body), or while its request waits for the answer, before the server closes it
    /// (hyper closes one whose head stalls after 30 s in any case).
    #[arg(long, env = "PRIVX_HEADER_TIMEOUT_MS", default_value_t = DEFAULT_HEADER_TIMEOUT_MS)]
    header_timeout_ms: u64,
    /// Past this many open connections, the server says so in its log and closes those that
    /// have sent nothing yet at once, instead of after --first-byte-timeout-ms.
    #[arg(long, env = "PRIVX_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Serve (or import into) a store that lost acknowledged writes (a damaged `db` file):
    /// what is left becomes the state. Without it such a store is refused.
    #[arg(long, env = "PRIVX_ACCEPT_DATA_LOSS")]
    accept_data_loss: bool,
    /// Write the whole state of the store (in --data-dir, or the --database-url database) to
    /// FILE as JSON, then exit (no server may be running on that directory; a store that lost
    /// acknowledged writes is read as it is).
    #[arg(long, value_name = "FILE", conflicts_with = "import")]
    export: Option<PathBuf>,
    /// Load a JSON export (or fixtures) into the store (in --data-dir, or the --database-url
    /// database), then exit; records whose id is already stored are kept.
    #[arg(long, value_name = "FILE")]
    import: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ConfigFile { mut auth, listeners, database_url } = match &args.config {
        Some(path) => config::read_config(path)?,
        None => ConfigFile::default(),
    };
    let database_url = args.database_url.or(database_url);
    let at = server::StoreAt {
        data_dir: args.data_dir.clone(),
        database_url: database_url.clone(),
        database_wait: std::time::Duration::from_millis(args.database_wait_ms),
    };
    if let Some(file) = &args.export {
        return server::export(&at, file).await;
    }
    if let Some(file) = &args.import {
        return server::import(&at, file, args.accept_data_loss).await;
    }
    let defaults = RelayConfig::default();
    let relay = RelayConfig {
        host: args.listener_host.or(listeners.host).unwrap_or(defaults.host),
        ports: args.listener_ports.or(listeners.ports).map_or(defaults.ports, |p| p.0),
        routes: listeners.routes,
    };
    auth.admin.username = args.admin_username.or(auth.admin.username);
    auth.admin.password = args.admin_password.or(auth.admin.password);
    auth.oauth_client.id = args.oauth_client_id.or(auth.oauth_client.id);
    auth.oauth_client.secret = args.oauth_client_secret.or(auth.oauth_client.secret);
    let admin_source = if auth.admin.password.is_some() {
        "as configured (--admin-password, PRIVX_ADMIN_PASSWORD or the config file)"
    } else {
        "generated at first start and printed then (keep them; only their hashes are stored)"
    };
    let client_id = auth.oauth_client_id();
    match server::raise_open_file_limit() {
        Ok((before, after)) if before != after => {
            eprintln!("privx-mock: open file limit raised from {before} to {after}")
        }
        Ok(_) => {}
        Err(e) => eprintln!("privx-mock: the open file limit stays as it is: {e}"),
    }
    let server = server::start(Config {
        bind: args.bind,
        data_dir: args.data_dir,
        fixtures: args.fixtures,
        log_level: args.log_level,
        log_format: args.log_format,
        log_file: args.log_file,
        test_control: args.test_control,
        tls: args.tls_cert.zip(args.tls_key),
        auth,
        relay,
        clock: args.deterministic.map(Clock::deterministic).unwrap_or_default(),
        termination_delay_ms: args.termination_delay_ms,
        body_timeout_ms: args.body_timeout_ms,
        shutdown_timeout_ms: args.shutdown_timeout_ms,
        first_byte_timeout_ms: args.first_byte_timeout_ms,
        idle_timeout_ms: args.idle_timeout_ms,
        header_timeout_ms: args.header_timeout_ms,
        max_connections: args.max_connections,
        accept_data_loss: args.accept_data_loss,
        database_url,
        database_wait_ms: args.database_wait_ms,
    })
    .await?;
    let scheme = if server.using_tls() { "https" } else { "http" };
    let url = format!("{scheme}://{}", server.local_addr());
    eprintln!("privx-mock listening on {url}");
    eprintln!("privx-mock: API reference at {url}/docs, spec at {url}/openapi.json");
    eprintln!(
        "privx-mock: admin credentials: {admin}; OAuth client id {client:?}",
        admin = admin_source,
        client = client_id
    );
    server::serve_until_signalled(server).await
}
