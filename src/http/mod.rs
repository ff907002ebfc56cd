//! The HTTP face of the store: `PrivxApiImpl` implements the generated `PrivxApi` trait with
//! short adapter methods. Each one authorizes the caller first (before any store access),
//! then turns typed API values into a store call and back.
//!
//! API types (generated from the spec) and store records share their JSON field names, so
//! one conversion, [`convert`], maps between them through serde; the store never sees an API
//! type and this module never opens sled.

pub mod auth;
pub mod journal;
pub mod test_control;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dropshot::{HttpResponseCreated, HttpResponseHeaders, Path, Query, RequestContext, TypedBody};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::api::types::ErrorCode;
use crate::api::{
    types, ApiError, HttpResponseOk, HttpResponseOkEmpty, LocationHeader, OAuthError,
    OptionalJsonBody, PrivxApi, SortDir, OPERATIONS,
};
use crate::clock::Clock;
use crate::password;
use crate::store::{
    CredentialSort, Fixtures, ListenerFields, ListenerRecord, ListenerSort, Page, PasswordHash,
    Stamp, Store, StoreError,
};
use auth::{Auth, Caller};

/// What every handler can reach.
pub struct Context {
    pub store: Arc<Store>,
    pub clock: Clock,
    pub auth: Auth,
    pub journal: Arc<journal::Journal>,
    pub faults: test_control::Faults,
    /// Present when the test-control API is on.
    pub test_control: Option<test_control::TestControl>,
}

impl Context {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The start of every operation, named by the operationId dropshot (or the generated
    /// routing endpoint) put on the request: the 404 of a test-control operation while that
    /// API is off, the fault injected into it (test-control API), then the caller, if its
    /// bearer token carries a scope the spec accepts for the operation.
    async fn begin(&self, rqctx: &RequestContext<Context>) -> Result<Arc<Caller>, ApiError> {
        let operation_id = rqctx.endpoint.operation_id.as_str();
        if self.test_control.is_none() && test_control::is_test_control(operation_id) {
            return Err(ApiError::not_found(
                "the test-control API is off (start the server with --test-control)",
            ));
        }
        self.faults.apply(operation_id).await?;
        let caller = self.auth.authorize(rqctx.request.headers(), operation_id, self.now())?;
        self.journal.note_subject(&rqctx.request_id, caller.subject);
        Ok(caller)
    }

    /// Runs a store write stamped with the caller and the time, and makes it durable before
    /// the answer goes out.
    async fn write<T>(
        &self,
        caller: &Caller,
        write: impl FnOnce(Stamp) -> Result<T, StoreError>,
    ) -> Result<T, ApiError> {
        let written = write(Stamp { actor: caller.subject, now: self.now() })?;
        self.store.durable().await?;
        Ok(written)
    }
}

/// Maps between an API type and a store record with the same JSON field names.
fn convert<A: Serialize, B: DeserializeOwned>(value: &A) -> Result<B, ApiError> {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map_err(|e| ApiError::from(StoreError::Corrupt(e)))
}

fn page(offset: u32, limit: u32) -> Page {
    Page { offset: offset.into(), limit: limit.into() }
}

/// A duration in whole seconds from the API (the spec bounds it) for the store.
fn seconds(value: Option<std::num::NonZeroU64>) -> Option<i64> {
    value.map(|s| i64::try_from(s.get()).unwrap_or(i64::MAX))
}

fn descending(sortdir: Option<SortDir>) -> bool {
    sortdir == Some(SortDir::Desc)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Path ids the spec types as plain strings: anything but a uuid names nothing.
fn parse_id(kind: &'static str, id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| StoreError::NotFound { kind, id: id.to_string() }.into())
}

/// The user of a WebAuthn path, once the caller may reach that user.
fn own_user(caller: &Caller, user_id: &str) -> Result<Uuid, ApiError> {
    let user_id = parse_id("user", user_id)?;
    caller.may_act_for(user_id)?;
    Ok(user_id)
}

/// The stored form of a new password (the spec's `minLength` already ruled out an empty one).
fn hash_password(password: &str, now: DateTime<Utc>) -> PasswordHash {
    PasswordHash { hash: password::hash(password), created: now }
}

/// The new password of a user create/update request, if it sets one (`{}` does not).
fn request_password(body: &types::UserRequest, now: DateTime<Utc>) -> Option<PasswordHash> {
    let password = body.password.as_ref().and_then(|p| p.password.as_deref());
    password.map(|p| hash_password(p, now))
}

fn created<T: schemars::JsonSchema + Serialize + Send + Sync + 'static>(
    location: String,
    body: T,
) -> HttpResponseHeaders<HttpResponseCreated<T>, LocationHeader> {
    HttpResponseHeaders::new(HttpResponseCreated(body), LocationHeader { location })
}

fn listener(record: &ListenerRecord, now: DateTime<Utc>) -> Result<types::Listener, ApiError> {
    let mut listener: types::Listener = convert(record)?;
    // Rounded up, so an open listener always has at least 1 (the spec's minimum).
    listener.closed_in_sec =
        u64::try_from(record.closed_in_sec(now)).ok().and_then(std::num::NonZeroU64::new);
    Ok(listener)
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

/// The settings name of the default service options.
pub const SERVICE_OPTIONS: &str = "default_service_options";

/// Runs argon2 (tens of milliseconds) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OAuthError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| OAuthError::server_error(e.to_string()))
}

pub enum PrivxApiImpl {}

impl PrivxApi for PrivxApiImpl {
    type Context = Context;

    async fn token_create(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::TokenRequest>,
    ) -> Result<HttpResponseOk<types::TokenResponse>, OAuthError> {
        let ctx = rqctx.context();
        let body = body.into_inner();
        let authorization = rqctx
            .request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (subject, held) = match body.grant_type {
            types::TokenRequestGrantType::Password => {
                let (Some(username), Some(password)) = (body.username, body.password) else {
                    return Err(OAuthError::invalid_request("username and password are required"));
                };
                let server = rqctx.server.clone();
                blocking(move || {
                    let ctx = &server.private;
                    if !ctx.auth.is_oauth_client(authorization.as_deref()) {
                        return Err(OAuthError::invalid_client());
                    }
                    ctx.auth.password_grant(&ctx.store, &username, &password)
                })
                .await??
            }
            types::TokenRequestGrantType::ClientCredentials => {
                let form = body.client_id.zip(body.client_secret);
                let Some((id, secret)) =
                    form.or_else(|| auth::basic_credentials(authorization.as_deref()))
                else {
                    return Err(OAuthError::invalid_client());
                };
                let server = rqctx.server.clone();
                blocking(move || server.private.auth.api_client(&id, &secret))
                    .await?
                    .ok_or_else(OAuthError::invalid_client)?
            }
        };
        let scopes = match body.scope.as_deref() {
            None => held,
            Some(asked) => {
                let asked: Vec<String> = asked.split_whitespace().map(str::to_string).collect();
                if let Some(missing) = asked.iter().find(|s| !held.contains(s)) {
                    return Err(OAuthError::invalid_scope(format!(
                        "scope {missing} is not granted"
                    )));
                }
                asked
            }
        };
        let (access_token, expires_in) = ctx.auth.issue(subject, &scopes, ctx.now());
        Ok(HttpResponseOk::Value(types::TokenResponse {
            access_token,
            token_type: "Bearer".to_string(),
            expires_in,
            scope: Some(scopes.join(" ")),
        }))
    }

    async fn listener_list(
        rqctx: RequestContext<Context>,
        query: Query<types::ListenerListQuery>,
    ) -> Result<HttpResponseOk<types::ListenerList>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        let q = query.into_inner();
        let sort: ListenerSort = convert(&q.sortkey)?;
        let now = ctx.now();
        let listing =
            ctx.store.listener_list(sort, descending(q.sortdir), page(q.offset, q.limit), now)?;
        let items = listing.items.iter().map(|l| listener(l, now)).collect::<Result<_, _>>()?;
        Ok(HttpResponseOk::Value(types::ListenerList { count: Some(count(listing.count)), items }))
    }

    async fn listener_create(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::ListenerCreate>,
    ) -> Result<HttpResponseHeaders<HttpResponseCreated<types::Listener>, LocationHeader>, ApiError>
    {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let body = body.into_inner();
        let fields = convert(&body)?;
        let record = ctx
            .write(&caller, |stamp| {
                ctx.store.listener_create(
                    ctx.clock.new_id(),
                    fields,
                    seconds(body.keep_open_sec),
                    stamp,
                )
            })
            .await?;
        let location = format!("/extender-service/api/v1/listeners/{}", record.id);
        Ok(created(location, listener(&record, ctx.now())?))
    }

    async fn listener_view(
        rqctx: RequestContext<Context>,
        path: Path<types::ListenerViewPath>,
    ) -> Result<HttpResponseOk<types::Listener>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        let now = ctx.now();
        let record = ctx.store.listener_get(path.into_inner().id, now)?;
        Ok(HttpResponseOk::Value(listener(&record, now)?))
    }

    async fn listener_update(
        rqctx: RequestContext<Context>,
        path: Path<types::ListenerUpdatePath>,
        body: TypedBody<types::Listener>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let body = body.into_inner();
        let update = |fields: &mut ListenerFields| {
            if let Some(network) = body.network.clone() {
                fields.network = network.to_string();
            }
            if let Some(destination) = body.destination.clone() {
                fields.destination = destination.to_string();
            }
            fields.source = body.source.clone();
        };
        let id = path.into_inner().id;
        ctx.write(&caller, |stamp| {
            ctx.store.listener_update(id, update, seconds(body.closed_in_sec), stamp)
        })
        .await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn listener_delete(
        rqctx: RequestContext<Context>,
        path: Path<types::ListenerDeletePath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let id = path.into_inner().id;
        ctx.write(&caller, |stamp| ctx.store.listener_delete(id, stamp.now)).await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn connection_terminate(
        rqctx: RequestContext<Context>,
        path: Path<types::ConnectionTerminatePath>,
        _body: OptionalJsonBody<types::TerminateRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let id = path.into_inner().connection_id;
        ctx.write(&caller, |stamp| ctx.store.connection_terminate(id, stamp)).await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn connection_terminate_host(
        rqctx: RequestContext<Context>,
        path: Path<types::ConnectionTerminateHostPath>,
        _body: OptionalJsonBody<types::TerminateRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let host_id = path.into_inner().host_id;
        ctx.write(&caller, |stamp| {
            ctx.store.connections_terminate(|c| c.host_id == host_id, stamp)
        })
        .await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn connection_terminate_user(
        rqctx: RequestContext<Context>,
        path: Path<types::ConnectionTerminateUserPath>,
        _body: OptionalJsonBody<types::TerminateRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let user_id = path.into_inner().user_id;
        ctx.write(&caller, |stamp| {
            ctx.store.connections_terminate(|c| c.user_id == user_id, stamp)
        })
        .await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn user_list(
        rqctx: RequestContext<Context>,
        query: Query<types::UserListQuery>,
    ) -> Result<HttpResponseOk<types::UserList>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        let q = query.into_inner();
        let listing = ctx.store.user_list(q.username.as_deref(), q.id, page(q.offset, q.limit))?;
        Ok(HttpResponseOk::Value(types::UserList {
            count: Some(count(listing.count)),
            items: listing.items,
        }))
    }

    async fn user_create(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::UserRequest>,
    ) -> Result<HttpResponseHeaders<HttpResponseCreated<types::CreatedId>, LocationHeader>, ApiError>
    {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let body = body.into_inner();
        let password = request_password(&body, ctx.now());
        let profile = convert(&body)?;
        let record = ctx
            .write(&caller, |stamp| {
                ctx.store.user_create(ctx.clock.new_id(), profile, password, stamp)
            })
            .await?;
        let location = format!("/local-user-store/api/v1/users/{}", record.id);
        Ok(created(location, types::CreatedId { id: record.id }))
    }

    async fn user_view(
        rqctx: RequestContext<Context>,
        path: types::UserViewPath,
    ) -> Result<HttpResponseOk<types::User>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        Ok(HttpResponseOk::Stored(ctx.store.user_json(path.user_id)?))
    }

    async fn user_tags_list(
        rqctx: RequestContext<Context>,
        query: Query<types::UserTagsListQuery>,
    ) -> Result<HttpResponseOk<Vec<String>>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        let q = query.into_inner();
        let tags = ctx.store.user_tags(
            q.query.as_deref(),
            descending(q.sortdir),
            page(q.offset, q.limit),
        )?;
        Ok(HttpResponseOk::Value(tags))
    }

    async fn user_update(
        rqctx: RequestContext<Context>,
        path: Path<types::UserUpdatePath>,
        body: TypedBody<types::UserRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let body = body.into_inner();
        let password = request_password(&body, ctx.now());
        let (id, profile) = (path.into_inner().user_id, convert(&body)?);
        ctx.write(&caller, |stamp| ctx.store.user_update(id, profile, password, stamp)).await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn user_delete(
        rqctx: RequestContext<Context>,
        path: Path<types::UserDeletePath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let id = path.into_inner().user_id;
        ctx.write(&caller, |_| ctx.store.user_delete(id)).await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn user_password_set(
        rqctx: RequestContext<Context>,
        path: Path<types::UserPasswordSetPath>,
        body: TypedBody<types::Password>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let id = parse_id("user", &path.into_inner().user_id)?;
        let password = hash_password(&body.into_inner().password, ctx.now());
        ctx.write(&caller, |stamp| ctx.store.user_password_set(id, password, stamp)).await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn service_options_view(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::ServiceOptions>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        let stored = ctx.store.setting(SERVICE_OPTIONS)?;
        Ok(HttpResponseOk::Value(stored.unwrap_or_else(default_service_options)))
    }

    async fn webauthn_credential_list(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialListPath>,
        query: Query<types::WebauthnCredentialListQuery>,
    ) -> Result<HttpResponseOk<types::WebauthnCredentialList>, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let user_id = own_user(&caller, &path.into_inner().user_id)?;
        let q = query.into_inner();
        let sort: CredentialSort = convert(&q.sortkey)?;
        let listing = ctx.store.credential_list(
            user_id,
            sort,
            descending(q.sortdir),
            page(q.offset, q.limit),
        )?;
        let items = listing.items.iter().map(convert).collect::<Result<_, _>>()?;
        Ok(HttpResponseOk::Value(types::WebauthnCredentialList {
            count: count(listing.count),
            items,
        }))
    }

    async fn webauthn_credential_view(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialViewPath>,
    ) -> Result<HttpResponseOk<types::WebauthnCredential>, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let p = path.into_inner();
        let (user_id, id) =
            (own_user(&caller, &p.user_id)?, parse_id("webauthn credential", &p.id)?);
        Ok(HttpResponseOk::Value(convert(&ctx.store.credential_get(user_id, id)?)?))
    }

    async fn webauthn_credential_update(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialUpdatePath>,
        body: TypedBody<types::WebauthnCredentialUpdate>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let p = path.into_inner();
        let (user_id, id) =
            (own_user(&caller, &p.user_id)?, parse_id("webauthn credential", &p.id)?);
        let body = body.into_inner();
        ctx.write(&caller, |stamp| {
            ctx.store.credential_update(user_id, id, body.name, body.comment, stamp)
        })
        .await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn webauthn_credential_delete(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialDeletePath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let p = path.into_inner();
        let (user_id, id) =
            (own_user(&caller, &p.user_id)?, parse_id("webauthn credential", &p.id)?);
        ctx.write(&caller, |_| ctx.store.credential_delete(user_id, id)).await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn state_export(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::Fixtures>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        Ok(HttpResponseOk::Value(convert(&ctx.store.export()?)?))
    }

    async fn state_reset(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::StateReset>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let fixtures = ctx.test_control.as_ref().and_then(|t| t.fixtures.clone());
        let fixtures = match body.into_inner().to {
            types::StateResetTo::Empty => None,
            types::StateResetTo::Fixtures => fixtures,
        };
        let fixtures =
            fixtures.map(|path| Fixtures::read(&path)).transpose().map_err(ApiError::internal)?;
        ctx.write(&caller, |stamp| {
            ctx.store.clear()?;
            fixtures.map_or(Ok(()), |f| ctx.store.load_fixtures(f, password::hash, stamp))
        })
        .await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn fixtures_load(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::Fixtures>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let fixtures: Fixtures =
            serde_json::to_value(body.into_inner()).and_then(serde_json::from_value).map_err(
                |e| ApiError::bad_request(ErrorCode::InvalidRequestData, e.to_string(), None),
            )?;
        ctx.write(&caller, |stamp| ctx.store.load_fixtures(fixtures, password::hash, stamp))
            .await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn journal_list(
        rqctx: RequestContext<Context>,
        query: Query<types::JournalListQuery>,
    ) -> Result<HttpResponseOk<types::JournalList>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        let q = query.into_inner();
        let entries = ctx.journal.entries(|e| {
            q.path.as_deref().is_none_or(|p| e.path.starts_with(p))
                && q.status.is_none_or(|s| i64::from(e.status) == s)
        });
        let count = count(entries.len() as u64);
        let items = entries
            .into_iter()
            .take(q.limit as usize)
            .map(|e| types::JournalEntry {
                time: e.time,
                request_id: e.request_id,
                method: e.method,
                path: e.path,
                query: e.query,
                status: e.status.into(),
                latency_ms: e.latency_ms,
                subject: e.subject,
            })
            .collect();
        Ok(HttpResponseOk::Value(types::JournalList { count, items }))
    }

    async fn journal_clear(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        ctx.journal.clear();
        Ok(HttpResponseOkEmpty)
    }

    async fn fault_list(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::FaultList>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        let items = ctx
            .faults
            .list()
            .into_iter()
            .map(|(operation_id, fault)| types::FaultEntry { operation_id, fault })
            .collect();
        Ok(HttpResponseOk::Value(types::FaultList { items }))
    }

    async fn fault_set(
        rqctx: RequestContext<Context>,
        path: Path<types::FaultSetPath>,
        body: TypedBody<types::Fault>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        let operation_id = path.into_inner().operation_id;
        if !OPERATIONS.iter().any(|o| o.operation_id == operation_id) {
            return Err(ApiError::not_found(format!("no operation {operation_id}")));
        }
        let fault = body.into_inner();
        let invalid = |property: &str, message: &str| {
            ApiError::bad_request(ErrorCode::ValueOutOfBounds, message, Some(property))
        };
        if fault.latency_ms.is_none() && fault.status.is_none() {
            return Err(invalid("status", "a fault needs a latency_ms, a status or both"));
        }
        if fault.latency_ms.is_some_and(|ms| !(0..=60_000).contains(&ms)) {
            return Err(invalid("latency_ms", "latency_ms must be 0 to 60000"));
        }
        if fault.status.is_some_and(|s| !(400..=599).contains(&s)) {
            return Err(invalid("status", "status must be 400 to 599"));
        }
        ctx.faults.set(operation_id, fault);
        Ok(HttpResponseOkEmpty)
    }

    async fn fault_clear(
        rqctx: RequestContext<Context>,
        path: Path<types::FaultClearPath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        let operation_id = path.into_inner().operation_id;
        ctx.faults.clear(&operation_id);
        Ok(HttpResponseOkEmpty)
    }
}
