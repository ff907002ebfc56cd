//! Who is calling, and may they: OAuth2 tokens like PrivX's.
//!
//! Tokens are HS256-signed JWTs carrying the caller's id (`sub`), its scopes (`scope`,
//! space-separated) and expiry (`exp`); verifying one needs the key alone, no store read. The
//! key is given in the config or generated at first start and kept in the store, so tokens
//! survive a restart. A client sends the same token on every call until it expires, so a token
//! is verified (signature and claims) once and remembered: checking the signature and decoding
//! the claims cost more than the rest of a read request together. Which scopes an operation
//! accepts comes from the spec (the generated `OPERATIONS` table): any one of them suffices.
//!
//! Principals: the bootstrap admin (scopes `admin` and `user`), local users (`user`), and API
//! clients from the config file (the scopes listed for them). Every password and secret is
//! kept only as an argon2id hash and compared by argon2 (in constant time).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use chrono::{DateTime, Utc};
use dropshot::ErrorStatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::types::ErrorCode;
use crate::api::{ApiError, OAuthError, OPERATIONS};
use crate::clock::Clock;
use crate::password;
use crate::store::{Store, StoreError};

pub const ADMIN_SCOPES: &[&str] = &["admin", "user"];
pub const USER_SCOPES: &[&str] = &["user"];
const ISSUER: &str = "privx-mock";

/// The `auth` part of the configuration: what the config file, flags and environment give.
/// Secrets left out are generated at first start, kept (hashed) in the store and printed once.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Token lifetime in seconds (default 3600).
    pub token_lifetime_sec: Option<u64>,
    /// The HS256 token signing key; by default one is generated and kept in the store.
    pub signing_key: Option<String>,
    /// The OAuth client the SDKs authenticate with (HTTP Basic) on the password grant.
    #[serde(default)]
    pub oauth_client: ClientConfig,
    /// The bootstrap admin.
    #[serde(default)]
    pub admin: AdminConfig,
    /// API clients: scripted callers with their own scopes.
    #[serde(default)]
    pub api_clients: Vec<ApiClientConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub id: Option<String>,
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiClientConfig {
    /// Its id, the token subject; by default derived from the name.
    pub id: Option<Uuid>,
    pub name: String,
    pub secret: String,
    pub scopes: Vec<String>,
}

/// A principal that is not a local user: the admin and API clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Principal {
    id: Uuid,
    name: String,
    secret_hash: String,
    scopes: Vec<String>,
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

/// A secret the server made itself: 32 random bytes, URL-safe base64.
fn generate_secret(clock: &Clock) -> String {
    let bytes: [u8; 32] = clock.random_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    token_lifetime_sec: i64,
    oauth_client_id: String,
    oauth_client_hash: String,
    /// The admin first, then the API clients.
    principals: Vec<Principal>,
    scopes_by_operation: HashMap<&'static str, &'static [&'static str]>,
    /// A hash to verify against when the name is unknown, so timing does not tell.
    decoy_hash: String,
    verified: VerifiedTokens,
}

/// How many verified tokens are remembered; far more than a test run or load test uses.
const VERIFIED_TOKENS_MAX: usize = 4096;

/// Tokens whose signature and claims were checked, with what they say. Only valid tokens are
/// kept (a garbage token cannot crowd out good ones), expiry is still checked on every use,
/// and the signing key does not change while the server runs, so remembering a token gives
/// the same answer as verifying it again.
///
/// Entries are found by the token's last 16 characters, which are signature (random to
/// anyone without the key) and so make a cheap, even hash key; the whole token must match.
#[derive(Default)]
struct VerifiedTokens(RwLock<HashMap<[u8; 16], VerifiedToken>>);

/// A whole verified token and what it says.
type VerifiedToken = (Box<str>, Arc<Caller>);

impl VerifiedTokens {
    fn key(token: &str) -> Option<[u8; 16]> {
        token.as_bytes().last_chunk().copied()
    }

    fn get(&self, token: &str) -> Option<Arc<Caller>> {
        let tokens = self.0.read().unwrap_or_else(|p| p.into_inner());
        let (known, caller) = tokens.get(&Self::key(token)?)?;
        (**known == *token).then(|| caller.clone())
    }

    fn insert(&self, token: &str, caller: Arc<Caller>, now: i64) {
        let Some(key) = Self::key(token) else {
            return;
        };
        let mut tokens = self.0.write().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= VERIFIED_TOKENS_MAX {
            tokens.retain(|_, (_, c)| c.expires > now);
            if tokens.len() >= VERIFIED_TOKENS_MAX {
                tokens.clear();
            }
        }
        tokens.insert(key, (token.into(), caller));
    }
}

/// What bootstrapping generated and must be shown to the person who started the server once.
#[derive(Debug, Default)]
pub struct Generated {
    pub lines: Vec<String>,
}

impl Auth {
    /// Sets up authentication from the config and what the store kept from earlier starts.
    pub fn bootstrap(
        config: &AuthConfig,
        store: &Store,
        clock: &Clock,
    ) -> Result<(Self, Generated), StoreError> {
        let mut generated = Generated::default();
        let signing_key = match &config.signing_key {
            Some(key) => key.clone(),
            None => kept(store, "signing_key", || generate_secret(clock))?,
        };

        let oauth_client_id = config.oauth_client.id.clone().unwrap_or_else(|| "privx-mock".into());
        let oauth_client_hash = secret_hash(
            store,
            clock,
            "oauth_client_secret_hash",
            config.oauth_client.secret.as_deref(),
            |secret| {
                generated.lines.push(format!(
                    "OAuth client: id {oauth_client_id:?}, secret {secret:?} (shown only now)"
                ))
            },
        )?;

        let admin_name = config.admin.username.clone().unwrap_or_else(|| "admin".into());
        let admin_hash = secret_hash(
            store,
            clock,
            "admin_password_hash",
            config.admin.password.as_deref(),
            |pw| {
                generated.lines.push(format!(
                    "admin: username {admin_name:?}, password {pw:?} (shown only now)"
                ))
            },
        )?;
        let admin_id = kept(store, "admin_id", || clock.new_id())?;
        let mut principals = vec![Principal {
            id: admin_id,
            name: admin_name,
            secret_hash: admin_hash,
            scopes: ADMIN_SCOPES.iter().map(|s| s.to_string()).collect(),
        }];
        for client in &config.api_clients {
            principals.push(Principal {
                id: client
                    .id
                    .unwrap_or_else(|| Uuid::new_v5(&Uuid::NAMESPACE_OID, client.name.as_bytes())),
                name: client.name.clone(),
                secret_hash: password::hash(&client.secret),
                scopes: client.scopes.clone(),
            });
        }

        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // `exp` is checked against the server's clock in `authorize` (it may be logical).
        validation.validate_exp = false;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Ok((
            Self {
                encoding: EncodingKey::from_secret(signing_key.as_bytes()),
                decoding: DecodingKey::from_secret(signing_key.as_bytes()),
                validation,
                token_lifetime_sec: config
                    .token_lifetime_sec
                    .unwrap_or(3600)
                    .try_into()
                    .unwrap_or(i64::MAX),
                oauth_client_id,
                oauth_client_hash,
                principals,
                scopes_by_operation: OPERATIONS
                    .iter()
                    .map(|o| (o.operation_id, o.scopes))
                    .collect(),
                decoy_hash: password::hash(&generate_secret(clock)),
                verified: VerifiedTokens::default(),
            },
            generated,
        ))
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

    /// A signed token for `subject` with `scopes`.
    pub fn issue(&self, subject: Uuid, scopes: &[String], now: DateTime<Utc>) -> (String, i64) {
        let claims = Claims {
            sub: subject,
            scope: scopes.join(" "),
            iat: now.timestamp(),
            exp: now.timestamp().saturating_add(self.token_lifetime_sec),
            iss: ISSUER.to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        (token, self.token_lifetime_sec)
    }

    /// Whether HTTP Basic `authorization` names the OAuth client with its secret.
    pub fn is_oauth_client(&self, authorization: Option<&str>) -> bool {
        let Some((id, secret)) = basic_credentials(authorization) else {
            return false;
        };
        let known = id == self.oauth_client_id;
        let hash = if known { &self.oauth_client_hash } else { &self.decoy_hash };
        password::verify(&secret, hash) && known
    }

    /// The admin or API client named `name` (or with that id), if `secret` is its secret.
    fn principal(&self, name: &str, secret: &str) -> Option<(Uuid, Vec<String>)> {
        let found = self.principals.iter().find(|p| p.name == name || p.id.to_string() == name);
        let hash = found.map_or(&self.decoy_hash, |p| &p.secret_hash);
        let valid = password::verify(secret, hash);
        found.filter(|_| valid).map(|p| (p.id, p.scopes.clone()))
    }

    /// An API client (not the admin) by id or name and secret.
    pub fn api_client(&self, name: &str, secret: &str) -> Option<(Uuid, Vec<String>)> {
        let admin = &self.principals[0];
        if name == admin.name || name == admin.id.to_string() {
            return None;
        }
        self.principal(name, secret)
    }

    /// The password grant: the admin, an API client or a local user, by name and password.
    pub fn password_grant(
        &self,
        store: &Store,
        username: &str,
        password_: &str,
    ) -> Result<(Uuid, Vec<String>), OAuthError> {
        if self.principals.iter().any(|p| p.name == username || p.id.to_string() == username) {
            return self.principal(username, password_).ok_or_else(OAuthError::invalid_grant);
        }
        let user = store.user_by_name(username)?;
        let hash = user
            .as_ref()
            .and_then(|u| u.password.as_ref())
            .map_or(self.decoy_hash.as_str(), |p| p.hash.as_str());
        match user {
            Some(user) if password::verify(password_, hash) => {
                Ok((user.id, USER_SCOPES.iter().map(|s| s.to_string()).collect()))
            }
            _ => {
                password::verify(password_, &self.decoy_hash);
                Err(OAuthError::invalid_grant())
            }
        }
    }
}

/// The `id:secret` of an HTTP Basic authorization header.
pub fn basic_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    let encoded = authorization?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The value kept under `name`, or a new one from `make`, kept from now on.
fn kept<T: Serialize + serde::de::DeserializeOwned>(
    store: &Store,
    name: &str,
    make: impl FnOnce() -> T,
) -> Result<T, StoreError> {
    if let Some(value) = store.secret(name)? {
        return Ok(value);
    }
    let value = make();
    store.secret_put(name, &value)?;
    Ok(value)
}

/// The hash of a configured secret, or of the one generated at first start (kept hashed under
/// `name`; `announce` shows the plain secret that one time).
fn secret_hash(
    store: &Store,
    clock: &Clock,
    name: &str,
    configured: Option<&str>,
    announce: impl FnOnce(&str),
) -> Result<String, StoreError> {
    if let Some(secret) = configured {
        return Ok(password::hash(secret));
    }
    if let Some(hash) = store.secret::<String>(name)? {
        return Ok(hash);
    }
    let secret = generate_secret(clock);
    let hash = password::hash(&secret);
    store.secret_put(name, &hash)?;
    announce(&secret);
    Ok(hash)
}
