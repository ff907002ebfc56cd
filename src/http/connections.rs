//! PrivX's connection-manager: reading connections (list, view, search), terminating them
//! (by id, host or user), and staging them (test-control API). A caller without a scope that
//! sees every connection sees only the connections they are the user of.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Caller;
use super::convert::{convert, count, descending, page};
use super::Context;
use crate::api::{check_max_items, types, ApiError, HttpResponseOk, HttpResponseOkEmpty, SortDir};
use crate::store::{
    ConnectionRecord, ConnectionSort, ConnectionStatus, FixtureConnection, StoreError, Termination,
};

/// Scopes that see every connection (the others of the read operations, `user`, see their own).
const SEE_EVERY_CONNECTION: &[&str] = &["admin", "connectionsView", "service"];

/// Whose connections the caller sees: `None` for everyone's.
fn visible_owner(caller: &Caller) -> Option<Uuid> {
    (!caller.has_any(SEE_EVERY_CONNECTION)).then_some(caller.subject)
}

/// A search body as the store's records are matched against it (see `ConnectionSearch` in the
/// spec for the rules); the list is the search with no criteria.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Criteria {
    id: Vec<Uuid>,
    proxy_id: Vec<String>,
    #[serde(rename = "type")]
    kind: Vec<String>,
    mode: Vec<String>,
    user_id: Vec<Uuid>,
    user_display_name: Vec<String>,
    target_host_id: Vec<Uuid>,
    target_host_common_name: Vec<String>,
    target_host_address: Vec<String>,
    target_host_account: Vec<String>,
    remote_address: Vec<String>,
    status: Vec<ConnectionStatus>,
    connected: Range,
    disconnected: Range,
    last_activity: Range,
    keywords: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Range {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

impl Range {
    fn holds(&self, time: Option<DateTime<Utc>>) -> bool {
        match (self.start, self.end, time) {
            (None, None, _) => true,
            (_, _, None) => false,
            (start, end, Some(t)) => start.is_none_or(|s| s <= t) && end.is_none_or(|e| t <= e),
        }
    }
}

/// An empty list is no criterion; otherwise the value must be one of the list.
fn one_of<T: PartialEq>(list: &[T], value: Option<&T>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.contains(v))
}

impl Criteria {
    fn matches(&self, c: &ConnectionRecord) -> bool {
        let d = &c.details;
        one_of(&self.id, Some(&c.id))
            && one_of(&self.proxy_id, d.proxy_id.as_ref())
            && one_of(&self.kind, Some(&d.kind))
            && one_of(&self.mode, Some(&d.mode))
            && one_of(&self.user_id, Some(&d.user.id))
            && one_of(&self.user_display_name, d.user.display_name.as_ref())
            && one_of(&self.target_host_id, Some(&d.target_host.id))
            && one_of(&self.target_host_common_name, d.target_host.common_name.as_ref())
            && one_of(&self.target_host_address, d.target_host_address.as_ref())
            && one_of(&self.target_host_account, d.target_host_account.as_ref())
            && one_of(&self.remote_address, d.remote_address.as_ref())
            && one_of(&self.status, Some(&d.status))
            && self.connected.holds(Some(c.connected))
            && self.disconnected.holds(d.disconnected)
            && self.last_activity.holds(d.last_activity)
            && self.keywords_match(c)
    }

    /// Any of the words occurs, case-insensitively, in one of the connection's texts.
    fn keywords_match(&self, c: &ConnectionRecord) -> bool {
        let Some(keywords) = &self.keywords else { return true };
        let mut words = keywords.split_whitespace().map(str::to_lowercase).peekable();
        if words.peek().is_none() {
            return true;
        }
        let d = &c.details;
        let texts: Vec<String> = [
            &d.user.display_name,
            &d.target_host.common_name,
            &d.target_host_address,
            &d.target_host_account,
            &d.remote_address,
            &d.termination_reason,
        ]
        .into_iter()
        .flatten()
        .map(|text| text.to_lowercase())
        .collect();
        words.any(|word| texts.iter().any(|text| text.contains(&word)))
    }
}

/// One page of the connections the caller sees that match `criteria`.
async fn listing(
    ctx: &Context,
    caller: &Caller,
    criteria: &Criteria,
    order: (ConnectionSort, Option<SortDir>),
    (offset, limit): (u32, u32),
) -> Result<HttpResponseOk<types::ConnectionList>, ApiError> {
    let owner = visible_owner(caller);
    let matches = |c: &ConnectionRecord| {
        owner.is_none_or(|own| c.details.user.id == own) && criteria.matches(c)
    };
    let listing = ctx.store.connection_list(
        matches,
        order.0,
        descending(order.1),
        page(offset, limit),
        ctx.now(),
    );
    let listing = listing.await?;
    let items = listing.items.iter().map(convert).collect::<Result<_, _>>()?;
    Ok(HttpResponseOk::Value(types::ConnectionList { count: count(listing.count), items }))
}

pub async fn list(
    ctx: &Context,
    caller: &Caller,
    q: types::ConnectionListQuery,
) -> Result<HttpResponseOk<types::ConnectionList>, ApiError> {
    let order = (convert(&q.sortkey)?, q.sortdir);
    listing(ctx, caller, &Criteria::default(), order, (q.offset, q.limit)).await
}

pub async fn search(
    ctx: &Context,
    caller: &Caller,
    q: types::ConnectionSearchQuery,
    body: types::ConnectionSearch,
) -> Result<HttpResponseOk<types::ConnectionList>, ApiError> {
    check_max_items("ConnectionSearch", &body)?;
    let order = (convert(&q.sortkey)?, q.sortdir);
    listing(ctx, caller, &convert(&body)?, order, (q.offset, q.limit)).await
}

pub async fn view(
    ctx: &Context,
    caller: &Caller,
    id: Uuid,
) -> Result<HttpResponseOk<types::Connection>, ApiError> {
    let record = ctx.store.connection_get(id, ctx.now()).await?;
    if visible_owner(caller).is_some_and(|own| record.details.user.id != own) {
        // Another user's connection is as unknown to a user as one that does not exist.
        return Err(StoreError::NotFound { kind: "connection", id: id.to_string() }.into());
    }
    Ok(HttpResponseOk::Value(convert(&record)?))
}

/// Stages a connection (test-control API): the fixtures format, with a new id if none.
pub async fn create(
    ctx: &Context,
    caller: &Caller,
    body: types::ConnectionCreate,
) -> Result<HttpResponseOk<types::Connection>, ApiError> {
    let counts = [("bytes_in", body.bytes_in), ("bytes_out", body.bytes_out)];
    for (property, value) in [("duration", body.duration)].into_iter().chain(counts) {
        if value.is_some_and(|v| v < 0) {
            let message = "must not be negative".to_string();
            return Err(StoreError::Invalid { property, message }.into());
        }
    }
    let mut fixture = serde_json::to_value(&body).map_err(StoreError::Corrupt)?;
    fixture["id"] = serde_json::json!(body.id.unwrap_or_else(|| ctx.clock.new_id()));
    let fixture: FixtureConnection = convert(&fixture)?;
    let record = fixture.record(ctx.stamp(caller));
    ctx.store.connection_create(record.clone()).await?;
    Ok(HttpResponseOk::Value(convert(&record.at(ctx.now()))?))
}

/// The reason a terminate request gives: PrivX's body is the reason as a JSON string; the
/// Python SDK sends a free-form object (`termination_params`), whose `reason` or else
/// `termination_reason` is taken.
fn reason(body: Option<types::TerminateRequest>) -> Option<String> {
    match body?.0 {
        serde_json::Value::String(reason) => Some(reason),
        serde_json::Value::Object(mut fields) => {
            match fields.remove("reason").or_else(|| fields.remove("termination_reason"))? {
                serde_json::Value::String(reason) => Some(reason),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Which connections a terminate request ends.
pub enum Target {
    Connection(Uuid),
    Host(Uuid),
    User(Uuid),
}

/// Terminates the connections of `target` (see the store's connections module); an unknown
/// connection id is 404, a host or user without connections is fine.
pub async fn terminate(
    ctx: &Context,
    caller: &Caller,
    target: Target,
    body: Option<types::TerminateRequest>,
) -> Result<HttpResponseOkEmpty, ApiError> {
    let reason = reason(body);
    let delay = ctx.termination_delay;
    let termination = Termination { reason, delay, stamp: ctx.stamp(caller) };
    let store = &ctx.store;
    match target {
        Target::Connection(id) => store.connection_terminate(id, termination).await,
        Target::Host(host) => {
            store
                .connections_terminate(move |c| c.details.target_host.id == host, termination)
                .await
        }
        Target::User(user) => {
            store.connections_terminate(move |c| c.details.user.id == user, termination).await
        }
    }?;
    Ok(HttpResponseOkEmpty)
}
