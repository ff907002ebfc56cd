//! The status endpoints: each PrivX microservice this server stands in for answers
//! `GET /<service>/api/v1/status`, which the SDKs' `Status()` calls read (the Python SDK before
//! it logs in, so no token is needed). One answer serves them all; only `app_id` differs.
//! Also the readiness `/healthz` reports: the store's health.

use dropshot::RequestContext;

use super::Context;
use crate::api::{types, ApiError, HttpResponseOk, Readiness};

/// `/healthz`: unready while the store refuses writes (a full disk, a lost data directory).
impl Readiness for Context {
    async fn unready(&self) -> Option<String> {
        self.store.health().await.err().map(|e| e.to_string())
    }
}

/// The answer of every status operation: the service is the request path's first segment.
pub async fn view(
    rqctx: &RequestContext<Context>,
) -> Result<HttpResponseOk<types::ServiceStatus>, ApiError> {
    let ctx = rqctx.context();
    ctx.begin_without_token(rqctx).await?;
    let service = rqctx.request.uri().path().split('/').find(|s| !s.is_empty()).unwrap_or_default();
    Ok(HttpResponseOk::Value(types::ServiceStatus {
        variant: "privx-mock".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        api_version: "v1".to_string(),
        status: "OK".to_string(),
        status_message: "OK".to_string(),
        app_id: service.to_string(),
        server_mode: "NORMAL".to_string(),
        status_details: Vec::new(),
        start_time: ctx.started,
    }))
}
