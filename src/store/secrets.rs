//! The server's own secrets, kept in the store so they survive a restart and are shared by
//! every server on one database: the token signing key, the admin's id, and the hashes of the
//! admin password and the OAuth client secret. A secret the configuration leaves out is
//! generated at first start; its plain text is handed back that one time (to be shown to
//! whoever started the server) and only its hash is kept. Of several servers starting together
//! on one database, the first to store a secret wins and the others take it
//! ([`Engine::document_insert_absent`]); a server whose generated secret lost shows none.

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::engine::DocumentKind;
#[cfg(doc)]
use super::engine::Engine;
use super::{Store, StoreError};
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::password;

/// The secrets authentication starts from, as configured or as kept from an earlier start.
#[derive(Debug)]
pub struct Secrets {
    pub signing_key: String,
    pub admin_id: Uuid,
    pub admin_password_hash: String,
    pub oauth_client_secret_hash: String,
    /// The admin password, when it was generated just now (shown only then).
    pub generated_admin_password: Option<String>,
    /// The OAuth client secret, when it was generated just now (shown only then).
    pub generated_oauth_client_secret: Option<String>,
}

impl Store {
    /// The secrets for `config`: configured ones win, then those kept from an earlier start
    /// (or by another server on the database); the rest are generated now and kept.
    pub async fn bootstrap_secrets(
        &self,
        config: &AuthConfig,
        clock: &Clock,
    ) -> Result<Secrets, StoreError> {
        let signing_key = match &config.signing_key {
            Some(key) => key.clone(),
            None => self.kept_secret("signing_key", || clock.new_secret()).await?.0,
        };
        let (oauth_client_secret_hash, generated_oauth_client_secret) = self
            .secret_hash("oauth_client_secret_hash", config.oauth_client.secret.as_deref(), clock)
            .await?;
        let (admin_password_hash, generated_admin_password) = self
            .secret_hash("admin_password_hash", config.admin.password.as_deref(), clock)
            .await?;
        Ok(Secrets {
            signing_key,
            admin_id: self.kept_secret("admin_id", || clock.new_id()).await?.0,
            admin_password_hash,
            oauth_client_secret_hash,
            generated_admin_password,
            generated_oauth_client_secret,
        })
    }

    /// The server secret `name` (a signing key, a password hash...), if one was kept.
    pub async fn secret<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let document = self.engine.document(DocumentKind::Secret, name).await?;
        Ok(document.map(serde_json::from_value).transpose()?)
    }

    /// The value kept under `name`, or a new one from `make`, kept from now on (unless
    /// another server kept one first: then that one); says whether `make`'s value was kept.
    async fn kept_secret<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        make: impl FnOnce() -> T,
    ) -> Result<(T, bool), StoreError> {
        if let Some(value) = self.secret(name).await? {
            return Ok((value, false));
        }
        let made = serde_json::to_value(make())?;
        let kept = self.engine.document_insert_absent(DocumentKind::Secret, name, made.clone());
        let kept = kept.await?;
        Ok((serde_json::from_value(kept.clone())?, kept == made))
    }

    /// The hash of a configured secret, else the hash kept under `name`, else the hash of a
    /// secret generated now (kept under `name`) together with that secret in plain text.
    async fn secret_hash(
        &self,
        name: &str,
        configured: Option<&str>,
        clock: &Clock,
    ) -> Result<(String, Option<String>), StoreError> {
        if let Some(secret) = configured {
            return Ok((password::hash(secret), None));
        }
        let mut generated = None;
        let (hash, made) = self
            .kept_secret(name, || {
                let secret = clock.new_secret();
                let hash = password::hash(&secret);
                generated = Some(secret);
                hash
            })
            .await?;
        Ok((hash, generated.filter(|_| made)))
    }
}
