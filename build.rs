//! Turns `spec/privx.yaml`, the single source of truth, into Rust.
//!
//! Three files land in `OUT_DIR`:
//! - `privx_api.rs`: serde + schemars types for every schema (typify's type space with
//!   `JsonSchema` derived), one typed query/path struct per operation, the
//!   `#[dropshot::api_description]` trait `PrivxApi` with one method per operation named by
//!   its operationId, the `OPERATIONS` table (method, path, scopes) and `openapi_document()`.
//! - `privx_client.rs`: the progenitor client of the same spec.
//! - `openapi.json`: the spec itself as JSON, for serving.
//!
//! Copies of the two Rust files are committed in `generated/`; a test compares them byte for
//! byte and `EXPECTORATE=overwrite cargo test --test api generated_code` refreshes them.
//!
//! dropshot's router cannot hold a literal path segment beside a variable one at the same depth
//! (`/users/tags` beside `/users/{user_id}`). For such a literal operation the generator needs a
//! same-method operation at the variable path; both become plain trait methods, and one
//! unpublished routing endpoint at the variable path hands each request to the right one by
//! the segment's value. `openapi_document()` puts both back into the OpenAPI document at
//! their own paths, so the served routes and the document match the spec.
//!
//! Anything in the spec this generator does not understand fails the build with a message
//! naming the operation and the construct, never with silently wrong code.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::PathBuf;

use openapiv3::{
    OpenAPI, Operation, Parameter, ParameterSchemaOrContent, ReferenceOr, RequestBody, Response,
    Schema, StatusCode,
};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

const SPEC: &str = "spec/privx.yaml";
const JSON: &str = "application/json";
/// The one security scheme operations may name; its scopes drive authorization.
const SECURITY_SCHEME: &str = "OAuth2";
/// The error schemas an operation's 4xx/5xx responses may carry, and the Rust error type of
/// each: the PrivX envelope everywhere, the OAuth2 error reply on the token endpoint.
const ERROR_TYPES: &[(&str, &str)] = &[
    ("#/components/schemas/Error", "crate::api::ApiError"),
    ("#/components/schemas/OAuthError", "crate::api::OAuthError"),
];
/// Request body content types the generator can hand to dropshot's `TypedBody`.
const BODY_TYPES: &[&str] = &[JSON, "application/x-www-form-urlencoded"];
/// Schemas typify cannot express, served by hand-written types in `crate::api`: `SortDir`
/// accepts both `ASC` and `asc`, whose Rust variant names would clash.
const REPLACEMENTS: &[(&str, &str)] = &[("SortDir", "crate::api::SortDir")];

fn main() {
    println!("cargo:rerun-if-changed={SPEC}");
    println!("cargo:rerun-if-changed=build.rs");

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
    let spec: OpenAPI = serde_yaml::from_str(text)
        .map_err(|e| vec![format!("not an OpenAPI 3.0 document: {e}")])?;
    let spec_json: serde_json::Value =
        serde_yaml::from_str(text).map_err(|e| vec![format!("not YAML: {e}")])?;
    let server = guard("the server code", || generate_server(&spec))?;
    let client = guard("the client", || generate_client(&spec).map_err(|e| vec![e]))?;
    Ok(Generated {
        server: format_file(server),
        client: format_file(client),
        spec_json: serde_json::to_string_pretty(&spec_json).expect("JSON value serializes"),
        docs: docs::render(&spec_json),
    })
}

/// Runs a generation step, turning typify's and progenitor's panics on schemas they cannot
/// handle into errors like our own.
fn guard(
    what: &str,
    step: impl FnOnce() -> Result<TokenStream, Vec<String>>,
) -> Result<TokenStream, Vec<String>> {
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

fn generate_client(spec: &OpenAPI) -> Result<TokenStream, String> {
    let mut settings = progenitor_impl::GenerationSettings::default();
    settings
        .with_interface(progenitor_impl::InterfaceStyle::Builder)
        .with_tag(progenitor_impl::TagStyle::Merged);
    for (schema, rust_type) in REPLACEMENTS {
        settings.with_replacement(
            *schema,
            *rust_type,
            [progenitor_impl::TypeImpl::Default].into_iter(),
        );
    }
    progenitor_impl::Generator::new(&settings)
        .generate_tokens(spec)
        .map_err(|e| format!("progenitor cannot generate the client: {e}"))
}

/// One operation of the spec, reduced to what the server code needs.
struct Op {
    id: String,
    method: String,
    path: String,
    tag: String,
    summary: String,
    description: String,
    path_params: Option<TokenStream>,
    query_params: Option<TokenStream>,
    body: Option<TokenStream>,
    body_optional: bool,
    /// The body's content type, when it is not JSON.
    content_type: Option<String>,
    response: TokenStream,
    error: TokenStream,
    scopes: Vec<String>,
}

fn generate_server(spec: &OpenAPI) -> Result<TokenStream, Vec<String>> {
    let mut errors = Vec::new();
    let mut settings = typify::TypeSpaceSettings::default();
    settings
        .with_derive("schemars::JsonSchema".to_string())
        .with_struct_builder(false)
        .with_type_mod("types");
    for (schema, rust_type) in REPLACEMENTS {
        settings.with_replacement(
            *schema,
            *rust_type,
            [typify::TypeSpaceImpl::Default].into_iter(),
        );
    }
    let mut types = typify::TypeSpace::new(&settings);
    let schemas: Vec<(String, schemars::schema::Schema)> = spec
        .components
        .iter()
        .flat_map(|c| c.schemas.iter().map(|(k, v)| (k.clone(), to_schemars(v))))
        .collect();
    if let Err(e) = types.add_ref_types(schemas) {
        return Err(vec![format!("components.schemas: {e}")]);
    }

    let mut ops = Vec::new();
    for (path, item) in spec.paths.paths.iter() {
        let Some(item) = item.as_item() else {
            errors.push(format!("{path}: external path item references are not supported"));
            continue;
        };
        for (method, operation) in item.iter() {
            match convert_operation(spec, &mut types, path, method, operation, &item.parameters) {
                Ok(op) => ops.push(op),
                Err(mut e) => errors.append(&mut e),
            }
        }
    }
    let routes = plan_routes(&ops).unwrap_or_else(|mut e| {
        errors.append(&mut e);
        Vec::new()
    });
    for route in &routes {
        if let Route::Dispatch { variable, segment_var, .. } = route {
            if let Err(e) = add_route_segment(&mut types, variable, segment_var) {
                errors.push(e);
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let type_stream = types.to_stream();
    let mut trait_items = Vec::new();
    let mut doc_endpoints = Vec::new();
    for route in &routes {
        match route {
            Route::Plain(op) => trait_items.push(endpoint_method(op)),
            Route::Dispatch { variable, literals, segment_var } => {
                trait_items.push(dispatch_method(variable, literals, segment_var));
                for op in std::iter::once(variable).chain(literals.iter()) {
                    trait_items.push(routed_method(op));
                    doc_endpoints.push(doc_endpoint(op));
                }
            }
        }
    }
    let operations = ops.iter().map(|op| {
        let (id, method, path, tag, scopes) = (&op.id, &op.method, &op.path, &op.tag, &op.scopes);
        quote! { crate::api::Operation { operation_id: #id, method: #method, path: #path, tag: #tag, scopes: &[#(#scopes),*] } }
    });
    let optional_bodies = ops.iter().filter(|op| op.body_optional).map(|op| {
        let (method, path) = (op.method.to_lowercase(), &op.path);
        quote! { crate::api::optional_body(&mut document, #method, #path); }
    });
    let title = &spec.info.title;
    let version = &spec.info.version;

    Ok(quote! {
        /// Types of every schema in the spec, and the typed path and query parameters of every
        /// operation.
        pub mod types {
            #type_stream
        }

        /// The PrivX API: one method per operation of the spec, named by its operationId.
        #[dropshot::api_description { module = "privx_api_mod" }]
        pub trait PrivxApi {
            type Context: Send + Sync + 'static;
            #(#trait_items)*
        }

        /// Every operation of the spec with the scopes its security requirement accepts (any one
        /// of them suffices), in spec order.
        pub const OPERATIONS: &[crate::api::Operation] = &[#(#operations),*];

        /// The OpenAPI document of the API description: what dropshot publishes for the trait,
        /// plus the operations that share a routing endpoint, each at its own path, and the
        /// optional request bodies that dropshot cannot mark.
        pub fn openapi_document() -> serde_json::Value {
            let description = privx_api_mod::stub_api_description()
                .expect("the generated API description is valid");
            let mut document = crate::api::openapi_json(&description, #title, #version);
            #(crate::api::merge_openapi(&mut document, crate::api::openapi_json(&crate::api::single_endpoint(#doc_endpoints), #title, #version));)*
            #(#optional_bodies)*
            document
        }
    })
}

fn to_schemars(schema: &ReferenceOr<Schema>) -> schemars::schema::Schema {
    let value = serde_json::to_value(schema).expect("openapiv3 schemas serialize");
    serde_json::from_value(value).expect("an OpenAPI schema is a JSON schema")
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

fn resolve<'a, T>(
    item: &'a ReferenceOr<T>,
    kind: &str,
    table: impl Fn(&str) -> Option<&'a ReferenceOr<T>>,
) -> Result<&'a T, String> {
    match item {
        ReferenceOr::Item(t) => Ok(t),
        ReferenceOr::Reference { reference } => {
            let prefix = format!("#/components/{kind}/");
            let name = reference
                .strip_prefix(&prefix)
                .ok_or_else(|| format!("reference {reference} is not under {prefix}"))?;
            match table(name) {
                Some(ReferenceOr::Item(t)) => Ok(t),
                Some(ReferenceOr::Reference { .. }) => {
                    Err(format!("reference {reference} points at another reference"))
                }
                None => Err(format!("reference {reference} does not exist")),
            }
        }
    }
}

fn convert_operation(
    spec: &OpenAPI,
    types: &mut typify::TypeSpace,
    path: &str,
    method: &str,
    op: &Operation,
    path_level_params: &[ReferenceOr<Parameter>],
) -> Result<Op, Vec<String>> {
    let components = spec.components.as_ref();
    let where_ = format!("{} {path}", method.to_uppercase());
    let mut errors = Vec::new();
    let id = op.operation_id.clone().unwrap_or_default();
    let snake_case = !id.is_empty()
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && id.starts_with(|c: char| c.is_ascii_lowercase());
    if !snake_case {
        errors.push(format!("{where_}: operationId {id:?} is not snake_case <resource>_<verb>"));
    }
    let tag = match op.tags.as_slice() {
        [tag] => tag.clone(),
        _ => {
            errors.push(format!("{where_}: needs exactly one tag"));
            String::new()
        }
    };

    // Parameters: path-level first, operation-level ones override by (name, location).
    let mut params: BTreeMap<(String, &str), &openapiv3::ParameterData> = BTreeMap::new();
    for p in path_level_params.iter().chain(op.parameters.iter()) {
        match resolve(p, "parameters", |n| components.and_then(|c| c.parameters.get(n))) {
            Ok(Parameter::Path { parameter_data, .. }) => {
                params.insert((parameter_data.name.clone(), "path"), parameter_data);
            }
            Ok(Parameter::Query { parameter_data, .. }) => {
                params.insert((parameter_data.name.clone(), "query"), parameter_data);
            }
            Ok(other) => errors.push(format!(
                "{where_}: parameter {:?} is in a header or cookie; only path and query \
                 parameters are supported (Authorization belongs to the security scheme)",
                other.parameter_data_ref().name
            )),
            Err(e) => errors.push(format!("{where_}: {e}")),
        }
    }
    let mut params_struct = |location: &str, suffix: &str| -> Option<TokenStream> {
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        for ((name, loc), data) in &params {
            if *loc != location {
                continue;
            }
            let ParameterSchemaOrContent::Schema(schema) = &data.format else {
                errors.push(format!("{where_}: parameter {name} uses content, not schema"));
                continue;
            };
            let mut schema = serde_json::to_value(schema).expect("schemas serialize");
            if let (Some(desc), Some(obj)) = (&data.description, schema.as_object_mut()) {
                obj.entry("description").or_insert_with(|| desc.clone().into());
            }
            properties.insert(name.clone(), schema);
            if data.required {
                required.push(name.clone());
            }
        }
        if properties.is_empty() {
            return None;
        }
        let schema = serde_json::json!({
            "type": "object", "properties": properties, "required": required,
        });
        let schema: schemars::schema::Schema = serde_json::from_value(schema).expect("valid");
        let name = format!("{}{suffix}", pascal(&id));
        match types.add_type_with_name(&schema, Some(name.clone())) {
            Ok(_) => {
                let ident = format_ident!("{name}");
                Some(quote! { types::#ident })
            }
            Err(e) => {
                errors.push(format!("{where_}: {location} parameters: {e}"));
                None
            }
        }
    };
    let path_params = params_struct("path", "Path");
    let query_params = params_struct("query", "Query");

    let mut body_optional = false;
    let mut content_type = None;
    let body = match &op.request_body {
        None => None,
        Some(body) => {
            match resolve(body, "requestBodies", |n| {
                components.and_then(|c| c.request_bodies.get(n))
            })
            .and_then(|b: &RequestBody| {
                let ty = body_type(types, &b.content, &where_, &mut content_type)?;
                let ty = ty.ok_or_else(|| format!("{where_}: request body has no schema"))?;
                body_optional = !b.required;
                Ok(if b.required {
                    quote! { dropshot::TypedBody<#ty> }
                } else {
                    quote! { crate::api::OptionalJsonBody<#ty> }
                })
            }) {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        }
    };

    let mut response = None;
    let mut error_schema: Option<String> = None;
    for (code, resp) in &op.responses.responses {
        let resp = match resolve(resp, "responses", |n| components.and_then(|c| c.responses.get(n)))
        {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{where_}: {e}"));
                continue;
            }
        };
        match code {
            StatusCode::Code(200) | StatusCode::Code(201) => {
                match success_response(types, *code == StatusCode::Code(201), resp, &where_) {
                    Ok(t) if response.is_none() => response = Some(t),
                    Ok(_) => errors.push(format!("{where_}: more than one success response")),
                    Err(e) => errors.push(e),
                }
            }
            StatusCode::Code(400..=599) => {
                let schema = match resp.content.get(JSON).and_then(|m| m.schema.as_ref()) {
                    Some(ReferenceOr::Reference { reference })
                        if ERROR_TYPES.iter().any(|(s, _)| s == reference) =>
                    {
                        reference.clone()
                    }
                    _ => {
                        errors.push(format!(
                            "{where_}: error response {code} must be {JSON} with one of the \
                             error schemas {:?}",
                            ERROR_TYPES.iter().map(|(s, _)| s).collect::<Vec<_>>()
                        ));
                        continue;
                    }
                };
                match &error_schema {
                    Some(known) if *known != schema => errors.push(format!(
                        "{where_}: all error responses must share one schema ({known}, {schema})"
                    )),
                    _ => error_schema = Some(schema),
                }
            }
            other => errors.push(format!(
                "{where_}: response {other} is not supported (only 200, 201, 4xx and 5xx)"
            )),
        }
    }
    if op.responses.default.is_some() {
        errors.push(format!("{where_}: a default response is not supported"));
    }
    let response = response.unwrap_or_else(|| {
        errors.push(format!("{where_}: needs a 200 or 201 response"));
        TokenStream::new()
    });

    let error = ERROR_TYPES
        .iter()
        .find(|(schema, _)| Some(*schema) == error_schema.as_deref())
        .map(|(_, rust)| rust.parse::<TokenStream>().expect("a Rust path"))
        .unwrap_or_else(|| {
            errors.push(format!("{where_}: needs error responses"));
            TokenStream::new()
        });

    let declared = |name: &str| components.is_some_and(|c| c.security_schemes.contains_key(name));
    let mut scopes: Vec<String> = Vec::new();
    for requirement in op.security.as_ref().or(spec.security.as_ref()).into_iter().flatten() {
        for (scheme, required) in requirement {
            if !declared(scheme) {
                errors.push(format!("{where_}: security scheme {scheme} is not declared"));
            }
            if scheme != SECURITY_SCHEME {
                // Other schemes (the token endpoint's client authentication) carry no scopes;
                // the operation checks them itself.
                if !required.is_empty() {
                    errors.push(format!("{where_}: only {SECURITY_SCHEME} names scopes"));
                }
                continue;
            }
            if required.len() != 1 {
                errors.push(format!(
                    "{where_}: each security requirement must name exactly one scope \
                     (PrivX accepts any one of the listed scopes: write one requirement each)"
                ));
            }
            for scope in required {
                if !scopes.contains(scope) {
                    scopes.push(scope.clone());
                }
            }
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Op {
        id,
        method: method.to_uppercase(),
        path: path.to_string(),
        tag,
        summary: op.summary.clone().unwrap_or_default(),
        description: op.description.clone().unwrap_or_default(),
        path_params,
        query_params,
        body,
        body_optional,
        content_type,
        response,
        error,
        scopes,
    })
}

/// The Rust type of a request body, noting its content type when it is not JSON.
fn body_type(
    types: &mut typify::TypeSpace,
    content: &indexmap::IndexMap<String, openapiv3::MediaType>,
    where_: &str,
    content_type: &mut Option<String>,
) -> Result<Option<TokenStream>, String> {
    let (media, body) = match content.iter().collect::<Vec<_>>().as_slice() {
        [(media, body)] if BODY_TYPES.contains(&media.as_str()) => (media.as_str(), *body),
        _ => return Err(format!("{where_}: a request body must have one of {BODY_TYPES:?}")),
    };
    if media != JSON {
        *content_type = Some(media.to_string());
    }
    schema_type(types, body.schema.as_ref(), where_)
}

/// The Rust type of a schema, if there is one.
fn schema_type(
    types: &mut typify::TypeSpace,
    schema: Option<&ReferenceOr<Schema>>,
    where_: &str,
) -> Result<Option<TokenStream>, String> {
    let Some(schema) = schema else {
        return Ok(None);
    };
    let id = types.add_type(&to_schemars(schema)).map_err(|e| format!("{where_}: {e}"))?;
    Ok(Some(types.get_type(&id).map_err(|e| format!("{where_}: {e}"))?.ident()))
}

/// The Rust type of the `application/json` content of a response, if it has one.
fn json_type(
    types: &mut typify::TypeSpace,
    content: &indexmap::IndexMap<String, openapiv3::MediaType>,
    where_: &str,
) -> Result<Option<TokenStream>, String> {
    if content.is_empty() {
        return Ok(None);
    }
    if content.len() != 1 || !content.contains_key(JSON) {
        return Err(format!("{where_}: only {JSON} content is supported"));
    }
    schema_type(types, content[JSON].schema.as_ref(), where_)
}

fn success_response(
    types: &mut typify::TypeSpace,
    created: bool,
    resp: &Response,
    where_: &str,
) -> Result<TokenStream, String> {
    let body = json_type(types, &resp.content, where_)?;
    match (created, body) {
        (false, Some(ty)) => Ok(quote! { crate::api::HttpResponseOk<#ty> }),
        (false, None) => Ok(quote! { crate::api::HttpResponseOkEmpty }),
        (true, Some(ty)) => {
            let headers: Vec<_> = resp.headers.keys().collect();
            if headers != ["Location"] {
                return Err(format!(
                    "{where_}: a 201 response must have exactly a Location header"
                ));
            }
            Ok(quote! {
                dropshot::HttpResponseHeaders<dropshot::HttpResponseCreated<#ty>, crate::api::LocationHeader>
            })
        }
        (true, None) => Err(format!("{where_}: a 201 response needs a JSON body")),
    }
}

enum Route<'a> {
    Plain(&'a Op),
    /// Operations that dropshot cannot route side by side: `variable` owns the route, and each
    /// literal operation is chosen when the segment variable `segment_var` equals its literal.
    Dispatch {
        variable: &'a Op,
        literals: Vec<&'a Op>,
        segment_var: String,
    },
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn is_var(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

fn plan_routes(ops: &[Op]) -> Result<Vec<Route<'_>>, Vec<String>> {
    let mut errors = Vec::new();
    // Literal operations that collide with a variable sibling, keyed by the index of the
    // operation that will route them.
    let mut routed: BTreeMap<usize, (Vec<&Op>, String)> = BTreeMap::new();
    let mut is_routed = vec![false; ops.len()];
    for (li, lit) in ops.iter().enumerate() {
        let ls = segments(&lit.path);
        for (depth, seg) in ls.iter().enumerate() {
            if is_var(seg) {
                continue;
            }
            let collides = ops.iter().any(|o| {
                let os = segments(&o.path);
                os.len() > depth && os[..depth] == ls[..depth] && is_var(os[depth])
            });
            if !collides {
                continue;
            }
            let owner = ops.iter().position(|o| {
                let os = segments(&o.path);
                o.method == lit.method
                    && os.len() == ls.len()
                    && is_var(os[depth])
                    && os.iter().zip(&ls).enumerate().all(|(i, (a, b))| i == depth || a == b)
            });
            match owner {
                Some(oi)
                    if depth + 1 == ls.len()
                        && ls.iter().all(|s| !is_var(s))
                        && segments(&ops[oi].path).iter().filter(|s| is_var(s)).count() == 1
                        && lit.body.is_none()
                        && ops[oi].body.is_none()
                        && lit.error.to_string() == ops[oi].error.to_string() =>
                {
                    let var = segments(&ops[oi].path)[depth].trim_matches(['{', '}']).to_string();
                    routed.entry(oi).or_insert_with(|| (Vec::new(), var)).0.push(lit);
                    is_routed[li] = true;
                    is_routed[oi] = true;
                }
                _ => errors.push(format!(
                    "{} {}: the literal segment {seg:?} sits beside a variable segment, which \
                     dropshot cannot route; the generator supports this only for a last segment, \
                     without request bodies, when an operation with the same method and error \
                     type exists at the variable path and that segment is its only variable",
                    lit.method, lit.path
                )),
            }
            break;
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut routes = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some((literals, segment_var)) = routed.remove(&i) {
            routes.push(Route::Dispatch { variable: op, literals, segment_var });
        } else if !is_routed[i] {
            routes.push(Route::Plain(op));
        }
    }
    Ok(routes)
}

fn route_segment_name(variable: &Op) -> String {
    format!("{}RouteSegment", pascal(&variable.id))
}

/// The raw path segment a routing endpoint reads to choose the operation.
fn add_route_segment(
    types: &mut typify::TypeSpace,
    variable: &Op,
    var: &str,
) -> Result<(), String> {
    let schema = serde_json::json!({
        "type": "object",
        "description": format!("The raw `{var}` segment of `{}`, before it is parsed.", variable.path),
        "properties": { var: { "type": "string" } },
        "required": [var],
    });
    let schema = serde_json::from_value(schema).expect("valid schema");
    types
        .add_type_with_name(&schema, Some(route_segment_name(variable)))
        .map(|_| ())
        .map_err(|e| format!("{} {}: {e}", variable.method, variable.path))
}

fn docs(op: &Op) -> TokenStream {
    let mut lines = vec![format!(" {}", op.summary)];
    if !op.description.is_empty() {
        lines.push(String::new());
        lines.extend(op.description.trim_end().lines().map(|l| format!(" {l}")));
    }
    quote! { #(#[doc = #lines])* }
}

/// The extractor arguments of an operation, in dropshot's order (the body comes last). An
/// operation a routing endpoint calls takes its path parameters as the plain struct, which the
/// endpoint makes from the segment it has already extracted.
fn arguments(op: &Op, routed: bool) -> Vec<TokenStream> {
    let mut args = Vec::new();
    match &op.path_params {
        Some(p) if routed => args.push(quote! { path: #p }),
        Some(p) => args.push(quote! { path: dropshot::Path<#p> }),
        None => {}
    }
    if let Some(q) = &op.query_params {
        args.push(quote! { query: dropshot::Query<#q> });
    }
    if let Some(b) = &op.body {
        args.push(quote! { body: #b });
    }
    args
}

fn endpoint_method(op: &Op) -> TokenStream {
    let docs = docs(op);
    let name = format_ident!("{}", op.id);
    let method = format_ident!("{}", op.method);
    let (path, tag, response, error) = (&op.path, &op.tag, &op.response, &op.error);
    let content_type = op.content_type.iter();
    let args = arguments(op, false);
    quote! {
        #docs
        #[endpoint { method = #method, path = #path, tags = [#tag] #(, content_type = #content_type)* }]
        async fn #name(
            rqctx: dropshot::RequestContext<Self::Context>,
            #(#args),*
        ) -> Result<#response, #error>;
    }
}

/// A trait method for an operation that a routing endpoint calls (it has no route of its own).
fn routed_method(op: &Op) -> TokenStream {
    let docs = docs(op);
    let name = format_ident!("{}", op.id);
    let (response, error) = (&op.response, &op.error);
    let args = arguments(op, true);
    let note = format!(" Served at `{} {}` through a routing endpoint.", op.method, op.path);
    quote! {
        #docs
        #[doc = ""]
        #[doc = #note]
        fn #name(
            rqctx: dropshot::RequestContext<Self::Context>,
            #(#args),*
        ) -> impl std::future::Future<Output = Result<#response, #error>> + Send;
    }
}

/// Extracts `op`'s own arguments from the request and calls it; its path parameters (if it
/// has any, it is the variable operation and `segment_var` is its only one) come from the
/// routing endpoint's `segment`.
fn routed_call(op: &Op, segment_var: &str) -> TokenStream {
    let name = format_ident!("{}", op.id);
    let mut lets = Vec::new();
    let mut names = Vec::new();
    if let Some(p) = &op.path_params {
        let var = format_ident!("{segment_var}");
        lets.push(quote! { let path = #p { #var: crate::api::path_param(segment)? }; });
        names.push(quote! { path });
    }
    if let Some(q) = &op.query_params {
        lets.push(quote! { let query = <dropshot::Query<#q> as dropshot::SharedExtractor>::from_request(&rqctx).await?; });
        names.push(quote! { query });
    }
    let id = &op.id;
    quote! {{
        #(#lets)*
        // The routing endpoint's own operationId names no operation: the routed one runs
        // under its own, as if dropshot had routed to it.
        let mut rqctx = rqctx;
        rqctx.endpoint.operation_id = #id.to_string();
        Ok(dropshot::HttpResponse::to_result(Self::#name(rqctx, #(#names),*).await?)?)
    }}
}

fn dispatch_method(variable: &Op, literals: &[&Op], segment_var: &str) -> TokenStream {
    let name = format_ident!("{}_route", variable.id);
    let method = format_ident!("{}", variable.method);
    let path = &variable.path;
    let segment_struct = format_ident!("{}", route_segment_name(variable));
    let var = format_ident!("{segment_var}");
    let arms = literals.iter().map(|lit| {
        let literal = *segments(&lit.path).last().expect("a literal path has segments");
        let call = routed_call(lit, segment_var);
        quote! { #literal => #call }
    });
    let fallback = routed_call(variable, segment_var);
    let error = &variable.error;
    let doc = format!(
        " Routes `{} {path}`: dropshot cannot route {} beside it, so this endpoint serves \
         `{}` and, by the segment's value, {}.",
        variable.method,
        literals.iter().map(|l| format!("`{}`", l.path)).collect::<Vec<_>>().join(", "),
        variable.id,
        literals.iter().map(|l| format!("`{}`", l.id)).collect::<Vec<_>>().join(", "),
    );
    quote! {
        #[doc = #doc]
        #[endpoint { method = #method, path = #path, unpublished = true }]
        async fn #name(
            rqctx: dropshot::RequestContext<Self::Context>,
            segment: dropshot::Path<types::#segment_struct>,
        ) -> Result<http::Response<dropshot::Body>, #error> {
            let segment = segment.into_inner().#var;
            match segment.as_str() {
                #(#arms)*
                _ => #fallback
            }
        }
    }
}

fn doc_endpoint(op: &Op) -> TokenStream {
    let (id, path, tag) = (&op.id, &op.path, &op.tag);
    let (response, error) = (&op.response, &op.error);
    let method = format_ident!("{}", op.method);
    let params: Vec<TokenStream> = arguments(op, false)
        .into_iter()
        .map(|arg| {
            let ty: syn::FnArg = syn::parse2(arg).expect("argument parses");
            let syn::FnArg::Typed(t) = ty else { unreachable!() };
            let ty = t.ty;
            quote! { #ty }
        })
        .collect();
    let summary = &op.summary;
    let description = op.description.trim_end();
    quote! {
        dropshot::ApiEndpoint::new_for_types::<(#(#params,)*), Result<#response, #error>>(
            #id.to_string(),
            dropshot::Method::#method,
            dropshot::CONTENT_TYPE_JSON,
            #path,
            dropshot::ApiEndpointVersions::All,
        )
        .summary(#summary)
        .description(#description)
        .tag(#tag)
    }
}

/// The HTML API reference: one self-contained page (inline CSS and JS, nothing fetched) with
/// every operation by tag, its scopes, parameters, bodies, responses and error codes, every
/// schema, and a search box.
mod docs {
    use serde_json::Value;
    use std::fmt::Write;

    fn esc(text: &str) -> String {
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    }

    fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(reference) => spec.pointer(reference.trim_start_matches('#')).unwrap_or(value),
            None => value,
        }
    }

    /// A short type description: a schema link, or type/format with default and enum.
    fn type_of(schema: &Value) -> String {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.rsplit('/').next().unwrap_or_default();
            return format!("<a href=\"#schema-{name}\">{name}</a>");
        }
        if let Some(one) = schema["allOf"].as_array().and_then(|a| a.first()) {
            return type_of(one);
        }
        let mut text = esc(schema["type"].as_str().unwrap_or("any"));
        if let Some(items) = schema.get("items") {
            text = format!("array of {}", type_of(items));
        }
        if let Some(format) = schema["format"].as_str() {
            write!(text, " ({})", esc(format)).unwrap();
        }
        if let Some(values) = schema["enum"].as_array() {
            let values: Vec<String> = values.iter().map(|v| esc(&v.to_string())).collect();
            write!(text, "<br>one of {}", values.join(", ")).unwrap();
        }
        if let Some(default) = schema.get("default") {
            write!(text, "<br>default {}", esc(&default.to_string())).unwrap();
        }
        for (key, label) in [("minimum", "min"), ("maximum", "max"), ("minLength", "min length")] {
            if let Some(bound) = schema.get(key) {
                write!(text, "<br>{label} {bound}").unwrap();
            }
        }
        text
    }

    fn example(spec: &Value, schema: &Value) -> Option<String> {
        let schema = resolve(spec, schema);
        schema.get("example").map(|e| serde_json::to_string_pretty(e).unwrap_or_default())
    }

    fn content(spec: &Value, content: &Value, out: &mut String) {
        for (media, body) in content.as_object().into_iter().flatten() {
            let schema = &body["schema"];
            write!(out, "<div class=\"media\"><code>{}</code> {}", esc(media), type_of(schema))
                .unwrap();
            if let Some(example) = example(spec, schema) {
                write!(out, "<pre>{}</pre>", esc(&example)).unwrap();
            }
            out.push_str("</div>");
        }
    }

    fn operation(
        spec: &Value,
        method: &str,
        path: &str,
        op: &Value,
        shared: &Value,
        out: &mut String,
    ) {
        let id = op["operationId"].as_str().unwrap_or_default();
        let summary = op["summary"].as_str().unwrap_or_default();
        let scopes: Vec<String> = op["security"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r.as_object().into_iter().flatten())
            .flat_map(|(scheme, scopes)| {
                let scopes: Vec<String> = scopes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str())
                    .map(|s| s.to_string())
                    .collect();
                if scopes.is_empty() {
                    vec![format!("{scheme} (HTTP Basic)")]
                } else {
                    scopes
                }
            })
            .collect();
        let search = esc(&format!("{method} {path} {id} {summary}").to_lowercase());
        write!(
            out,
            "<article class=\"op\" id=\"op-{id}\" data-search=\"{search}\"><h3><span class=\"method {m}\">{M}</span> \
             <code>{p}</code></h3><p class=\"summary\">{s}</p><p class=\"id\">operationId <code>{id}</code> \
             &middot; scopes (any one): {scopes}</p><p>{d}</p>",
            m = method, M = method.to_uppercase(), p = esc(path), s = esc(summary),
            scopes = esc(&scopes.join(", ")), d = esc(op["description"].as_str().unwrap_or_default()),
        )
        .unwrap();
        let params: Vec<&Value> = shared
            .as_array()
            .into_iter()
            .flatten()
            .chain(op["parameters"].as_array().into_iter().flatten())
            .map(|p| resolve(spec, p))
            .collect();
        if !params.is_empty() {
            out.push_str("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>");
            for p in params {
                write!(
                    out,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(p["name"].as_str().unwrap_or_default()),
                    esc(p["in"].as_str().unwrap_or_default()),
                    type_of(&p["schema"]),
                    if p["required"].as_bool().unwrap_or(false) { "yes" } else { "no" },
                    esc(p["description"].as_str().unwrap_or_default()),
                )
                .unwrap();
            }
            out.push_str("</table>");
        }
        if let Some(body) = op.get("requestBody").map(|b| resolve(spec, b)) {
            let required =
                if body["required"].as_bool().unwrap_or(false) { "required" } else { "optional" };
            write!(out, "<h4>Request body ({required})</h4>").unwrap();
            content(spec, &body["content"], out);
        }
        out.push_str(
            "<h4>Responses</h4><table><tr><th>status</th><th>description</th><th>body</th></tr>",
        );
        for (status, response) in op["responses"].as_object().into_iter().flatten() {
            let response = resolve(spec, response);
            let mut body = String::new();
            content(spec, &response["content"], &mut body);
            write!(
                out,
                "<tr><td class=\"status\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(status),
                esc(response["description"].as_str().unwrap_or_default()),
                body
            )
            .unwrap();
        }
        out.push_str("</table>");
        let envelope = op["responses"].as_object().into_iter().flatten().any(|(_, r)| {
            resolve(spec, r)["content"]["application/json"]["schema"]["$ref"]
                == "#/components/schemas/Error"
        });
        if envelope {
            let codes: Vec<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
                .collect();
            write!(
                out,
                "<p class=\"codes\">Error codes: <code>{}</code></p>",
                codes.join("</code> <code>")
            )
            .unwrap();
        }
        out.push_str("</article>");
    }

    fn schema(spec: &Value, name: &str, schema: &Value, out: &mut String) {
        let search = esc(&format!("schema {name}").to_lowercase());
        write!(
            out,
            "<article class=\"op schema\" id=\"schema-{name}\" data-search=\"{search}\"><h3>{name}</h3><p>{}</p>",
            esc(schema["description"].as_str().unwrap_or_default())
        )
        .unwrap();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .collect();
        if let Some(properties) = schema["properties"].as_object() {
            out.push_str(
                "<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>",
            );
            for (field, property) in properties {
                write!(
                    out,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(field),
                    type_of(property),
                    if required.contains(&field.as_str()) { "yes" } else { "no" },
                    esc(property["description"].as_str().unwrap_or_default())
                )
                .unwrap();
            }
            out.push_str("</table>");
        } else {
            write!(out, "<p>{}</p>", type_of(schema)).unwrap();
        }
        if let Some(example) = example(spec, schema) {
            write!(out, "<pre>{}</pre>", esc(&example)).unwrap();
        }
        out.push_str("</article>");
    }

    pub fn render(spec: &Value) -> String {
        let mut nav = String::new();
        let mut body = String::new();
        for tag in spec["tags"].as_array().into_iter().flatten() {
            let name = tag["name"].as_str().unwrap_or_default();
            write!(nav, "<li><a href=\"#tag-{name}\">{name}</a><ul>").unwrap();
            write!(
                body,
                "<section class=\"tag\" id=\"tag-{name}\"><h2>{name}</h2><p>{}</p>",
                esc(tag["description"].as_str().unwrap_or_default())
            )
            .unwrap();
            for (path, item) in spec["paths"].as_object().into_iter().flatten() {
                for (method, op) in item.as_object().into_iter().flatten() {
                    if method == "parameters" || op["tags"][0] != name {
                        continue;
                    }
                    let id = op["operationId"].as_str().unwrap_or_default();
                    write!(nav, "<li><a href=\"#op-{id}\">{id}</a></li>").unwrap();
                    operation(spec, method, path, op, &item["parameters"], &mut body);
                }
            }
            nav.push_str("</ul></li>");
            body.push_str("</section>");
        }
        nav.push_str("<li><a href=\"#tag-schemas\">schemas</a></li>");
        body.push_str("<section class=\"tag\" id=\"tag-schemas\"><h2>Schemas</h2>");
        for (name, s) in spec["components"]["schemas"].as_object().into_iter().flatten() {
            schema(spec, name, s, &mut body);
        }
        body.push_str("</section>");
        let title = esc(spec["info"]["title"].as_str().unwrap_or_default());
        let intro = esc(spec["info"]["description"].as_str().unwrap_or_default());
        format!(
            r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{margin:0;font:14px/1.45 system-ui,sans-serif;color:#1d232a;display:flex}}
nav{{position:sticky;top:0;height:100vh;overflow:auto;width:260px;flex:none;background:#f3f5f7;padding:12px;box-sizing:border-box}}
nav ul{{list-style:none;padding-left:10px;margin:2px 0}} nav a{{color:#1d4f91;text-decoration:none}}
main{{padding:16px 28px;max-width:1000px}} #search{{width:100%;padding:6px;margin-bottom:10px;box-sizing:border-box}}
.op{{border:1px solid #d8dee4;border-radius:6px;padding:8px 14px;margin:12px 0}}
.method{{display:inline-block;min-width:56px;text-align:center;border-radius:4px;color:#fff;font-size:12px;padding:2px 6px;background:#6e7781}}
.get{{background:#2da44e}}.post{{background:#0969da}}.put{{background:#bf8700}}.delete{{background:#cf222e}}
table{{border-collapse:collapse;width:100%;margin:6px 0}} td,th{{border:1px solid #d8dee4;padding:3px 6px;text-align:left;vertical-align:top}}
pre{{background:#f6f8fa;padding:6px;overflow:auto;max-height:240px}} .summary{{font-weight:600}} .id{{color:#57606a}}
[hidden]{{display:none}}
</style></head><body>
<nav><input id="search" type="search" placeholder="Search operations and schemas" aria-label="search"><ul>{nav}</ul></nav>
<main><h1>{title}</h1><p>{intro}</p><p id="shown"></p>{body}</main>
<script>
const search = document.getElementById('search');
function filter() {{
  const q = search.value.trim().toLowerCase();
  let shown = 0;
  document.querySelectorAll('article.op').forEach(a => {{
    const hit = !q || a.dataset.search.includes(q);
    a.hidden = !hit;
    if (hit && !a.classList.contains('schema')) shown++;
  }});
  document.querySelectorAll('section.tag').forEach(s => {{
    s.hidden = !s.querySelector('article.op:not([hidden])');
  }});
  document.getElementById('shown').textContent = shown + ' operations shown';
}}
search.addEventListener('input', filter);
filter();
</script></body></html>
"#
        )
    }
}
