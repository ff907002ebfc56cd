//! The ceiling of this stack on this machine, for `scripts/bench`: a bare dropshot server that
//! answers `GET /local-user-store/api/v1/users/{user_id}` with fixed response bytes (taken from
//! the real server by the script) — no authorization, no store, no conversion.
//!
//! Run by `scripts/bench` as `ceiling BIND BODY_FILE`; `cargo bench` alone just builds it.

use dropshot::{
    endpoint, ApiDescription, Body, ConfigDropshot, HttpError, Path, RequestContext, ServerBuilder,
};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
struct UserPath {
    #[allow(dead_code)]
    user_id: uuid::Uuid,
}

#[endpoint { method = GET, path = "/local-user-store/api/v1/users/{user_id}" }]
async fn user_view(
    rqctx: RequestContext<&'static [u8]>,
    _path: Path<UserPath>,
) -> Result<http::Response<Body>, HttpError> {
    Ok(http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(rqctx.context().to_vec()))?)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(bind), Some(body)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: ceiling BIND BODY_FILE (run by scripts/bench)");
        return Ok(());
    };
    let body: &'static [u8] = std::fs::read(body).map_err(|e| e.to_string())?.leak();
    let mut api = ApiDescription::new();
    api.register(user_view).map_err(|e| e.to_string())?;
    let config = ConfigDropshot {
        bind_address: bind.parse().map_err(|e| format!("{e}"))?,
        ..Default::default()
    };
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let server =
        ServerBuilder::new(api, body, log).config(config).start().map_err(|e| e.to_string())?;
    eprintln!("ceiling listening on http://{}", server.local_addr());
    server.await
}
