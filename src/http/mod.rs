//! The HTTP face of the store: `PrivxApiImpl` implements the generated `PrivxApi` trait. Rust
//! wants the trait's methods in one `impl`, so each is a short delegation: it starts the
//! operation with [`Context::begin`] (which authorizes the caller before any store access) and
//! hands the typed request to the module of its resource, which turns it into a store call and
//! the result back into the API's types.
//!
//! Store errors become API answers in one place (`error`); this module never opens sled.

pub mod auth;
mod connections;
mod context;
mod convert;
mod error;
pub mod journal;
mod listeners;
mod settings;
mod status;
pub mod test_control;
mod users;
mod webauthn;

use dropshot::{HttpResponseCreated, HttpResponseHeaders, Query, RequestContext, TypedBody};

use crate::api::{
    locations, types, ApiError, HttpResponseOk, HttpResponseOkEmpty, HttpResponseRedirect,
    LocationHeader, OAuthError, OptionalJsonBody, Path, PrivxApi,
};
pub use context::Context;
use convert::created;
pub use listeners::{follow_shared_store, reopen_listeners};

pub enum PrivxApiImpl {}

impl PrivxApi for PrivxApiImpl {
    type Context = Context;

    async fn token_create(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::TokenRequest>,
    ) -> Result<HttpResponseOk<types::TokenResponse>, OAuthError> {
        auth::token_create(&rqctx, body.into_inner()).await.map(HttpResponseOk::Value)
    }

    async fn oauth_authorize(
        rqctx: RequestContext<Context>,
        query: Query<types::OauthAuthorizeQuery>,
    ) -> Result<HttpResponseRedirect, OAuthError> {
        auth::oauth_authorize(&rqctx, query.into_inner()).await
    }

    async fn login_create(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::LoginRequest>,
    ) -> Result<HttpResponseOk<types::LoginResponse>, OAuthError> {
        auth::login_create(&rqctx, body.into_inner()).await.map(HttpResponseOk::Value)
    }

    async fn listener_list(
        rqctx: RequestContext<Context>,
        query: Query<types::ListenerListQuery>,
    ) -> Result<HttpResponseOk<types::ListenerList>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        listeners::list(ctx, query.into_inner()).await
    }

    async fn listener_create(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::ListenerCreate>,
    ) -> Result<HttpResponseHeaders<HttpResponseCreated<types::Listener>, LocationHeader>, ApiError>
    {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let record = listeners::create(ctx, &caller, body.into_inner()).await?;
        Ok(created(locations::listener_create(record.id), listeners::listener(&record, ctx.now())?))
    }

    async fn listener_view(
        rqctx: RequestContext<Context>,
        path: Path<types::ListenerViewPath>,
    ) -> Result<HttpResponseOk<types::Listener>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        listeners::view(ctx, path.into_inner().id).await
    }

    async fn listener_update(
        rqctx: RequestContext<Context>,
        path: Path<types::ListenerUpdatePath>,
        body: TypedBody<types::Listener>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        listeners::update(ctx, &caller, path.into_inner().id, body.into_inner()).await
    }

    async fn listener_delete(
        rqctx: RequestContext<Context>,
        path: Path<types::ListenerDeletePath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        listeners::delete(ctx, path.into_inner().id).await
    }

    async fn connection_terminate(
        rqctx: RequestContext<Context>,
        path: Path<types::ConnectionTerminatePath>,
        body: OptionalJsonBody<types::TerminateRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let target = connections::Target::Connection(path.into_inner().connection_id);
        connections::terminate(ctx, &caller, target, body.0).await
    }

    async fn connection_terminate_host(
        rqctx: RequestContext<Context>,
        path: Path<types::ConnectionTerminateHostPath>,
        body: OptionalJsonBody<types::TerminateRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let target = connections::Target::Host(path.into_inner().host_id);
        connections::terminate(ctx, &caller, target, body.0).await
    }

    async fn connection_terminate_user(
        rqctx: RequestContext<Context>,
        path: Path<types::ConnectionTerminateUserPath>,
        body: OptionalJsonBody<types::TerminateRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let target = connections::Target::User(path.into_inner().user_id);
        connections::terminate(ctx, &caller, target, body.0).await
    }

    async fn connection_list(
        rqctx: RequestContext<Context>,
        query: Query<types::ConnectionListQuery>,
    ) -> Result<HttpResponseOk<types::ConnectionList>, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        connections::list(ctx, &caller, query.into_inner()).await
    }

    async fn connection_search(
        rqctx: RequestContext<Context>,
        query: Query<types::ConnectionSearchQuery>,
        body: TypedBody<types::ConnectionSearch>,
    ) -> Result<HttpResponseOk<types::ConnectionList>, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        connections::search(ctx, &caller, query.into_inner(), body.into_inner()).await
    }

    async fn connection_view(
        rqctx: RequestContext<Context>,
        path: Path<types::ConnectionViewPath>,
    ) -> Result<HttpResponseOk<types::Connection>, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        connections::view(ctx, &caller, path.into_inner().connection_id).await
    }

    async fn user_list(
        rqctx: RequestContext<Context>,
        query: Query<types::UserListQuery>,
    ) -> Result<HttpResponseOk<types::UserList>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        users::list(ctx, query.into_inner()).await
    }

    async fn user_create(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::UserRequest>,
    ) -> Result<HttpResponseHeaders<HttpResponseCreated<types::CreatedId>, LocationHeader>, ApiError>
    {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let record = users::create(ctx, &caller, body.into_inner()).await?;
        Ok(created(locations::user_create(record.id), types::CreatedId { id: record.id }))
    }

    async fn user_view(
        rqctx: RequestContext<Context>,
        path: Path<types::UserViewPath>,
    ) -> Result<HttpResponseOk<types::User>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        users::view(ctx, path.into_inner().user_id).await
    }

    async fn user_tags_list(
        rqctx: RequestContext<Context>,
        query: Query<types::UserTagsListQuery>,
    ) -> Result<HttpResponseOk<Vec<String>>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        users::tags_list(ctx, query.into_inner()).await
    }

    async fn user_update(
        rqctx: RequestContext<Context>,
        path: Path<types::UserUpdatePath>,
        body: TypedBody<types::UserRequest>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        users::update(ctx, &caller, path.into_inner().user_id, body.into_inner()).await
    }

    async fn user_delete(
        rqctx: RequestContext<Context>,
        path: Path<types::UserDeletePath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        users::delete(ctx, path.into_inner().user_id).await
    }

    async fn user_password_set(
        rqctx: RequestContext<Context>,
        path: Path<types::UserPasswordSetPath>,
        body: TypedBody<types::Password>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        users::password_set(ctx, &caller, path.into_inner().user_id, body.into_inner()).await
    }

    async fn service_options_view(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::ServiceOptions>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        settings::service_options_view(ctx).await
    }

    async fn webauthn_credential_list(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialListPath>,
        query: Query<types::WebauthnCredentialListQuery>,
    ) -> Result<HttpResponseOk<types::WebauthnCredentialList>, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        webauthn::list(ctx, &caller, path.into_inner().user_id, query.into_inner()).await
    }

    async fn webauthn_credential_view(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialViewPath>,
    ) -> Result<HttpResponseOk<types::WebauthnCredential>, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let path = path.into_inner();
        webauthn::view(ctx, &caller, path.user_id, path.id).await
    }

    async fn webauthn_credential_update(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialUpdatePath>,
        body: TypedBody<types::WebauthnCredentialUpdate>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let path = path.into_inner();
        webauthn::update(ctx, &caller, path.user_id, path.id, body.into_inner()).await
    }

    async fn webauthn_credential_delete(
        rqctx: RequestContext<Context>,
        path: Path<types::WebauthnCredentialDeletePath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        let path = path.into_inner();
        webauthn::delete(ctx, &caller, path.user_id, path.id).await
    }

    async fn user_store_status_view(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::ServiceStatus>, ApiError> {
        status::view(&rqctx).await
    }

    async fn extender_status_view(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::ServiceStatus>, ApiError> {
        status::view(&rqctx).await
    }

    async fn connection_manager_status_view(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::ServiceStatus>, ApiError> {
        status::view(&rqctx).await
    }

    async fn host_store_status_view(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::ServiceStatus>, ApiError> {
        status::view(&rqctx).await
    }

    async fn role_store_status_view(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::ServiceStatus>, ApiError> {
        status::view(&rqctx).await
    }

    async fn auth_status_view(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::ServiceStatus>, ApiError> {
        status::view(&rqctx).await
    }

    async fn state_export(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::Fixtures>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        test_control::state_export(ctx).await
    }

    async fn state_reset(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::StateReset>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        test_control::state_reset(ctx, &caller, body.into_inner().to).await
    }

    async fn fixtures_load(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::Fixtures>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        test_control::fixtures_load(ctx, &caller, body.into_inner()).await
    }

    async fn connection_create(
        rqctx: RequestContext<Context>,
        body: TypedBody<types::ConnectionCreate>,
    ) -> Result<HttpResponseOk<types::Connection>, ApiError> {
        let ctx = rqctx.context();
        let caller = ctx.begin(&rqctx).await?;
        connections::create(ctx, &caller, body.into_inner()).await
    }

    async fn journal_list(
        rqctx: RequestContext<Context>,
        query: Query<types::JournalListQuery>,
    ) -> Result<HttpResponseOk<types::JournalList>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        Ok(journal::list(&ctx.journal, query.into_inner()))
    }

    async fn journal_clear(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        ctx.journal.clear();
        Ok(HttpResponseOkEmpty)
    }

    async fn listener_traffic_list(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::ListenerTrafficList>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        Ok(listeners::traffic_list(ctx))
    }

    async fn fault_list(
        rqctx: RequestContext<Context>,
    ) -> Result<HttpResponseOk<types::FaultList>, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        Ok(test_control::fault_list(ctx))
    }

    async fn fault_set(
        rqctx: RequestContext<Context>,
        path: Path<types::FaultSetPath>,
        body: TypedBody<types::Fault>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        test_control::fault_set(ctx, path.into_inner().operation_id, body.into_inner())
    }

    async fn fault_clear(
        rqctx: RequestContext<Context>,
        path: Path<types::FaultClearPath>,
    ) -> Result<HttpResponseOkEmpty, ApiError> {
        let ctx = rqctx.context();
        ctx.begin(&rqctx).await?;
        ctx.faults.clear(&path.into_inner().operation_id);
        Ok(HttpResponseOkEmpty)
    }
}
