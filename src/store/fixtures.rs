//! Initial state from a JSON document (`--fixtures FILE`): the only way to create connections
//! and WebAuthn credentials, which have no create operation in the API.
//!
//! Loading is idempotent: a record whose id is already stored is left as it is.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::users::PasswordHash;
use super::{
    ConnectionRecord, CredentialRecord, ListenerFields, Stamp, Store, StoreError, UserProfile,
    UserRecord,
};

/// The fixtures document. Every list is optional.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    #[serde(default)]
    pub users: Vec<FixtureUser>,
    #[serde(default)]
    pub webauthn_credentials: Vec<FixtureCredential>,
    #[serde(default)]
    pub connections: Vec<ConnectionRecord>,
    #[serde(default)]
    pub listeners: Vec<FixtureListener>,
    /// Settings documents by name, e.g. `default_service_options`.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// A user: its id, the profile fields of the API and, optionally, a plain-text password
/// (hashed on load, never stored as given).
#[derive(Debug, Serialize, Deserialize)]
pub struct FixtureUser {
    pub id: Uuid,
    #[serde(flatten)]
    pub profile: UserProfile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default)]
    pub password_change_required: bool,
}

/// A WebAuthn credential; timestamps and authors default to the time and identity of loading.
#[derive(Debug, Serialize, Deserialize)]
pub struct FixtureCredential {
    pub id: Uuid,
    pub user_id: Uuid,
    #[serde(default)]
    pub credential_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub last_used: Option<DateTime<Utc>>,
}

/// A listener, open for `keep_open_sec` from loading; `address` defaults to a free port.
#[derive(Debug, Serialize, Deserialize)]
pub struct FixtureListener {
    pub id: Uuid,
    #[serde(flatten)]
    pub fields: ListenerFields,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub keep_open_sec: Option<i64>,
}

impl Store {
    /// Loads `fixtures`; `hash` turns a plain-text password into its stored hash.
    pub fn load_fixtures(
        &self,
        fixtures: Fixtures,
        hash: impl Fn(&str) -> String,
        stamp: Stamp,
    ) -> Result<(), StoreError> {
        for user in fixtures.users {
            let password =
                user.password.map(|p| PasswordHash { hash: hash(&p), created: stamp.now });
            self.user_insert_absent(&UserRecord {
                id: user.id,
                created: stamp.now,
                updated: stamp.now,
                author: stamp.actor,
                updated_by: stamp.actor,
                profile: user.profile,
                password_created: password.as_ref().map(|p| p.created),
                password_hash: password.map(|p| p.hash),
                password_change_required: user.password_change_required,
            })?;
        }
        for c in fixtures.webauthn_credentials {
            self.credential_insert_absent(&CredentialRecord {
                id: c.id,
                user_id: c.user_id,
                credential_id: c.credential_id,
                name: c.name,
                comment: c.comment,
                last_used: c.last_used,
                created: stamp.now,
                author: stamp.actor,
                updated: stamp.now,
                updated_by: stamp.actor,
            })?;
        }
        for connection in fixtures.connections {
            let bytes = serde_json::to_vec(&connection)?;
            self.connections
                .compare_and_swap(connection.id.as_bytes(), None::<&[u8]>, Some(bytes))?
                .ok();
        }
        for l in fixtures.listeners {
            self.listener_insert(l.id, l.fields, l.address, l.keep_open_sec, stamp)?;
        }
        for (name, document) in fixtures.settings {
            if self.setting::<serde_json::Value>(&name)?.is_none() {
                self.setting_put(&name, &document)?;
            }
        }
        self.flush()
    }
}
