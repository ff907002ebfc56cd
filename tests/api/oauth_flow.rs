//! The authorization-code flow with PKCE, over HTTP: authorize -> login -> token -> API call
//! -> refresh -> API call, for each kind of principal, and every way it refuses.
//!
//! The PKCE pairs are fixed: RFC 7636 appendix B's, and a second one computed outside this
//! project (Python's hashlib), so the server's S256 is checked against independent values.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, ADMIN, API_CLIENT};

const AUTHORIZE: &str = "/auth/api/v1/oauth/authorize";
const LOGIN: &str = "/auth/api/v1/login";
const TOKEN: &str = "/auth/api/v1/oauth/token";
const REDIRECT: &str = "/privx/oauth-callback";
const USERS: &str = "/local-user-store/api/v1/users";
/// RFC 7636 appendix B.
const PKCE: (&str, &str) =
    ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// Another flow's pair: `base64url(sha256(verifier))` by Python.
const OTHER_PKCE: (&str, &str) =
    ("Zm9yZWlnbi12ZXJpZmllci1vZi1hbm90aGVyLWZsb3c", "CTovn9BnWk7nVNIDJkWEu4MlMKH0datRxe2mpHzllv8");

/// A client that, like the Go SDK, does not follow redirects.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn authorize_query(state: &str, challenge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", "privx-ui".to_string()),
        ("redirect_uri", REDIRECT.to_string()),
        ("response_type", "code".to_string()),
        ("state", state.to_string()),
        ("user_agent", "privx-sdk-go".to_string()),
        ("code_challenge", challenge.to_string()),
        ("code_challenge_method", "S256".to_string()),
    ]
}

async fn authorize_with(app: &TestApp, query: &[(&str, String)]) -> reqwest::Response {
    no_redirects().get(app.url(AUTHORIZE)).query(query).send().await.unwrap()
}

/// Step 1: the login session token of a 307's `Location`.
async fn authorize(app: &TestApp, state: &str, challenge: &str) -> String {
    let response = authorize_with(app, &authorize_query(state, challenge)).await;
    assert_eq!(response.status().as_u16(), 307);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let url = reqwest::Url::parse("http://x").unwrap().join(&location).unwrap();
    assert_eq!(url.path(), REDIRECT, "{location}");
    let token = url.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned());
    token.unwrap_or_else(|| panic!("no token in {location}"))
}

async fn login(app: &TestApp, username: &str, password: &str, session: &str) -> reqwest::Response {
    let body = json!({"username": username, "password": password, "token": session});
    app.anonymous.post(app.url(LOGIN)).json(&body).send().await.unwrap()
}

/// Step 2: the code of a login that must succeed, checking the echoed state.
async fn code(app: &TestApp, username: &str, password: &str, state: &str) -> String {
    let session = authorize(app, state, PKCE.1).await;
    let response = login(app, username, password, &session).await;
    assert_eq!(response.status().as_u16(), 200, "login as {username}");
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["state"], state);
    reply["code"].as_str().unwrap().to_string()
}

fn code_form<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("client_id", "privx-ui"),
        ("redirect_uri", REDIRECT),
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
    ]
}

fn refresh_form(refresh_token: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("client_id", "privx-ui"),
        ("redirect_uri", REDIRECT),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ]
}

async fn token(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let response = app.anonymous.post(app.url(TOKEN)).form(form).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A token reply that must succeed: (access token, refresh token).
async fn tokens(app: &TestApp, form: &[(&str, &str)]) -> (String, String) {
    let (status, reply) = token(app, form).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["expires_in"].as_u64().unwrap() > 0, "a positive integer: {reply}");
    let access = reply["access_token"].as_str().unwrap().to_string();
    (access, reply["refresh_token"].as_str().expect("a refresh token").to_string())
}

async fn get_with(app: &TestApp, token: &str, path: &str) -> u16 {
    let request = app.anonymous.get(app.url(path)).bearer_auth(token);
    request.send().await.unwrap().status().as_u16()
}

/// An OAuth error reply: RFC 6749's fields and, beside them, PrivX's `error_code` and
/// `error_message` (what the Go SDK prints).
async fn assert_oauth_error(response: reqwest::Response, status: u16, error: &str) {
    let got = response.status().as_u16();
    let reply: Value = response.json().await.unwrap();
    assert_eq!((got, reply["error"].as_str()), (status, Some(error)), "{reply}");
    assert_oauth_fields(&reply);
}

fn assert_oauth_fields(reply: &Value) {
    let code = reply["error_code"].as_str().unwrap_or_else(|| panic!("error_code in {reply}"));
    assert!(code.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{reply}");
    let message = reply["error_message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error_message in {reply}");
    assert_eq!(reply["error_message"], reply["error_description"]);
}

#[tokio::test]
async fn the_flow_serves_the_admin_an_api_client_and_a_local_user() {
    let app = spawn_app().await;
    let user = app.create_user("carol", &[]).await;
    let (status, _) = app
        .call("PUT", &format!("{USERS}/{user}/password"), Some(json!({"password": "pw-C"})))
        .await;
    assert_eq!(status, 200);
    let own_credentials = format!("/role-store/api/v1/users/{user}/webauthn-credentials");
    for (username, password, path) in [
        (ADMIN.0, ADMIN.1, USERS),
        (API_CLIENT.0, API_CLIENT.1, USERS),
        ("carol", "pw-C", own_credentials.as_str()),
    ] {
        let code = code(&app, username, password, "state-1").await;
        let (access, refresh) = tokens(&app, &code_form(&code, PKCE.0)).await;
        assert_eq!(get_with(&app, &access, path).await, 200, "{username} calls {path}");
        assert_eq!(get_with(&app, &refresh, path).await, 401, "a refresh token is no bearer");

        let (access, refresh) = tokens(&app, &refresh_form(&refresh)).await;
        assert_eq!(get_with(&app, &access, path).await, 200, "{username}, refreshed");
        let (access, _) = tokens(&app, &refresh_form(&refresh)).await;
        assert_eq!(get_with(&app, &access, path).await, 200, "{username}, refreshed again");
    }
    let code = code(&app, "carol", "pw-C", "s").await;
    let (access, _) = tokens(&app, &code_form(&code, PKCE.0)).await;
    assert_eq!(get_with(&app, &access, USERS).await, 403, "a local user keeps `user` only");
}

#[tokio::test]
async fn refresh_tokens_survive_a_restart_and_expire() {
    let mut app = spawn_app().await;
    let code = code(&app, ADMIN.0, ADMIN.1, "s").await;
    let (_, refresh) = tokens(&app, &code_form(&code, PKCE.0)).await;
    app.restart().await;
    let (access, refresh) = tokens(&app, &refresh_form(&refresh)).await;
    assert_eq!(get_with(&app, &access, USERS).await, 200);

    app.advance_clock(chrono::Duration::seconds(86_401));
    let response = app.anonymous.post(app.url(TOKEN)).form(&refresh_form(&refresh));
    assert_oauth_error(response.send().await.unwrap(), 400, "invalid_grant").await;
}

#[tokio::test]
async fn bad_authorization_requests_get_rfc_6749_errors() {
    let app = spawn_app().await;
    let cases: [(&str, &str, &str); 7] = [
        ("client_id", "privx-external", "unauthorized_client"),
        ("redirect_uri", "https://evil.example/cb", "invalid_request"),
        ("response_type", "token", "unsupported_response_type"),
        ("code_challenge_method", "plain", "invalid_request"),
        ("code_challenge", "too-short", "invalid_request"),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", "invalid_request"),
        ("state", "", "invalid_request"),
    ];
    for (name, value, error) in cases {
        let mut query = authorize_query("s", PKCE.1);
        query.iter_mut().filter(|(k, _)| *k == name).for_each(|(_, v)| *v = value.to_string());
        assert_oauth_error(authorize_with(&app, &query).await, 400, error).await;
    }
    let mut query = authorize_query("s", PKCE.1);
    query.retain(|(k, _)| *k != "code_challenge");
    assert_oauth_error(authorize_with(&app, &query).await, 400, "invalid_request").await;
}

#[tokio::test]
async fn bad_logins_get_rfc_6749_errors() {
    let app = spawn_app().await;
    let unknown = login(&app, ADMIN.0, ADMIN.1, "no-such-session").await;
    assert_oauth_error(unknown, 400, "invalid_request").await;

    let first = authorize(&app, "state-A", PKCE.1).await;
    let second = authorize(&app, "state-B", OTHER_PKCE.1).await;
    assert_oauth_error(login(&app, ADMIN.0, "wrong", &first).await, 400, "invalid_grant").await;
    assert_oauth_error(login(&app, "nobody", "x", &first).await, 400, "invalid_grant").await;
    // A wrong password does not use the session up; a login answers its own session's state.
    let reply: Value = login(&app, ADMIN.0, ADMIN.1, &second).await.json().await.unwrap();
    assert_eq!(reply["state"], "state-B");
    let reply: Value = login(&app, ADMIN.0, ADMIN.1, &first).await.json().await.unwrap();
    assert_eq!(reply["state"], "state-A");
    let used = login(&app, ADMIN.0, ADMIN.1, &first).await;
    assert_oauth_error(used, 400, "invalid_request").await;

    let stale = authorize(&app, "s", PKCE.1).await;
    app.advance_clock(chrono::Duration::seconds(301));
    assert_oauth_error(login(&app, ADMIN.0, ADMIN.1, &stale).await, 400, "invalid_request").await;
}

#[tokio::test]
async fn bad_code_redemptions_get_rfc_6749_errors() {
    let app = spawn_app().await;
    let post =
        |form: Vec<(&'static str, String)>| app.anonymous.post(app.url(TOKEN)).form(&form).send();
    let form = |code: &str, verifier: &str| -> Vec<(&'static str, String)> {
        code_form(code, verifier).into_iter().map(|(k, v)| (k, v.to_string())).collect()
    };
    let with = |mut form: Vec<(&'static str, String)>, name: &'static str, value: Option<&str>| {
        form.retain(|(k, _)| *k != name);
        form.extend(value.map(|value| (name, value.to_string())));
        form
    };

    // A foreign verifier, then the (now used) code with the right one.
    let code_1 = code(&app, ADMIN.0, ADMIN.1, "s").await;
    assert_oauth_error(post(form(&code_1, OTHER_PKCE.0)).await.unwrap(), 400, "invalid_grant")
        .await;
    assert_oauth_error(post(form(&code_1, PKCE.0)).await.unwrap(), 400, "invalid_grant").await;
    // Reuse after success.
    let code_2 = code(&app, ADMIN.0, ADMIN.1, "s").await;
    tokens(&app, &code_form(&code_2, PKCE.0)).await;
    assert_oauth_error(post(form(&code_2, PKCE.0)).await.unwrap(), 400, "invalid_grant").await;
    // Another redirect URI, another client, no client, no verifier, an unknown code.
    let code_3 = code(&app, ADMIN.0, ADMIN.1, "s").await;
    let other_uri = with(form(&code_3, PKCE.0), "redirect_uri", Some("/elsewhere"));
    assert_oauth_error(post(other_uri).await.unwrap(), 400, "invalid_grant").await;
    let code_4 = code(&app, ADMIN.0, ADMIN.1, "s").await;
    let other_client = with(form(&code_4, PKCE.0), "client_id", Some("privx-external"));
    assert_oauth_error(post(other_client).await.unwrap(), 401, "invalid_client").await;
    let no_client = with(form(&code_4, PKCE.0), "client_id", None);
    assert_oauth_error(post(no_client).await.unwrap(), 401, "invalid_client").await;
    let no_verifier = with(form(&code_4, PKCE.0), "code_verifier", None);
    assert_oauth_error(post(no_verifier).await.unwrap(), 400, "invalid_request").await;
    assert_oauth_error(post(form("no-such-code", PKCE.0)).await.unwrap(), 400, "invalid_grant")
        .await;
    // An expired code: 60 seconds.
    let code_5 = code(&app, ADMIN.0, ADMIN.1, "s").await;
    app.advance_clock(chrono::Duration::seconds(61));
    assert_oauth_error(post(form(&code_5, PKCE.0)).await.unwrap(), 400, "invalid_grant").await;
}

#[tokio::test]
async fn bad_refreshes_get_rfc_6749_errors() {
    let app = spawn_app().await;
    let code = code(&app, ADMIN.0, ADMIN.1, "s").await;
    let (access, refresh) = tokens(&app, &code_form(&code, PKCE.0)).await;
    let post =
        |form: Vec<(&'static str, &str)>| app.anonymous.post(app.url(TOKEN)).form(&form).send();
    let cases = [
        (refresh_form("garbage"), 400, "invalid_grant"),
        (refresh_form(&access), 400, "invalid_grant"),
        (vec![("grant_type", "refresh_token")], 400, "invalid_request"),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", "x"),
                ("refresh_token", refresh.as_str()),
            ],
            400,
            "unauthorized_client",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("scope", "root"),
            ],
            400,
            "invalid_scope",
        ),
    ];
    for (form, status, error) in cases {
        assert_oauth_error(post(form).await.unwrap(), status, error).await;
    }
    let (_, reply) = token(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("scope", "user")],
    )
    .await;
    assert_eq!(reply["scope"], "user", "a refresh may narrow the scopes: {reply}");
}

/// Login sessions live in memory, bounded: a client opening flows without end evicts the
/// oldest session, not the server's memory.
#[tokio::test]
async fn login_sessions_are_bounded() {
    let app = spawn_app().await;
    let oldest = authorize(&app, "s", PKCE.1).await;
    app.advance_clock(chrono::Duration::seconds(1));
    let client = no_redirects();
    let query = authorize_query("s", PKCE.1);
    for _ in 0..4096 {
        let response = client.get(app.url(AUTHORIZE)).query(&query).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 307);
    }
    let evicted = login(&app, ADMIN.0, ADMIN.1, &oldest).await;
    assert_oauth_error(evicted, 400, "invalid_request").await;
}

/// A refresh token, like an access token, dies with its user's password; and the login of the
/// flow has the token endpoint's brute-force brake.
#[tokio::test]
async fn refresh_tokens_die_with_the_password_and_logins_are_braked() {
    let app = spawn_app().await;
    let user = app.create_user("carol", &[]).await;
    let password = format!("{USERS}/{user}/password");
    let (status, _) = app.call("PUT", &password, Some(json!({"password": "pw-C"}))).await;
    assert_eq!(status, 200);
    let code = code(&app, "carol", "pw-C", "state-1").await;
    let (access, refresh) = tokens(&app, &code_form(&code, PKCE.0)).await;
    let (status, _) = app.call("PUT", &password, Some(json!({"password": "pw-D"}))).await;
    assert_eq!(status, 200);
    let (status, reply) = token(&app, &refresh_form(&refresh)).await;
    assert_eq!((status, reply["error"].as_str()), (400, Some("invalid_grant")), "{reply}");
    let own_credentials = format!("/role-store/api/v1/users/{user}/webauthn-credentials");
    assert_eq!(get_with(&app, &access, &own_credentials).await, 401);

    let session = authorize(&app, "state-2", PKCE.1).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses
            .push(login(&app, "carol", &format!("guess-{i}"), &session).await.status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 400 || *s == 429), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let response = login(&app, "carol", "pw-D", &session).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_oauth_error(response, 429, "invalid_grant").await;
}

/// A repeated login with the same right password is remembered: after one first login (one
/// argon2 run, on the pool), the logins of further flows take less time together than half as
/// many argon2 runs would on this machine (their sessions are opened before, untimed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_logins_of_the_flow_skip_argon2() {
    const REPEATS: u32 = 40;
    let app = spawn_app().await;
    // One argon2 run for scale, after one that warms its memory up (as the pool's threads
    // keep theirs).
    privx_mock::password::hash("warming up");
    let started = std::time::Instant::now();
    privx_mock::password::hash("one argon2 run, for scale");
    let one_hash = started.elapsed();

    code(&app, ADMIN.0, ADMIN.1, "first").await;
    let mut sessions = Vec::new();
    for _ in 0..REPEATS {
        sessions.push(authorize(&app, "again", PKCE.1).await);
    }
    let started = std::time::Instant::now();
    let mut codes = Vec::new();
    for session in &sessions {
        let response = login(&app, ADMIN.0, ADMIN.1, session).await;
        assert_eq!(response.status().as_u16(), 200);
        let reply: Value = response.json().await.unwrap();
        codes.push(reply["code"].as_str().unwrap().to_string());
    }
    let repeats = started.elapsed();
    let bound = one_hash * REPEATS / 2;
    assert!(repeats < bound, "{REPEATS} logins took {repeats:?} (one hash {one_hash:?})");
    for code in codes {
        tokens(&app, &code_form(&code, PKCE.0)).await;
    }
}
