//! The server's own secrets, kept in `meta` so they survive a restart: the token signing key,
//! the admin's id, and the hashes of the admin password and the OAuth client secret. A secret
//! the configuration leaves out is generated at first start; its plain text is handed back that
//! one time (to be shown to whoever started the server) and only its hash is kept.

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::{get_json, Store, StoreError};
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::password;

/// Server secrets live in `meta` under this prefix.
pub(super) const SECRET_PREFIX: &str = "auth.";

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
    /// The secrets for `config`: configured ones win, then those kept from an earlier start;
    /// the rest are generated now and kept.
    pub fn bootstrap_secrets(
        &self,
        config: &AuthConfig,
        clock: &Clock,
    ) -> Result<Secrets, StoreError> {
        let signing_key = match &config.signing_key {
            Some(key) => key.clone(),
            None => self.kept_secret("signing_key", || clock.new_secret())?,
        };
        let (oauth_client_secret_hash, generated_oauth_client_secret) = self.secret_hash(
            "oauth_client_secret_hash",
            config.oauth_client.secret.as_deref(),
            clock,
        )?;
        let (admin_password_hash, generated_admin_password) =
            self.secret_hash("admin_password_hash", config.admin.password.as_deref(), clock)?;
        Ok(Secrets {
            signing_key,
            admin_id: self.kept_secret("admin_id", || clock.new_id())?,
            admin_password_hash,
            oauth_client_secret_hash,
            generated_admin_password,
            generated_oauth_client_secret,
        })
    }

    /// The server secret `name` (a signing key, a password hash...), if one was kept.
    pub fn secret<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        get_json(&self.trees()?.meta, format!("{SECRET_PREFIX}{name}").as_bytes())
    }

    /// Keeps the server secret `name`, durably.
    pub fn secret_put<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        self.writable()?
            .meta
            .insert(format!("{SECRET_PREFIX}{name}").as_bytes(), serde_json::to_vec(value)?)?;
        self.flush()
    }

    /// The value kept under `name`, or a new one from `make`, kept from now on.
    fn kept_secret<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        make: impl FnOnce() -> T,
    ) -> Result<T, StoreError> {
        if let Some(value) = self.secret(name)? {
            return Ok(value);
        }
        let value = make();
        self.secret_put(name, &value)?;
        Ok(value)
    }

    /// The hash of a configured secret, else the hash kept under `name`, else the hash of a
    /// secret generated now (kept under `name`) together with that secret in plain text.
    fn secret_hash(
        &self,
        name: &str,
        configured: Option<&str>,
        clock: &Clock,
    ) -> Result<(String, Option<String>), StoreError> {
        if let Some(secret) = configured {
            return Ok((password::hash(secret), None));
        }
        if let Some(hash) = self.secret::<String>(name)? {
            return Ok((hash, None));
        }
        let secret = clock.new_secret();
        let hash = password::hash(&secret);
        self.secret_put(name, &hash)?;
        Ok((hash, Some(secret)))
    }
}
