//! `privx-mock`: the command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use dropshot::ConfigLoggingLevel;
use privx_mock::server::{self, Config};

/// A stateful, spec-first server for part of the PrivX REST API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "PRIVX_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Directory of the embedded store; created if missing, kept across restarts.
    #[arg(long, env = "PRIVX_DATA_DIR", default_value = "privx-data")]
    data_dir: PathBuf,
    /// JSON fixtures to load at start (users, webauthn_credentials, connections, listeners,
    /// settings); records whose id is already stored are left alone.
    #[arg(long, env = "PRIVX_FIXTURES")]
    fixtures: Option<PathBuf>,
    /// Log level: trace, debug, info, warn, error or critical.
    #[arg(long, env = "PRIVX_LOG_LEVEL", default_value = "info", value_parser = parse_level)]
    log_level: ConfigLoggingLevel,
}

fn parse_level(s: &str) -> Result<ConfigLoggingLevel, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = server::start(Config {
        bind: args.bind,
        data_dir: args.data_dir,
        fixtures: args.fixtures,
        log_level: args.log_level,
        clock: Default::default(),
    })
    .await?;
    eprintln!("privx-mock listening on http://{}", server.local_addr());
    server.await.map_err(|e| anyhow::anyhow!(e))
}
