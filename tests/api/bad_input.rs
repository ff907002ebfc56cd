//! Bad input gets a 4xx PrivX error envelope naming the problem, and the server keeps serving.

use privx_mock::client::types::ErrorCode;

use serde_json::json;

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
    assert_eq!(app.client.user_list().send().await.unwrap().into_inner().count, 0);
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
        "/role-store/api/v1/users/0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001/webauthn-credentials?sortkey=color",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        let envelope = assert_envelope(response, 400).await;
        assert!(
            matches!(envelope.error_code, ErrorCode::ValueIncorrectFormat | ErrorCode::BadRequest),
            "{path}: {envelope:?}"
        );
    }
}

/// Every 404 says `OBJECT_NOT_FOUND`: the Terraform provider decides that a resource is gone by
/// finding `NOT_FOUND` in the Go SDK's error text, which is built from `error_code`.
#[tokio::test]
async fn a_missing_resource_is_object_not_found() {
    let app = spawn_app().await;
    let unknown = uuid::Uuid::new_v4();
    for (method, path) in [
        ("GET", format!("{USERS}/{unknown}")),
        ("PUT", format!("{USERS}/{unknown}/password")),
        ("DELETE", format!("{USERS}/{unknown}")),
        ("GET", format!("/extender-service/api/v1/listeners/{unknown}")),
        ("DELETE", format!("/extender-service/api/v1/listeners/{unknown}")),
        ("POST", format!("/connection-manager/api/v1/terminate/connection/{unknown}")),
    ] {
        let mut request = app.http.request(method.parse().unwrap(), app.url(&path));
        if method == "PUT" {
            request = request.json(&json!({"password": "a-new-password"}));
        }
        let envelope = assert_envelope(request.send().await.unwrap(), 404).await;
        assert_eq!(envelope.error_code, ErrorCode::ObjectNotFound, "{method} {path}");
    }
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

    // Real payloads are far above dropshot's 1 KiB default: here about 100 KiB, every field
    // within its bound.
    let attributes: Vec<_> =
        (0..100).map(|i| json!({"key": format!("k{i}"), "value": "y".repeat(1000)})).collect();
    let body = json!({"username": "long", "attributes": attributes});
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

#[tokio::test]
async fn deeply_nested_json_gets_an_envelope() {
    let app = spawn_app().await;
    let nested = format!(
        "{{\"username\": \"n\", \"comment\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let response = app
        .http
        .post(app.url(USERS))
        .header("content-type", "application/json")
        .body(nested)
        .send()
        .await
        .unwrap();
    assert_envelope(response, 400).await;
    assert_eq!(app.create_user_raw("still-serving".into()).await, 201);
}

#[tokio::test]
async fn non_utf8_in_path_and_query_gets_an_envelope() {
    let app = spawn_app().await;
    // Query values decode lossily (U+FFFD for what is not UTF-8): they match nothing.
    let by_name = app.http.get(app.url(&format!("{USERS}?username=%FF%FE"))).send().await.unwrap();
    let by_name: serde_json::Value = by_name.json().await.unwrap();
    assert_eq!(by_name["count"], 0);
    app.create_user("tagged", &["t"]).await;
    let tags = app.http.get(app.url(&format!("{USERS}/tags?query=%C3%28"))).send().await.unwrap();
    assert_eq!(tags.json::<Vec<String>>().await.unwrap(), Vec::<String>::new());
    let response = app.http.get(app.url(&format!("{USERS}?offset=%FF"))).send().await.unwrap();
    assert_envelope(response, 400).await;
    // A path that does not decode never reaches an endpoint, not even the router's catch-alls:
    // dropshot's router refuses it first, with its own error body (a known gap, see the
    // README).
    for path in [
        "/local-user-store/api/v1/users/%FF%FE",
        "/role-store/api/v1/users/%FF/webauthn-credentials",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{path}");
    }
    assert_eq!(app.create_user_raw("still-serving".into()).await, 201);
}

#[tokio::test]
async fn huge_and_negative_numbers_are_handled() {
    let app = spawn_app().await;
    app.create_user("only", &[]).await;
    let max = u32::MAX; // the spec's maximum for offset and limit
    let ok = app.http.get(app.url(&format!("{USERS}?limit={max}&offset=0"))).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200, "the largest limit is just a big page");
    let past = app.http.get(app.url(&format!("{USERS}?offset={max}"))).send().await.unwrap();
    let past: serde_json::Value = past.json().await.unwrap();
    assert_eq!(past, serde_json::json!({"count": 1, "items": []}), "an empty page");
    for query in
        ["limit=4294967296", "offset=18446744073709551616", "offset=-5", "limit=-1", "limit=1e3"]
    {
        let response = app.http.get(app.url(&format!("{USERS}?{query}"))).send().await.unwrap();
        assert_envelope(response, 400).await;
    }
    let body =
        serde_json::json!({"network": "tcp", "destination": "e/d:1", "keep_open_sec": i64::MAX});
    let response = app.http.post(app.url("/extender-service/api/v1/listeners")).json(&body).send();
    let envelope = assert_envelope(response.await.unwrap(), 400).await;
    assert_eq!(envelope.property.as_deref(), Some("keep_open_sec"));
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_refused_before_its_fields() {
    let app = spawn_app().await;
    let long = "x".repeat(100 * 1024);
    let mut body = json!({"username": "u"});
    for field in ["comment", "full_name", "display_name", "job_title", "company", "department"] {
        for copy in 0..2 {
            body[format!("{field}{copy}")] = long.clone().into();
        }
    }
    // Twelve 100 KiB strings: over the 1 MiB limit.
    let response = app.http.post(app.url(USERS)).json(&body).send().await.unwrap();
    assert_envelope(response, 400).await;
    assert_eq!(app.create_user_raw("x".repeat(300_000)).await, 400, "a 300,000-character username");
}

/// Every `maxLength` and `maxItems` of the user request in the spec holds: a value at the bound
/// is stored, one past it is a 400 `VALUE_OUT_OF_BOUNDS` naming the property.
#[tokio::test]
async fn user_fields_are_bounded_as_the_spec_says() {
    let app = spawn_app().await;
    let spec: serde_json::Value = serde_json::from_str(privx_mock::api::SPEC_JSON).unwrap();
    let schemas = &spec["components"]["schemas"];
    let bound = |schema: &serde_json::Value, key: &str| schema[key].as_u64().map(|n| n as usize);
    type Case = (String, Box<dyn Fn(usize) -> serde_json::Value>, usize);
    let mut cases: Vec<Case> = Vec::new();
    for (name, property) in schemas["UserRequest"]["properties"].as_object().unwrap() {
        if let Some(max) = bound(property, "maxLength") {
            let name = name.clone();
            cases.push((
                name.clone(),
                Box::new(move |n| json!({ name.clone(): "é".repeat(n) })),
                max,
            ));
        }
    }
    let tags = &schemas["UserRequest"]["properties"]["tags"];
    let attributes = &schemas["UserAttributes"];
    let attribute = &schemas["UserAttribute"]["properties"];
    cases.push((
        "tags".into(),
        Box::new(|n| json!({"tags": (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>()})),
        bound(tags, "maxItems").unwrap(),
    ));
    cases.push((
        "tags".into(),
        Box::new(|n| json!({"tags": ["t".repeat(n)]})),
        bound(&tags["items"], "maxLength").unwrap(),
    ));
    cases.push(("attributes".into(), Box::new(|n| json!({"attributes": (0..n).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect::<Vec<_>>()})), bound(attributes, "maxItems").unwrap()));
    cases.push((
        "attributes".into(),
        Box::new(|n| json!({"attributes": [{"key": "k".repeat(n), "value": "v"}]})),
        bound(&attribute["key"], "maxLength").unwrap(),
    ));
    cases.push((
        "attributes".into(),
        Box::new(|n| json!({"attributes": [{"key": "k", "value": "v".repeat(n)}]})),
        bound(&attribute["value"], "maxLength").unwrap(),
    ));
    cases.push((
        "password".into(),
        Box::new(|n| json!({"password": {"password": "p".repeat(n)}})),
        bound(&schemas["UserPassword"]["properties"]["password"], "maxLength").unwrap(),
    ));
    assert!(cases.len() >= 19, "the spec bounds every string and array of a user");
    for (i, (property, body, max)) in cases.iter().enumerate() {
        let with_name = |n: usize| {
            let mut value = body(n);
            if value.get("username").is_none() {
                value["username"] = format!("bounded{i}-{n}").into();
            }
            value
        };
        let at = app.http.post(app.url(USERS)).json(&with_name(*max)).send().await.unwrap();
        assert_eq!(at.status().as_u16(), 201, "{property} at its bound {max}");
        let over = app.http.post(app.url(USERS)).json(&with_name(max + 1)).send().await.unwrap();
        let envelope = assert_envelope(over, 400).await;
        assert_eq!(envelope.error_code, ErrorCode::ValueOutOfBounds, "{property}: {envelope:?}");
        let named = envelope.property.as_deref().unwrap_or_default();
        assert!(named.starts_with(property.as_str()), "{property}: {envelope:?}");
    }
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let app = spawn_app().await;
    let body = serde_json::json!({"username": "u", "first_name": "F", "nested": {"a": [1, 2]}});
    let response = app.http.post(app.url(USERS)).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
}

#[tokio::test]
async fn listener_credential_and_password_bodies_are_bounded() {
    let app = crate::helpers::spawn_app_with_fixtures(json!({
        "users": [{"id": "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001", "username": "alice"}],
        "webauthn_credentials": [{"id": "7f000000-0000-4000-8000-00000000000a",
            "user_id": "0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001", "name": "key"}],
    }))
    .await;
    let spec: serde_json::Value = serde_json::from_str(privx_mock::api::SPEC_JSON).unwrap();
    let max = |pointer: &str| {
        spec["components"]["schemas"].pointer(pointer).unwrap().as_u64().unwrap() as usize
    };
    let sources = max("/ListenerCreate/properties/source/maxItems");
    let destination = max("/ListenerCreate/properties/destination/maxLength");
    let name = max("/WebauthnCredentialUpdate/properties/name/maxLength");
    let password = max("/Password/properties/password/maxLength");
    let listeners = "/extender-service/api/v1/listeners";
    let credential = "/role-store/api/v1/users/0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001/webauthn-credentials/7f000000-0000-4000-8000-00000000000a";
    let password_path =
        "/local-user-store/api/v1/users/0b5d2a3e-6a49-4bd7-9d1c-3f9a6f4a0001/password";
    let source =
        |n: usize| (0..n).map(|i| format!("10.0.{}.{}", i / 256, i % 256)).collect::<Vec<_>>();
    let cases = [
        (
            "POST",
            listeners,
            "source",
            json!({"network": "tcp", "destination": "e/d:1", "source": source(sources)}),
            json!({"network": "tcp", "destination": "e/d:1", "source": source(sources + 1)}),
        ),
        (
            "POST",
            listeners,
            "destination",
            json!({"network": "tcp", "destination": format!("{}/h:1", "p".repeat(destination - 4))}),
            json!({"network": "tcp", "destination": format!("{}/h:1", "p".repeat(destination - 3))}),
        ),
        (
            "PUT",
            credential,
            "name",
            json!({"name": "n".repeat(name)}),
            json!({"name": "n".repeat(name + 1)}),
        ),
        (
            "PUT",
            password_path,
            "password",
            json!({"password": "p".repeat(password)}),
            json!({"password": "p".repeat(password + 1)}),
        ),
    ];
    for (method, path, property, at, over) in cases {
        let (status, body) = app.call(method, path, Some(at)).await;
        assert!(status == 200 || status == 201, "{property} at its bound: {status} {body}");
        let (status, envelope) = app.call(method, path, Some(over)).await;
        assert_eq!(status, 400, "{property}: {envelope}");
        assert_eq!(
            (envelope["error_code"].as_str(), envelope["property"].as_str()),
            (Some("VALUE_OUT_OF_BOUNDS"), Some(property)),
            "{envelope}"
        );
    }
}
