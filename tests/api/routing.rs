//! What the generated router answers for requests no operation takes: a 404 envelope for an
//! unknown path, a 405 envelope with `Allow` for a method the path lacks; and that encoded paths
//! route like their decoded form.

use privx_mock::client::types::ErrorCode;

use crate::helpers::{assert_envelope, spawn_app};

const USERS: &str = "/local-user-store/api/v1/users";

#[tokio::test]
async fn a_path_no_operation_has_gets_a_404_envelope() {
    let app = spawn_app().await;
    let user = app.create_user("exists", &[]).await;
    let too_deep = format!("{USERS}/{user}/password/and/deeper/than/any/operation");
    for path in [
        "/",
        "/no/such/thing",
        "/local-user-store/api/v1",
        "/local-user-store/api/v1/nothing",
        "/local-user-store/api/v2/users",
        "/docs/more",
        too_deep.as_str(),
    ] {
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let response = app.http.request(method.clone(), app.url(path)).send().await.unwrap();
            let envelope = assert_envelope(response, 404).await;
            assert_eq!(envelope.error_code, ErrorCode::ObjectNotFound, "{method} {path}");
            assert!(envelope.error_message.is_some_and(|m| m.contains(path)), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn a_method_the_path_lacks_gets_a_405_envelope_with_allow() {
    use reqwest::Method;
    let app = spawn_app().await;
    let user = app.create_user("exists", &[]).await;
    let user_path = format!("{USERS}/{user}");
    let tags = format!("{USERS}/tags");
    let cases = [
        (Method::DELETE, USERS, "GET, POST"),
        (Method::PATCH, user_path.as_str(), "GET, PUT, DELETE"),
        // The literal `tags` beats the variable `{user_id}`: not a user update, a 405.
        (Method::PUT, tags.as_str(), "GET"),
        (Method::DELETE, tags.as_str(), "GET"),
        (Method::GET, "/auth/api/v1/oauth/token", "POST"),
        (Method::OPTIONS, "/extender-service/api/v1/listeners", "GET, POST"),
        (Method::POST, "/healthz", "GET"),
        // Methods dropshot's `#[endpoint]` does not know, which API fuzzers send.
        (Method::TRACE, USERS, "GET, POST"),
        (Method::from_bytes(b"QUERY").unwrap(), tags.as_str(), "GET"),
    ];
    for (method, path, allow) in cases {
        let response = app.http.request(method.clone(), app.url(path)).send().await.unwrap();
        let header = response.headers().get("allow").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(header.as_deref(), Some(allow), "{method} {path}");
        let envelope = assert_envelope(response, 405).await;
        assert_eq!(envelope.error_code, ErrorCode::BadRequest, "{method} {path}");
    }
    // HEAD answers no body, but the status and `Allow` all the same.
    let response = app.http.head(app.url(USERS)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET, POST");
    // Nothing was changed by the refused requests.
    let read = app.http.get(app.url(&user_path)).send().await.unwrap();
    assert_eq!(read.status().as_u16(), 200);
}

#[tokio::test]
async fn percent_encoded_paths_route_like_their_decoded_form() {
    let app = spawn_app().await;
    let user = app.create_user("encoded", &["t"]).await;
    let hyphens_encoded = user.to_string().replace('-', "%2D");
    let cases = [
        (format!("/local-user-store/api/v1/%75sers/{hyphens_encoded}"), "encoded"),
        (format!("//local-user-store/api/v1/users//{user}/"), "encoded"),
    ];
    for (path, username) in cases {
        let response = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["username"], username, "{path}");
    }
    let tags = app.http.get(app.url("/local-user-store/api/v1/users/t%61gs")).send().await;
    assert_eq!(tags.unwrap().json::<Vec<String>>().await.unwrap(), ["t"]);
}
