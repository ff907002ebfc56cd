//! Who is calling, and may they: OAuth2 tokens like PrivX's, and the token endpoint's grants.
//!
//! Tokens are HS256-signed JWTs carrying the caller's id (`sub`), its scopes (`scope`,
//! space-separated) and expiry (`exp`); verifying one needs the key alone, no store read. The
//! key comes from the store's [`Secrets`] (configured, or generated at first start and kept),
//! so tokens survive a restart. A client sends the same token on every call until it expires,
//! so a token is verified (signature and claims) once and remembered: checking the signature
//! and decoding the claims cost more than the rest of a read request together. Which scopes an
//! operation accepts comes from the spec (the generated `OPERATIONS` table): any one of them
//! suffices.
//!
//! Refresh tokens (authorization code and refresh token grants) are JWTs of their own issuer,
//! signed with the same key: they survive a restart, and are not bearer tokens.
//!
//! Principals: the bootstrap admin (scopes `admin` and `user`), local users (`user`), and API
//! clients from the config file (the scopes listed for them). Every password and secret is
//! kept only as an argon2id hash and compared by argon2 (in constant time).

mod code_flow;
mod expiring;
mod token;
mod verified_tokens;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use dropshot::ErrorStatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::types::ErrorCode;
use crate::api::{ApiError, OAuthError, OPERATIONS};
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::password;
use crate::store::{Secrets, Store};
use code_flow::CodeFlows;
pub use code_flow::{login_create, oauth_authorize};
use token::blocking;
pub use token::token_create;
use verified_tokens::VerifiedTokens;

pub const ADMIN_SCOPES: &[&str] = &["admin", "user"];
pub const USER_SCOPES: &[&str] = &["user"];
const ISSUER: &str = "privx-mock";
/// The issuer of refresh tokens, which [`Auth::authorize`] does not accept.
const REFRESH_ISSUER: &str = "privx-mock/refresh";
const REFRESH_LIFETIME_SEC: i64 = 86_400;

/// A principal that is not a local user: the admin and API clients.
#[derive(Debug, Clone)]
struct Principal {
    id: Uuid,
    name: String,
    secret_hash: String,
    scopes: Vec<String>,
}

impl Principal {
    fn is_named(&self, name: &str) -> bool {
        self.name == name || self.id.to_string() == name
    }
}

/// An authenticated caller: what a valid token says.
#[derive(Debug)]
pub struct Caller {
    pub subject: Uuid,
    pub scopes: Vec<String>,
    /// When the token stops being valid (seconds since the epoch).
    expires: i64,
}

impl Caller {
    fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the caller holds any of `scopes`.
    pub fn has_any(&self, scopes: &[&str]) -> bool {
        scopes.iter().any(|scope| self.has(scope))
    }

    /// `admin` may act for anyone; everyone else only for themselves.
    pub fn may_act_for(&self, user_id: Uuid) -> Result<(), ApiError> {
        if self.subject == user_id || self.has("admin") {
            Ok(())
        } else {
            Err(forbidden("a user may only reach their own credentials"))
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub scope: String,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorStatusCode::UNAUTHORIZED, ErrorCode::PermissionDenied, message, None)
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(ErrorStatusCode::FORBIDDEN, ErrorCode::PermissionDenied, message, None)
}

fn scope_list(scopes: &[&str]) -> Vec<String> {
    scopes.iter().map(|s| s.to_string()).collect()
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    refresh_validation: Validation,
    token_lifetime_sec: i64,
    oauth_client_id: String,
    oauth_client_hash: String,
    /// The admin first, then the API clients.
    principals: Vec<Principal>,
    scopes_by_operation: HashMap<&'static str, &'static [&'static str]>,
    /// A hash to verify against when the name is unknown, so timing does not tell.
    decoy_hash: String,
    verified: VerifiedTokens,
    code_flows: CodeFlows,
}

impl Auth {
    /// Authentication for `config`, with the secrets the store kept or made for it.
    pub fn new(config: &AuthConfig, secrets: Secrets, clock: &Clock) -> Self {
        let admin = Principal {
            id: secrets.admin_id,
            name: config.admin_username(),
            secret_hash: secrets.admin_password_hash,
            scopes: scope_list(ADMIN_SCOPES),
        };
        let api_clients = config.api_clients.iter().map(|client| Principal {
            id: client.id(),
            name: client.name.clone(),
            secret_hash: password::hash(&client.secret),
            scopes: client.scopes.clone(),
        });
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // `exp` is checked against the server's clock in `authorize` (it may be logical).
        validation.validate_exp = false;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        let mut refresh_validation = validation.clone();
        refresh_validation.set_issuer(&[REFRESH_ISSUER]);
        let lifetime = config.token_lifetime_sec.unwrap_or(3600);
        Self {
            encoding: EncodingKey::from_secret(secrets.signing_key.as_bytes()),
            decoding: DecodingKey::from_secret(secrets.signing_key.as_bytes()),
            validation,
            refresh_validation,
            token_lifetime_sec: lifetime.try_into().unwrap_or(i64::MAX),
            oauth_client_id: config.oauth_client_id(),
            oauth_client_hash: secrets.oauth_client_secret_hash,
            principals: std::iter::once(admin).chain(api_clients).collect(),
            scopes_by_operation: OPERATIONS.iter().map(|o| (o.operation_id, o.scopes)).collect(),
            decoy_hash: password::hash(&clock.new_secret()),
            verified: VerifiedTokens::default(),
            code_flows: CodeFlows::default(),
        }
    }

    /// Checks the bearer token of a request against the scopes `operation_id` accepts.
    /// 401 without a valid token, 403 without an accepted scope; no store access either way.
    pub fn authorize(
        &self,
        headers: &http::HeaderMap,
        operation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<Caller>, ApiError> {
        let accepted = self
            .scopes_by_operation
            .get(operation_id)
            .ok_or_else(|| ApiError::internal(format!("unknown operation {operation_id}")))?;
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| unauthorized("a bearer token is required"))?
            .trim();
        let now = now.timestamp();
        let caller = match self.verified.get(token) {
            Some(caller) => caller,
            None => {
                let caller = Arc::new(self.verify(token)?);
                self.verified.insert(token, caller.clone(), now);
                caller
            }
        };
        if caller.expires <= now {
            return Err(unauthorized("the bearer token is invalid or expired"));
        }
        if accepted.iter().any(|scope| caller.has(scope)) {
            Ok(caller)
        } else {
            Err(forbidden(&format!("this operation needs one of the scopes {accepted:?}")))
        }
    }

    /// What a token says, if this server signed it.
    fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| unauthorized("the bearer token is invalid or expired"))?
            .claims;
        Ok(Caller {
            subject: claims.sub,
            scopes: claims.scope.split_whitespace().map(str::to_string).collect(),
            expires: claims.exp,
        })
    }

    /// A signed token for `subject` with `scopes`, and its lifetime in seconds.
    pub fn issue(&self, subject: Uuid, scopes: &[String], now: DateTime<Utc>) -> (String, i64) {
        let lifetime = self.token_lifetime_sec;
        (self.sign(subject, scopes, now, lifetime, ISSUER), lifetime)
    }

    fn sign(
        &self,
        subject: Uuid,
        scopes: &[String],
        now: DateTime<Utc>,
        lifetime_sec: i64,
        issuer: &str,
    ) -> String {
        let claims = Claims {
            sub: subject,
            scope: scopes.join(" "),
            iat: now.timestamp(),
            exp: now.timestamp().saturating_add(lifetime_sec),
            iss: issuer.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Whether HTTP Basic `authorization` names the OAuth client with its secret.
    fn is_oauth_client(&self, authorization: Option<&str>) -> bool {
        let Some((id, secret)) = basic_credentials(authorization) else {
            return false;
        };
        let known = id == self.oauth_client_id;
        let hash = if known { &self.oauth_client_hash } else { &self.decoy_hash };
        password::verify(&secret, hash) && known
    }

    /// The admin or API client named `name` (or with that id), if `secret` is its secret.
    fn principal(&self, name: &str, secret: &str) -> Option<Grant> {
        let found = self.principals.iter().find(|p| p.is_named(name));
        let hash = found.map_or(&self.decoy_hash, |p| &p.secret_hash);
        let valid = password::verify(secret, hash);
        found.filter(|_| valid).map(|p| (p.id, p.scopes.clone()))
    }

    /// The client credentials grant: an API client (not the admin) by id or name and secret.
    fn client_credentials_grant(&self, name: &str, secret: &str) -> Result<Grant, OAuthError> {
        if self.principals[0].is_named(name) {
            return Err(OAuthError::invalid_client());
        }
        self.principal(name, secret).ok_or_else(OAuthError::invalid_client)
    }

    /// The password grant, on behalf of the OAuth client named by HTTP Basic `authorization`.
    fn password_grant(
        &self,
        store: &Store,
        authorization: Option<&str>,
        username: &str,
        password_: &str,
    ) -> Result<Grant, OAuthError> {
        if !self.is_oauth_client(authorization) {
            return Err(OAuthError::invalid_client());
        }
        self.authenticate(store, username, password_)
    }

    /// The admin, an API client or a local user, by name (or id) and password: the check of
    /// the password grant and of the authorization-code flow's login.
    fn authenticate(
        &self,
        store: &Store,
        username: &str,
        password_: &str,
    ) -> Result<Grant, OAuthError> {
        if self.principals.iter().any(|p| p.is_named(username)) {
            return self.principal(username, password_).ok_or_else(OAuthError::invalid_grant);
        }
        let user = store.user_by_name(username)?;
        let hash = user
            .as_ref()
            .and_then(|u| u.password.as_ref())
            .map_or(self.decoy_hash.as_str(), |p| p.hash.as_str());
        match user {
            Some(user) if password::verify(password_, hash) => {
                Ok((user.id, scope_list(USER_SCOPES)))
            }
            _ => {
                password::verify(password_, &self.decoy_hash);
                Err(OAuthError::invalid_grant())
            }
        }
    }

    /// A refresh token for `subject` with `scopes`: a JWT of its own issuer, so
    /// [`Auth::authorize`] refuses it as a bearer token.
    fn issue_refresh(&self, subject: Uuid, scopes: &[String], now: DateTime<Utc>) -> String {
        self.sign(subject, scopes, now, REFRESH_LIFETIME_SEC, REFRESH_ISSUER)
    }

    /// The refresh token grant: who a refresh token this server signed is for, if unexpired.
    fn refresh_grant(&self, token: &str, now: i64) -> Result<Grant, OAuthError> {
        let invalid = || OAuthError::bad_grant("the refresh token is invalid or expired");
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.refresh_validation)
                .map_err(|_| invalid())?
                .claims;
        if claims.exp <= now {
            return Err(invalid());
        }
        Ok((claims.sub, claims.scope.split_whitespace().map(str::to_string).collect()))
    }
}

/// Who a grant is for, and the scopes they hold.
type Grant = (Uuid, Vec<String>);

/// The `id:secret` of an HTTP Basic authorization header.
fn basic_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    let encoded = authorization?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}
