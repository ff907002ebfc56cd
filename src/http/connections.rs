//! Connection termination: one connection by id, or every connection of a host or a user.

use uuid::Uuid;

use super::auth::Caller;
use super::Context;
use crate::api::{ApiError, HttpResponseOkEmpty};
use crate::store::ConnectionRecord;

pub async fn terminate(
    ctx: &Context,
    caller: &Caller,
    id: Uuid,
) -> Result<HttpResponseOkEmpty, ApiError> {
    ctx.write(caller, |stamp| ctx.store.connection_terminate(id, stamp)).await?;
    Ok(HttpResponseOkEmpty)
}

/// Terminates every connection that `matches` (of one host, or of one user); none is fine.
pub async fn terminate_matching(
    ctx: &Context,
    caller: &Caller,
    matches: impl Fn(&ConnectionRecord) -> bool,
) -> Result<HttpResponseOkEmpty, ApiError> {
    ctx.write(caller, |stamp| ctx.store.connections_terminate(matches, stamp)).await?;
    Ok(HttpResponseOkEmpty)
}
