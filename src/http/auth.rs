//! Who is calling, and may they: OAuth2 tokens like PrivX's, and the token endpoint's grants.
//!
//! Tokens are HS256-signed JWTs carrying the caller's id (`sub`), its scopes (`scope`,
//! space-separated) and expiry (`exp`); verifying one needs the key alone, no store read (a
//! local user's current password is read once, then kept in memory, see below). The
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
//! A local user's tokens (access and refresh) carry the fingerprint of the password they were
//! issued against (`pv`, see [`password::fingerprint`]); one whose user is gone or has another
//! password now is refused (401) on every use, remembered or not: the users' current
//! passwords are kept in memory ([`CurrentPasswords`]), so the check costs a map lookup. A
//! fingerprint rather than a time says which password, so a token issued in the same second
//! (or, with a logical clock, the same instant) as a password change is told apart, and a
//! restart changes nothing. A local user's token without `pv` (signed with the key by a tool
//! or a test) holds while the user exists and its `iat` is not before the password was set.
//! A token whose `iat` or `nbf` is in the future is refused too.
//!
//! Principals: the bootstrap admin (scopes `admin` and `user`), local users (`user`), and API
//! clients from the config file (the scopes listed for them). Every password and secret is
//! kept only as an argon2id hash and compared by argon2 (in constant time), on the server's
//! bounded [`password::Pool`]; an unknown client or username is checked against a decoy hash
//! made at start, so it costs one argon2 run like a known one and timing does not tell. Failed
//! logins feed the brute-force [`Brake`]. A successful check is remembered ([`Remembered`]):
//! the same right credentials again are checked without argon2 and without the pool.

mod brake;
mod code_flow;
mod credentials;
mod current_passwords;
mod expiring;
mod remembered;
mod token;
mod verified_tokens;

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
use crate::password::{self, Fingerprint};
use crate::store::{PasswordHash, Secrets, Store, StoreError};
use brake::Brake;
use code_flow::CodeFlows;
pub use code_flow::{login_create, oauth_authorize};
use current_passwords::CurrentPasswords;
use remembered::Remembered;
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
    /// When the token was issued (`iat`).
    issued: i64,
    /// When the token starts being valid: the later of `iat` and `nbf`.
    not_before: i64,
    /// The password the token was issued against (see [`Claims::pv`]).
    password: Option<Fingerprint>,
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
    /// Not before (RFC 7519); this server does not set it, but honours it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub iss: String,
    /// A local user's password fingerprint when the token was issued (unpadded base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pv: Option<String>,
}

impl Claims {
    /// When the token starts being valid: the later of `iat` and `nbf`.
    fn not_before(&self) -> i64 {
        self.nbf.map_or(self.iat, |nbf| nbf.max(self.iat))
    }

    /// The password fingerprint, `Err` if `pv` is there but not one.
    fn password(&self) -> Result<Option<Fingerprint>, ()> {
        let Some(pv) = &self.pv else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(pv).map_err(|_| ())?;
        bytes.try_into().map(Some).map_err(|_| ())
    }
}

/// Who a grant is for, the scopes they hold, and the password they proved (local users).
#[derive(Debug, Clone)]
struct Grant {
    subject: Uuid,
    scopes: Vec<String>,
    password: Option<Fingerprint>,
}

impl Grant {
    /// The admin or an API client: no password of the store's.
    fn principal(p: &Principal) -> Self {
        Self { subject: p.id, scopes: p.scopes.clone(), password: None }
    }
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
    /// Looked up on every request: foldhash, keyed at random like SipHash but cheaper (the keys
    /// are the spec's operationIds anyway).
    scopes_by_operation: foldhash::HashMap<&'static str, &'static [&'static str]>,
    /// A hash to verify against when the name is unknown, so timing does not tell.
    decoy_hash: String,
    verified: VerifiedTokens,
    code_flows: CodeFlows,
    /// Where every password hash and verify runs.
    pub passwords: password::Pool,
    brake: Brake,
    current: CurrentPasswords,
    remembered: Remembered,
}

impl Auth {
    /// Authentication for `config`, with the secrets the store kept or made for it; `shared`:
    /// other servers write the store too (see `current_passwords`).
    pub fn new(config: &AuthConfig, secrets: Secrets, clock: &Clock, shared: bool) -> Self {
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
            passwords: password::Pool::new(),
            brake: Brake::default(),
            current: CurrentPasswords::new(shared.then_some(current_passwords::SHARED_KEEP)),
            remembered: Remembered::default(),
        }
    }

    /// User `id` was created, or given a password: its tokens of another password stop
    /// holding now.
    pub fn password_changed(&self, id: Uuid, password: Option<&PasswordHash>) {
        self.current.set(id, Some(password));
    }

    /// User `id` was deleted: its tokens stop holding now.
    pub fn user_deleted(&self, id: Uuid) {
        self.current.set(id, None);
    }

    /// Any user may have been replaced (a test-control reset or fixture load).
    pub fn users_replaced(&self) {
        self.current.forget_all();
    }

    /// Whether a token for `subject`, `issued` against `password`, still holds: always for
    /// the admin and API clients, for a local user while it exists with that password.
    async fn still_holds(
        &self,
        store: &Store,
        subject: Uuid,
        password: Option<Fingerprint>,
        issued: i64,
    ) -> Result<bool, StoreError> {
        if self.principals.iter().any(|p| p.id == subject) {
            return Ok(true);
        }
        Ok(self.current.get(store, subject).await?.admits(password, issued))
    }

    /// Checks the bearer token of a request against the scopes `operation_id` accepts.
    /// 401 without a valid token (or one of a deleted user, or of a user's old password), 403
    /// without an accepted scope; the store is read only the first time a user is seen. `now`
    /// is in seconds since the epoch, as the token's claims are.
    pub async fn authorize(
        &self,
        store: &Store,
        headers: &http::HeaderMap,
        operation_id: &str,
        now: i64,
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
        let caller = match self.verified.get(token) {
            Some(caller) => caller,
            None => {
                let caller = Arc::new(self.verify(token)?);
                self.verified.insert(token, caller.clone(), now);
                caller
            }
        };
        if caller.expires <= now || caller.not_before > now {
            return Err(unauthorized("the bearer token is invalid or expired"));
        }
        if !self.still_holds(store, caller.subject, caller.password, caller.issued).await? {
            return Err(unauthorized("the bearer token's user was deleted or changed password"));
        }
        if accepted.iter().any(|scope| caller.has(scope)) {
            Ok(caller)
        } else {
            Err(forbidden(&format!("this operation needs one of the scopes {accepted:?}")))
        }
    }

    /// What a token says, if this server signed it.
    fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let invalid = || unauthorized("the bearer token is invalid or expired");
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| invalid())?
            .claims;
        Ok(Caller {
            subject: claims.sub,
            scopes: claims.scope.split_whitespace().map(str::to_string).collect(),
            expires: claims.exp,
            issued: claims.iat,
            not_before: claims.not_before(),
            password: claims.password().map_err(|()| invalid())?,
        })
    }

    /// A signed token for `grant`, and its lifetime in seconds.
    fn issue(&self, grant: &Grant, now: DateTime<Utc>) -> (String, i64) {
        let lifetime = self.token_lifetime_sec;
        (self.sign(grant, now, lifetime, ISSUER), lifetime)
    }

    fn sign(&self, grant: &Grant, now: DateTime<Utc>, lifetime_sec: i64, issuer: &str) -> String {
        let pv = grant.password.map(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p));
        let claims = Claims {
            sub: grant.subject,
            scope: grant.scopes.join(" "),
            iat: now.timestamp(),
            nbf: None,
            exp: now.timestamp().saturating_add(lifetime_sec),
            iss: issuer.to_string(),
            pv,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// A refresh token for `grant`: a JWT of its own issuer, so [`Auth::authorize`] refuses
    /// it as a bearer token.
    fn issue_refresh(&self, grant: &Grant, now: DateTime<Utc>) -> String {
        self.sign(grant, now, REFRESH_LIFETIME_SEC, REFRESH_ISSUER)
    }

    /// The refresh token grant: who a refresh token this server signed is for, if unexpired,
    /// not from the future, and its user still has the password it was issued against.
    async fn refresh_grant(
        &self,
        store: &Store,
        token: &str,
        now: i64,
    ) -> Result<Grant, OAuthError> {
        let invalid = || OAuthError::bad_grant("the refresh token is invalid or expired");
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.refresh_validation)
                .map_err(|_| invalid())?
                .claims;
        if claims.exp <= now || claims.not_before() > now {
            return Err(invalid());
        }
        let password = claims.password().map_err(|()| invalid())?;
        if !self.still_holds(store, claims.sub, password, claims.iat).await? {
            return Err(invalid());
        }
        let scopes = claims.scope.split_whitespace().map(str::to_string).collect();
        Ok(Grant { subject: claims.sub, scopes, password })
    }
}
