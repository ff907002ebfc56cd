//! Bad input gets a 4xx PrivX error envelope naming the problem, and the server keeps serving.

use privx_mock::client::types::ErrorCode;

use crate::helpers::{assert_envelope, spawn_app};

const USERS: &str = "/local-user-store/api/v1/users";

#[tokio::test]
async fn malformed_bodies_get_an_envelope() {
    let app = spawn_app().await;
    let cases: [(&str, ErrorCode, Option<&str>); 5] = [
        ("{\"username\": ", ErrorCode::BadRequest, Some("username")),
        ("not json", ErrorCode::BadRequest, None),
        ("{\"comment\": \"no username\"}", ErrorCode::RequiredValueMissing, Some("username")),
        ("{\"username\": 42}", ErrorCode::ValueIncorrectType, Some("username")),
        (
            "{\"username\": \"x\", \"tags\": \"not-a-list\"}",
            ErrorCode::ValueIncorrectType,
            Some("tags"),
        ),
    ];
    for (body, code, property) in cases {
        let response = app
            .http
            .post(app.url(USERS))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let envelope = assert_envelope(response, 400).await;
        assert_eq!(envelope.error_code, code, "body {body}: {envelope:?}");
        assert_eq!(envelope.property.as_deref(), property, "body {body}");
        assert!(envelope.error_message.is_some());
    }
    assert_eq!(app.client.user_list().send().await.unwrap().into_inner().count, Some(0));
}

#[tokio::test]
async fn bad_path_and_query_parameters_get_an_envelope() {
    let app = spawn_app().await;
    for path in [
        "/local-user-store/api/v1/users/not-a-uuid",
        "/extender-service/api/v1/listeners/12345",
        "/local-user-store/api/v1/users?offset=-1",
        "/local-user-store/api/v1/users?limit=many",
        "/local-user-store/api/v1/users?id=nope",
        "/local-user-store/api/v1/users/tags?sortdir=sideways",
        "/extender-service/api/v1/listeners?sortkey=color",
        "/auth/api/v1/users/x/webauthn/credentials?sortkey=color",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        let envelope = assert_envelope(response, 400).await;
        assert!(
            matches!(envelope.error_code, ErrorCode::ValueIncorrectFormat | ErrorCode::BadRequest),
            "{path}: {envelope:?}"
        );
    }
    let unknown = format!("{USERS}/{}", uuid::Uuid::new_v4());
    let envelope =
        assert_envelope(app.http.get(app.url(&unknown)).send().await.unwrap(), 404).await;
    assert_eq!(envelope.error_code, ErrorCode::GeneralError);
}

#[tokio::test]
async fn a_body_over_the_limit_gets_an_envelope_and_one_under_it_works() {
    let app = spawn_app().await;
    let big =
        format!("{{\"username\": \"big\", \"comment\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let response = app
        .http
        .post(app.url(USERS))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let envelope = assert_envelope(response, 400).await;
    assert!(envelope.error_message.unwrap().contains("exceed"), "says the body is too big");

    // Real payloads are far above dropshot's 1 KiB default.
    let comment = "y".repeat(64 * 1024);
    let body = serde_json::json!({"username": "long", "comment": comment});
    let response = app.http.post(app.url(USERS)).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
}

#[tokio::test]
async fn a_wrong_content_type_gets_an_envelope() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url(USERS))
        .header("content-type", "text/plain")
        .body("{\"username\": \"t\"}")
        .send()
        .await
        .unwrap();
    assert_envelope(response, 400).await;
}
