//! The test-control API: whether it is on, what "reset to fixtures" means, the faults injected
//! per operation, and its operations on the store (export, reset, load: each leaves the
//! listening sockets matching the store) and on the faults. Its
//! operations are in the spec (tag `test-control`); off by default, they answer 404 then (see
//! `Context::begin`). The journal's operations are in `journal`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use dropshot::ErrorStatusCode;

use super::auth::Caller;
use super::convert::{convert, reshape};
use super::listeners::reopen_listeners;
use super::Context;
use crate::api::types::{self, ErrorCode, Fault};
use crate::api::{ApiError, HttpResponseOk, HttpResponseOkEmpty, OPERATIONS};
use crate::password;
use crate::store::Fixtures;

/// Present when the server was started with `--test-control`.
#[derive(Debug, Clone, Default)]
pub struct TestControl {
    /// The fixtures file the server started with: what `reset` to fixtures loads.
    pub fixtures: Option<PathBuf>,
}

/// Whether `operation_id` belongs to the test-control API: the spec's `test-control` tag decides.
/// Asked on every request while the API is off, so the answer is a set lookup, not a scan of
/// every operation.
pub fn is_test_control(operation_id: &str) -> bool {
    static TEST_CONTROL: LazyLock<foldhash::HashSet<&str>> = LazyLock::new(|| {
        let ops = OPERATIONS.iter().filter(|o| o.tag == "test-control");
        ops.map(|o| o.operation_id).collect()
    });
    TEST_CONTROL.contains(operation_id)
}

/// The faults in force, by operationId.
#[derive(Debug, Default)]
pub struct Faults(Mutex<BTreeMap<String, Fault>>);

impl Faults {
    pub fn set(&self, operation_id: String, fault: Fault) {
        self.lock().insert(operation_id, fault);
    }

    pub fn clear(&self, operation_id: &str) {
        self.lock().remove(operation_id);
    }

    pub fn list(&self) -> Vec<(String, Fault)> {
        self.lock().iter().map(|(op, f)| (op.clone(), f.clone())).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Fault>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies the fault of `operation_id`, if there is one: waits its latency, then answers
    /// its status. A fault with a count is used up call by call.
    pub async fn apply(&self, operation_id: &str) -> Result<(), ApiError> {
        let fault = {
            let mut faults = self.lock();
            let Some(fault) = faults.get_mut(operation_id) else {
                return Ok(());
            };
            let applied = fault.clone();
            match fault.count.map(|c| c.get()) {
                Some(1) => {
                    faults.remove(operation_id);
                }
                Some(n) => fault.count = std::num::NonZeroU64::new(n - 1),
                None => {}
            }
            applied
        };
        if let Some(ms) = fault.latency_ms {
            let ms = u64::try_from(ms).unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        match fault.status {
            None => Ok(()),
            Some(status) => {
                let status = u16::try_from(status)
                    .ok()
                    .and_then(|s| ErrorStatusCode::from_u16(s).ok())
                    .unwrap_or(ErrorStatusCode::INTERNAL_SERVER_ERROR);
                let message = fault
                    .error_message
                    .unwrap_or_else(|| format!("fault injected into {operation_id}"));
                let code = fault.error_code.unwrap_or(ErrorCode::GeneralError);
                Err(ApiError::new(status, code, message, None))
            }
        }
    }
}

/// `fixtures` with their passwords hashed, off the async workers (argon2 takes a while per
/// password).
async fn hashed(fixtures: Fixtures) -> Result<Fixtures, ApiError> {
    let hashing = tokio::task::spawn_blocking(move || fixtures.hash_passwords(password::hash));
    hashing.await.map_err(|e| ApiError::internal(format!("hashing fixture passwords: {e}")))
}

/// The whole state of the store, in the fixtures format.
pub async fn state_export(ctx: &Context) -> Result<HttpResponseOk<types::Fixtures>, ApiError> {
    Ok(HttpResponseOk::Value(convert(&ctx.store.export().await?)?))
}

/// Empties the store, then loads the fixtures the server started with if asked to.
pub async fn state_reset(
    ctx: &Context,
    caller: &Caller,
    to: types::StateResetTo,
) -> Result<HttpResponseOkEmpty, ApiError> {
    let fixtures = match to {
        types::StateResetTo::Empty => None,
        types::StateResetTo::Fixtures => ctx.test_control.as_ref().and_then(|t| t.fixtures.clone()),
    };
    let fixtures =
        fixtures.map(|path| Fixtures::read(&path)).transpose().map_err(ApiError::internal)?;
    let fixtures = match fixtures {
        Some(fixtures) => Some(hashed(fixtures).await?),
        None => None,
    };
    ctx.store.clear().await?;
    if let Some(fixtures) = fixtures {
        ctx.store.load_fixtures(fixtures, ctx.stamp(caller)).await?;
    }
    ctx.auth.users_replaced();
    reopen_listeners(ctx).await?;
    Ok(HttpResponseOkEmpty)
}

/// Loads more fixtures; records whose id is already stored are kept.
pub async fn fixtures_load(
    ctx: &Context,
    caller: &Caller,
    body: types::Fixtures,
) -> Result<HttpResponseOkEmpty, ApiError> {
    // The spec's schema is looser than the store's, so a mismatch is the client's.
    let fixtures: Fixtures = reshape(&body)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidRequestData, e.to_string(), None))?;
    ctx.store.load_fixtures(hashed(fixtures).await?, ctx.stamp(caller)).await?;
    ctx.auth.users_replaced();
    reopen_listeners(ctx).await?;
    Ok(HttpResponseOkEmpty)
}

pub fn fault_list(ctx: &Context) -> HttpResponseOk<types::FaultList> {
    let items = ctx
        .faults
        .list()
        .into_iter()
        .map(|(operation_id, fault)| types::FaultEntry { operation_id, fault })
        .collect();
    HttpResponseOk::Value(types::FaultList { items })
}

/// Injects `fault` into the operation `operation_id` of the spec.
pub fn fault_set(
    ctx: &Context,
    operation_id: String,
    fault: Fault,
) -> Result<HttpResponseOkEmpty, ApiError> {
    if !OPERATIONS.iter().any(|o| o.operation_id == operation_id) {
        return Err(ApiError::not_found(format!("no operation {operation_id}")));
    }
    validate(&fault)?;
    ctx.faults.set(operation_id, fault);
    Ok(HttpResponseOkEmpty)
}

/// A fault must do something, and within bounds the schema does not state.
fn validate(fault: &Fault) -> Result<(), ApiError> {
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
    Ok(())
}
