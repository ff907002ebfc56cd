//! Local users. A user is served as the JSON the store holds for it; passwords arrive in
//! plain text and are only ever stored as argon2id hashes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::auth::Caller;
use super::convert::{convert, count, descending, page};
use super::Context;
use crate::api::{check_max_items, types, ApiError, HttpResponseOk, HttpResponseOkEmpty};
use crate::password;
use crate::store::{PasswordHash, UserProfile, UserRecord};

/// The stored form of a new password (the spec's `minLength` already ruled out an empty one).
fn hash_password(password: &str, now: DateTime<Utc>) -> PasswordHash {
    PasswordHash { hash: password::hash(password), created: now }
}

/// The new password of a user create/update request, if it sets one (`{}` does not).
fn request_password(body: &types::UserRequest, now: DateTime<Utc>) -> Option<PasswordHash> {
    let password = body.password.as_ref().and_then(|p| p.password.as_deref());
    password.map(|p| hash_password(p, now))
}

/// The new password (if any) and the profile of a user create/update request, whose arrays
/// must be within the spec's bounds.
fn request_profile(
    body: &types::UserRequest,
    now: DateTime<Utc>,
) -> Result<(Option<PasswordHash>, UserProfile), ApiError> {
    check_max_items("UserRequest", body)?;
    Ok((request_password(body, now), convert(body)?))
}

pub async fn list(
    ctx: &Context,
    q: types::UserListQuery,
) -> Result<HttpResponseOk<types::UserList>, ApiError> {
    let page = page(q.offset, q.limit);
    let listing =
        ctx.off_worker(move |store| store.user_list(q.username.as_deref(), q.id, page)).await?;
    Ok(HttpResponseOk::Value(types::UserList { count: count(listing.count), items: listing.items }))
}

pub async fn create(
    ctx: &Context,
    caller: &Caller,
    body: types::UserRequest,
) -> Result<UserRecord, ApiError> {
    let (password, profile) = request_profile(&body, ctx.now())?;
    let id = ctx.clock.new_id();
    ctx.write(caller, move |store, stamp| store.user_create(id, profile, password, stamp)).await
}

pub fn view(ctx: &Context, id: Uuid) -> Result<HttpResponseOk<types::User>, ApiError> {
    Ok(HttpResponseOk::Stored(ctx.store.user_json(id)?))
}

pub async fn tags_list(
    ctx: &Context,
    q: types::UserTagsListQuery,
) -> Result<HttpResponseOk<Vec<String>>, ApiError> {
    let (page, descending) = (page(q.offset, q.limit), descending(q.sortdir));
    let tags =
        ctx.off_worker(move |store| store.user_tags(q.query.as_deref(), descending, page)).await?;
    Ok(HttpResponseOk::Value(tags))
}

pub async fn update(
    ctx: &Context,
    caller: &Caller,
    id: Uuid,
    body: types::UserRequest,
) -> Result<HttpResponseOkEmpty, ApiError> {
    let (password, profile) = request_profile(&body, ctx.now())?;
    ctx.write(caller, move |store, stamp| store.user_update(id, profile, password, stamp)).await?;
    Ok(HttpResponseOkEmpty)
}

pub async fn delete(
    ctx: &Context,
    caller: &Caller,
    id: Uuid,
) -> Result<HttpResponseOkEmpty, ApiError> {
    ctx.write(caller, move |store, _| store.user_delete(id)).await?;
    Ok(HttpResponseOkEmpty)
}

pub async fn password_set(
    ctx: &Context,
    caller: &Caller,
    id: Uuid,
    body: types::Password,
) -> Result<HttpResponseOkEmpty, ApiError> {
    let password = hash_password(&body.password, ctx.now());
    ctx.write(caller, move |store, stamp| store.user_password_set(id, password, stamp)).await?;
    Ok(HttpResponseOkEmpty)
}
