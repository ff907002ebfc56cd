//! Small conversions between the API's values and the store's, shared by the operations.
//!
//! API types (generated from the spec) and store records share their JSON field names, so one
//! conversion, [`convert`], maps between them through serde.

use dropshot::{HttpResponseCreated, HttpResponseHeaders};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{ApiError, LocationHeader, SortDir};
use crate::store::{Page, StoreError};

/// Re-reads `value` as a `B` with the same JSON field names.
pub fn reshape<A: Serialize, B: DeserializeOwned>(value: &A) -> Result<B, serde_json::Error> {
    serde_json::to_value(value).and_then(serde_json::from_value)
}

/// Maps between an API type and a store record with the same JSON field names; they are made
/// to agree, so a mismatch is the server's fault.
pub fn convert<A: Serialize, B: DeserializeOwned>(value: &A) -> Result<B, ApiError> {
    reshape(value).map_err(|e| ApiError::from(StoreError::Corrupt(e)))
}

pub fn page(offset: u32, limit: u32) -> Page {
    Page { offset: offset.into(), limit: limit.into() }
}

/// A duration in whole seconds from the API (the spec bounds it) for the store.
pub fn seconds(value: Option<std::num::NonZeroU64>) -> Option<i64> {
    value.map(|s| i64::try_from(s.get()).unwrap_or(i64::MAX))
}

pub fn descending(sortdir: Option<SortDir>) -> bool {
    sortdir == Some(SortDir::Desc)
}

/// A listing's `count` as the spec types it.
pub fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `201 Created` answer with its `Location`.
pub fn created<T: schemars::JsonSchema + Serialize + Send + Sync + 'static>(
    location: String,
    body: T,
) -> HttpResponseHeaders<HttpResponseCreated<T>, LocationHeader> {
    HttpResponseHeaders::new(HttpResponseCreated(body), LocationHeader { location })
}
