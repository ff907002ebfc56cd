//! Assembles the server: opens the store, loads fixtures, registers the generated API and the
//! spec endpoint, and starts dropshot.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use dropshot::{
    endpoint, ApiDescription, Body, ConfigDropshot, ConfigLogging, ConfigLoggingLevel,
    HandlerTaskMode, HttpError, HttpServer, RequestContext, ServerBuilder,
};

use crate::api::{privx_api_mod, SPEC_JSON};
use crate::clock::Clock;
use crate::http::{Context, PrivxApiImpl, SERVER_ID};
use crate::password;
use crate::store::{Fixtures, Stamp, Store};

/// Request bodies up to this size are accepted (dropshot's default is 1 KiB).
pub const REQUEST_BODY_MAX_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub fixtures: Option<PathBuf>,
    pub log_level: ConfigLoggingLevel,
    pub clock: Clock,
}

/// Serves the spec (`spec/privx.yaml`) as JSON.
#[endpoint { method = GET, path = "/openapi.json", unpublished = true }]
async fn openapi_json(_rqctx: RequestContext<Context>) -> Result<http::Response<Body>, HttpError> {
    Ok(http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(SPEC_JSON.into())?)
}

/// The full API description the server serves.
pub fn api_description() -> anyhow::Result<ApiDescription<Context>> {
    let mut api = privx_api_mod::api_description::<PrivxApiImpl>()
        .map_err(|e| anyhow::anyhow!("the generated API description is invalid: {e}"))?;
    api.register(openapi_json)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(api)
}

/// Opens the store, loads the fixtures (if any) and starts serving.
pub async fn start(config: Config) -> anyhow::Result<HttpServer<Context>> {
    let store = Store::open(&config.data_dir)
        .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
    if let Some(path) = &config.fixtures {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading fixtures {}", path.display()))?;
        let fixtures: Fixtures = serde_json::from_str(&text)
            .with_context(|| format!("parsing fixtures {}", path.display()))?;
        let stamp = Stamp {
            actor: SERVER_ID,
            now: config.clock.now(),
        };
        store
            .load_fixtures(fixtures, password::hash, stamp)
            .with_context(|| format!("loading fixtures {}", path.display()))?;
    }
    let log = ConfigLogging::StderrTerminal {
        level: config.log_level,
    }
    .to_logger("privx-mock")
    .context("creating the logger")?;
    let dropshot = ConfigDropshot {
        bind_address: config.bind,
        default_request_body_max_bytes: REQUEST_BODY_MAX_BYTES,
        // A client that hangs up must not cancel a write half-way.
        default_handler_task_mode: HandlerTaskMode::Detached,
        ..Default::default()
    };
    ServerBuilder::new(
        api_description()?,
        Context::new(store, config.clock.clone()),
        log,
    )
    .config(dropshot)
    .start()
    .map_err(|e| anyhow::anyhow!("starting the server on {}: {e}", config.bind))
}
