//! Local users: create, list, view, update, delete, set password, and the tag list.

use privx_mock::api::SortDir;
use privx_mock::client::types;

use serde_json::json;

use crate::helpers::{api_error, spawn_app, user_request};

#[tokio::test]
async fn create_answers_201_with_id_and_location_and_the_user_reads_back() {
    let app = spawn_app().await;
    let body = json!({
        "username": "alice", "full_name": "Alice A", "email": "alice@example.com",
        "tags": ["ops"], "locale": "fi_FI", "password": {"password": "s3cret"},
        "first_name": "Alice", "last_name": "Anders", "attributes": [{"key": "k", "value": "v"}],
        "password_change_required": true,
    });
    let response =
        app.http.post(app.url("/local-user-store/api/v1/users")).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created: types::CreatedId = response.json().await.unwrap();
    assert_eq!(location, format!("/local-user-store/api/v1/users/{}", created.id));

    let user = app.client.user_view().user_id(created.id).send().await.unwrap().into_inner();
    assert_eq!(user.id, Some(created.id));
    assert_eq!(user.username.as_str(), "alice");
    assert_eq!(user.full_name.as_deref(), Some("Alice A"));
    assert_eq!(user.email.as_deref(), Some("alice@example.com"));
    assert_eq!(user.tags, vec!["ops".to_string()]);
    assert_eq!(
        (user.first_name.as_deref(), user.last_name.as_deref()),
        (Some("Alice"), Some("Anders"))
    );
    assert_eq!(
        serde_json::to_value(&user.attributes).unwrap(),
        json!([{"key": "k", "value": "v"}])
    );
    assert_eq!(user.password_change_required, Some(true));
    assert!(user.created.is_some() && user.created == user.updated);
    assert!(user.author.is_some() && user.author == user.updated_by);
    assert!(user.password.is_none(), "the password is never returned");
    let raw = app.http.get(app.url(&location)).send().await.unwrap().text().await.unwrap();
    assert!(!raw.contains("s3cret") && !raw.contains("argon2"), "no password or hash in {raw}");
}

#[tokio::test]
async fn list_counts_all_matches_and_pages_filters_by_username_and_id() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create_user(&format!("user{i}"), &[]).await);
    }
    let page = app.client.user_list().offset(1).limit(2).send().await.unwrap().into_inner();
    assert_eq!(page.count, 5);
    let names: Vec<_> = page.items.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["user1", "user2"], "creation order, after the offset");
    // Pages past the middle are read from the end: the same order, the same bounds.
    for (offset, limit, expected) in [
        (3, 5, &["user3", "user4"][..]),
        (3, 1, &["user3"][..]),
        (4, 1, &["user4"][..]),
        (2, 3, &["user2", "user3", "user4"][..]),
        (5, 5, &[][..]),
        (9, 0, &[][..]),
    ] {
        let page = app.client.user_list().offset(offset).limit(limit).send().await.unwrap();
        let page = page.into_inner();
        let names: Vec<_> = page.items.iter().map(|u| u.username.as_str()).collect();
        assert_eq!((page.count, names.as_slice()), (5, expected), "offset {offset} limit {limit}");
    }

    let all = app.client.user_list().send().await.unwrap().into_inner();
    assert_eq!(all.items.len(), 5, "the default limit covers them");

    let by_name = app.client.user_list().username("user3").send().await.unwrap().into_inner();
    assert_eq!((by_name.count, by_name.items[0].id), (1, Some(ids[3])));
    let by_id = app.client.user_list().id(ids[4]).send().await.unwrap().into_inner();
    assert_eq!((by_id.count, by_id.items[0].username.as_str()), (1, "user4"));
    let both = app.client.user_list().username("user3").id(ids[4]).send().await.unwrap();
    assert_eq!(both.into_inner().count, 0, "filters combine");
    let none = app.client.user_list().username("nobody").send().await.unwrap().into_inner();
    assert_eq!((none.count, none.items.len()), (0, 0));
}

#[tokio::test]
async fn usernames_are_unique_on_create_and_on_update() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let bob = app.create_user("bob", &[]).await;

    let (status, error) =
        api_error(app.client.user_create().body(user_request("alice")).send().await);
    assert_eq!(status, 400);
    assert_eq!(error.error_code, types::ErrorCode::ValueDuplicate);
    assert_eq!(error.property.as_deref(), Some("username"));

    let renamed = app.client.user_update().user_id(bob).body(user_request("alice")).send().await;
    let (status, error) = api_error(renamed);
    assert_eq!((status, error.error_code), (400, types::ErrorCode::ValueDuplicate));
    let bob_now = app.client.user_view().user_id(bob).send().await.unwrap().into_inner();
    assert_eq!(bob_now.username.as_str(), "bob", "a rejected update changes nothing");

    // Renaming frees the old name.
    app.client.user_update().user_id(bob).body(user_request("robert")).send().await.unwrap();
    app.create_user("bob", &[]).await;
}

#[tokio::test]
async fn update_replaces_the_profile_and_stamps_it() {
    let app = spawn_app().await;
    let id = app.create_user("carol", &["a"]).await;
    let before = app.client.user_view().user_id(id).send().await.unwrap().into_inner();
    let body = types::UserRequest {
        comment: Some("on call".parse().unwrap()),
        tags: vec!["b".parse().unwrap()],
        ..user_request("carol")
    };
    let response = app.client.user_update().user_id(id).body(body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let after = app.client.user_view().user_id(id).send().await.unwrap().into_inner();
    assert_eq!(after.comment.as_deref(), Some("on call"));
    assert_eq!(after.tags, vec!["b".to_string()]);
    assert_eq!(after.created, before.created);
    assert!(after.updated > before.updated);
    let tags = app.client.user_tags_list().send().await.unwrap().into_inner();
    assert_eq!(tags, vec!["b".to_string()], "the tag index follows the update");
}

#[tokio::test]
async fn delete_removes_the_user_and_its_name() {
    let app = spawn_app().await;
    let id = app.create_user("dave", &["x"]).await;
    let response = app.client.user_delete().user_id(id).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (status, _) = api_error(app.client.user_view().user_id(id).send().await);
    assert_eq!(status, 404);
    let (status, _) = api_error(app.client.user_delete().user_id(id).send().await);
    assert_eq!(status, 404);
    assert_eq!(app.client.user_list().send().await.unwrap().into_inner().count, 0);
    assert!(app.client.user_tags_list().send().await.unwrap().into_inner().is_empty());
    app.create_user("dave", &[]).await;
}

#[tokio::test]
async fn set_password_stores_a_hash_and_never_returns_it() {
    let app = spawn_app().await;
    let id = app.create_user("erin", &[]).await;
    let body = types::Password { password: "correct horse".try_into().unwrap(), created: None };
    let response = app.client.user_password_set().user_id(id).body(body.clone()).send().await;
    assert_eq!(response.unwrap().status().as_u16(), 200);
    let raw = app.http.get(app.url(&format!("/local-user-store/api/v1/users/{id}"))).send().await;
    let raw = raw.unwrap().text().await.unwrap();
    assert!(!raw.contains("correct horse") && !raw.contains("argon2"), "{raw}");

    let unknown = uuid::Uuid::new_v4();
    let (status, _) =
        api_error(app.client.user_password_set().user_id(unknown).body(body.clone()).send().await);
    assert_eq!(status, 404);

    let store = app.stop_and_open_store().await;
    let record = store.user_by_name("erin").await.unwrap().expect("erin is stored");
    let hash = record.password.expect("a hash is stored").hash;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(privx_mock::password::verify("correct horse", &hash));
}

#[tokio::test]
async fn tag_list_is_distinct_filtered_sorted_and_paged() {
    let app = spawn_app().await;
    app.create_user("u1", &["prod", "web"]).await;
    app.create_user("u2", &["web", "db", "Production"]).await;
    let all = app.client.user_tags_list().send().await.unwrap().into_inner();
    assert_eq!(all, ["Production", "db", "prod", "web"]);
    let desc =
        app.client.user_tags_list().sortdir(SortDir::Desc).send().await.unwrap().into_inner();
    assert_eq!(desc, ["web", "prod", "db", "Production"]);
    let matched = app.client.user_tags_list().query("PROD").send().await.unwrap().into_inner();
    assert_eq!(matched, ["Production", "prod"], "the query matches case-insensitively");
    let paged = app.client.user_tags_list().offset(1).limit(2).send().await.unwrap().into_inner();
    assert_eq!(paged, ["db", "prod"]);
    // The Python SDK lower-cases the sort direction.
    let lower =
        app.http.get(app.url("/local-user-store/api/v1/users/tags?sortdir=desc")).send().await;
    let lower: Vec<String> = lower.unwrap().json().await.unwrap();
    assert_eq!(lower, desc);
}

/// What the Go SDK sends for a user with neither attributes nor a password, then an update that
/// sets the new fields and one that clears them again (an update replaces the profile).
#[tokio::test]
async fn attributes_names_and_password_change_required_are_stored_and_updated() {
    let app = spawn_app().await;
    let users = "/local-user-store/api/v1/users";
    let go_sdk = json!({
        "username": "gopher", "password": {}, "attributes": null,
        "password_change_required": false,
    });
    let (status, created) = app.call("POST", users, Some(go_sdk)).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("{users}/{}", created["id"].as_str().unwrap());
    let (_, user) = app.call("GET", &path, None).await;
    assert_eq!((&user["attributes"], &user["tags"]), (&json!([]), &json!([])), "{user}");
    assert_eq!(user["password_change_required"], false);

    let update = json!({
        "username": "gopher", "first_name": "Go", "last_name": "Pher",
        "attributes": [{"key": "team", "value": "infra"}, {"key": "site", "value": "hel"}],
        "password_change_required": true, "password": {},
    });
    assert_eq!(app.call("PUT", &path, Some(update)).await.0, 200);
    let (_, user) = app.call("GET", &path, None).await;
    assert_eq!((&user["first_name"], &user["last_name"]), (&json!("Go"), &json!("Pher")));
    assert_eq!(
        user["attributes"],
        json!([{"key": "team", "value": "infra"}, {"key": "site", "value": "hel"}])
    );
    assert_eq!(user["password_change_required"], true);
    let (_, listed) = app.call("GET", &format!("{users}?username=gopher"), None).await;
    assert_eq!(listed["items"][0], user, "the list shows the same user");

    let cleared = json!({"username": "gopher", "attributes": null});
    assert_eq!(app.call("PUT", &path, Some(cleared)).await.0, 200);
    let (_, user) = app.call("GET", &path, None).await;
    assert_eq!(user["attributes"], json!([]));
    assert_eq!(user["password_change_required"], false);
    assert!(user.get("first_name").is_none(), "{user}");
}

/// Every list answer carries `count` and `items`, also when the page is empty.
#[tokio::test]
async fn lists_carry_count_and_items_also_when_empty() {
    let app = spawn_app().await;
    let users = "/local-user-store/api/v1/users";
    let (_, admin) = app.call("GET", users, None).await;
    let existing = admin["count"].as_u64().unwrap();
    for i in existing..8 {
        app.create_user(&format!("user{i}"), &[]).await;
    }
    for (path, count) in [
        (format!("{users}?offset=8&limit=5"), 8),
        (format!("{users}?username=nobody"), 0),
        (format!("{users}?id={}", uuid::Uuid::new_v4()), 0),
        ("/extender-service/api/v1/listeners".to_string(), 0),
    ] {
        let (status, body) = app.call("GET", &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body, json!({"count": count, "items": []}), "{path}");
    }
    let (_, page) = app.call("GET", &format!("{users}?offset=7&limit=5"), None).await;
    assert_eq!(page["items"][0]["tags"], json!([]), "a user without tags: {page}");
    let id = page["items"][0]["id"].as_str().unwrap();
    let (_, user) = app.call("GET", &format!("{users}/{id}"), None).await;
    assert_eq!(user["tags"], json!([]), "{user}");
    let credentials = format!("/role-store/api/v1/users/{id}/webauthn-credentials");
    let (_, none) = app.call("GET", &credentials, None).await;
    assert_eq!(none, json!({"count": 0, "items": []}));
}
