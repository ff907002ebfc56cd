//! A spec-first, stateful server for part of the PrivX REST API.
pub mod api;
pub mod error;
pub mod store;
