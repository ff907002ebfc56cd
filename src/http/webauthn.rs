//! A user's WebAuthn credentials (PrivX keeps them in its role-store); a caller reaches only
//! their own credentials unless they are an admin.

use uuid::Uuid;

use super::auth::Caller;
use super::convert::{convert, count, descending, page};
use super::Context;
use crate::api::{types, ApiError, HttpResponseOk, HttpResponseOkEmpty};
use crate::store::CredentialSort;

pub async fn list(
    ctx: &Context,
    caller: &Caller,
    user_id: Uuid,
    q: types::WebauthnCredentialListQuery,
) -> Result<HttpResponseOk<types::WebauthnCredentialList>, ApiError> {
    caller.may_act_for(user_id)?;
    let sort: CredentialSort = convert(&q.sortkey)?;
    let (sort_dir, page) = (descending(q.sortdir), page(q.offset, q.limit));
    let listing = ctx.store.credential_list(user_id, sort, sort_dir, page).await?;
    let items = listing.items.iter().map(convert).collect::<Result<_, _>>()?;
    Ok(HttpResponseOk::Value(types::WebauthnCredentialList { count: count(listing.count), items }))
}

pub async fn view(
    ctx: &Context,
    caller: &Caller,
    user_id: Uuid,
    id: Uuid,
) -> Result<HttpResponseOk<types::WebauthnCredential>, ApiError> {
    caller.may_act_for(user_id)?;
    Ok(HttpResponseOk::Value(convert(&ctx.store.credential_get(user_id, id).await?)?))
}

pub async fn update(
    ctx: &Context,
    caller: &Caller,
    user_id: Uuid,
    id: Uuid,
    body: types::WebauthnCredentialUpdate,
) -> Result<HttpResponseOkEmpty, ApiError> {
    caller.may_act_for(user_id)?;
    let (name, comment) = (body.name.map(String::from), body.comment.map(String::from));
    ctx.store.credential_update(user_id, id, name, comment, ctx.stamp(caller)).await?;
    Ok(HttpResponseOkEmpty)
}

pub async fn delete(
    ctx: &Context,
    caller: &Caller,
    user_id: Uuid,
    id: Uuid,
) -> Result<HttpResponseOkEmpty, ApiError> {
    caller.may_act_for(user_id)?;
    ctx.store.credential_delete(user_id, id).await?;
    Ok(HttpResponseOkEmpty)
}
