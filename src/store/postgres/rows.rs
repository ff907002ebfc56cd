//! What the engine's SQL reads and writes, in Rust: rows decoded into records, records
//! encoded into columns, the statements used by more than one call, and the errors a write
//! can meet.

use std::collections::BTreeSet;

use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use uuid::Uuid;

use super::pg_error;
use crate::store::engine::DocumentKind;
use crate::store::{PasswordHash, StoreError, UserRecord};

pub(super) fn kind_name(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Secret => "secret",
        DocumentKind::Setting => "setting",
    }
}

/// A user record from its stored JSON and password.
fn user_record(json: &str, password: Option<&str>) -> Result<UserRecord, StoreError> {
    let mut user: UserRecord = serde_json::from_str(json)?;
    user.password = password.map(serde_json::from_str).transpose()?;
    Ok(user)
}

/// The user of a row `(json, password)`.
pub(super) fn user_of(row: &Row) -> Result<UserRecord, StoreError> {
    user_record(row.get(0), row.get(1))
}

pub(super) fn password_json(password: Option<&PasswordHash>) -> Result<Option<String>, StoreError> {
    Ok(password.map(serde_json::to_string).transpose()?)
}

/// The records of rows whose first column is a record's JSON.
pub(super) fn records<T: serde::de::DeserializeOwned>(rows: &[Row]) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|row| Ok(serde_json::from_str(row.get(0))?)).collect()
}

/// A user's distinct tags as stored (UTF-8), in byte order.
pub(super) fn tag_set(user: &UserRecord) -> Vec<&[u8]> {
    let tags: BTreeSet<&[u8]> = user.profile.tags.iter().map(String::as_bytes).collect();
    tags.into_iter().collect()
}

/// The error of a user write that `e` refused: a unique key in use is `Duplicate`.
pub(super) fn user_write_error(e: tokio_postgres::Error, user: &UserRecord) -> StoreError {
    let constraint = e.as_db_error().and_then(|db| db.constraint());
    match (e.code(), constraint) {
        (Some(&SqlState::UNIQUE_VIOLATION), Some("users_username_unique")) => {
            StoreError::Duplicate { property: "username", value: user.profile.username.clone() }
        }
        (Some(&SqlState::UNIQUE_VIOLATION), Some("users_pkey")) => {
            StoreError::Duplicate { property: "id", value: user.id.to_string() }
        }
        _ => pg_error(e),
    }
}

pub(super) fn not_found(kind: &'static str, id: Uuid) -> StoreError {
    StoreError::NotFound { kind, id: id.to_string() }
}

pub(super) const USER_INSERT: &str = "
    WITH inserted AS (
        INSERT INTO users (id, username_key, json, password) VALUES ($1, $2, $3, $4)
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    ), tags AS (
        INSERT INTO user_tags (user_id, tag) SELECT id, tag FROM inserted, unnest($5::bytea[]) tag
    )
    SELECT count(*) FROM inserted";

/// A page of all users and, from the same snapshot, their count (a row with a null `json`
/// when the page is empty).
pub(super) const USER_PAGE: &str = "
    SELECT n.count, page.json
    FROM (SELECT count(*) AS count FROM users) n
    LEFT JOIN LATERAL (SELECT id, json FROM users ORDER BY id OFFSET $1 LIMIT $2) page ON true
    ORDER BY page.id";
