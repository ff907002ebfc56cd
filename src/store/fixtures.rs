//! The whole state as one JSON document, both ways.
//!
//! Loading (`--fixtures FILE` at start, `--import FILE`) is the only way to create WebAuthn
//! credentials, which have no create operation in the API, and one of two to create
//! connections (the other is the test-control API). It is idempotent: a
//! record whose id is already stored is left as it is. Timestamps and authors left out default
//! to the time and identity of loading, and a user may carry a plain-text `password` (hashed
//! on load) instead of a `password_hash`.
//!
//! Both work the same on either engine, so an export of a sled store imports into PostgreSQL
//! and back.
//!
//! Exporting (`--export FILE`) writes every record with all its fields, the server's secrets
//! included, so importing the export into an empty store restores the state exactly.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::connections::FixtureConnection;
use super::engine::DocumentKind;
use super::listeners::DEFAULT_KEEP_OPEN_SEC;
use super::{
    Authorship, CredentialRecord, ListenerFields, ListenerRecord, PasswordHash, Stamp, Store,
    StoreError, UserProfile, UserRecord,
};

/// The fixtures (and export) document. Every part is optional.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    #[serde(default)]
    pub users: Vec<FixtureUser>,
    #[serde(default)]
    pub webauthn_credentials: Vec<FixtureCredential>,
    #[serde(default)]
    pub connections: Vec<FixtureConnection>,
    #[serde(default)]
    pub listeners: Vec<FixtureListener>,
    /// Settings documents by name, e.g. `default_service_options`.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
    /// The server's own secrets (token signing key, admin and OAuth client hashes...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, serde_json::Value>,
}

/// When and by whom a record was made and last changed ([`Authorship`]), any of it left out.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FixtureStamps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<Uuid>,
}

impl FixtureStamps {
    /// The record's authorship: what is given, the rest from `stamp`.
    pub(super) fn or(&self, stamp: Stamp) -> Authorship {
        let made = Authorship::new(stamp);
        Authorship {
            created: self.created.unwrap_or(made.created),
            updated: self.updated.unwrap_or(made.updated),
            author: self.author.unwrap_or(made.author),
            updated_by: self.updated_by.unwrap_or(made.updated_by),
        }
    }
}

impl From<Authorship> for FixtureStamps {
    fn from(a: Authorship) -> Self {
        Self {
            created: Some(a.created),
            updated: Some(a.updated),
            author: Some(a.author),
            updated_by: Some(a.updated_by),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FixtureUser {
    pub id: Uuid,
    #[serde(flatten)]
    pub profile: UserProfile,
    /// A plain-text password, hashed on load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// An argon2id hash (what an export carries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_created: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub stamps: FixtureStamps,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FixtureCredential {
    pub id: Uuid,
    pub user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub stamps: FixtureStamps,
}

/// A listener, open until `closes_at` or else `keep_open_sec` (default 300) from loading;
/// without an `address`, the server binds it a free port when it opens it.
#[derive(Debug, Serialize, Deserialize)]
pub struct FixtureListener {
    pub id: Uuid,
    #[serde(flatten)]
    pub fields: ListenerFields,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_open_sec: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub stamps: FixtureStamps,
}

impl Fixtures {
    /// Turns each user's plain-text `password` into a `password_hash` by `hash` (a
    /// `password_hash` given too wins), so that loading does no hashing.
    pub fn hash_passwords(mut self, hash: impl Fn(&str) -> String) -> Self {
        for user in &mut self.users {
            if let Some(password) = user.password.take() {
                user.password_hash.get_or_insert_with(|| hash(&password));
            }
        }
        self
    }

    /// Reads a fixtures (or export) file; the error says which file and what is wrong.
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading fixtures {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("parsing fixtures {}: {e}", path.display()))
    }
}

impl Store {
    /// Loads `fixtures`, whose passwords must be hashed already ([`Fixtures::hash_passwords`]:
    /// a plain-text one left is not stored).
    pub async fn load_fixtures(&self, fixtures: Fixtures, stamp: Stamp) -> Result<(), StoreError> {
        for (kind, documents) in
            [(DocumentKind::Secret, fixtures.secrets), (DocumentKind::Setting, fixtures.settings)]
        {
            for (name, value) in documents {
                self.engine.document_insert_absent(kind, &name, value).await?;
            }
        }
        for user in fixtures.users {
            self.user_insert_absent(UserRecord {
                id: user.id,
                authorship: user.stamps.or(stamp),
                profile: user.profile,
                password: user.password_hash.map(|hash| PasswordHash {
                    hash,
                    created: user.password_created.unwrap_or(stamp.now),
                }),
            })
            .await?;
        }
        for c in fixtures.webauthn_credentials {
            let record = CredentialRecord {
                id: c.id,
                user_id: c.user_id,
                credential_id: c.credential_id,
                name: c.name,
                comment: c.comment,
                last_used: c.last_used,
                authorship: c.stamps.or(stamp),
            };
            self.engine.credential_insert_absent(record).await?;
        }
        for connection in fixtures.connections {
            self.engine.connection_insert_absent(connection.record(stamp)).await?;
        }
        for l in fixtures.listeners {
            let keep_open = Duration::seconds(l.keep_open_sec.unwrap_or(DEFAULT_KEEP_OPEN_SEC));
            let record = ListenerRecord {
                id: l.id,
                fields: l.fields,
                address: l.address.unwrap_or_default(),
                closes_at: l.closes_at.unwrap_or(stamp.now + keep_open),
                authorship: l.stamps.or(stamp),
            };
            self.listener_insert(record, stamp.now).await?;
        }
        Ok(())
    }

    /// The whole state, in the fixtures format.
    pub async fn export(&self) -> Result<Fixtures, StoreError> {
        let users = self
            .engine
            .users()
            .await?
            .into_iter()
            .map(|u| FixtureUser {
                id: u.id,
                profile: u.profile,
                password: None,
                password_created: u.password.as_ref().map(|p| p.created),
                password_hash: u.password.map(|p| p.hash),
                stamps: u.authorship.into(),
            })
            .collect();
        let webauthn_credentials = self
            .engine
            .credentials()
            .await?
            .into_iter()
            .map(|c| FixtureCredential {
                id: c.id,
                user_id: c.user_id,
                credential_id: c.credential_id,
                name: c.name,
                comment: c.comment,
                last_used: c.last_used,
                stamps: c.authorship.into(),
            })
            .collect();
        let listeners = self
            .engine
            .listeners()
            .await?
            .into_iter()
            .map(|l| FixtureListener {
                id: l.id,
                fields: l.fields,
                address: Some(l.address).filter(|a| !a.is_empty()),
                keep_open_sec: None,
                closes_at: Some(l.closes_at),
                stamps: l.authorship.into(),
            })
            .collect();
        Ok(Fixtures {
            users,
            webauthn_credentials,
            connections: self.connections().await?.into_iter().map(Into::into).collect(),
            listeners,
            settings: self.engine.documents(DocumentKind::Setting).await?,
            secrets: self.engine.documents(DocumentKind::Secret).await?,
        })
    }
}
