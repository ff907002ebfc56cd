//! Extender listeners: the store's listener records as the API's `Listener`, whose
//! `closed_in_sec` is counted from the record's closing time whenever it is read, kept in step
//! with the relay's sockets (`crate::relay`): a listener's socket is bound before its record is
//! written, and closed when the record is deleted.

use chrono::{DateTime, Utc};
use dropshot::ErrorStatusCode;

use super::auth::Caller;
use super::convert::{convert, count, descending, page, seconds};
use super::Context;
use crate::api::types::ErrorCode;
use crate::api::{check_max_items, types, ApiError, HttpResponseOk, HttpResponseOkEmpty};
use crate::clock::Clock;
use crate::relay::{Destination, ListenerPlan, RelayError, Relays, Sources};
use crate::store::{ListenerFields, ListenerRecord, ListenerSort, Store, StoreError};

/// The only `network` listeners relay.
const NETWORK: &str = "tcp";

/// A listener record as the API shows it.
pub fn listener(record: &ListenerRecord, now: DateTime<Utc>) -> Result<types::Listener, ApiError> {
    let mut listener: types::Listener = convert(record)?;
    // Rounded up, so an open listener always has at least 1 (the spec's minimum).
    listener.closed_in_sec =
        u64::try_from(record.closed_in_sec(now)).ok().and_then(std::num::NonZeroU64::new);
    Ok(listener)
}

/// A listener's fields as the relay works with them, or which field it cannot work with.
fn rules(fields: &ListenerFields) -> Result<(Destination, Sources), StoreError> {
    let invalid = |property, message| StoreError::Invalid { property, message };
    if fields.network != NETWORK {
        return Err(invalid("network", format!("network must be {NETWORK:?}")));
    }
    Ok((
        Destination::parse(&fields.destination).map_err(|e| invalid("destination", e))?,
        Sources::parse(&fields.source).map_err(|e| invalid("source", e))?,
    ))
}

/// What the relay does for a listener record.
fn plan(record: &ListenerRecord) -> Result<ListenerPlan, StoreError> {
    let (destination, sources) = rules(&record.fields)?;
    Ok(ListenerPlan { destination, sources, closes_at: record.closes_at })
}

fn bind_error(error: RelayError) -> ApiError {
    match error {
        RelayError::NoFreePort(_) | RelayError::OutOfResources { .. } | RelayError::ShutDown => {
            ApiError::new(
                ErrorStatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::OutOfResources,
                error.to_string(),
                None,
            )
        }
        RelayError::Bind { .. } => ApiError::internal(error.to_string()),
    }
}

pub async fn list(
    ctx: &Context,
    q: types::ListenerListQuery,
) -> Result<HttpResponseOk<types::ListenerList>, ApiError> {
    let sort: ListenerSort = convert(&q.sortkey)?;
    let now = ctx.now();
    let (sort_dir, page) = (descending(q.sortdir), page(q.offset, q.limit));
    let listing = ctx.store.listener_list(sort, sort_dir, page, now).await?;
    let items = listing.items.iter().map(|l| listener(l, now)).collect::<Result<_, _>>()?;
    Ok(HttpResponseOk::Value(types::ListenerList { count: count(listing.count), items }))
}

/// Binds a free port, writes the record with it as `address`, then starts relaying.
pub async fn create(
    ctx: &Context,
    caller: &Caller,
    body: types::ListenerCreate,
) -> Result<ListenerRecord, ApiError> {
    check_max_items("ListenerCreate", &body)?;
    let fields: ListenerFields = convert(&body)?;
    rules(&fields)?;
    let keep_open_sec = seconds(body.keep_open_sec);
    let socket = ctx.relays.bind_free().map_err(bind_error)?;
    let address = socket.local_addr().map_err(|e| ApiError::internal(e.to_string()))?;
    let address = address.to_string();
    let id = ctx.clock.new_id();
    let stamp = ctx.stamp(caller);
    let record = ctx.store.listener_create(id, fields, address, keep_open_sec, stamp).await?;
    ctx.relays.start(record.id, socket, plan(&record)?);
    Ok(record)
}

pub async fn view(
    ctx: &Context,
    id: uuid::Uuid,
) -> Result<HttpResponseOk<types::Listener>, ApiError> {
    let now = ctx.now();
    let record = ctx.store.listener_get(id, now).await?;
    Ok(HttpResponseOk::Value(listener(&record, now)?))
}

/// Sets the fields the body gives (`source` always: left out, it is emptied) and, with a
/// `closed_in_sec`, when the listener closes; new connections follow the new fields.
pub async fn update(
    ctx: &Context,
    caller: &Caller,
    id: uuid::Uuid,
    body: types::Listener,
) -> Result<HttpResponseOkEmpty, ApiError> {
    check_max_items("Listener", &body)?;
    let closes_in = seconds(body.closed_in_sec);
    let update = move |fields: &mut ListenerFields| {
        if let Some(network) = body.network {
            fields.network = network.to_string();
        }
        if let Some(destination) = body.destination {
            fields.destination = destination.to_string();
        }
        fields.source = body.source.into_iter().map(String::from).collect();
        rules(fields).map(drop)
    };
    let record = ctx.store.listener_update(id, update, closes_in, ctx.stamp(caller)).await?;
    ctx.relays.update(id, plan(&record)?);
    Ok(HttpResponseOkEmpty)
}

/// Deletes a listener and closes it with its connections before answering.
pub async fn delete(ctx: &Context, id: uuid::Uuid) -> Result<HttpResponseOkEmpty, ApiError> {
    ctx.store.listener_delete(id, ctx.now()).await?;
    ctx.relays.close(id).await;
    Ok(HttpResponseOkEmpty)
}

/// Makes the relay match the store: every open listener listens (at its address again, after
/// a restart or a load; a loaded listener without one gets a free port), nothing else does.
/// Logs, and returns, what could not be opened.
pub async fn reopen_listeners(ctx: &Context) -> Result<Vec<String>, ApiError> {
    Ok(follow_store(&ctx.store, &ctx.relays, ctx.now()).await?)
}

/// On a store other servers share (PostgreSQL), a listener is relayed by the server that bound
/// its address: the one that created it, or after that server is gone, whichever server binds
/// the address first. Every server can read, change and delete every listener's record; each
/// follows the store once per [`FOLLOW_EVERY`], so a change or a delete made on another server
/// reaches the relay within that time, and a listener whose server stopped is taken over.
pub const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Follows the store every [`FOLLOW_EVERY`] while `relays` is alive (see [`FOLLOW_EVERY`]).
pub fn follow_shared_store(store: Store, relays: std::sync::Weak<Relays>, clock: Clock) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(FOLLOW_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(relays) = relays.upgrade() else {
                return;
            };
            // A store that does not answer is said by the requests' own errors and /healthz.
            let _ = follow_store(&store, &relays, clock.now()).await;
        }
    });
}

/// Makes `relays` match the open listeners of `store` (see [`reopen_listeners`]). On a shared
/// store, an address another server holds is that server's listener, not a failure.
async fn follow_store(
    store: &Store,
    relays: &Relays,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let records = store.listeners_open(now).await?;
    let mut failures = Vec::new();
    for record in &records {
        match reopen(store, relays, record, now).await {
            Ok(()) => {}
            Err(Reopen::HeldElsewhere) if store.shared() => {}
            Err(e) => {
                let failure =
                    format!("listener {} at {:?} not reopened: {e}", record.id, record.address);
                relays.warn(&failure);
                failures.push(failure);
            }
        }
    }
    let mut keep: Vec<uuid::Uuid> = records.iter().map(|r| r.id).collect();
    // A listener whose relay started after the read above has its record by now (written
    // before its relay starts): each about to be closed is read once more, and only one the
    // store no longer has is closed.
    let unseen: Vec<uuid::Uuid> =
        relays.running().into_iter().filter(|id| !keep.contains(id)).collect();
    for id in unseen {
        if !matches!(store.listener_get(id, now).await, Err(StoreError::NotFound { .. })) {
            keep.push(id);
        }
    }
    relays.close_all_but(&keep).await;
    Ok(failures)
}

/// Why a listener could not be opened again.
#[derive(Debug, thiserror::Error)]
enum Reopen {
    #[error("its address is in use or not this host's")]
    HeldElsewhere,
    #[error("{0}")]
    Failed(String),
}

async fn reopen(
    store: &Store,
    relays: &Relays,
    record: &ListenerRecord,
    now: DateTime<Utc>,
) -> Result<(), Reopen> {
    use std::io::ErrorKind::{AddrInUse, AddrNotAvailable};
    let failed = |e: &dyn std::fmt::Display| Reopen::Failed(e.to_string());
    let plan = plan(record).map_err(|e| failed(&e))?;
    if relays.is_running(record.id) {
        relays.update(record.id, plan);
        return Ok(());
    }
    let socket = if record.address.is_empty() {
        let socket = relays.bind_free().map_err(|e| failed(&e))?;
        let address = socket.local_addr().map_err(|e| failed(&e))?.to_string();
        store.listener_set_address(record.id, address, now).await.map_err(|e| failed(&e))?;
        socket
    } else {
        let address = record.address.parse().map_err(|_| failed(&"the address is no IP:port"))?;
        relays.bind(address).map_err(|e| match e {
            // In use here, or an address of another host (a server there relays it).
            RelayError::Bind { error, .. }
                if matches!(error.kind(), AddrInUse | AddrNotAvailable) =>
            {
                Reopen::HeldElsewhere
            }
            e => failed(&e),
        })?
    };
    relays.start(record.id, socket, plan);
    Ok(())
}

/// Every listener's connection and byte counters since the server started.
pub fn traffic_list(ctx: &Context) -> HttpResponseOk<types::ListenerTrafficList> {
    let items = ctx
        .relays
        .traffic()
        .into_iter()
        .map(|(id, t)| types::ListenerTraffic {
            id,
            open_connections: t.open,
            total_connections: t.total,
            refused_connections: t.refused,
            failed_connections: t.failed,
            bytes_to_destination: t.bytes_to_destination,
            bytes_from_destination: t.bytes_from_destination,
        })
        .collect();
    HttpResponseOk::Value(types::ListenerTrafficList { items })
}
