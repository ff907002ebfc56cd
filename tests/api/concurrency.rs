//! Multi-record invariants under real concurrent HTTP clients.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::spawn_app;

const USERS: &str = "/local-user-store/api/v1/users";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_many_concurrent_creates_of_a_name_wins() {
    let app = spawn_app().await;
    for round in 0..5 {
        let name = format!("contested-{round}");
        let statuses = join_all((0..16).map(|_| app.create_user_raw(name.clone()))).await;
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == 201 || *s == 400), "{statuses:?}");
    }
    let (_, list) = app.call("GET", USERS, None).await;
    assert_eq!(list["count"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rename_racing_a_create_of_the_same_name_lets_exactly_one_win() {
    let app = spawn_app().await;
    for round in 0..10 {
        let id = app.create_user(&format!("old-{round}"), &[]).await;
        let target = format!("target-{round}");
        let rename = app
            .http
            .put(app.url(&format!("{USERS}/{id}")))
            .json(&json!({ "username": target }))
            .send();
        let (renamed, created) = tokio::join!(rename, app.create_user_raw(target.clone()));
        let renamed = renamed.unwrap().status().as_u16();
        assert!(
            (renamed == 200) != (created == 201),
            "round {round}: rename {renamed}, create {created}"
        );
        let (_, found) = app.call("GET", &format!("{USERS}?username={target}"), None).await;
        assert_eq!(found["count"], 1, "the index names one user");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_see_one_state_while_writers_run() {
    let app = spawn_app().await;
    let writers = join_all((0..4).map(|w| {
        let app = &app;
        async move {
            for i in 0..40 {
                assert_eq!(app.create_user_raw(format!("w{w}-{i}")).await, 201);
            }
        }
    }));
    let readers = join_all((0..4).map(|_| {
        let app = &app;
        async move {
            for _ in 0..40 {
                let (_, list) = app.call("GET", &format!("{USERS}?limit=1000"), None).await;
                let items = list["items"].as_array().map_or(0, Vec::len);
                assert_eq!(
                    list["count"].as_u64().unwrap() as usize,
                    items,
                    "count and items agree"
                );
            }
        }
    }));
    tokio::join!(writers, readers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deletes_and_creates_keep_the_indexes_in_step() {
    let app = spawn_app().await;
    let names: Vec<String> = (0..30).map(|i| format!("d{i}")).collect();
    let ids: Vec<_> = join_all(names.iter().map(|name| app.create_user(name, &["shared"]))).await;
    let deletes = join_all(
        ids.iter().step_by(2).map(|id| app.http.delete(app.url(&format!("{USERS}/{id}"))).send()),
    );
    let creates = join_all((30..45).map(|i| app.create_user_raw(format!("d{i}"))));
    let (deleted, created) = tokio::join!(deletes, creates);
    assert!(deleted.into_iter().all(|r| r.unwrap().status().as_u16() == 200));
    assert!(created.into_iter().all(|s| s == 201));

    let (_, list) = app.call("GET", &format!("{USERS}?limit=1000"), None).await;
    assert_eq!(list["count"], 30);
    for user in list["items"].as_array().unwrap() {
        let name = user["username"].as_str().unwrap();
        let (_, found) = app.call("GET", &format!("{USERS}?username={name}"), None).await;
        assert_eq!(found["items"][0]["id"], user["id"]);
    }
    for id in ids.iter().step_by(2) {
        let name_taken = app.http.get(app.url(&format!("{USERS}/{id}"))).send().await.unwrap();
        assert_eq!(name_taken.status().as_u16(), 404);
    }
    // The deleted users' names are free again: no index entry outlived its user.
    let again = join_all((0..30).step_by(2).map(|i| app.create_user_raw(format!("d{i}")))).await;
    assert!(again.iter().all(|s| *s == 201), "{again:?}");
}
