//! Extender listeners: the store's listener records as the API's `Listener`, whose
//! `closed_in_sec` is counted from the record's closing time whenever it is read.

use chrono::{DateTime, Utc};

use super::auth::Caller;
use super::convert::{convert, count, descending, page, seconds};
use super::Context;
use crate::api::{check_max_items, types, ApiError, HttpResponseOk, HttpResponseOkEmpty};
use crate::store::{ListenerFields, ListenerRecord, ListenerSort};

/// A listener record as the API shows it.
pub fn listener(record: &ListenerRecord, now: DateTime<Utc>) -> Result<types::Listener, ApiError> {
    let mut listener: types::Listener = convert(record)?;
    // Rounded up, so an open listener always has at least 1 (the spec's minimum).
    listener.closed_in_sec =
        u64::try_from(record.closed_in_sec(now)).ok().and_then(std::num::NonZeroU64::new);
    Ok(listener)
}

pub fn list(
    ctx: &Context,
    q: types::ListenerListQuery,
) -> Result<HttpResponseOk<types::ListenerList>, ApiError> {
    let sort: ListenerSort = convert(&q.sortkey)?;
    let now = ctx.now();
    let listing =
        ctx.store.listener_list(sort, descending(q.sortdir), page(q.offset, q.limit), now)?;
    let items = listing.items.iter().map(|l| listener(l, now)).collect::<Result<_, _>>()?;
    Ok(HttpResponseOk::Value(types::ListenerList { count: count(listing.count), items }))
}

pub async fn create(
    ctx: &Context,
    caller: &Caller,
    body: types::ListenerCreate,
) -> Result<ListenerRecord, ApiError> {
    check_max_items("ListenerCreate", &body)?;
    let fields = convert(&body)?;
    let keep_open_sec = seconds(body.keep_open_sec);
    ctx.write(caller, |stamp| {
        ctx.store.listener_create(ctx.clock.new_id(), fields, keep_open_sec, stamp)
    })
    .await
}

pub fn view(ctx: &Context, id: uuid::Uuid) -> Result<HttpResponseOk<types::Listener>, ApiError> {
    let now = ctx.now();
    let record = ctx.store.listener_get(id, now)?;
    Ok(HttpResponseOk::Value(listener(&record, now)?))
}

/// Sets the fields the body gives (`source` always: left out, it is emptied) and, with a
/// `closed_in_sec`, when the listener closes.
pub async fn update(
    ctx: &Context,
    caller: &Caller,
    id: uuid::Uuid,
    body: types::Listener,
) -> Result<HttpResponseOkEmpty, ApiError> {
    check_max_items("Listener", &body)?;
    let closes_in = seconds(body.closed_in_sec);
    let update = |fields: &mut ListenerFields| {
        if let Some(network) = body.network {
            fields.network = network.to_string();
        }
        if let Some(destination) = body.destination {
            fields.destination = destination.to_string();
        }
        fields.source = body.source.into_iter().map(String::from).collect();
    };
    ctx.write(caller, |stamp| ctx.store.listener_update(id, update, closes_in, stamp)).await?;
    Ok(HttpResponseOkEmpty)
}

pub async fn delete(
    ctx: &Context,
    caller: &Caller,
    id: uuid::Uuid,
) -> Result<HttpResponseOkEmpty, ApiError> {
    ctx.write(caller, |stamp| ctx.store.listener_delete(id, stamp.now)).await?;
    Ok(HttpResponseOkEmpty)
}
