//! The auth matrix: every operation of the spec, with the request its examples make (against
//! `tests/fixtures/examples.json`), checked with no token, bad tokens, an unrelated scope and
//! each scope the spec lists.

use privx_mock::api::{Operation, OPERATIONS};
use privx_mock::client::types;
use serde_json::{json, Value};

use crate::auth::mint;
use crate::helpers::{repo_path, TestApp, OAUTH_CLIENT, SIGNING_KEY};
use crate::spec::{resolved, schema_errors, spec};

/// Checks that `example` is valid against `schema`.
fn check_example(schema: &Value, example: &Value) -> Result<(), String> {
    let errors = schema_errors(schema, example);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("its example {example} does not match its schema: {errors:?}"))
    }
}

/// The request the spec's examples make of one operation: what each example request must
/// succeed with against a server loaded with `EXAMPLES`.
struct ExampleRequest {
    operation: &'static Operation,
    /// The path's segments, variables replaced by their examples.
    segments: Vec<String>,
    /// Required query parameters and their examples.
    query: Vec<(String, String)>,
    /// The media type and example of the request body.
    body: Option<(String, Value)>,
    /// The example of the `user_id` path parameter: whose resources the request is about.
    user_id: Option<String>,
}

/// The fixtures the spec's path parameter and request body examples refer to.
const EXAMPLES: &str = "tests/fixtures/examples.json";

fn examples() -> Value {
    let text = std::fs::read_to_string(repo_path(EXAMPLES)).expect(EXAMPLES);
    serde_json::from_str(&text).expect("the example fixtures are JSON")
}

/// An example's value as it goes into a URL.
fn url_text(example: &Value) -> String {
    example.as_str().map_or_else(|| example.to_string(), str::to_string)
}

/// The examples of an operation's path parameters and required query parameters, as
/// (location, name, example); a missing or invalid example is added to `problems`.
fn parameter_examples(
    item: &Value,
    op: &Value,
    problems: &mut Vec<String>,
) -> Vec<(String, String, Value)> {
    let mut examples = Vec::new();
    let shared = item["parameters"].as_array().into_iter().flatten();
    for parameter in shared.chain(op["parameters"].as_array().into_iter().flatten()) {
        let parameter = resolved(parameter);
        let name = parameter["name"].as_str().unwrap_or_default();
        let location = parameter["in"].as_str().unwrap_or_default();
        if location != "path" && parameter["required"] != true {
            continue;
        }
        let Some(example) = parameter.get("example") else {
            problems.push(format!("{location} parameter `{name}` needs an `example`"));
            continue;
        };
        if let Err(e) = check_example(&parameter["schema"], example) {
            problems.push(format!("{location} parameter `{name}`: {e}"));
        }
        examples.push((location.to_string(), name.to_string(), example.clone()));
    }
    examples
}

/// The media type and example of an operation's request body, if it has one; a missing or
/// invalid example is added to `problems`.
fn body_example(op: &Value, problems: &mut Vec<String>) -> Option<(String, Value)> {
    let body = resolved(op.get("requestBody")?);
    let (media, content) = body["content"].as_object()?.iter().next()?;
    let Some(example) = content.get("example") else {
        problems.push(format!("the {media} request body needs an `example`"));
        return None;
    };
    if let Err(e) = check_example(&content["schema"], example) {
        problems.push(format!("the {media} request body: {e}"));
    }
    Some((media.clone(), example.clone()))
}

impl ExampleRequest {
    /// Builds the request from the spec, or says which examples the operation lacks.
    fn from_spec(spec: &Value, operation: &'static Operation) -> Result<Self, Vec<String>> {
        let item = &spec["paths"][operation.path];
        let op = &item[operation.method.to_lowercase()];
        let mut problems = Vec::new();
        let parameters = parameter_examples(item, op, &mut problems);
        let body = body_example(op, &mut problems);
        if !problems.is_empty() {
            let (method, path) = (operation.method, operation.path);
            return Err(problems.into_iter().map(|p| format!("{method} {path}: {p}")).collect());
        }
        let path_example =
            |name: &str| parameters.iter().find(|(location, n, _)| location == "path" && n == name);
        let segments = operation.path.split('/').filter(|s| !s.is_empty()).map(|segment| {
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => url_text(&path_example(name).expect("a declared parameter").2),
                None => segment.to_string(),
            }
        });
        let query = parameters.iter().filter(|(location, ..)| location == "query");
        Ok(Self {
            operation,
            segments: segments.collect(),
            query: query.map(|(_, name, example)| (name.clone(), url_text(example))).collect(),
            body,
            user_id: path_example("user_id").map(|(.., example)| url_text(example)),
        })
    }

    /// The request, not yet authorized, to the server at `app`.
    fn build(&self, app: &TestApp) -> reqwest::RequestBuilder {
        let mut url = reqwest::Url::parse(&app.base_url).expect("a base URL");
        url.path_segments_mut().expect("a base URL").pop_if_empty().extend(&self.segments);
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }
        let method = self.operation.method.parse().expect("an HTTP method");
        // A redirect (the authorization endpoint's 307) is the answer, not a hop to follow.
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        let request = client.build().expect("a client").request(method, url);
        match &self.body {
            None => request,
            Some((media, example)) if media == "application/x-www-form-urlencoded" => {
                request.form(example)
            }
            Some((_, example)) => request.json(example),
        }
    }

    /// Sends the request with `token`; answers the status, after checking that a failure
    /// carries the PrivX envelope.
    async fn send(&self, app: &TestApp, token: Option<&str>) -> u16 {
        let mut request = self.build(app);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if status >= 400 {
            let text = response.text().await.unwrap();
            let envelope: Result<types::Error, _> = serde_json::from_str(&text);
            let id = self.operation.operation_id;
            assert!(envelope.is_ok(), "{id}: {status} without a PrivX envelope: {text}");
        }
        status
    }
}

/// The example request of every operation, or a failure naming each example to add.
fn example_requests() -> Vec<ExampleRequest> {
    let spec = spec();
    let mut requests = Vec::new();
    let mut problems = Vec::new();
    for operation in OPERATIONS {
        match ExampleRequest::from_spec(spec, operation) {
            Ok(request) => requests.push(request),
            Err(mut missing) => problems.append(&mut missing),
        }
    }
    assert!(
        problems.is_empty(),
        "every operation is tested from its examples in spec/privx.yaml, which must name \
         records of {EXAMPLES}; add these:\n  {}",
        problems.join("\n  ")
    );
    requests
}

async fn spawn_app_with_examples() -> TestApp {
    crate::helpers::spawn(Some(examples()), |config| config.test_control = true).await
}

/// An OAuth endpoint's example (sent with the OAuth client's Basic authorization, which the
/// password grant needs and the others ignore) gets its success; the login's gets
/// `invalid_request`, as its example cannot name a live login session.
async fn assert_oauth_example_answers(request: &ExampleRequest, app: &TestApp) {
    let id = request.operation.operation_id;
    let basic = request.build(app).basic_auth(OAUTH_CLIENT.0, Some(OAUTH_CLIENT.1));
    let response = basic.send().await.unwrap();
    let status = response.status().as_u16();
    if id == "login_create" {
        let reply: Value = response.json().await.unwrap();
        assert_eq!((status, &reply["error"]), (400, &json!("invalid_request")), "{id}");
    } else {
        assert!((200..400).contains(&status), "{id} with the OAuth client: {status}");
    }
}

/// Every operation × {no token, garbage, expired, another key, an unrelated scope, each
/// listed scope} gives 401/401/401/401/403/2xx, with the request the spec's examples make.
/// The OAuth endpoints, which take no bearer token, answer their examples too (the token
/// endpoint a token, the authorization endpoint a redirect); only the login needs a live login
/// session, which no example can name, so its example gets `invalid_request` (its successes
/// are in `oauth_flow.rs`).
#[tokio::test]
async fn every_operation_checks_the_token_and_the_scopes_the_spec_lists() {
    let requests = example_requests();
    let shared = spawn_app_with_examples().await;
    // The caller is the user the request is about (a `user` token reaches only its own
    // WebAuthn credentials), or else a user of the example world.
    let someone = examples()["users"][0]["id"].as_str().expect("an example user").to_string();
    for request in &requests {
        let op = request.operation;
        let id = op.operation_id;
        if op.scopes.is_empty() {
            assert_oauth_example_answers(request, &shared).await;
            continue;
        }
        let caller = request.user_id.as_deref().unwrap_or(&someone);
        let unrelated: Vec<&str> = ["rolesView", "user", "admin"]
            .into_iter()
            .filter(|s| !op.scopes.contains(s))
            .take(1)
            .collect();
        let rejected = [
            (None, 401, "no token"),
            (Some("not-a-jwt".to_string()), 401, "a garbage token"),
            (Some(mint(caller, op.scopes, -10, SIGNING_KEY)), 401, "an expired token"),
            (
                Some(mint(caller, op.scopes, 600, "another-key")),
                401,
                "a token signed with another key",
            ),
            (Some(mint(caller, &unrelated, 600, SIGNING_KEY)), 403, "an unrelated scope"),
        ];
        for (token, status, what) in rejected {
            assert_eq!(request.send(&shared, token.as_deref()).await, status, "{id} with {what}");
        }
        for scope in op.scopes {
            // Writes get a fresh server each, so every one finds the records its example names.
            let fresh;
            let app = if op.method == "GET" {
                &shared
            } else {
                fresh = spawn_app_with_examples().await;
                &fresh
            };
            let status = request.send(app, Some(&mint(caller, &[scope], 600, SIGNING_KEY))).await;
            assert!((200..300).contains(&status), "{id} with scope {scope}: {status}");
        }
    }
}
