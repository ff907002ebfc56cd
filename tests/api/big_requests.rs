//! One big request must not stall the server: the largest user the spec allows is written in
//! time linear in its tags, off the threads that answer other requests, and a body far over
//! the spec's bounds is turned away at once (issue 15, defect 2).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use privx_mock::client::types::ErrorCode;
use serde_json::{json, Value};

use crate::helpers::{assert_envelope, spawn_app, TestApp};

const USERS: &str = "/local-user-store/api/v1/users";

/// Far above what `/healthz` waits when nothing stalls the server (milliseconds; a fifth of a
/// second at worst on a loaded two-core debug build while the writers below run), far below
/// the minutes the stall of issue 15 took, and generous for a loaded CI machine.
const FAST: Duration = Duration::from_secs(2);

/// The spec's bounds on a user's tags: how many, and how long each.
fn tag_bounds() -> (usize, usize) {
    let spec: Value = serde_json::from_str(privx_mock::api::SPEC_JSON).unwrap();
    let tags = &spec["components"]["schemas"]["UserRequest"]["properties"]["tags"];
    let bound = |v: &Value| v.as_u64().expect("the spec bounds tags") as usize;
    (bound(&tags["maxItems"]), bound(&tags["items"]["maxLength"]))
}

/// As many tags as the spec allows, each as long as it allows: half of them `shared` by every
/// user made with the same `round`, half only this `writer`'s.
fn biggest_tags(writer: usize, round: usize) -> Vec<String> {
    let (count, length) = tag_bounds();
    (0..count)
        .map(|i| {
            let tag = if i % 2 == 0 {
                format!("shared-{round}-{i:04}-")
            } else {
                format!("w{writer}-{round}-{i:04}-")
            };
            format!("{tag:x<length$}")
        })
        .collect()
}

/// How long the biggest user write may take, queued behind the other writers' (writes of users
/// are serialized) on a loaded debug build: seconds at most, where the quadratic tag indexing
/// of issue 15 took minutes.
const WRITE: Duration = Duration::from_secs(10);

/// Sends `method path` with `body` as the admin; says what went wrong unless the answer is
/// `status` within [`WRITE`]. Returns the JSON answer (null when there is none).
async fn timed(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Result<Value, String> {
    let started = Instant::now();
    let (got, answer) = app.call(method, path, body).await;
    let took = started.elapsed();
    if got != status || took > WRITE {
        return Err(format!("{method} {path}: {got} after {took:?}: {answer}"));
    }
    Ok(answer)
}

/// The distinct tags of all users, in order (the tag listing, one page of them all).
async fn tag_listing(app: &TestApp) -> Vec<String> {
    let (status, tags) = app.call("GET", &format!("{USERS}/tags?limit=100000"), None).await;
    assert_eq!(status, 200, "{tags}");
    serde_json::from_value(tags).unwrap()
}

/// `/healthz` answers within [`FAST`] all the while several writers create, update and delete
/// users with the most and longest tags the spec allows, and the tags and tag listing are
/// right afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_stays_fast_while_the_biggest_users_are_written() {
    let app = spawn_app().await;
    let writing = AtomicBool::new(true);
    // Failures are collected, not panicked on, so that no write is in flight when the test
    // ends.
    let writers = join_all((0..4).map(|writer| {
        let app = &app;
        async move {
            for round in 0..2 {
                let name = format!("big-{writer}-{round}");
                let body = json!({"username": name, "tags": biggest_tags(writer, round)});
                let user = timed(app, "POST", USERS, Some(body), 201).await?;
                let path = format!("{USERS}/{}", user["id"].as_str().unwrap_or_default());
                let tags = biggest_tags(writer, round + 1);
                let body = json!({"username": name, "tags": tags});
                timed(app, "PUT", &path, Some(body), 200).await?;
                let stored = timed(app, "GET", &path, None, 200).await?;
                if stored["tags"] != json!(tags) {
                    return Err(format!("{path} does not have the update's tags, in order"));
                }
                // The last round's users stay, for the checks after the writers.
                if round == 0 {
                    timed(app, "DELETE", &path, None, 200).await?;
                }
            }
            Ok(())
        }
    }));
    let writers = async {
        let done = writers.await;
        writing.store(false, Ordering::Relaxed);
        done
    };
    let health = async {
        let (mut checks, mut slowest) = (0, Duration::ZERO);
        while writing.load(Ordering::Relaxed) {
            let started = Instant::now();
            let response = app.anonymous.get(app.url("/healthz")).send().await;
            let took = started.elapsed();
            if response.map(|r| r.status().as_u16()).ok() != Some(200) {
                return Err("/healthz did not answer 200".to_string());
            }
            slowest = slowest.max(took);
            checks += 1;
        }
        Ok((checks, slowest))
    };
    let (written, health) = tokio::join!(writers, health);
    let failures: Vec<String> = written.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let (checks, slowest) = health.unwrap();
    assert!(slowest < FAST, "/healthz took {slowest:?} while big users were written");
    assert!(checks > 1, "/healthz was asked {checks} times");

    // Left: each writer's last user, with the tags its update gave it.
    let mut expected: Vec<String> = (0..4).flat_map(|writer| biggest_tags(writer, 2)).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(tag_listing(&app).await, expected, "the tags of the users left, once each");
    let (_, list) = app.call("GET", &format!("{USERS}?limit=100"), None).await;
    assert_eq!(list["count"], 4);
    for user in list["items"].as_array().unwrap() {
        let (status, _) =
            app.call("DELETE", &format!("{USERS}/{}", user["id"].as_str().unwrap()), None).await;
        assert_eq!(status, 200);
    }
    assert_eq!(tag_listing(&app).await, Vec::<String>::new(), "no tag outlives its users");
}

/// A body with 100,000 short tags (under the 1 MiB body limit, so the spec's bound is what
/// turns it away) is a 400 envelope naming `tags`, answered within [`FAST`] while `/healthz`
/// is, and nothing of it is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_tags_are_turned_away_fast() {
    let app = spawn_app().await;
    let tags: Vec<String> = (0..100_000).map(|i| format!("t{i}")).collect();
    let body = json!({"username": "many-tags", "tags": tags});
    let size = serde_json::to_vec(&body).unwrap().len();
    assert!(size < privx_mock::server::REQUEST_BODY_MAX_BYTES, "{size} bytes");
    for path in
        [USERS.to_string(), format!("{USERS}/{}", app.create_user("few-tags", &["a"]).await)]
    {
        let method = if path == USERS { "POST" } else { "PUT" };
        let request = app.http.request(method.parse().unwrap(), app.url(&path)).json(&body);
        let started = Instant::now();
        let (answer, health) = tokio::join!(request.send(), async {
            let started = Instant::now();
            let health = app.anonymous.get(app.url("/healthz")).send().await.unwrap();
            (health.status().as_u16(), started.elapsed())
        });
        let envelope = assert_envelope(answer.unwrap(), 400).await;
        let took = started.elapsed();
        assert!(took < FAST, "{method} {path} with 100,000 tags took {took:?}");
        assert_eq!(envelope.error_code, ErrorCode::ValueOutOfBounds, "{envelope:?}");
        assert_eq!(envelope.property.as_deref(), Some("tags"), "{envelope:?}");
        assert_eq!(health.0, 200);
        assert!(health.1 < FAST, "/healthz took {:?} beside it", health.1);
    }
    let (_, list) = app.call("GET", USERS, None).await;
    assert_eq!(list["count"], 1, "only the small user: {list}");
    assert_eq!(list["items"][0]["tags"], json!(["a"]));
    assert_eq!(tag_listing(&app).await, ["a"]);
}
