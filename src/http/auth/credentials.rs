//! Checking credentials: the OAuth client's HTTP Basic secret, the admin's and API clients'
//! secrets and local users' passwords, under the brute-force brake, from memory when
//! remembered and otherwise with argon2 on the password pool.

use std::net::IpAddr;

use base64::Engine;

use super::remembered::Verify;
use super::{scope_list, Auth, Grant, USER_SCOPES};
use crate::api::OAuthError;
use crate::password;
use crate::store::{Store, UserRecord};

impl Auth {
    /// Runs `check`, a credential check for `username` from `address`, under the brute-force
    /// brake: 429 at once while either is locked out (remembered credentials or not). The
    /// check runs first with remembered secrets only; if one was not remembered it runs again
    /// on the password pool, with argon2 (503 at once when the pool's queue is full). Wrong
    /// credentials count towards a lock, right ones reset it.
    pub(super) async fn check_credentials(
        &self,
        username: &str,
        address: IpAddr,
        check: impl Fn(&Verify) -> Result<Grant, OAuthError> + Send + 'static,
    ) -> Result<Grant, OAuthError> {
        let attempt = self.brake.attempt(username, address);
        self.brake.check(&attempt).map_err(OAuthError::throttled)?;
        let first = Verify::remembered();
        let mut checked = check(&first);
        if first.missed() {
            let argon2 = move || check(&Verify::Argon2);
            checked = self.passwords.run(argon2).await.map_err(|_| OAuthError::busy())?;
        }
        match &checked {
            Ok(_) => self.brake.succeeded(&attempt),
            Err(error) if error.is_bad_credentials() => self.brake.failed(&attempt),
            Err(_) => {}
        }
        checked
    }

    /// Whether HTTP Basic `authorization` names the OAuth client with its secret.
    pub(super) fn is_oauth_client(&self, how: &Verify, authorization: Option<&str>) -> bool {
        let Some((id, secret)) = basic_credentials(authorization) else {
            return false;
        };
        let known = id == self.oauth_client_id;
        let hash = if known { &self.oauth_client_hash } else { &self.decoy_hash };
        self.remembered.verify(how, &id, &secret, hash) && known
    }

    /// The admin or API client named `name` (or with that id), if `secret` is its secret.
    pub(super) fn principal(&self, how: &Verify, name: &str, secret: &str) -> Option<Grant> {
        let found = self.principals.iter().find(|p| p.is_named(name));
        let (id, hash) = found
            .map_or((name.to_string(), &self.decoy_hash), |p| (p.id.to_string(), &p.secret_hash));
        let valid = self.remembered.verify(how, &id, secret, hash);
        found.filter(|_| valid).map(Grant::principal)
    }

    /// The client credentials grant: an API client (not the admin) by id or name and secret.
    pub(super) fn client_credentials_grant(
        &self,
        how: &Verify,
        name: &str,
        secret: &str,
    ) -> Result<Grant, OAuthError> {
        if self.principals[0].is_named(name) {
            return Err(OAuthError::invalid_client());
        }
        self.principal(how, name, secret).ok_or_else(OAuthError::invalid_client)
    }

    /// The password grant, on behalf of the OAuth client named by HTTP Basic `authorization`;
    /// `user` is what [`Self::login_user`] found for `username`.
    pub(super) fn password_grant(
        &self,
        how: &Verify,
        authorization: Option<&str>,
        username: &str,
        user: Option<&UserRecord>,
        password_: &str,
    ) -> Result<Grant, OAuthError> {
        if !self.is_oauth_client(how, authorization) {
            return Err(OAuthError::invalid_client());
        }
        self.authenticate(how, username, user, password_)
    }

    /// The local user a login names, read before the credential check (which may run again
    /// on the password pool): none for the admin and API clients, who are not in the store.
    pub(super) async fn login_user(
        &self,
        store: &Store,
        username: &str,
    ) -> Result<Option<UserRecord>, OAuthError> {
        if self.principals.iter().any(|p| p.is_named(username)) {
            return Ok(None);
        }
        Ok(store.user_by_name(username).await?)
    }

    /// The admin, an API client or a local user (`user`, from [`Self::login_user`]), by name
    /// (or id) and password: the check of the password grant and of the authorization-code
    /// flow's login.
    pub(super) fn authenticate(
        &self,
        how: &Verify,
        username: &str,
        user: Option<&UserRecord>,
        password_: &str,
    ) -> Result<Grant, OAuthError> {
        if self.principals.iter().any(|p| p.is_named(username)) {
            return self.principal(how, username, password_).ok_or_else(OAuthError::invalid_grant);
        }
        // Exactly one argon2 run whoever is named, known or not, with a password or not (none
        // when remembered, and only right credentials are).
        let password = user.and_then(|u| u.password.as_ref());
        let hash = password.map_or(self.decoy_hash.as_str(), |p| p.hash.as_str());
        let id = user.map_or(username.to_string(), |u| u.id.to_string());
        let valid = self.remembered.verify(how, &id, password_, hash);
        match (user, password) {
            (Some(user), Some(password)) if valid => Ok(Grant {
                subject: user.id,
                scopes: scope_list(USER_SCOPES),
                password: Some(password::fingerprint(&password.hash)),
            }),
            _ => Err(OAuthError::invalid_grant()),
        }
    }
}

/// The `id:secret` of an HTTP Basic authorization header.
pub(super) fn basic_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    let encoded = authorization?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}
