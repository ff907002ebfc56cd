//! Where store errors meet HTTP: the one mapping of each [`StoreError`] to an API answer. The
//! store's errors say what went wrong in its own terms; only here do they get a status and a
//! PrivX error code.

use dropshot::ErrorStatusCode;

use crate::api::types::ErrorCode;
use crate::api::{ApiError, OAuthError};
use crate::store::StoreError;

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { kind, id } => Self::not_found(format!("{kind} {id} not found")),
            StoreError::Duplicate { property, value } => Self::bad_request(
                ErrorCode::ValueDuplicate,
                format!("{property} {value:?} is already in use"),
                Some(property),
            ),
            StoreError::Invalid { property, message } => {
                Self::bad_request(ErrorCode::InvalidRequestData, message, Some(property))
            }
            // A full disk is 507 whether the write met it or a flush before it did.
            _ if error.no_space() => Self::new(
                ErrorStatusCode::INSUFFICIENT_STORAGE,
                ErrorCode::DatabaseError,
                error.to_string(),
                None,
            ),
            StoreError::Unavailable(_) | StoreError::Unreachable(_) => Self::new(
                ErrorStatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::DatabaseError,
                error.to_string(),
                None,
            ),
            StoreError::Storage(_)
            | StoreError::Database(_)
            | StoreError::Corrupt(_)
            | StoreError::InUse { .. }
            | StoreError::LostWrites { .. } => Self::new(
                ErrorStatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::DatabaseError,
                error.to_string(),
                None,
            ),
        }
    }
}

/// The token endpoint only reads the store (a user's password), so any store error there is
/// the server's fault.
impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        Self::server_error(error.to_string())
    }
}
