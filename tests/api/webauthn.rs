//! WebAuthn credentials of a user (loaded from fixtures: the API has no create operation).

use privx_mock::api::SortDir;
use privx_mock::client::types;
use serde_json::json;

use crate::helpers::{api_error, spawn_app_with_fixtures, TestApp};

const ALICE: &str = "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001";
const BOB: &str = "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0002";
const KEY_A: &str = "7f000000-0000-4000-8000-00000000000a";
const KEY_B: &str = "7f000000-0000-4000-8000-00000000000b";
const KEY_C: &str = "7f000000-0000-4000-8000-00000000000c";
const BOB_KEY: &str = "7f000000-0000-4000-8000-0000000000bb";

async fn app() -> TestApp {
    spawn_app_with_fixtures(json!({
        "users": [{"id": ALICE, "username": "alice"}, {"id": BOB, "username": "bob"}],
        "webauthn_credentials": [
            {"id": KEY_A, "user_id": ALICE, "name": "yubikey", "credential_id": "c-a"},
            {"id": KEY_B, "user_id": ALICE, "name": "laptop", "credential_id": "c-b",
             "last_used": "2026-01-01T00:00:00Z"},
            {"id": KEY_C, "user_id": ALICE, "name": "phone", "credential_id": "c-c"},
            {"id": BOB_KEY, "user_id": BOB, "name": "bob's key"},
        ],
    }))
    .await
}

fn names(list: &types::WebauthnCredentialList) -> Vec<&str> {
    list.items.iter().map(|c| c.name.as_deref().unwrap()).collect()
}

#[tokio::test]
async fn list_is_per_user_sorted_and_paged() {
    let app = app().await;
    let list =
        app.client.webauthn_credential_list().user_id(ALICE).send().await.unwrap().into_inner();
    assert_eq!(list.count, 3);
    assert_eq!(names(&list), ["yubikey", "laptop", "phone"], "by id by default");
    let by_name = app
        .client
        .webauthn_credential_list()
        .user_id(ALICE)
        .sortkey(types::WebauthnCredentialListSortkey::Name)
        .sortdir(SortDir::Desc)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&by_name), ["yubikey", "phone", "laptop"]);
    let paged =
        app.client.webauthn_credential_list().user_id(ALICE).offset(2).limit(5).send().await;
    let paged = paged.unwrap().into_inner();
    assert_eq!((paged.count, names(&paged)), (3, vec!["phone"]));
    let bob = app.client.webauthn_credential_list().user_id(BOB).send().await.unwrap().into_inner();
    assert_eq!(names(&bob), ["bob's key"]);
    let nobody = app.client.webauthn_credential_list().user_id(uuid::Uuid::new_v4()).send().await;
    assert_eq!(api_error(nobody).0, 404);
}

#[tokio::test]
async fn view_update_and_delete_one_credential() {
    let app = app().await;
    let key = app
        .client
        .webauthn_credential_view()
        .user_id(ALICE)
        .id(KEY_B)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.credential_id.as_deref(), Some("c-b"));
    assert_eq!(
        key.last_used.map(|t| t.to_rfc3339()),
        Some("2026-01-01T00:00:00+00:00".to_string())
    );

    let body = types::WebauthnCredentialUpdate {
        name: Some("work laptop".parse().unwrap()),
        comment: Some("desk".parse().unwrap()),
    };
    let response =
        app.client.webauthn_credential_update().user_id(ALICE).id(KEY_B).body(body).send().await;
    assert_eq!(response.unwrap().status().as_u16(), 200);
    let key = app
        .client
        .webauthn_credential_view()
        .user_id(ALICE)
        .id(KEY_B)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!((key.name.as_deref(), key.comment.as_deref()), (Some("work laptop"), Some("desk")));
    assert!(key.updated > key.created);

    let response = app.client.webauthn_credential_delete().user_id(ALICE).id(KEY_B).send().await;
    assert_eq!(response.unwrap().status().as_u16(), 200);
    let gone = app.client.webauthn_credential_view().user_id(ALICE).id(KEY_B).send().await;
    assert_eq!(api_error(gone).0, 404);
}

#[tokio::test]
async fn a_credential_is_only_found_under_its_own_user() {
    let app = app().await;
    let wrong_user = app.client.webauthn_credential_view().user_id(ALICE).id(BOB_KEY).send().await;
    assert_eq!(api_error(wrong_user).0, 404);
    let body = types::WebauthnCredentialUpdate { name: Some("x".parse().unwrap()), comment: None };
    let update =
        app.client.webauthn_credential_update().user_id(ALICE).id(BOB_KEY).body(body).send().await;
    assert_eq!(api_error(update).0, 404);
    let delete = app.client.webauthn_credential_delete().user_id(ALICE).id(BOB_KEY).send().await;
    assert_eq!(api_error(delete).0, 404);
}

/// Deleting a user deletes its credentials: listing those of the deleted user is a 404 like
/// that of any unknown user, and the store holds none of them any more.
#[tokio::test]
async fn deleting_a_user_deletes_its_credentials() {
    let app = app().await;
    app.client.user_delete().user_id(ALICE.parse::<uuid::Uuid>().unwrap()).send().await.unwrap();
    let list = app.client.webauthn_credential_list().user_id(ALICE).send().await;
    assert_eq!(api_error(list).0, 404);
    let bob = app.client.webauthn_credential_list().user_id(BOB).send().await.unwrap().into_inner();
    assert_eq!(bob.count, 1);
    let store = app.stop_and_open_store().await;
    let alice = ALICE.parse().unwrap();
    for key in [KEY_A, KEY_B, KEY_C] {
        assert!(store.credential_get(alice, key.parse().unwrap()).await.is_err(), "{key} is gone");
    }
}

/// WebAuthn credentials live under PrivX's role-store; the old auth paths are gone.
#[tokio::test]
async fn credentials_are_served_under_the_role_store() {
    let app = app().await;
    let list = format!("/role-store/api/v1/users/{ALICE}/webauthn-credentials");
    let (status, body) = app.call("GET", &list, None).await;
    assert_eq!((status, body["count"].as_u64()), (200, Some(3)), "{body}");
    let (status, key) = app.call("GET", &format!("{list}/{KEY_A}"), None).await;
    assert_eq!((status, key["name"].as_str()), (200, Some("yubikey")), "{key}");
    for old in [
        format!("/auth/api/v1/users/{ALICE}/webauthn/credentials"),
        format!("/auth/api/v1/users/{ALICE}/webauthn/credentials/{KEY_A}"),
    ] {
        let response = app.http.get(app.url(&old)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "{old}");
    }
}

/// Every id in a path is a uuid: a malformed one is a 400 naming the path parameter, an
/// unknown one a 404.
#[tokio::test]
async fn malformed_path_ids_are_400_naming_the_parameter_and_unknown_ones_404() {
    let app = app().await;
    let credentials = "/role-store/api/v1/users";
    let unknown = uuid::Uuid::new_v4();
    let password = Some(json!({"password": "a-new-password"}));
    let cases = [
        ("GET", format!("{credentials}/not-a-user/webauthn-credentials"), "user_id"),
        ("GET", format!("{credentials}/{ALICE}/webauthn-credentials/garbage"), "id"),
        ("DELETE", format!("{credentials}/x/webauthn-credentials/{KEY_A}"), "user_id"),
        ("GET", "/local-user-store/api/v1/users/42".to_string(), "user_id"),
        ("PUT", "/local-user-store/api/v1/users/not-a-uuid/password".to_string(), "user_id"),
        ("GET", "/extender-service/api/v1/listeners/12345".to_string(), "id"),
        (
            "POST",
            "/connection-manager/api/v1/terminate/connection/c-1".to_string(),
            "connection_id",
        ),
    ];
    for (method, path, property) in cases {
        let body = (method == "PUT").then(|| password.clone()).flatten();
        let (status, envelope) = app.call(method, &path, body).await;
        assert_eq!(
            (status, envelope["property"].as_str()),
            (400, Some(property)),
            "{path}: {envelope}"
        );
        assert_eq!(envelope["error_code"], "VALUE_INCORRECT_FORMAT", "{path}");
    }
    for (method, path) in [
        ("GET", format!("{credentials}/{unknown}/webauthn-credentials")),
        ("GET", format!("{credentials}/{ALICE}/webauthn-credentials/{unknown}")),
        ("PUT", format!("/local-user-store/api/v1/users/{unknown}/password")),
    ] {
        let body = (method == "PUT").then(|| password.clone()).flatten();
        let (status, envelope) = app.call(method, &path, body).await;
        assert_eq!(status, 404, "{path}: {envelope}");
        assert_eq!(envelope["error_code"], "OBJECT_NOT_FOUND", "{path}");
    }
}
