//! The test-control API's state: whether it is on, what "reset to fixtures" means, and the
//! faults injected per operation. Its operations are in the spec (tag `test-control`) and
//! adapted in `http/mod.rs` like every other; off by default, they answer 404 then.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use dropshot::ErrorStatusCode;

use crate::api::types::{ErrorCode, Fault};
use crate::api::{ApiError, OPERATIONS};

/// Present when the server was started with `--test-control`.
#[derive(Debug, Clone, Default)]
pub struct TestControl {
    /// The fixtures file the server started with: what `reset` to fixtures loads.
    pub fixtures: Option<PathBuf>,
}

/// Whether `operation_id` belongs to the test-control API: the spec's `test-control` tag decides.
pub fn is_test_control(operation_id: &str) -> bool {
    OPERATIONS.iter().any(|o| o.operation_id == operation_id && o.tag == "test-control")
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
