//! A user's WebAuthn credentials. Path ids are plain strings in the spec; a caller reaches
//! only their own credentials unless they are an admin.

use uuid::Uuid;

use super::auth::Caller;
use super::convert::{convert, count, descending, page, parse_id};
use super::Context;
use crate::api::{types, ApiError, HttpResponseOk, HttpResponseOkEmpty};
use crate::store::CredentialSort;

/// The user of a WebAuthn path, once the caller may reach that user.
fn own_user(caller: &Caller, user_id: &str) -> Result<Uuid, ApiError> {
    let user_id = parse_id("user", user_id)?;
    caller.may_act_for(user_id)?;
    Ok(user_id)
}

/// The (user, credential) of a credential path the caller may reach.
fn own_credential(caller: &Caller, user_id: &str, id: &str) -> Result<(Uuid, Uuid), ApiError> {
    Ok((own_user(caller, user_id)?, parse_id("webauthn credential", id)?))
}

pub fn list(
    ctx: &Context,
    caller: &Caller,
    user_id: &str,
    q: types::WebauthnCredentialListQuery,
) -> Result<HttpResponseOk<types::WebauthnCredentialList>, ApiError> {
    let user_id = own_user(caller, user_id)?;
    let sort: CredentialSort = convert(&q.sortkey)?;
    let listing =
        ctx.store.credential_list(user_id, sort, descending(q.sortdir), page(q.offset, q.limit))?;
    let items = listing.items.iter().map(convert).collect::<Result<_, _>>()?;
    Ok(HttpResponseOk::Value(types::WebauthnCredentialList { count: count(listing.count), items }))
}

pub fn view(
    ctx: &Context,
    caller: &Caller,
    user_id: &str,
    id: &str,
) -> Result<HttpResponseOk<types::WebauthnCredential>, ApiError> {
    let (user_id, id) = own_credential(caller, user_id, id)?;
    Ok(HttpResponseOk::Value(convert(&ctx.store.credential_get(user_id, id)?)?))
}

pub async fn update(
    ctx: &Context,
    caller: &Caller,
    user_id: &str,
    id: &str,
    body: types::WebauthnCredentialUpdate,
) -> Result<HttpResponseOkEmpty, ApiError> {
    let (user_id, id) = own_credential(caller, user_id, id)?;
    ctx.write(caller, |stamp| {
        ctx.store.credential_update(user_id, id, body.name, body.comment, stamp)
    })
    .await?;
    Ok(HttpResponseOkEmpty)
}

pub async fn delete(
    ctx: &Context,
    caller: &Caller,
    user_id: &str,
    id: &str,
) -> Result<HttpResponseOkEmpty, ApiError> {
    let (user_id, id) = own_credential(caller, user_id, id)?;
    ctx.write(caller, |_| ctx.store.credential_delete(user_id, id)).await?;
    Ok(HttpResponseOkEmpty)
}
