//! The token endpoint: which grant names whom, the scopes the token gets, and the reply.

use dropshot::RequestContext;

use super::credentials::basic_credentials;
use super::{code_flow, Grant};
use crate::api::types::{self, TokenRequestGrantType as GrantType};
use crate::api::OAuthError;
use crate::http::Context;

/// `POST /auth/api/v1/oauth/token`: checks the grant, narrows the scopes to those asked for,
/// and issues a token; the authorization code and refresh token grants get a refresh token too.
pub async fn token_create(
    rqctx: &RequestContext<Context>,
    body: types::TokenRequest,
) -> Result<types::TokenResponse, OAuthError> {
    let mut grant = grant(rqctx, &body).await?;
    grant.scopes = narrow_scopes(grant.scopes, body.scope.as_deref())?;
    let ctx = rqctx.context();
    let now = ctx.now();
    let (access_token, expires_in) = ctx.auth.issue(&grant, now);
    let refreshable =
        matches!(body.grant_type, GrantType::AuthorizationCode | GrantType::RefreshToken);
    let refresh_token = refreshable.then(|| ctx.auth.issue_refresh(&grant, now));
    Ok(types::TokenResponse {
        access_token,
        token_type: "Bearer".to_string(),
        expires_in,
        scope: Some(grant.scopes.join(" ")),
        refresh_token,
    })
}

/// Whom the grant names, and the scopes they hold; argon2 checks run on the password pool,
/// under the brute-force brake.
async fn grant(
    rqctx: &RequestContext<Context>,
    body: &types::TokenRequest,
) -> Result<Grant, OAuthError> {
    let authorization = rqctx
        .request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let server = rqctx.server.clone();
    let address = rqctx.request.remote_addr().ip();
    let ctx = rqctx.context();
    match body.grant_type {
        GrantType::Password => {
            let (Some(username), Some(password)) = (body.username.clone(), body.password.clone())
            else {
                return Err(OAuthError::invalid_request("username and password are required"));
            };
            let user = ctx.auth.login_user(&ctx.store, &username).await?;
            let check = move |how: &_| {
                let authorization = authorization.as_deref();
                let user = user.as_ref();
                server.private.auth.password_grant(how, authorization, &username, user, &password)
            };
            let username = body.username.as_deref().unwrap_or_default();
            ctx.auth.check_credentials(username, address, check).await
        }
        GrantType::ClientCredentials => {
            let form = body.client_id.clone().zip(body.client_secret.clone());
            let (id, secret) = form
                .or_else(|| basic_credentials(authorization.as_deref()))
                .ok_or_else(OAuthError::invalid_client)?;
            let name = id.clone();
            let check =
                move |how: &_| server.private.auth.client_credentials_grant(how, &id, &secret);
            ctx.auth.check_credentials(&name, address, check).await
        }
        GrantType::AuthorizationCode => ctx.auth.code_flows.redeem(body, ctx.now().timestamp()),
        GrantType::RefreshToken => {
            code_flow::check_refresh_client(body)?;
            let token = body
                .refresh_token
                .as_deref()
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
            ctx.auth.refresh_grant(&ctx.store, token, ctx.now().timestamp()).await
        }
    }
}

/// The scopes a token gets: those `asked` for (space-separated), each of which must be `held`,
/// or all that are held when none are asked for.
fn narrow_scopes(held: Vec<String>, asked: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(asked) = asked else {
        return Ok(held);
    };
    let asked: Vec<String> = asked.split_whitespace().map(str::to_string).collect();
    match asked.iter().find(|s| !held.contains(s)) {
        Some(missing) => Err(OAuthError::invalid_scope(format!("scope {missing} is not granted"))),
        None => Ok(asked),
    }
}
