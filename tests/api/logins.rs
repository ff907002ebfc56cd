//! Logins under attack and tokens that outlive what they were issued for: the bounded password
//! pool (memory under a login flood, reads while passwords are hashed), token revocation on
//! delete and password change, and the brute-force brake. Each test is bounded in time and
//! request count, and talks to 127.0.0.1 only.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::binary;
use crate::helpers::{bearer_client, spawn_app, TestApp, ADMIN, OAUTH_CLIENT, SIGNING_KEY};

const TOKEN: &str = "/auth/api/v1/oauth/token";
const USERS: &str = "/local-user-store/api/v1/users";

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("the field");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("a number")
}

/// A user with `password`; returns its id.
async fn user_with_password(app: &TestApp, username: &str, password: &str) -> Uuid {
    let body = json!({"username": username, "password": {"password": password}});
    let (status, user) = app.call("POST", USERS, Some(body)).await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_str().unwrap().parse().unwrap()
}

/// The status of a call a `user` token may make: the user's own WebAuthn credentials.
async fn own_credentials(app: &TestApp, user: Uuid, token: &str) -> u16 {
    let url = app.url(&format!("/role-store/api/v1/users/{user}/webauthn-credentials"));
    bearer_client(token).get(url).send().await.unwrap().status().as_u16()
}

/// The argon2 memory of one login in MiB (argon2id's default `m_cost`, 19 MiB).
const ARGON2_MIB: u64 = 19;

/// Clients in the login flood, each logging in as a user of its own: more first logins at
/// once than the largest pool runs and queues (4 threads and 4 × 16 jobs).
const FLOOD_CLIENTS: usize = 80;

/// [`FLOOD_CLIENTS`] clients log in as fast as they can for a few seconds (at most 100 logins
/// each), each as a user of its own, so the first logins all need argon2 (later ones are
/// remembered, and until a client's first succeeded it keeps trying). Before the pool, every
/// login got its own blocking thread and 19 MiB (2.5 GiB in all here); now at most the pool's
/// threads hash at once, each in the memory it keeps, and the rest of the flood is answered
/// 503 at once. The bound checked is the README's: growth within the argon2 memory of the
/// largest pool (4 threads), plus slack for the connections themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rss_under_a_login_flood_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<Value> = (0..FLOOD_CLIENTS)
        .map(|n| json!({"id": Uuid::new_v4(), "username": format!("flood-{n}"), "password": format!("flood-password-{n}")}))
        .collect();
    let fixtures = dir.path().join("fixtures.json");
    std::fs::write(&fixtures, json!({ "users": users }).to_string()).unwrap();
    let data = dir.path().join("data");
    let server = binary::start_with(&data, |command| {
        command.arg("--fixtures").arg(&fixtures);
    });
    let pid = server.child.id();
    server.token().await; // one login first: the pool's threads and their memory exist
    let before = status_kib(pid, "VmRSS");

    let deadline = Instant::now() + Duration::from_secs(4);
    let client = reqwest::Client::new();
    let answers = join_all((0..FLOOD_CLIENTS).map(|n| {
        let (client, url) = (client.clone(), server.url(TOKEN));
        let (username, password) = (format!("flood-{n}"), format!("flood-password-{n}"));
        async move {
            let mut answers = Vec::new();
            while Instant::now() < deadline && answers.len() < 100 {
                let response = client
                    .post(&url)
                    .basic_auth(OAUTH_CLIENT.0, Some(OAUTH_CLIENT.1))
                    .form(&[
                        ("grant_type", "password"),
                        ("username", &username),
                        ("password", &password),
                    ])
                    .send()
                    .await
                    .expect("an answer");
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").is_some();
                let body: Value = response.json().await.expect("a JSON answer");
                answers.push((status, retry_after, body["error"].clone()));
            }
            answers
        }
    }))
    .await;
    let growth_mib = status_kib(pid, "VmHWM").saturating_sub(before) / 1024;
    let bound_mib = 4 * ARGON2_MIB + 64;
    assert!(growth_mib <= bound_mib, "RSS grew {growth_mib} MiB (bound {bound_mib} MiB)");

    let answers: Vec<_> = answers.into_iter().flatten().collect();
    let ok = answers.iter().filter(|(status, ..)| *status == 200).count();
    let busy: Vec<_> = answers.iter().filter(|(status, ..)| *status == 503).collect();
    assert!(ok > 0, "some logins got through");
    assert!(!busy.is_empty(), "{FLOOD_CLIENTS} first logins overflow the queue");
    assert_eq!(ok + busy.len(), answers.len(), "only 200 or 503");
    for (_, retry_after, error) in busy {
        assert!(retry_after, "a 503 says when to retry");
        assert_eq!(error, "temporarily_unavailable");
    }
}

/// The `q`-quantile of `samples` (sorted in place).
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * q) as usize]
}

/// Passwords are set as fast as 4 clients can while another reads a user: before the pool,
/// each hash held an async worker for its whole run, and the reads waited behind them. The
/// reference is one argon2 hash on this machine, now: a read must not wait as long as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_p99_stays_low_while_passwords_are_set() {
    let app = spawn_app().await;
    let user = user_with_password(&app, "reader", "first-password-1").await;
    let path = format!("{USERS}/{user}");
    let started = Instant::now();
    privx_mock::password::hash("one argon2 run, for scale");
    let one_hash = started.elapsed();

    let setters = join_all((0..4).map(|s| {
        let (app, path) = (&app, format!("{path}/password"));
        async move {
            for i in 0..15 {
                let body = json!({"password": format!("password-{s}-{i}")});
                let (status, answer) = app.call("PUT", &path, Some(body)).await;
                assert_eq!(status, 200, "{answer}");
            }
        }
    }));
    let reader = async {
        // Reads start with the setters and stop when they are done (at most 2,000).
        let mut samples = Vec::new();
        let mut setters_done = std::pin::pin!(setters);
        loop {
            let started = Instant::now();
            tokio::select! {
                biased;
                _ = &mut setters_done => break samples,
                (status, _) = app.call("GET", &path, None) => {
                    assert_eq!(status, 200);
                    samples.push(started.elapsed());
                }
            }
            if samples.len() >= 2000 {
                setters_done.await;
                break samples;
            }
        }
    };
    let mut samples = reader.await;
    assert!(samples.len() >= 100, "reads starved: only {} ran beside the setters", samples.len());
    let p99 = quantile(&mut samples, 0.99);
    assert!(p99 < one_hash, "GET p99 {p99:?} against one hash {one_hash:?}");
}

/// A signed token for `subject` with `iat` (and `nbf`) as given, valid for 10 minutes.
fn mint(subject: &str, iat: i64, nbf: Option<i64>) -> String {
    let mut claims = json!({
        "sub": subject,
        "scope": "admin user",
        "iat": iat,
        "exp": Utc::now().timestamp() + 600,
        "iss": "privx-mock",
    });
    if let Some(nbf) = nbf {
        claims["nbf"] = nbf.into();
    }
    let key = EncodingKey::from_secret(SIGNING_KEY.as_bytes());
    jsonwebtoken::encode(&Header::default(), &claims, &key).unwrap()
}

#[tokio::test]
async fn deleted_user_and_old_password_tokens_are_refused() {
    let mut app = spawn_app().await;
    let user = user_with_password(&app, "dora", "old-password-1").await;
    let old = app.token("dora", "old-password-1").await;
    assert_eq!(own_credentials(&app, user, &old).await, 200, "the token works (and is kept)");

    // The password changes in the same second the token was issued.
    let path = format!("{USERS}/{user}/password");
    let (status, _) = app.call("PUT", &path, Some(json!({"password": "new-password-2"}))).await;
    assert_eq!(status, 200);
    assert_eq!(own_credentials(&app, user, &old).await, 401, "the old password's token");
    let new = app.token("dora", "new-password-2").await;
    assert_eq!(own_credentials(&app, user, &new).await, 200);

    // A profile update that leaves the password alone keeps the token; one with a password
    // does not.
    let (status, _) =
        app.call("PUT", &format!("{USERS}/{user}"), Some(json!({"username": "dora"}))).await;
    assert_eq!(status, 200);
    assert_eq!(own_credentials(&app, user, &new).await, 200, "no password change");

    app.restart().await;
    assert_eq!(own_credentials(&app, user, &new).await, 200, "survives a restart");
    assert_eq!(own_credentials(&app, user, &old).await, 401, "still refused after a restart");

    let body = json!({"username": "dora", "password": {"password": "third-password-3"}});
    let (status, _) = app.call("PUT", &format!("{USERS}/{user}"), Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(own_credentials(&app, user, &new).await, 401, "an update with a password");

    let third = app.token("dora", "third-password-3").await;
    let (status, _) = app.call("DELETE", &format!("{USERS}/{user}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(own_credentials(&app, user, &third).await, 401, "a deleted user's token");
    app.restart().await;
    assert_eq!(own_credentials(&app, user, &third).await, 401, "still refused after a restart");
}

#[tokio::test]
async fn tokens_from_the_future_are_refused() {
    let app = spawn_app().await;
    let mut validation = jsonwebtoken::Validation::default();
    validation.set_issuer(&["privx-mock"]);
    let key = jsonwebtoken::DecodingKey::from_secret(SIGNING_KEY.as_bytes());
    let token = app.token(ADMIN.0, ADMIN.1).await;
    let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap().claims;
    let admin = claims["sub"].as_str().unwrap();
    let list = |token: String| {
        let url = app.url(USERS);
        async move { bearer_client(&token).get(url).send().await.unwrap().status().as_u16() }
    };
    let now = Utc::now().timestamp();
    assert_eq!(list(mint(admin, now - 5, None)).await, 200, "a minted token works");
    assert_eq!(list(mint(admin, now + 600, None)).await, 401, "iat in the future");
    assert_eq!(list(mint(admin, now - 5, Some(now + 600))).await, 401, "nbf in the future");
}

/// The `(status, Retry-After)` of a password grant.
async fn attempt(app: &TestApp, username: &str, password: &str) -> (u16, Option<u64>) {
    let response = app.password_grant(username, password).await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds"));
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    if status == 429 {
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
    (status, retry_after)
}

#[tokio::test]
async fn the_brute_force_brake_locks_the_attacked_account_only() {
    let app = spawn_app().await;
    user_with_password(&app, "victim", "right-password-1").await;
    user_with_password(&app, "bystander", "bystander-pass-2").await;
    // The right password is remembered first: the brake stands in front of that too.
    assert_eq!(attempt(&app, "victim", "right-password-1").await.0, 200);

    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.push(attempt(&app, "victim", &format!("guess-{i}")).await.0);
    }
    assert!(statuses.iter().all(|s| *s == 400 || *s == 429), "{statuses:?}");
    assert!(statuses.contains(&429), "the brake engaged: {statuses:?}");
    let (status, retry_after) = attempt(&app, "victim", "right-password-1").await;
    assert_eq!(status, 429, "the right password right after 30 wrong ones");
    let retry_after = retry_after.expect("a 429 says when to retry");

    // Another user, from the same address, logs in at once, with one argon2 check's delay.
    let started = Instant::now();
    assert_eq!(attempt(&app, "bystander", "bystander-pass-2").await.0, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());

    // Once the window has passed the right password works (polled: attempts while locked do
    // not count), and the success starts the account afresh.
    let deadline = Instant::now() + Duration::from_secs(retry_after + 5);
    loop {
        let (status, _) = attempt(&app, "victim", "right-password-1").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        assert!(Instant::now() < deadline, "still locked after Retry-After");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempt(&app, "victim", "one-wrong").await.0, 400, "a fresh count after success");
}

#[tokio::test]
async fn the_brute_force_brake_locks_an_address_that_sprays_usernames() {
    let app = spawn_app().await;
    // 20 failures in a row are free, the 21st locks the address (for a second: the next
    // attempts follow at once).
    let mut statuses = Vec::new();
    for i in 0..22 {
        statuses.push(attempt(&app, &format!("sprayed-{i}"), "password").await.0);
    }
    assert!(statuses[..21].iter().all(|s| *s == 400), "{statuses:?}");
    assert_eq!(statuses[21], 429, "{statuses:?}");
    // While the address is locked, no login from it is checked, the right one included.
    assert_eq!(attempt(&app, ADMIN.0, ADMIN.1).await.0, 429);
}

/// The `(status, error)` of a password grant.
async fn grant_error(app: &TestApp, username: &str, password: &str) -> (u16, Value) {
    let response = app.password_grant(username, password).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].clone())
}

/// The answer to wrong credentials: RFC 6749's `invalid_grant`, as an unknown user gets it.
async fn refused(app: &TestApp) -> (u16, Value) {
    grant_error(app, "nobody-by-this-name", "any-password").await
}

/// Repeated grants with the same right credentials are answered from memory: one first grant
/// pays argon2 (the OAuth client's secret and the user's password, on the pool), then the
/// repeats together take less time than half as many argon2 runs would on this machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_right_logins_skip_argon2() {
    const REPEATS: u32 = 100;
    let app = spawn_app().await;
    user_with_password(&app, "frequent", "frequent-password-1").await;
    // One argon2 run for scale, after one that warms its memory up (as the pool's threads
    // keep theirs).
    privx_mock::password::hash("warming up");
    let started = Instant::now();
    privx_mock::password::hash("one argon2 run, for scale");
    let one_hash = started.elapsed();

    assert_eq!(grant_error(&app, "frequent", "frequent-password-1").await.0, 200);
    let started = Instant::now();
    for _ in 0..REPEATS {
        assert_eq!(grant_error(&app, "frequent", "frequent-password-1").await.0, 200);
    }
    let repeats = started.elapsed();
    let bound = one_hash * REPEATS / 2;
    assert!(repeats < bound, "{REPEATS} repeats took {repeats:?} (one hash {one_hash:?})");
}

#[tokio::test]
async fn a_remembered_password_stops_working_when_changed() {
    let app = spawn_app().await;
    let refused = refused(&app).await;
    assert_eq!(refused.1, "invalid_grant");
    let user = user_with_password(&app, "changer", "old-password-1").await;
    for _ in 0..2 {
        assert_eq!(grant_error(&app, "changer", "old-password-1").await.0, 200, "remembered");
    }
    let path = format!("{USERS}/{user}/password");
    let (status, _) = app.call("PUT", &path, Some(json!({"password": "new-password-2"}))).await;
    assert_eq!(status, 200);
    assert_eq!(grant_error(&app, "changer", "old-password-1").await, refused, "the old one");
    assert_eq!(grant_error(&app, "changer", "new-password-2").await.0, 200, "the new one");
}

#[tokio::test]
async fn a_wrong_password_after_a_remembered_right_one_is_refused() {
    let app = spawn_app().await;
    let refused = refused(&app).await;
    user_with_password(&app, "typist", "right-password-1").await;
    assert_eq!(grant_error(&app, "typist", "right-password-1").await.0, 200);
    assert_eq!(grant_error(&app, "typist", "right-password-1").await.0, 200);
    assert_eq!(grant_error(&app, "typist", "right-password-2").await, refused);
    assert_eq!(grant_error(&app, "typist", "right-password-").await, refused);
    // The OAuth client's remembered secret: a wrong one right after is refused too.
    let response = reqwest::Client::new()
        .post(app.url(TOKEN))
        .basic_auth(OAUTH_CLIENT.0, Some(format!("{}x", OAUTH_CLIENT.1)))
        .form(&[
            ("grant_type", "password"),
            ("username", "typist"),
            ("password", "right-password-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn a_deleted_users_remembered_password_is_refused() {
    let app = spawn_app().await;
    let refused = refused(&app).await;
    let user = user_with_password(&app, "leaver", "leaver-password-1").await;
    assert_eq!(grant_error(&app, "leaver", "leaver-password-1").await.0, 200);
    assert_eq!(grant_error(&app, "leaver", "leaver-password-1").await.0, 200);
    let (status, _) = app.call("DELETE", &format!("{USERS}/{user}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(grant_error(&app, "leaver", "leaver-password-1").await, refused);
    // A new user of the same name and password is another principal with another hash.
    user_with_password(&app, "leaver", "leaver-password-1").await;
    assert_eq!(grant_error(&app, "leaver", "leaver-password-1").await.0, 200);
}
