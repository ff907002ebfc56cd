//! The serde wordings the error mapping reads its codes from, each pinned by a request that
//! produces it.

use privx_mock::client::types::ErrorCode;
use serde_json::json;

use crate::helpers::{assert_envelope, spawn_app, TestApp};

const USERS: &str = "/local-user-store/api/v1/users";

/// dropshot hands its extractors' errors over as text only, so the PrivX error code of a bad
/// value is read from serde's wording (`SERDE_WORDING` in `src/api/error.rs`). Each wording it
/// relies on is pinned by one of the tests below: `request` must get an answer whose message
/// says `wording`, with `code` and `property`. A change of wording in serde, uuid or dropshot
/// fails here instead of quietly turning the code into `BAD_REQUEST`.
async fn assert_worded(
    request: reqwest::RequestBuilder,
    wording: &str,
    code: ErrorCode,
    property: Option<&str>,
) {
    let envelope = assert_envelope(request.send().await.unwrap(), 400).await;
    let message = envelope.error_message.clone().unwrap_or_default();
    assert!(message.contains(wording), "{wording:?} is not in {message:?}");
    assert_eq!((envelope.error_code, envelope.property.as_deref()), (code, property), "{message}");
}

fn post_user(app: &TestApp, body: serde_json::Value) -> reqwest::RequestBuilder {
    app.http.post(app.url(USERS)).json(&body)
}

#[tokio::test]
async fn the_wording_missing_field_is_pinned() {
    let app = spawn_app().await;
    let request = post_user(&app, json!({"comment": "no username"}));
    assert_worded(
        request,
        "missing field `username`",
        ErrorCode::RequiredValueMissing,
        Some("username"),
    )
    .await;
}

#[tokio::test]
async fn the_wording_invalid_type_is_pinned() {
    let app = spawn_app().await;
    let request = post_user(&app, json!({"username": ["not", "a", "string"]}));
    assert_worded(request, "invalid type", ErrorCode::ValueIncorrectType, Some("username")).await;
}

#[tokio::test]
async fn the_wording_unknown_variant_is_pinned() {
    let app = spawn_app().await;
    let request = app.http.get(app.url(&format!("{USERS}/tags?sortdir=sideways")));
    assert_worded(request, "unknown variant", ErrorCode::ValueIncorrectFormat, None).await;
}

#[tokio::test]
async fn the_wording_invalid_value_is_pinned() {
    let app = spawn_app().await;
    let body = json!({"network": "tcp", "destination": "e/d:1", "keep_open_sec": 0});
    let request = app.http.post(app.url("/extender-service/api/v1/listeners")).json(&body);
    let property = Some("keep_open_sec");
    assert_worded(request, "invalid value", ErrorCode::ValueIncorrectFormat, property).await;
}

#[tokio::test]
async fn the_wording_invalid_digit_is_pinned() {
    let app = spawn_app().await;
    let request = app.http.get(app.url(&format!("{USERS}?limit=many")));
    assert_worded(request, "invalid digit", ErrorCode::ValueIncorrectFormat, None).await;
}

#[tokio::test]
async fn the_wording_uuid_is_pinned() {
    let app = spawn_app().await;
    for (url, property) in
        [(format!("{USERS}?id=nope"), None), (format!("{USERS}/not-a-uuid"), Some("user_id"))]
    {
        let request = app.http.get(app.url(&url));
        assert_worded(request, "UUID", ErrorCode::ValueIncorrectFormat, property).await;
    }
}

#[tokio::test]
async fn the_wording_invalid_length_is_pinned() {
    let app = spawn_app().await;
    // serde reads a struct from a JSON array too, so an empty one is too short.
    let request = post_user(&app, json!({"username": "x", "password": []}));
    let property = Some("password");
    assert_worded(request, "invalid length", ErrorCode::ValueIncorrectFormat, property).await;
}

/// The bounds of the other request bodies: a listener's `source` list and `destination`, a
/// credential's name, a new password. One past the spec's bound is `VALUE_OUT_OF_BOUNDS`.

#[tokio::test]
async fn the_wording_longer_than_is_pinned() {
    let app = spawn_app().await;
    let request = post_user(&app, json!({"username": "x".repeat(1000)}));
    assert_worded(request, "longer than", ErrorCode::ValueOutOfBounds, Some("username")).await;
}
