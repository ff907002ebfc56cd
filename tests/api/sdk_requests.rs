//! The requests the official PrivX SDKs send, replayed as they send them (headers, form field
//! order, empty bodies, lower-cased values), and the answers they insist on (exact status
//! codes, `expires_in`, the error envelope). The SDKs themselves are not in any package
//! registry this project can reach, so their wire format stands in for them; each case names
//! the SDK code it copies.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, ADMIN, OAUTH_CLIENT};

const USERS: &str = "/local-user-store/api/v1/users";

fn basic() -> String {
    let pair = format!("{}:{}", OAUTH_CLIENT.0, OAUTH_CLIENT.1);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// privx_api/base.py `_authenticate`: urlencoded grant_type, username, password in that order,
/// `Content-type` (sic) and Basic; it needs exactly 200 and reads `access_token`, `expires_in`.
async fn python_login(app: &TestApp) -> String {
    let body = serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", ADMIN.0),
        ("password", ADMIN.1),
    ])
    .unwrap();
    let response = app
        .anonymous
        .post(app.url("/auth/api/v1/oauth/token"))
        .header("Content-type", "application/x-www-form-urlencoded")
        .header("Authorization", basic())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let reply: Value = response.json().await.unwrap();
    assert!(reply["expires_in"].as_i64().unwrap() > 3, "the SDK subtracts a 3 s margin");
    reply["access_token"].as_str().unwrap().to_string()
}

/// The Python SDK sends `Content-type: application/json` on every call, GET included, and
/// expects one exact status per call.
async fn python_call(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = app
        .anonymous
        .request(method.parse().unwrap(), app.url(path))
        .header("Content-type", "application/json")
        .header("Authorization", format!("Bearer {token}"));
    request = match body {
        Some(body) => request.body(body.to_string()),
        None => request.header("Content-Length", "0"),
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_python_sdk_logs_in_and_manages_users() {
    let app = spawn_app().await;
    let token = python_login(&app).await;
    let (status, body) = python_call(
        &app,
        &token,
        "POST",
        USERS,
        Some(json!({"username": "Alice", "tags": ["Ops"]})),
    )
    .await;
    assert_eq!(status, 201, "user_store.create_user expects CREATED: {body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();

    // base.py `_get_search_params` lower-cases string values: username, sortdir, query.
    let (status, body) = python_call(
        &app,
        &token,
        "GET",
        &format!("{USERS}?offset=0&limit=50&username=alice"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["items"][0]["id"], id.as_str());
    let tags = format!("{USERS}/tags?offset=0&limit=50&query=ops&sortdir=asc");
    let (status, body) = python_call(&app, &token, "GET", &tags, None).await;
    assert_eq!((status, body.as_str()), (200, "[\"Ops\"]"));

    for (method, path, body) in [
        ("GET", format!("{USERS}/{id}"), None),
        ("PUT", format!("{USERS}/{id}"), Some(json!({"username": "Alice", "comment": "c"}))),
        ("PUT", format!("{USERS}/{id}/password"), Some(json!({"password": "pw-1"}))),
        ("GET", "/host-store/api/v1/settings/default_service_options".to_string(), None),
        ("DELETE", format!("{USERS}/{id}"), None),
    ] {
        let (status, text) = python_call(&app, &token, method, &path, body).await;
        assert_eq!(
            status, 200,
            "{method} {path} must be exactly 200 (a 204 breaks the SDK): {text}"
        );
    }
}

#[tokio::test]
async fn the_python_sdk_terminates_with_an_empty_json_body() {
    let app = spawn_app().await;
    let token = python_login(&app).await;
    let host = uuid::Uuid::new_v4();
    let path = format!("/connection-manager/api/v1/terminate/host/{host}");
    let (status, body) = python_call(&app, &token, "POST", &path, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = python_call(&app, &token, "POST", &path, Some(json!({"reason": "x"}))).await;
    assert_eq!(status, 200);
}

/// oauth/authclient.go: the form is url.Values.Encode()d, so its keys come sorted; the
/// restapi client adds `User-Agent: privx-sdk-go`. Calls without a body send no Content-Type.
#[tokio::test]
async fn the_go_sdk_logs_in_creates_a_user_and_terminates() {
    let app = spawn_app().await;
    let body = format!("grant_type=password&password={}&username={}", ADMIN.1, ADMIN.0);
    let reply: Value = app
        .anonymous
        .post(app.url("/auth/api/v1/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", basic())
        .header("User-Agent", "privx-sdk-go")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reply["access_token"].as_str().expect("a token").to_string();
    assert_eq!(reply["token_type"], "Bearer");

    // api/userstore: LocalUser always carries password (empty object without one),
    // password_change_required and attributes, and fields the spec does not have.
    let user = json!({
        "username": "gopher", "first_name": "Go", "last_name": "Pher",
        "password": {}, "password_change_required": false, "attributes": null,
    });
    let response = app
        .anonymous
        .post(app.url(USERS))
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {token}"))
        .header("User-Agent", "privx-sdk-go")
        .body(user.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let id: Value = response.json().await.unwrap();
    assert!(id["id"].is_string());

    let response = app
        .anonymous
        .post(app.url(&format!(
            "/connection-manager/api/v1/terminate/user/{}",
            id["id"].as_str().unwrap()
        )))
        .header("Authorization", format!("Bearer {token}"))
        .header("User-Agent", "privx-sdk-go")
        .send()
        .await
        .unwrap();
    assert!(response.status().as_u16() < 400, "Post(nil): no body, no Content-Type");

    // restapi/errors.go reads error_code, error_message, property and details.
    let response = app
        .anonymous
        .post(app.url(USERS))
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {token}"))
        .body(json!({"username": "GOPHER"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error_code"], "VALUE_DUPLICATE", "usernames are unique regardless of case");
    assert_eq!(error["property"], "username");
}

/// oauth/authcode.go's PKCE pair: RFC 7636 appendix B's verifier and its S256 challenge.
const GO_PKCE: (&str, &str) =
    ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// oauth/authcode.go's `state`: base64url of 32 random bytes.
const GO_STATE: &str = "Ia6a2rp3tx1kFTN7wQ4qs4hhHvlKMvDpJ4RDKbTPNZ4";

/// The Go SDK's transport: `CheckRedirect` returns `http.ErrUseLastResponse`.
fn go_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A form POST to the token endpoint as oauth/authcode.go sends it: no Authorization.
async fn go_token_request(app: &TestApp, body: String) -> reqwest::Response {
    go_client()
        .post(app.url("/auth/api/v1/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("User-Agent", "privx-sdk-go")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// What oauth/types.go's `AccessToken` decodes: `access_token`, `expires_in` as a uint (a JSON
/// integer), `refresh_token`.
async fn go_access_token(response: reqwest::Response) -> (String, String) {
    assert!(response.status().as_u16() < 400, "isSuccess: {}", response.status());
    let reply: Value = response.json().await.unwrap();
    assert!(reply["expires_in"].as_u64().is_some_and(|s| s > 0), "a uint: {reply}");
    let access = reply["access_token"].as_str().expect("access_token").to_string();
    (access, reply["refresh_token"].as_str().expect("refresh_token").to_string())
}

/// Steps 1 and 2 of oauth/authcode.go: the login session from Location's `token` (nothing
/// else of the 307 is read), then the code of the login, whose `state` must be the one sent.
async fn go_code(app: &TestApp) -> String {
    let query = format!(
        "client_id=privx-ui&code_challenge={}&code_challenge_method=S256\
         &redirect_uri=%2Fprivx%2Foauth-callback&response_type=code&state={GO_STATE}\
         &user_agent=privx-sdk-go",
        GO_PKCE.1
    );
    let response = go_client()
        .get(app.url(&format!("/auth/api/v1/oauth/authorize?{query}")))
        .header("User-Agent", "privx-sdk-go")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 307, "every SDK version accepts a 307");
    let location = response.headers()["location"].to_str().unwrap();
    let location = reqwest::Url::parse("https://privx.example").unwrap().join(location).unwrap();
    let session = location.query_pairs().find(|(k, _)| k == "token").expect("token").1;

    let login =
        format!(r#"{{"username":"{}","password":"{}","token":"{session}"}}"#, ADMIN.0, ADMIN.1);
    let response = go_client()
        .post(app.url("/auth/api/v1/login"))
        .header("Content-Type", "application/json")
        .header("User-Agent", "privx-sdk-go")
        .body(login)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["state"], GO_STATE, "else: invalid response state");
    reply["code"].as_str().expect("a code").to_string()
}

/// oauth/authcode.go (v2): authorize and login (`go_code`), code for token with the verifier,
/// then (v2) the refresh; the form and query keys come sorted from `url.Values.Encode()`, `/`
/// percent-encoded.
#[tokio::test]
async fn the_go_sdk_logs_in_with_an_authorization_code_and_refreshes() {
    let app = spawn_app().await;
    let code = go_code(&app).await;
    let body = format!(
        "client_id=privx-ui&code={code}&code_verifier={}&grant_type=authorization_code\
         &redirect_uri=%2Fprivx%2Foauth-callback",
        GO_PKCE.0
    );
    let (access, refresh) = go_access_token(go_token_request(&app, body).await).await;
    let call = |token: String| {
        go_client()
            .get(app.url(USERS))
            .header("Authorization", format!("Bearer {token}"))
            .header("User-Agent", "privx-sdk-go")
            .send()
    };
    assert_eq!(call(access).await.unwrap().status().as_u16(), 200);

    let body = format!(
        "client_id=privx-ui&grant_type=refresh_token&redirect_uri=%2Fprivx%2Foauth-callback\
         &refresh_token={refresh}"
    );
    let (access, _) = go_access_token(go_token_request(&app, body).await).await;
    assert_eq!(call(access).await.unwrap().status().as_u16(), 200);
}

/// restapi/errors.go prints `error: <error_code>, message: <error_message>`; the OAuth
/// replies carry both beside RFC 6749's `error` and `error_description`.
#[tokio::test]
async fn the_go_sdk_reads_error_code_and_message_from_oauth_errors() {
    let app = spawn_app().await;
    let body = format!(
        "client_id=privx-ui&code=no-such-code&code_verifier={}&grant_type=authorization_code\
         &redirect_uri=%2Fprivx%2Foauth-callback",
        GO_PKCE.0
    );
    let response = go_token_request(&app, body).await;
    assert_eq!(response.status().as_u16(), 400);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["error"], "invalid_grant");
    assert_eq!(reply["error_code"], "PERMISSION_DENIED");
    assert_eq!(reply["error_message"], "the code is unknown, used or expired");
    assert_eq!(reply["error_description"], reply["error_message"]);

    let body = format!("grant_type=password&password={}&username={}", ADMIN.1, ADMIN.0);
    let response = go_token_request(&app, body).await;
    assert_eq!(response.status().as_u16(), 401, "the password grant needs the OAuth client");
    let reply: Value = response.json().await.unwrap();
    assert_eq!(
        (&reply["error"], &reply["error_code"]),
        (&json!("invalid_client"), &json!("PERMISSION_DENIED"))
    );
    assert_eq!(reply["error_message"], "client authentication failed");
}
