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
    let nobody = app.client.webauthn_credential_list().user_id("not-a-user").send().await;
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
        name: Some("work laptop".into()),
        comment: Some("desk".into()),
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
    let body = types::WebauthnCredentialUpdate { name: Some("x".into()), comment: None };
    let update =
        app.client.webauthn_credential_update().user_id(ALICE).id(BOB_KEY).body(body).send().await;
    assert_eq!(api_error(update).0, 404);
    let delete = app.client.webauthn_credential_delete().user_id(ALICE).id(BOB_KEY).send().await;
    assert_eq!(api_error(delete).0, 404);
    let bogus = app.client.webauthn_credential_view().user_id(ALICE).id("garbage").send().await;
    assert_eq!(api_error(bogus).0, 404);
}

#[tokio::test]
async fn deleting_a_user_deletes_its_credentials() {
    let app = app().await;
    app.client.user_delete().user_id(ALICE.parse::<uuid::Uuid>().unwrap()).send().await.unwrap();
    let list =
        app.client.webauthn_credential_list().user_id(ALICE).send().await.unwrap().into_inner();
    assert_eq!(list.count, 0);
    let bob = app.client.webauthn_credential_list().user_id(BOB).send().await.unwrap().into_inner();
    assert_eq!(bob.count, 1);
}
