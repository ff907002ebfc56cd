//! OAuth2 like PrivX: the token endpoint, bearer tokens (the per-operation scope matrix is in
//! `auth_matrix.rs`), WebAuthn ownership, identities in `author`/`updated_by`, HTTPS, and logs
//! free of secrets.

use chrono::Utc;
use jsonwebtoken::{EncodingKey, Header};
use privx_mock::client::types;
use privx_mock::http::auth::Claims;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{
    assert_envelope, bearer_client, spawn_app, spawn_app_with, spawn_app_with_fixtures,
    user_request, ADMIN, API_CLIENT, API_CLIENT_SCOPES, OAUTH_CLIENT, SIGNING_KEY,
};

const TOKEN: &str = "/auth/api/v1/oauth/token";
const ALICE: &str = "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001";
const BOB: &str = "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0002";
const ALICE_KEY: &str = "7f000000-0000-4000-8000-00000000000a";
const BOB_KEY: &str = "7f000000-0000-4000-8000-00000000000b";
const CONNECTION: &str = "c0000000-0000-4000-8000-000000000001";
const HOST: &str = "a0000000-0000-4000-8000-00000000000a";
const LISTENER: &str = "11111111-0000-4000-8000-000000000001";

fn fixtures() -> Value {
    json!({
        "users": [{"id": ALICE, "username": "alice", "tags": ["t"]},
                  {"id": BOB, "username": "bob"}],
        "webauthn_credentials": [{"id": ALICE_KEY, "user_id": ALICE, "name": "a"},
                                 {"id": BOB_KEY, "user_id": BOB, "name": "b"}],
        "connections": [{"id": CONNECTION, "host_id": HOST, "user_id": ALICE}],
        "listeners": [{"id": LISTENER, "network": "tcp", "destination": "e/d:1", "keep_open_sec": 3600}],
    })
}

/// A token signed with `key`, expiring `expires_in` seconds from now.
pub(crate) fn mint(subject: &str, scopes: &[&str], expires_in: i64, key: &str) -> String {
    let now = Utc::now().timestamp();
    let claims = Claims {
        sub: subject.parse().unwrap(),
        scope: scopes.join(" "),
        iat: now,
        nbf: None,
        exp: now + expires_in,
        iss: "privx-mock".to_string(),
        pv: None,
    };
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(key.as_bytes()))
        .unwrap()
}

fn subject_of(token: &str) -> Uuid {
    let mut validation = jsonwebtoken::Validation::default();
    validation.set_issuer(&["privx-mock"]);
    let key = jsonwebtoken::DecodingKey::from_secret(SIGNING_KEY.as_bytes());
    jsonwebtoken::decode::<Claims>(token, &key, &validation).unwrap().claims.sub
}

async fn token_reply(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON reply"))
}

#[tokio::test]
async fn password_grant_serves_the_admin_local_users_and_api_clients() {
    let app = spawn_app().await;
    let (status, admin) = token_reply(app.password_grant(ADMIN.0, ADMIN.1).await).await;
    assert_eq!(status, 200);
    assert_eq!(admin["token_type"], "Bearer");
    assert_eq!(admin["expires_in"], 3600);
    assert_eq!(admin["scope"], "admin user");

    let body = types::UserRequest {
        password: Some(types::UserPassword {
            password: Some("user-pw-123".try_into().unwrap()),
            created: None,
        }),
        ..user_request("carol")
    };
    let carol = app.client.user_create().body(body).send().await.unwrap().into_inner().id;
    let (status, user) = token_reply(app.password_grant("carol", "user-pw-123").await).await;
    assert_eq!((status, user["scope"].as_str()), (200, Some("user")));
    assert_eq!(subject_of(user["access_token"].as_str().unwrap()), carol);

    let (status, client) = token_reply(app.password_grant(API_CLIENT.0, API_CLIENT.1).await).await;
    assert_eq!(
        (status, client["scope"].as_str()),
        (200, Some(API_CLIENT_SCOPES.join(" ").as_str()))
    );
    // The token works where its scopes do, and nowhere else.
    let as_client = bearer_client(client["access_token"].as_str().unwrap());
    let users = as_client.get(app.url("/local-user-store/api/v1/users")).send().await.unwrap();
    assert_eq!(users.status().as_u16(), 200);
    let listeners =
        as_client.get(app.url("/extender-service/api/v1/listeners")).send().await.unwrap();
    assert_eq!(listeners.status().as_u16(), 403);
}

#[tokio::test]
async fn client_credentials_grant_serves_api_clients() {
    let app = spawn_app().await;
    let in_form = app
        .anonymous
        .post(app.url(TOKEN))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", API_CLIENT.0),
            ("client_secret", API_CLIENT.1),
        ])
        .send()
        .await
        .unwrap();
    let (status, reply) = token_reply(in_form).await;
    assert_eq!(
        (status, reply["scope"].as_str()),
        (200, Some(API_CLIENT_SCOPES.join(" ").as_str()))
    );
    let in_basic = app
        .anonymous
        .post(app.url(TOKEN))
        .basic_auth(API_CLIENT.0, Some(API_CLIENT.1))
        .form(&[("grant_type", "client_credentials"), ("scope", "usersView")])
        .send()
        .await
        .unwrap();
    let (status, reply) = token_reply(in_basic).await;
    assert_eq!((status, reply["scope"].as_str()), (200, Some("usersView")), "narrowed by `scope`");
}

#[tokio::test]
async fn bad_credentials_get_rfc_6749_errors() {
    let app = spawn_app().await;
    app.create_user("nopw", &[]).await; // a local user without a password cannot log in
    let post = |form: Vec<(&'static str, &'static str)>,
                basic: Option<(&'static str, &'static str)>| {
        let mut request = app.anonymous.post(app.url(TOKEN)).form(&form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        request.send()
    };
    let login = |user, password| {
        vec![("grant_type", "password"), ("username", user), ("password", password)]
    };
    let cases = [
        (
            post(login(ADMIN.0, ADMIN.1), Some((OAUTH_CLIENT.0, "wrong"))).await,
            401,
            "invalid_client",
        ),
        (post(login(ADMIN.0, ADMIN.1), None).await, 401, "invalid_client"),
        (post(login(ADMIN.0, "wrong"), Some(OAUTH_CLIENT)).await, 400, "invalid_grant"),
        (post(login("nobody", "x"), Some(OAUTH_CLIENT)).await, 400, "invalid_grant"),
        (post(login("nopw", ""), Some(OAUTH_CLIENT)).await, 400, "invalid_grant"),
        (
            post(vec![("grant_type", "password"), ("username", ADMIN.0)], Some(OAUTH_CLIENT)).await,
            400,
            "invalid_request",
        ),
        (post(vec![("username", ADMIN.0)], Some(OAUTH_CLIENT)).await, 400, "invalid_request"),
        (
            post(vec![("grant_type", "implicit")], Some(OAUTH_CLIENT)).await,
            400,
            "unsupported_grant_type",
        ),
        (
            post(vec![("grant_type", "client_credentials")], Some((API_CLIENT.0, "wrong"))).await,
            401,
            "invalid_client",
        ),
        (
            post(vec![("grant_type", "client_credentials")], Some((ADMIN.0, ADMIN.1))).await,
            401,
            "invalid_client",
        ),
        (
            post(vec![("grant_type", "client_credentials"), ("scope", "admin")], Some(API_CLIENT))
                .await,
            400,
            "invalid_scope",
        ),
    ];
    for (i, (response, status, error)) in cases.into_iter().enumerate() {
        let response = response.unwrap();
        let challenge = response.headers().get(reqwest::header::WWW_AUTHENTICATE).cloned();
        let (got, reply) = token_reply(response).await;
        assert_eq!((got, reply["error"].as_str()), (status, Some(error)), "case {i}: {reply}");
        // RFC 6749 §5.2: a 401 `invalid_client` names the scheme the client must authenticate with.
        let basic = challenge.map(|c| c.to_str().unwrap().starts_with("Basic realm="));
        assert_eq!(basic, (status == 401).then_some(true), "case {i}: WWW-Authenticate");
        let text = reply.to_string();
        assert!(!text.contains(ADMIN.1) && !text.contains(API_CLIENT.1), "no secret in {text}");
    }
}

/// A token is verified once and remembered; on every later call it still expires on time and
/// allows only its own scopes.
#[tokio::test]
async fn a_remembered_token_still_expires_and_keeps_to_its_scopes() {
    let app = spawn_app_with_fixtures(fixtures()).await;
    let alice = bearer_client(&mint(ALICE, &["user"], 60, SIGNING_KEY));
    let own = app.url(&format!("/role-store/api/v1/users/{ALICE}/webauthn-credentials"));
    let users = app.url("/local-user-store/api/v1/users");
    for _ in 0..2 {
        assert_eq!(alice.get(&own).send().await.unwrap().status().as_u16(), 200);
        assert_eq!(alice.get(&users).send().await.unwrap().status().as_u16(), 403);
    }
    app.advance_clock(chrono::Duration::seconds(61));
    for url in [&own, &users] {
        assert_envelope(alice.get(url).send().await.unwrap(), 401).await;
    }
}

#[tokio::test]
async fn authorization_comes_before_any_lookup() {
    // Alice exists: a token of a user that does not is refused (401) before its scopes count.
    let app = spawn_app_with_fixtures(fixtures()).await;
    let missing = format!("/local-user-store/api/v1/users/{}", Uuid::new_v4());
    let response = app.anonymous.get(app.url(&missing)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401, "not 404: nobody learns what exists");
    let token = mint(ALICE, &["rolesView"], 600, SIGNING_KEY);
    let response = app.anonymous.get(app.url(&missing)).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
}

#[tokio::test]
async fn a_user_token_reaches_only_its_own_credentials() {
    let app = spawn_app_with_fixtures(fixtures()).await;
    let alice = bearer_client(&mint(ALICE, &["user"], 600, SIGNING_KEY));
    let own = format!("/role-store/api/v1/users/{ALICE}/webauthn-credentials");
    assert_eq!(alice.get(app.url(&own)).send().await.unwrap().status().as_u16(), 200);
    let theirs = format!("/role-store/api/v1/users/{BOB}/webauthn-credentials");
    for (method, path) in [
        ("GET", theirs.clone()),
        ("GET", format!("{theirs}/{BOB_KEY}")),
        ("PUT", format!("{theirs}/{BOB_KEY}")),
        ("DELETE", format!("{theirs}/{BOB_KEY}")),
    ] {
        let response = alice
            .request(method.parse().unwrap(), app.url(&path))
            .json(&json!({"name": "mine now"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403, "{method} {path}");
    }
    let bob_key = app.client.webauthn_credential_view().user_id(BOB).id(BOB_KEY).send().await;
    assert_eq!(bob_key.unwrap().into_inner().name.as_deref(), Some("b"), "admin reaches anyone's");
}

#[tokio::test]
async fn author_and_updated_by_come_from_the_token_subject() {
    let app = spawn_app().await;
    let client_token = app.token(API_CLIENT.0, API_CLIENT.1).await;
    let as_client =
        privx_mock::client::Client::new_with_client(&app.base_url, bearer_client(&client_token));
    let id =
        as_client.user_create().body(user_request("dora")).send().await.unwrap().into_inner().id;
    app.client.user_update().user_id(id).body(user_request("dora2")).send().await.unwrap();
    let user = app.client.user_view().user_id(id).send().await.unwrap().into_inner();
    let admin_token = app.token(ADMIN.0, ADMIN.1).await;
    assert_eq!(user.author, Some(subject_of(&client_token)));
    assert_eq!(user.updated_by, Some(subject_of(&admin_token)));
}

#[tokio::test]
async fn a_generated_signing_key_is_kept_so_tokens_survive_a_restart() {
    let mut app = spawn_app_with(|config| config.auth.signing_key = None).await;
    let token = app.token(ADMIN.0, ADMIN.1).await;
    app.restart().await;
    let response =
        bearer_client(&token).get(app.url("/local-user-store/api/v1/users")).send().await;
    assert_eq!(response.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn the_log_holds_no_password_or_secret() {
    let app = spawn_app().await;
    let body = types::UserRequest {
        password: Some(types::UserPassword {
            password: Some("Very-Secret-User-Pw".try_into().unwrap()),
            created: None,
        }),
        ..user_request("erin")
    };
    let id = app.client.user_create().body(body).send().await.unwrap().into_inner().id;
    app.token("erin", "Very-Secret-User-Pw").await;
    app.password_grant("erin", "Wrong-Secret-Guess").await;
    app.token(API_CLIENT.0, API_CLIENT.1).await;
    let password =
        types::Password { password: "Another-Secret-Pw".try_into().unwrap(), created: None };
    app.client.user_password_set().user_id(id.to_string()).body(password).send().await.unwrap();
    let log = app.log();
    assert!(log.contains("/auth/api/v1/oauth/token"), "the log was captured: {log}");
    for secret in [
        ADMIN.1,
        OAUTH_CLIENT.1,
        API_CLIENT.1,
        SIGNING_KEY,
        "Very-Secret-User-Pw",
        "Wrong-Secret-Guess",
        "Another-Secret-Pw",
        "$argon2",
    ] {
        assert!(!log.contains(secret), "the log shows {secret}");
    }
}

#[tokio::test]
async fn https_with_a_generated_certificate_password_grant_then_a_bearer_call() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(|config| config.tls = Some((cert_file, key_file))).await;
    assert!(app.base_url.starts_with("https://"));

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .https_only(true)
        .build()
        .unwrap();
    let reply: types::TokenResponse = trusting
        .post(app.url(TOKEN))
        .basic_auth(OAUTH_CLIENT.0, Some(OAUTH_CLIENT.1))
        .form(&[("grant_type", "password"), ("username", ADMIN.0), ("password", ADMIN.1)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users = trusting
        .get(app.url("/local-user-store/api/v1/users"))
        .bearer_auth(&reply.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status().as_u16(), 200);

    let plain = reqwest::Client::new().get(app.url("/local-user-store/api/v1/users")).send().await;
    assert!(plain.is_err(), "an untrusted certificate is refused");
}
