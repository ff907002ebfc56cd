//! The authorization-code flow with PKCE (RFC 6749 section 4.1, RFC 7636), the Go SDK's
//! default login: `oauth_authorize` opens a login session for a PKCE challenge, `login_create`
//! checks a username and password against it and gives a code, and the token endpoint's
//! `authorization_code` grant trades the code and the challenge's verifier for a token.
//!
//! Only PrivX's public client `privx-ui` with its redirect URI takes this flow (there is no
//! client secret: the verifier proves that whoever redeems the code started the flow). Login
//! sessions (5 minutes) and codes (60 seconds, single use) are kept in memory, bounded.

use aws_lc_rs::digest;
use base64::Engine;
use dropshot::RequestContext;

use super::expiring::Expiring;
use super::Grant;
use crate::api::{types, HttpResponseRedirect, OAuthError};
use crate::http::Context;

/// The public OAuth client of PrivX's own UI, which the Go SDK logs in as.
const PUBLIC_CLIENT_ID: &str = "privx-ui";
/// The one redirect URI of [`PUBLIC_CLIENT_ID`].
const REDIRECT_URI: &str = "/privx/oauth-callback";
const SESSION_LIFETIME_SEC: i64 = 300;
const CODE_LIFETIME_SEC: i64 = 60;
/// The length of an S256 challenge: unpadded base64url of 32 bytes.
const CHALLENGE_LEN: usize = 43;

/// A login session: what `oauth_authorize` was given.
#[derive(Clone)]
struct Session {
    state: String,
    challenge: String,
}

/// An authorization code: who logged in, and the challenge its verifier must meet.
#[derive(Clone)]
struct Code {
    grant: Grant,
    challenge: String,
}

/// The flows under way: login sessions by their token, codes by themselves.
#[derive(Default)]
pub(super) struct CodeFlows {
    sessions: Expiring<Session>,
    codes: Expiring<Code>,
}

fn unknown_session() -> OAuthError {
    OAuthError::invalid_request("the login session is unknown, used or expired")
}

/// Checks that the client is the public client with its redirect URI.
fn check_client(client_id: Option<&str>, redirect_uri: Option<&str>) -> Result<(), OAuthError> {
    if client_id != Some(PUBLIC_CLIENT_ID) {
        return Err(OAuthError::unauthorized_client(format!(
            "only the client {PUBLIC_CLIENT_ID} may use the authorization code flow"
        )));
    }
    if redirect_uri != Some(REDIRECT_URI) {
        return Err(OAuthError::invalid_request(format!("redirect_uri must be {REDIRECT_URI}")));
    }
    Ok(())
}

/// The S256 challenge of a PKCE verifier.
fn s256(verifier: &str) -> String {
    let hash = digest::digest(&digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.as_ref())
}

/// `GET /auth/api/v1/oauth/authorize`: opens a login session and redirects to the redirect
/// URI with the session's token.
pub async fn oauth_authorize(
    rqctx: &RequestContext<Context>,
    query: types::OauthAuthorizeQuery,
) -> Result<HttpResponseRedirect, OAuthError> {
    check_client(Some(&query.client_id), Some(&query.redirect_uri))?;
    if query.response_type != "code" {
        return Err(OAuthError::unsupported_response_type("response_type must be code"));
    }
    if query.code_challenge_method != "S256" {
        return Err(OAuthError::invalid_request("code_challenge_method must be S256"));
    }
    let challenge = &query.code_challenge;
    let base64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if challenge.len() != CHALLENGE_LEN || !challenge.chars().all(base64url) {
        return Err(OAuthError::invalid_request(
            "code_challenge must be the unpadded base64url SHA-256 of the verifier",
        ));
    }
    if query.state.is_empty() {
        return Err(OAuthError::invalid_request("state is required"));
    }
    let ctx = rqctx.context();
    let token = ctx.clock.new_secret();
    let now = ctx.now().timestamp();
    let session = Session { state: query.state, challenge: query.code_challenge };
    let expires = now.saturating_add(SESSION_LIFETIME_SEC);
    ctx.auth.code_flows.sessions.insert(token.clone(), session, expires, now);
    // The token is unpadded base64url: nothing in it needs escaping in a query.
    Ok(HttpResponseRedirect(format!("{REDIRECT_URI}?token={token}")))
}

/// `POST /auth/api/v1/login`: checks the credentials (argon2, on the password pool, under the
/// brute-force brake) for a login session, uses the session up and gives a code with the
/// session's state.
pub async fn login_create(
    rqctx: &RequestContext<Context>,
    body: types::LoginRequest,
) -> Result<types::LoginResponse, OAuthError> {
    let ctx = rqctx.context();
    let flows = &ctx.auth.code_flows;
    // A session is checked before the (slow) password check, and used up only after it, so
    // a mistyped password can be retried within the session.
    if flows.sessions.get(&body.token, ctx.now().timestamp()).is_none() {
        return Err(unknown_session());
    }
    let server = rqctx.server.clone();
    let address = rqctx.request.remote_addr().ip();
    let (username, password) = (body.username.clone(), body.password);
    let user = ctx.auth.login_user(&ctx.store, &username).await?;
    let check =
        move |how: &_| server.private.auth.authenticate(how, &username, user.as_ref(), &password);
    let grant = ctx.auth.check_credentials(&body.username, address, check).await?;
    let now = ctx.now().timestamp();
    let session = flows.sessions.take(&body.token, now).ok_or_else(unknown_session)?;
    let code = ctx.clock.new_secret();
    let expires = now.saturating_add(CODE_LIFETIME_SEC);
    flows.codes.insert(code.clone(), Code { grant, challenge: session.challenge }, expires, now);
    Ok(types::LoginResponse { code, state: session.state })
}

impl CodeFlows {
    /// The authorization code grant: the code (used up whatever the outcome), for the public
    /// client and its redirect URI, with the verifier of the flow's challenge.
    pub(super) fn redeem(&self, body: &types::TokenRequest, now: i64) -> Result<Grant, OAuthError> {
        if body.client_id.as_deref() != Some(PUBLIC_CLIENT_ID) {
            return Err(OAuthError::invalid_client());
        }
        let (Some(code), Some(verifier)) = (&body.code, &body.code_verifier) else {
            return Err(OAuthError::invalid_request("code and code_verifier are required"));
        };
        let found = self
            .codes
            .take(code, now)
            .ok_or_else(|| OAuthError::bad_grant("the code is unknown, used or expired"))?;
        if body.redirect_uri.as_deref() != Some(REDIRECT_URI) {
            return Err(OAuthError::bad_grant("redirect_uri does not match the flow's"));
        }
        if s256(verifier) != found.challenge {
            return Err(OAuthError::bad_grant("code_verifier does not match the code_challenge"));
        }
        Ok(found.grant)
    }
}

/// The refresh token grant's client check: the SDK sends the public client and its redirect
/// URI along; a client that sends none is accepted too (the refresh token is the credential).
pub(super) fn check_refresh_client(body: &types::TokenRequest) -> Result<(), OAuthError> {
    if body.client_id.is_none() && body.redirect_uri.is_none() {
        return Ok(());
    }
    check_client(body.client_id.as_deref(), body.redirect_uri.as_deref())
}
