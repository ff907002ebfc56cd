//! Settings documents: stored ones are served as they are, with the spec's defaults otherwise.

use super::Context;
use crate::api::{types, ApiError, HttpResponseOk};

/// The settings name of the default service options.
const SERVICE_OPTIONS: &str = "default_service_options";

pub async fn service_options_view(
    ctx: &Context,
) -> Result<HttpResponseOk<types::ServiceOptions>, ApiError> {
    let stored = ctx.store.setting(SERVICE_OPTIONS).await?;
    Ok(HttpResponseOk::Value(stored.unwrap_or_else(default_service_options)))
}

/// The default service options when none were stored: every channel allowed, no byte limits.
fn default_service_options() -> types::ServiceOptions {
    types::ServiceOptions {
        ssh: Some(types::SshOptions {
            shell: Some(true),
            file_transfer: Some(true),
            exec: Some(true),
            tunnels: Some(true),
            x11: Some(true),
            other: Some(true),
        }),
        rdp: Some(types::RdpOptions {
            file_transfer: Some(true),
            audio: Some(true),
            clipboard: Some(true),
        }),
        web: Some(types::WebOptions {
            file_transfer: Some(true),
            audio: Some(true),
            clipboard: Some(true),
        }),
        vnc: Some(types::VncOptions { file_transfer: Some(true), clipboard: Some(true) }),
        db: Some(types::DbOptions { max_bytes_download: Some(0), max_bytes_upload: Some(0) }),
    }
}
