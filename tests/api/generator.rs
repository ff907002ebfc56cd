//! build.rs refuses what it cannot generate correctly, with a message naming the operation,
//! and what it generates beside the API (the `Location` of created resources) is what the
//! server serves.

use privx_mock::api::locations;
use privx_mock::client::types;
use serde_yaml::Value;

use crate::helpers::{spawn_app, user_request};

/// The build script as a module; `spec_drift.rs` uses its model's `$ref` resolver.
#[allow(dead_code)]
#[path = "../../build.rs"]
pub(crate) mod build_script;

fn spec() -> Value {
    let text = std::fs::read_to_string(crate::helpers::repo_path("spec/privx.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn errors_of(spec: &Value, expected: &str) -> String {
    match build_script::generate(&serde_yaml::to_string(spec).unwrap()) {
        Ok(_) => panic!("the generator accepted a spec that should fail with {expected:?}"),
        Err(errors) => errors.join("\n"),
    }
}

fn operation<'a>(spec: &'a mut Value, path: &str, method: &str) -> &'a mut Value {
    &mut spec["paths"][path][method]
}

#[test]
fn the_spec_generates() {
    let generated = build_script::generate(&serde_yaml::to_string(&spec()).unwrap());
    let generated = generated.unwrap_or_else(|e| panic!("{e:?}"));
    assert!(generated.server.contains("pub trait PrivxApi"));
}

#[test]
fn unsupported_constructs_fail_with_a_clear_message() {
    type Mutation = fn(&mut Value);
    let cases: [(Mutation, &str); 9] = [
        (
            |s| {
                let op = operation(s, "/local-user-store/api/v1/users", "get");
                let header =
                    serde_yaml::from_str("{name: X-Trace, in: header, schema: {type: string}}");
                op["parameters"].as_sequence_mut().unwrap().push(header.unwrap());
            },
            "GET /local-user-store/api/v1/users: parameter \"X-Trace\" is in a header or cookie",
        ),
        (
            |s| {
                let op = operation(s, "/local-user-store/api/v1/users/{user_id}", "delete");
                let ok = op["responses"]["200"].clone();
                op["responses"].as_mapping_mut().unwrap().remove("200");
                op["responses"]["204"] = ok;
            },
            "DELETE /local-user-store/api/v1/users/{user_id}: response 204 is not supported",
        ),
        (
            |s| {
                operation(s, "/local-user-store/api/v1/users", "get")["operationId"] =
                    "UserList".into()
            },
            "operationId \"UserList\" is not snake_case",
        ),
        (
            |s| {
                let op = operation(s, "/local-user-store/api/v1/users", "get");
                op["responses"]["400"] = serde_yaml::from_str(
                    "{description: x, content: {application/json: {schema: {type: string}}}}",
                )
                .unwrap();
            },
            "error response 400 must be application/json with one of the error schemas",
        ),
        (
            |s| {
                let mut patch =
                    operation(s, "/local-user-store/api/v1/users/{user_id}", "delete").clone();
                patch["operationId"] = "user_patch".into();
                patch["parameters"] = serde_yaml::from_str(
                    "[{name: id, in: path, required: true, schema: {type: string}}]",
                )
                .unwrap();
                s["paths"]["/local-user-store/api/v1/users/{id}"]["patch"] = patch;
            },
            "PATCH /local-user-store/api/v1/users/{id}: the same path as \
             /local-user-store/api/v1/users/{user_id} with other variable names",
        ),
        (
            |s| {
                let op = operation(s, "/test-control/api/v1/faults/{operation_id}", "delete");
                op["parameters"] = serde_yaml::from_str(
                    "[{name: operation_id, in: path, required: true, schema: {type: integer}}]",
                )
                .unwrap();
            },
            "DELETE /test-control/api/v1/faults/{operation_id}: path parameter \"operation_id\" \
             must have a string schema",
        ),
        (
            |s| {
                let op = operation(s, "/local-user-store/api/v1/users", "post");
                let body = op["requestBody"]["content"]["application/json"].clone();
                op["requestBody"]["content"] = serde_yaml::from_str("{}").unwrap();
                op["requestBody"]["content"]["multipart/form-data"] = body;
            },
            "POST /local-user-store/api/v1/users: a request body must have one of",
        ),
        (
            |s| {
                // Variant names that differ only in case: typify panics, the build must not.
                s["components"]["schemas"]["ErrorCode"]["enum"] =
                    serde_yaml::from_str("[ASC, DESC, asc, desc]").unwrap();
            },
            "unsupported construct: Failed to make unique variant names",
        ),
        (
            |s| {
                let item = s["paths"]["/extender-service/api/v1/listeners/{id}"].as_mapping_mut();
                item.unwrap().remove("get");
            },
            "POST /extender-service/api/v1/listeners: its 201 response declares a Location \
             header, but there is no GET operation at /extender-service/api/v1/listeners/{...}",
        ),
    ];
    for (mutate, expected) in cases {
        let mut spec = spec();
        mutate(&mut spec);
        let errors = errors_of(&spec, expected);
        assert!(errors.contains(expected), "expected {expected:?} in:\n{errors}");
    }
}

/// The router generated for every request tries a literal segment before a variable one, so
/// a literal path beside a variable one needs no special support (dropshot's router alone
/// could not hold them side by side).
#[test]
fn a_literal_segment_beside_a_variable_one_generates_for_any_method() {
    let mut spec = spec();
    let mut patch = operation(&mut spec, "/local-user-store/api/v1/users/tags", "get").clone();
    patch["operationId"] = "user_tags_patch".into();
    spec["paths"]["/local-user-store/api/v1/users/tags"]["patch"] = patch;
    let generated = build_script::generate(&serde_yaml::to_string(&spec).unwrap());
    let generated = generated.unwrap_or_else(|e| panic!("{e:?}"));
    assert!(generated.server.contains("fn user_tags_patch"));
}

#[tokio::test]
async fn location_functions_name_the_created_resource_as_the_server_does() {
    let app = spawn_app().await;
    let user = app.client.user_create().body(user_request("alice")).send().await.unwrap();
    let path = locations::user_create(user.id);
    assert_eq!(user.headers()["location"], path.as_str());
    assert_eq!(path, format!("/local-user-store/api/v1/users/{}", user.id));
    let read: types::User =
        app.http.get(app.url(&path)).send().await.unwrap().json().await.unwrap();
    assert_eq!(read.username.as_str(), "alice");

    let body = types::ListenerCreate {
        network: "tcp".try_into().unwrap(),
        destination: "ext1/db:5432".try_into().unwrap(),
        source: Vec::new(),
        keep_open_sec: None,
    };
    let listener = app.client.listener_create().body(body).send().await.unwrap();
    let id = listener.id.expect("a created listener has an id");
    let path = locations::listener_create(id);
    assert_eq!(listener.headers()["location"], path.as_str());
    assert_eq!(path, format!("/extender-service/api/v1/listeners/{id}"));
    let read: types::Listener =
        app.http.get(app.url(&path)).send().await.unwrap().json().await.unwrap();
    assert_eq!(read.id, Some(id));
}
