//! The HTTP face of the store: `PrivxApiImpl` implements the generated `PrivxApi` trait with
//! short adapter methods, each turning typed API values into a store call and back.
//!
//! API types (generated from the spec) and store records share their JSON field names, so
//! one conversion, [`convert`], maps between them through serde; the store never sees an API
//! type and this module never opens sled.

use chrono::{DateTime, Utc};
use dropshot::{
    HttpResponseCreated, HttpResponseHeaders, HttpResponseOk, Path, Query, RequestContext,
    TypedBody,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::api::{
    types, ApiError, HttpResponseOkEmpty, LocationHeader, OptionalJsonBody, PrivxApi, SortDir,
};
use crate::clock::Clock;
use crate::password;
use crate::store::{
    CredentialSort, ListenerFields, ListenerRecord, ListenerSort, Page, PasswordHash, Stamp, Store,
    StoreError,
};

/// The identity written into `author`/`updated_by` until requests carry a token subject.
pub const SERVER_ID: Uuid = Uuid::from_u128(0x5e7c_e000_0000_4000_8000_0000_0000_0001);

/// What every handler can reach.
pub struct Context {
    pub store: Store,
    pub clock: Clock,
}

impl Context {
    pub fn new(store: Store, clock: Clock) -> Self {
        Self { store, clock }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn stamp(&self) -> Stamp {
        Stamp {
            actor: SERVER_ID,
            now: self.now(),
        }
    }

    /// Makes every write so far durable before the answer goes out.
    async fn durable(&self) -> Result<(), ApiError> {
        self.store.flush_async().await.map_err(ApiError::from)
    }
}

/// Maps between an API type and a store record with the same JSON field names.
fn convert<A: Serialize, B: DeserializeOwned>(value: &A) -> Result<B, ApiError> {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map_err(|e| ApiError::from(StoreError::Corrupt(e)))
}

fn page(offset: u64, limit: u64) -> Page {
    Page { offset, limit }
}

fn descending(sortdir: Option<SortDir>) -> bool {
    sortdir == Some(SortDir::Desc)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Path ids the spec types as plain strings: anything but a uuid names nothing.
fn parse_id(kind: &'static str, id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| {
        StoreError::NotFound {
            kind,
            id: id.to_string(),
        }
        .into()
    })
}

fn hash_password(password: &types::Password, now: DateTime<Utc>) -> Result<PasswordHash, ApiError> {
    if password.password.is_empty() {
        return Err(StoreError::Invalid {
            property: "password",
            message: "password must not be empty".to_string(),
        }
        .into());
    }
    Ok(PasswordHash {
        hash: password::hash(&password.password),
        created: now,
    })
}

fn created<T: schemars::JsonSchema + Serialize + Send + Sync + 'static>(
    location: String,
    body: T,
) -> HttpResponseHeaders<HttpResponseCreated<T>, LocationHeader> {
    HttpResponseHeaders::new(HttpResponseCreated(body), LocationHeader { location })
}

fn listener(record: &ListenerRecord, now: DateTime<Utc>) -> Result<types::Listener, ApiError> {
    let mut listener: types::Listener = convert(record)?;
    listener.closed_in_sec = Some(record.closed_in_sec(now));
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
        vnc: Some(types::VncOptions {
            file_transfer: Some(true),
            clipboard: Some(true),
        }),
        db: Some(types::DbOptions {
            max_bytes_download: Some(0),
            max_bytes_upload: Some(0),
        }),
    }
}

/// The settings name of the default service options.
pub const SERVICE_OPTIONS: &str = "default_service_options";

pub enum PrivxApiImpl {}

impl PrivxApi for PrivxApiImpl {
    type Context = Context;

    async fn listener_list(
        rqctx: RequestContext<Context>,
        query: Query<types::ListenerListQuery>,
    ) -> Result<HttpResponseOk<types::ListenerList>, ApiError> {
        let ctx = rqctx.context();
        let q = query.into_inner();
        let sort: ListenerSort = convert(&q.sortkey)?;
        let now = ctx.now();
        let listing =
            ctx.store
                .listener_list(sort, descending(q.sortdir), page(q.offset, q.limit), now)?;
        let items = listing
            .items
            .iter()
            .map(|l| listener(l, now))
            .collect::<Result<_, _>>()?;
        Ok(HttpResponseOk(types::ListenerList {
            count: Some(count(listing.count)),
            items,
        }))
    }

    async fn listener_create(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::ListenerCreate>,
    ) -> Result<HttpResponseHeaders<HttpResponseCreated<types::Listener>, LocationHeader>, ApiError>
    {
        let ctx = rqctx.context();
        let body = body.into_inner();
        let stamp = ctx.stamp();
        let record = ctx
            .store
            .listener_create(convert(&body)?, body.keep_open_sec, stamp)?;
        ctx.durable().await?;
        let location = format!("/extender-service/api/v1/listeners/{}", record.id);
        Ok(created(location, listener(&record, stamp.now)?))
    }

    async fn listener_view(
        rqctx: RequestContext<Context>,
        path: Path<types::ListenerViewPath>,
    ) -> Result<HttpResponseOk<types::Listener>, ApiError> {
        let ctx = rqctx.context();
        let now = ctx.now();
        let record = ctx.store.listener_get(path.into_inner().id, now)?;
        Ok(HttpResponseOk(listener(&record, now)?))
    }

    async fn listener_update(
        rqctx: RequestContext<Context>,
        path: Path<types::ListenerUpdatePath>,
        body: TypedBody<types::Listener>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let body = body.into_inner();
        let update = |fields: &mut ListenerFields| {
            fields.network = body
                .network
                .clone()
                .unwrap_or_else(|| fields.network.clone());
            fields.destination = body
                .destination
                .clone()
                .unwrap_or_else(|| fields.destination.clone());
            fields.source = body.source.clone();
        };
        let id = path.into_inner().id;
        ctx.store
            .listener_update(id, update, body.closed_in_sec, ctx.stamp())?;
        ctx.durable().await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn listener_delete(
        rqctx: RequestContext<Context>,
        path: Path<types::ListenerDeletePath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.store.listener_delete(path.into_inner().id, ctx.now())?;
        ctx.durable().await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn connection_terminate(
        rqctx: RequestContext<Context>,
        path: Path<types::ConnectionTerminatePath>,
        _body: OptionalJsonBody<types::TerminateRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.store
            .connection_terminate(path.into_inner().connection_id, ctx.stamp())?;
        ctx.durable().await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn connection_terminate_host(
        rqctx: RequestContext<Context>,
        path: Path<types::ConnectionTerminateHostPath>,
        _body: OptionalJsonBody<types::TerminateRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let host_id = path.into_inner().host_id;
        ctx.store
            .connections_terminate(|c| c.host_id == host_id, ctx.stamp())?;
        ctx.durable().await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn connection_terminate_user(
        rqctx: RequestContext<Context>,
        path: Path<types::ConnectionTerminateUserPath>,
        _body: OptionalJsonBody<types::TerminateRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let user_id = path.into_inner().user_id;
        ctx.store
            .connections_terminate(|c| c.user_id == user_id, ctx.stamp())?;
        ctx.durable().await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn user_list(
        rqctx: RequestContext<Context>,
        query: Query<types::UserListQuery>,
    ) -> Result<HttpResponseOk<types::UserList>, ApiError> {
        let ctx = rqctx.context();
        let q = query.into_inner();
        let listing = ctx
            .store
            .user_list(q.username.as_deref(), q.id, page(q.offset, q.limit))?;
        let items = listing
            .items
            .iter()
            .map(convert)
            .collect::<Result<_, _>>()?;
        Ok(HttpResponseOk(types::UserList {
            count: Some(count(listing.count)),
            items,
        }))
    }

    async fn user_create(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::UserRequest>,
    ) -> Result<HttpResponseHeaders<HttpResponseCreated<types::CreatedId>, LocationHeader>, ApiError>
    {
        let ctx = rqctx.context();
        let body = body.into_inner();
        let stamp = ctx.stamp();
        let password = body
            .password
            .as_ref()
            .map(|p| hash_password(p, stamp.now))
            .transpose()?;
        let record = ctx.store.user_create(convert(&body)?, password, stamp)?;
        ctx.durable().await?;
        let location = format!("/local-user-store/api/v1/users/{}", record.id);
        Ok(created(location, types::CreatedId { id: record.id }))
    }

    async fn user_view(
        rqctx: RequestContext<Context>,
        path: Path<types::UserViewPath>,
    ) -> Result<HttpResponseOk<types::User>, ApiError> {
        let record = rqctx.context().store.user_get(path.into_inner().user_id)?;
        Ok(HttpResponseOk(convert(&record)?))
    }

    async fn user_tags_list(
        rqctx: RequestContext<Context>,
        query: Query<types::UserTagsListQuery>,
    ) -> Result<HttpResponseOk<Vec<String>>, ApiError> {
        let q = query.into_inner();
        let tags = rqctx.context().store.user_tags(
            q.query.as_deref(),
            descending(q.sortdir),
            page(q.offset, q.limit),
        )?;
        Ok(HttpResponseOk(tags))
    }

    async fn user_update(
        rqctx: RequestContext<Context>,
        path: Path<types::UserUpdatePath>,
        body: TypedBody<types::UserRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let body = body.into_inner();
        let stamp = ctx.stamp();
        let password = body
            .password
            .as_ref()
            .map(|p| hash_password(p, stamp.now))
            .transpose()?;
        ctx.store
            .user_update(path.into_inner().user_id, convert(&body)?, password, stamp)?;
        ctx.durable().await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn user_delete(
        rqctx: RequestContext<Context>,
        path: Path<types::UserDeletePath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.store.user_delete(path.into_inner().user_id)?;
        ctx.durable().await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn user_password_set(
        rqctx: RequestContext<Context>,
        path: Path<types::UserPasswordSetPath>,
        body: TypedBody<types::Password>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let id = parse_id("user", &path.into_inner().user_id)?;
        let stamp = ctx.stamp();
        let password = hash_password(&body.into_inner(), stamp.now)?;
        ctx.store.user_password_set(id, password, stamp)?;
        ctx.durable().await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn service_options_view(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::ServiceOptions>, ApiError> {
        let stored = rqctx.context().store.setting(SERVICE_OPTIONS)?;
        Ok(HttpResponseOk(
            stored.unwrap_or_else(default_service_options),
        ))
    }

    async fn webauthn_credential_list(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialListPath>,
        query: Query<types::WebauthnCredentialListQuery>,
    ) -> Result<HttpResponseOk<types::WebauthnCredentialList>, ApiError> {
        let ctx = rqctx.context();
        let user_id = parse_id("user", &path.into_inner().user_id)?;
        let q = query.into_inner();
        let sort: CredentialSort = convert(&q.sortkey)?;
        let listing = ctx.store.credential_list(
            user_id,
            sort,
            descending(q.sortdir),
            page(q.offset, q.limit),
        )?;
        let items = listing
            .items
            .iter()
            .map(convert)
            .collect::<Result<_, _>>()?;
        Ok(HttpResponseOk(types::WebauthnCredentialList {
            count: count(listing.count),
            items,
        }))
    }

    async fn webauthn_credential_view(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialViewPath>,
    ) -> Result<HttpResponseOk<types::WebauthnCredential>, ApiError> {
        let p = path.into_inner();
        let (user_id, id) = (
            parse_id("user", &p.user_id)?,
            parse_id("webauthn credential", &p.id)?,
        );
        let record = rqctx.context().store.credential_get(user_id, id)?;
        Ok(HttpResponseOk(convert(&record)?))
    }

    async fn webauthn_credential_update(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialUpdatePath>,
        body: TypedBody<types::WebauthnCredentialUpdate>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let p = path.into_inner();
        let (user_id, id) = (
            parse_id("user", &p.user_id)?,
            parse_id("webauthn credential", &p.id)?,
        );
        let body = body.into_inner();
        ctx.store
            .credential_update(user_id, id, body.name, body.comment, ctx.stamp())?;
        ctx.durable().await?;
        Ok(HttpResponseOkEmpty)
    }

    async fn webauthn_credential_delete(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialDeletePath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let p = path.into_inner();
        let (user_id, id) = (
            parse_id("user", &p.user_id)?,
            parse_id("webauthn credential", &p.id)?,
        );
        ctx.store.credential_delete(user_id, id)?;
        ctx.durable().await?;
        Ok(HttpResponseOkEmpty)
    }
}
