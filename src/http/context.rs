//! What every handler can reach, and the two steps every operation shares: [`Context::begin`]
//! (gate, fault, caller) and, for writes, [`Context::write`] (stamp, durability). Store work
//! that can block runs off the async workers ([`Context::off_worker`]), so that one big
//! request never holds up the others.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dropshot::RequestContext;

use super::auth::{Auth, Caller};
use super::journal::Journal;
use super::test_control::{self, Faults, TestControl};
use crate::api::{ApiError, RequestLimits};
use crate::clock::Clock;
use crate::relay::Relays;
use crate::store::{Stamp, Store, StoreError};

/// What every handler can reach.
pub struct Context {
    pub store: Arc<Store>,
    pub clock: Clock,
    pub auth: Auth,
    pub journal: Arc<Journal>,
    pub faults: Faults,
    /// Present when the test-control API is on.
    pub test_control: Option<TestControl>,
    /// When the server started (the status endpoints' `start_time`).
    pub started: DateTime<Utc>,
    /// How long a terminated connection stays TERMINATING before it is TERMINATED.
    pub termination_delay: chrono::Duration,
    /// The open extender listeners' sockets and relayed connections.
    pub relays: Arc<Relays>,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
    /// How long a shutdown waits for requests in flight before it cuts them off.
    pub shutdown_timeout: Duration,
}

impl RequestLimits for Context {
    fn body_timeout(&self) -> Duration {
        self.body_timeout
    }
}

impl Context {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The start of every operation, named by the operationId the generated router put on the
    /// request: the 404 of a test-control operation while that API is off, the fault injected
    /// into it (test-control API), then the caller, if its bearer token carries a scope the
    /// spec accepts for the operation.
    pub async fn begin(&self, rqctx: &RequestContext<Context>) -> Result<Arc<Caller>, ApiError> {
        self.begin_without_token(rqctx).await?;
        let operation_id = rqctx.endpoint.operation_id.as_str();
        let headers = rqctx.request.headers();
        let caller = self.auth.authorize(&self.store, headers, operation_id, self.now())?;
        self.journal.note_subject(&rqctx.request_id, caller.subject);
        Ok(caller)
    }

    /// The start of an operation that needs no token (the status endpoints): [`Self::begin`]
    /// but the caller, so any `Authorization` header is ignored.
    pub async fn begin_without_token(
        &self,
        rqctx: &RequestContext<Context>,
    ) -> Result<(), ApiError> {
        let operation_id = rqctx.endpoint.operation_id.as_str();
        if self.test_control.is_none() && test_control::is_test_control(operation_id) {
            return Err(ApiError::not_found(
                "the test-control API is off (start the server with --test-control)",
            ));
        }
        self.faults.apply(operation_id).await
    }

    /// Runs a store write stamped with the caller and the time, and makes it durable before
    /// the answer goes out. The write runs on the blocking pool ([`Self::off_worker`]); the
    /// durability wait is async (group commit).
    pub async fn write<T: Send + 'static>(
        &self,
        caller: &Caller,
        write: impl FnOnce(&Store, Stamp) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let stamp = Stamp { actor: caller.subject, now: self.now() };
        let written = self.off_worker(move |store| write(store, stamp)).await?;
        self.store.durable().await?;
        Ok(written)
    }

    /// Runs store work that can block on tokio's blocking pool, so the async workers (which
    /// serve every other request, `/healthz` included) never wait on it: writes (they take the
    /// store's locks exclusively and do work in proportion to the request) and listings that
    /// take the users lock. Point reads stay on the workers: sled reads are in memory and take
    /// no lock. The work runs to its end even if the request is dropped.
    pub async fn off_worker<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = Arc::clone(&self.store);
        let done = tokio::task::spawn_blocking(move || work(&store)).await;
        done.map_err(|e| ApiError::internal(format!("store work failed: {e}")))?.map_err(Into::into)
    }
}
