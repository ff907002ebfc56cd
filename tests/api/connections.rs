//! Connection termination: flags connection records durably.

use privx_mock::client::types;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{api_error, spawn_app_with_fixtures, TestApp};

const C1: &str = "c0000000-0000-4000-8000-000000000001";
const C2: &str = "c0000000-0000-4000-8000-000000000002";
const C3: &str = "c0000000-0000-4000-8000-000000000003";
const HOST_A: &str = "a0000000-0000-4000-8000-00000000000a";
const HOST_B: &str = "a0000000-0000-4000-8000-00000000000b";
const USER_X: &str = "e0000000-0000-4000-8000-00000000000e";
const USER_Y: &str = "e0000000-0000-4000-8000-00000000000f";

async fn app() -> TestApp {
    spawn_app_with_fixtures(json!({"connections": [
        {"id": C1, "host_id": HOST_A, "user_id": USER_X},
        {"id": C2, "host_id": HOST_A, "user_id": USER_Y},
        {"id": C3, "host_id": HOST_B, "user_id": USER_Y},
    ]}))
    .await
}

/// progenitor's builder insists on a body even where the spec makes it optional.
fn no_reason() -> types::TerminateRequest {
    types::TerminateRequest(serde_json::Value::Null)
}

fn id(s: &str) -> Uuid {
    s.parse().unwrap()
}

async fn terminated(app: TestApp) -> Vec<Uuid> {
    let store = app.stop_and_open_store().await;
    store.connections().unwrap().into_iter().filter(|c| c.terminated).map(|c| c.id).collect()
}

#[tokio::test]
async fn terminate_by_id_flags_that_connection_and_unknown_ids_are_404() {
    let app = app().await;
    let response = app
        .client
        .connection_terminate()
        .connection_id(id(C2))
        .body(no_reason())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let unknown = app
        .client
        .connection_terminate()
        .connection_id(Uuid::new_v4())
        .body(no_reason())
        .send()
        .await;
    assert_eq!(api_error(unknown).0, 404);
    assert_eq!(terminated(app).await, [id(C2)]);
}

#[tokio::test]
async fn terminate_by_host_and_by_user_flag_every_match_and_none_is_fine() {
    let app = app().await;
    app.client
        .connection_terminate_host()
        .host_id(id(HOST_A))
        .body(no_reason())
        .send()
        .await
        .unwrap();
    let none = app
        .client
        .connection_terminate_host()
        .host_id(Uuid::new_v4())
        .body(no_reason())
        .send()
        .await
        .unwrap();
    assert_eq!(none.status().as_u16(), 200);
    let none = app
        .client
        .connection_terminate_user()
        .user_id(Uuid::new_v4())
        .body(no_reason())
        .send()
        .await
        .unwrap();
    assert_eq!(none.status().as_u16(), 200);
    assert_eq!(terminated(app).await, [id(C1), id(C2)]);

    let app = self::app().await;
    app.client
        .connection_terminate_user()
        .user_id(id(USER_Y))
        .body(no_reason())
        .send()
        .await
        .unwrap();
    assert_eq!(terminated(app).await, [id(C2), id(C3)]);
}

/// The Go SDK posts no body, the Python SDK nothing or a JSON object, the page a JSON string.
#[tokio::test]
async fn every_body_the_sdks_send_is_accepted() {
    let app = app().await;
    let url = app.url(&format!("/connection-manager/api/v1/terminate/connection/{C1}"));
    for body in ["", "\"string\"", "{\"reason\": \"done\"}", "null"] {
        let response = app
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "body {body:?}");
    }
    let bare = app.http.post(&url).send().await.unwrap();
    assert_eq!(bare.status().as_u16(), 200, "no body and no content type");
}
