//! Local users. A user is served as the JSON the store holds for it; passwords arrive in
//! plain text and are only ever stored as argon2id hashes, made on the server's bounded
//! password pool before the store write (503 `MAX_LOAD` when its queue is full). A user's
//! tokens stop holding as soon as the user is deleted or given another password
//! ([`Auth`](super::auth::Auth) is told before the answer goes out).

use uuid::Uuid;

use super::auth::Caller;
use super::convert::{convert, count, descending, page};
use super::Context;
use crate::api::{check_max_items, types, ApiError, HttpResponseOk, HttpResponseOkEmpty};
use crate::store::{PasswordHash, UserProfile, UserRecord};

/// The stored form of a new password (the spec's `minLength` already ruled out an empty one),
/// hashed on the password pool.
async fn hash_password(ctx: &Context, password: &str) -> Result<PasswordHash, ApiError> {
    let hash = ctx.auth.passwords.hash(password).await.map_err(|_| ApiError::busy())?;
    Ok(PasswordHash { hash, created: ctx.now() })
}

/// The new password (if any) and the profile of a user create/update request, whose arrays
/// must be within the spec's bounds; the password is hashed only for a valid request.
async fn request_profile(
    ctx: &Context,
    body: &types::UserRequest,
) -> Result<(Option<PasswordHash>, UserProfile), ApiError> {
    check_max_items("UserRequest", body)?;
    let profile = convert(body)?;
    // `{}` sets no password.
    let password = match body.password.as_ref().and_then(|p| p.password.as_deref()) {
        Some(password) => Some(hash_password(ctx, password).await?),
        None => None,
    };
    Ok((password, profile))
}

pub async fn list(
    ctx: &Context,
    q: types::UserListQuery,
) -> Result<HttpResponseOk<types::UserList>, ApiError> {
    let page = page(q.offset, q.limit);
    let listing = ctx.store.user_list(q.username.as_deref(), q.id, page).await?;
    // The stored users are the API's `User`s: the page is written around them as they are,
    // neither decoded nor encoded again, into a body of the page's size from the start (grown
    // as it was written, a page of 50 was copied over nine times: 13,600 instructions a page).
    let head = format!(r#"{{"count":{},"items":["#, count(listing.count));
    let items: usize = listing.items.iter().map(|user| user.len() + 1).sum();
    let mut body = Vec::with_capacity(head.len() + items + 2);
    body.extend_from_slice(head.as_bytes());
    for (i, user) in listing.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(user);
    }
    body.extend_from_slice(b"]}");
    Ok(HttpResponseOk::Stored(body))
}

pub async fn create(
    ctx: &Context,
    caller: &Caller,
    body: types::UserRequest,
) -> Result<UserRecord, ApiError> {
    let (password, profile) = request_profile(ctx, &body).await?;
    let id = ctx.clock.new_id();
    let record = ctx.store.user_create(id, profile, password, ctx.stamp(caller)).await?;
    ctx.auth.password_changed(record.id, record.password.as_ref());
    Ok(record)
}

pub async fn view(ctx: &Context, id: Uuid) -> Result<HttpResponseOk<types::User>, ApiError> {
    Ok(HttpResponseOk::Stored(ctx.store.user_json(id).await?))
}

pub async fn tags_list(
    ctx: &Context,
    q: types::UserTagsListQuery,
) -> Result<HttpResponseOk<Vec<String>>, ApiError> {
    let (page, descending) = (page(q.offset, q.limit), descending(q.sortdir));
    let tags = ctx.store.user_tags(q.query.as_deref(), descending, page).await?;
    Ok(HttpResponseOk::Value(Vec::clone(&tags)))
}

pub async fn update(
    ctx: &Context,
    caller: &Caller,
    id: Uuid,
    body: types::UserRequest,
) -> Result<HttpResponseOkEmpty, ApiError> {
    let (password, profile) = request_profile(ctx, &body).await?;
    let changed = password.clone();
    ctx.store.user_update(id, profile, password, ctx.stamp(caller)).await?;
    if let Some(password) = &changed {
        ctx.auth.password_changed(id, Some(password));
    }
    Ok(HttpResponseOkEmpty)
}

pub async fn delete(ctx: &Context, id: Uuid) -> Result<HttpResponseOkEmpty, ApiError> {
    ctx.store.user_delete(id).await?;
    ctx.auth.user_deleted(id);
    Ok(HttpResponseOkEmpty)
}

pub async fn password_set(
    ctx: &Context,
    caller: &Caller,
    id: Uuid,
    body: types::Password,
) -> Result<HttpResponseOkEmpty, ApiError> {
    let password = hash_password(ctx, &body.password).await?;
    ctx.store.user_password_set(id, password.clone(), ctx.stamp(caller)).await?;
    ctx.auth.password_changed(id, Some(&password));
    Ok(HttpResponseOkEmpty)
}
