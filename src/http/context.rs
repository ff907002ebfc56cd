//! What every handler can reach, and the steps every operation shares: [`Context::begin`]
//! (gate, fault, caller) and, for writes, [`Context::stamp`] (who and when). The store's
//! engine decides where its work runs and returns from a write once it is durable.

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
use crate::store::{Stamp, Store};

/// What every handler can reach.
pub struct Context {
    pub store: Store,
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
        let now = self.clock.now_millis().div_euclid(1000);
        let caller = self.auth.authorize(&self.store, headers, operation_id, now).await?;
        super::journal::note_subject(caller.subject);
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

    /// The stamp of a write by `caller`, now.
    pub fn stamp(&self, caller: &Caller) -> Stamp {
        Stamp { actor: caller.subject, now: self.now() }
    }
}
