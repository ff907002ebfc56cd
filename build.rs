//! Turns `spec/privx.yaml`, the single source of truth, into Rust, and the API reference.
//!
//! Four files land in `OUT_DIR`:
//! - `privx_api.rs`: serde + schemars types for every schema (typify's type space with
//!   `JsonSchema` derived), one typed query/path struct per operation, the trait `PrivxApi`
//!   with one method per operation named by its operationId, the router and the dropshot
//!   `api_description()` serving it, the `OPERATIONS` table (method, path, tag, scopes),
//!   `openapi_document()` and `locations`, the `Location` of what each create operation creates.
//! - `privx_client.rs`: the progenitor client of the same spec, sharing the server's schema
//!   types (`build/client.rs` says how).
//! - `openapi.json`: the spec itself as JSON, for serving.
//! - `docs.html`: the HTML API reference (`build/docs.rs`, page template in `build/docs/`).
//!
//! Copies of `privx_api.rs`, `privx_client.rs` and `docs.html` are committed in `generated/`
//! (`openapi.json` is the spec itself); `tests/api/generated_code.rs` compares them byte for
//! byte with what this script produces, and
//! `EXPECTORATE=overwrite cargo test --test api generated_code` refreshes them.
//!
//! The parts, under `build/`: `model.rs` is the spec as plain data with the one `$ref`
//! resolver; `reader.rs` fills it in; `routes.rs` plans the routes; `server.rs`,
//! `locations.rs`, `client.rs` and `docs.rs` render the outputs from the model, tokens last.
//!
//! dropshot answers requests its router cannot place with its own error body, and its router
//! cannot hold a literal path segment beside a variable one (`/users/tags` beside
//! `/users/{user_id}`). So the served endpoints are unpublished catch-alls, one per HTTP
//! method, and a generated router places each request on its operation, a page or a
//! PrivX error envelope (`build/routes.rs`); `openapi_document()` publishes every operation at
//! its own path, so the served routes and the document match the spec.
//!
//! Anything in the spec this generator does not understand fails the build with a message
//! naming the operation and the construct, never with silently wrong code; so does a panic of
//! typify or progenitor on a schema they cannot handle.

use std::env;
use std::fs;
use std::path::PathBuf;

use openapiv3::OpenAPI;
use proc_macro2::TokenStream;

#[path = "build/client.rs"]
mod client;
#[path = "build/docs.rs"]
mod docs;
#[path = "build/locations.rs"]
mod locations;
#[path = "build/model.rs"]
pub(crate) mod model;
#[path = "build/reader.rs"]
mod reader;
#[path = "build/routes.rs"]
mod routes;
#[path = "build/server.rs"]
mod server;

const SPEC: &str = "spec/privx.yaml";

fn main() {
    println!("cargo:rerun-if-changed={SPEC}");
    println!("cargo:rerun-if-changed=build.rs");
    // Cargo watches every file under a directory it is given.
    println!("cargo:rerun-if-changed=build");

    let text = fs::read_to_string(SPEC).unwrap_or_else(|e| fail(&[format!("read {SPEC}: {e}")]));
    let generated = generate(&text).unwrap_or_else(|errors| fail(&errors));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    write(&out.join("privx_api.rs"), &generated.server);
    write(&out.join("privx_client.rs"), &generated.client);
    write(&out.join("openapi.json"), &generated.spec_json);
    write(&out.join("docs.html"), &generated.docs);
}

/// What the generator makes of a spec.
pub(crate) struct Generated {
    pub(crate) server: String,
    pub(crate) client: String,
    pub(crate) spec_json: String,
    /// The self-contained HTML API reference.
    pub(crate) docs: String,
}

/// Generates everything from the spec's text, or says every construct it cannot handle.
pub(crate) fn generate(text: &str) -> Result<Generated, Vec<String>> {
    let openapi: OpenAPI = serde_yaml::from_str(text)
        .map_err(|e| vec![format!("not an OpenAPI 3.0 document: {e}")])?;
    let spec_json: serde_json::Value =
        serde_yaml::from_str(text).map_err(|e| vec![format!("not YAML: {e}")])?;
    let spec = reader::read(&openapi)?;
    let (routes, located) = match (routes::plan(&spec), locations::plan(&spec.operations)) {
        (Ok(routes), Ok(located)) => (routes, located),
        (routes, located) => {
            return Err(routes.err().into_iter().chain(located.err()).flatten().collect())
        }
    };
    let server = guard("the server code", || server::generate(&spec, &routes, &located))?;
    let client = guard("the client", || {
        client::generate(&openapi, &server.schema_types).map_err(|e| vec![e])
    })?;
    Ok(Generated {
        server: format_file(server.tokens),
        client: format_file(client),
        spec_json: serde_json::to_string_pretty(&spec_json).expect("JSON value serializes"),
        docs: docs::render(&spec),
    })
}

/// Runs a generation step, turning typify's and progenitor's panics on schemas they cannot
/// handle into errors like our own.
fn guard<T>(what: &str, step: impl FnOnce() -> Result<T, Vec<String>>) -> Result<T, Vec<String>> {
    // The panic hook stays as it is (it is global, and tests run this in parallel), so the
    // panic is also printed where it happens.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(vec![format!("generating {what}: unsupported construct: {message}")])
    })
}

fn fail(errors: &[String]) -> ! {
    let mut message = format!("cannot generate code from {SPEC}:\n");
    for error in errors {
        message.push_str(&format!("  - {error}\n"));
    }
    panic!("{message}");
}

fn write(path: &std::path::Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn format_file(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens.clone())
        .unwrap_or_else(|e| panic!("generated code does not parse ({e}):\n{tokens}"));
    format!(
        "// @generated by build.rs from {SPEC}. Do not edit: change the spec, then refresh the\n\
         // committed copy with `EXPECTORATE=overwrite cargo test --test api generated_code`.\n\n{}",
        prettyplease::unparse(&file)
    )
}
