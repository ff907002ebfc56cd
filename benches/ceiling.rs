//! The ceiling of this stack on this machine, for `scripts/bench`: a bare dropshot server that
//! answers `GET /local-user-store/api/v1/users/{user_id}` and `GET /local-user-store/api/v1/users`
//! (a page) with fixed response bytes (taken from the real server by the script) — no
//! authorization, no store, no conversion; only dropshot's own work (routing, extracting the
//! path or query, writing the response) is left.
//!
//! Run by `scripts/bench` as `ceiling BIND USER_FILE PAGE_FILE`; `cargo bench` alone just builds
//! it.

use dropshot::{
    endpoint, ApiDescription, Body, ConfigDropshot, HttpError, Path, Query, RequestContext,
    ServerBuilder,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// The bytes each endpoint answers.
struct Bodies {
    user: &'static [u8],
    page: &'static [u8],
}

#[derive(Deserialize, JsonSchema)]
struct UserPath {
    #[allow(dead_code)]
    user_id: uuid::Uuid,
}

/// The page's query, parsed as the real server's is (and then unused).
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct PageQuery {
    offset: Option<u32>,
    limit: Option<u32>,
}

fn json(bytes: &'static [u8]) -> Result<http::Response<Body>, HttpError> {
    Ok(http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes.to_vec()))?)
}

#[endpoint { method = GET, path = "/local-user-store/api/v1/users/{user_id}" }]
async fn user_view(
    rqctx: RequestContext<Bodies>,
    _path: Path<UserPath>,
) -> Result<http::Response<Body>, HttpError> {
    json(rqctx.context().user)
}

#[endpoint { method = GET, path = "/local-user-store/api/v1/users" }]
async fn user_list(
    rqctx: RequestContext<Bodies>,
    _query: Query<PageQuery>,
) -> Result<http::Response<Body>, HttpError> {
    json(rqctx.context().page)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(bind), Some(user), Some(page)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: ceiling BIND USER_FILE PAGE_FILE (run by scripts/bench)");
        return Ok(());
    };
    let read = |file: &str| -> Result<&'static [u8], String> {
        Ok(std::fs::read(file).map_err(|e| format!("{file}: {e}"))?.leak())
    };
    let bodies = Bodies { user: read(user)?, page: read(page)? };
    let mut api = ApiDescription::new();
    api.register(user_view).map_err(|e| e.to_string())?;
    api.register(user_list).map_err(|e| e.to_string())?;
    let config = ConfigDropshot {
        bind_address: bind.parse().map_err(|e| format!("{e}"))?,
        ..Default::default()
    };
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let server =
        ServerBuilder::new(api, bodies, log).config(config).start().map_err(|e| e.to_string())?;
    eprintln!("ceiling listening on http://{}", server.local_addr());
    server.await
}
