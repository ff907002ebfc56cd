//! The bodies the server sends validate against the spec's response schemas.

use serde_json::{json, Value};

use crate::helpers::{assert_matches_spec, spawn_app_with_fixtures, ADMIN};

#[tokio::test]
async fn main_operations_answer_what_the_spec_describes() {
    let text = std::fs::read_to_string(crate::helpers::repo_path("tests/fixtures/example.json"));
    let app = spawn_app_with_fixtures(serde_json::from_str(&text.unwrap()).unwrap()).await;
    let alice = "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001";
    let key = "7f000000-0000-4000-8000-00000000000a";
    let user = json!({"username": "spec", "tags": ["x"], "password": {"password": "pw"}});
    let listener = json!({"network": "tcp", "destination": "e/h:22", "keep_open_sec": 60});
    let cases: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        ("user_create", "POST", "/local-user-store/api/v1/users".into(), Some(user.clone()), 201),
        ("user_create", "POST", "/local-user-store/api/v1/users".into(), Some(user), 400),
        ("user_list", "GET", "/local-user-store/api/v1/users".into(), None, 200),
        ("user_view", "GET", format!("/local-user-store/api/v1/users/{alice}"), None, 200),
        ("user_view", "GET", format!("/local-user-store/api/v1/users/{key}"), None, 404),
        ("user_tags_list", "GET", "/local-user-store/api/v1/users/tags".into(), None, 200),
        (
            "listener_create",
            "POST",
            "/extender-service/api/v1/listeners".into(),
            Some(listener),
            201,
        ),
        ("listener_list", "GET", "/extender-service/api/v1/listeners".into(), None, 200),
        (
            "service_options_view",
            "GET",
            "/host-store/api/v1/settings/default_service_options".into(),
            None,
            200,
        ),
        (
            "webauthn_credential_list",
            "GET",
            format!("/role-store/api/v1/users/{alice}/webauthn-credentials"),
            None,
            200,
        ),
        (
            "webauthn_credential_view",
            "GET",
            format!("/role-store/api/v1/users/{alice}/webauthn-credentials/{key}"),
            None,
            200,
        ),
    ];
    for (operation, method, path, body, status) in cases {
        let (got, body) = app.call(method, &path, body).await;
        assert_eq!(got, status, "{operation} {path}: {body}");
        assert_matches_spec(operation, status, &body);
    }
    let (_, listeners) = app.call("GET", "/extender-service/api/v1/listeners", None).await;
    let id = listeners["items"][0]["id"].as_str().unwrap().to_string();
    let (status, body) =
        app.call("GET", &format!("/extender-service/api/v1/listeners/{id}"), None).await;
    assert_matches_spec("listener_view", status, &body);

    let anonymous = app.anonymous.get(app.url("/local-user-store/api/v1/users")).send().await;
    let anonymous: Value = anonymous.unwrap().json().await.unwrap();
    assert_matches_spec("user_list", 401, &anonymous);

    let token = app.password_grant(ADMIN.0, ADMIN.1).await.json::<Value>().await.unwrap();
    assert_matches_spec("token_create", 200, &token);
    let denied = app.password_grant(ADMIN.0, "wrong").await.json::<Value>().await.unwrap();
    assert_matches_spec("token_create", 400, &denied);
}

/// The check itself notices a body that breaks the schema.
#[test]
fn a_body_that_breaks_the_schema_is_caught() {
    for (operation, status, body) in [
        ("user_view", 200, json!({"id": 5, "username": "x"})),
        ("user_list", 200, json!({"count": "many"})),
        ("user_view", 404, json!({"message": "Not Found"})),
        ("token_create", 200, json!({"access_token": "t"})),
    ] {
        let caught = std::panic::catch_unwind(|| assert_matches_spec(operation, status, &body));
        assert!(caught.is_err(), "{operation} {status} accepted {body}");
    }
}
