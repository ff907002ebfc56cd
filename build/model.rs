//! The spec as the generator understands it: operations with their parameters, bodies,
//! responses, security and tag, as plain data that every output (server, client, docs) renders
//! from, and the one `$ref` resolver of the generator and its tests.
//!
//! `reader.rs` fills it from the OpenAPI document and refuses what the generator cannot
//! serve. `tests/api/spec_drift.rs` resolves references with [`resolve`] too.

use openapiv3::{Components, Parameter, ReferenceOr, RequestBody, Response, Schema};

/// The error schemas an operation's 4xx/5xx responses may carry, and the Rust error type the
/// server gives each: the PrivX envelope everywhere, the OAuth2 error reply on the token
/// endpoint.
pub(crate) const ERROR_TYPES: &[(&str, &str)] = &[
    ("#/components/schemas/Error", "crate::api::ApiError"),
    ("#/components/schemas/OAuthError", "crate::api::OAuthError"),
];

/// The spec, reduced to what the generator renders.
pub(crate) struct Spec {
    pub(crate) title: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) tags: Vec<Tag>,
    /// In spec order (paths, then methods as openapiv3 lists them).
    pub(crate) operations: Vec<Operation>,
    /// `components`, for resolving references and listing schemas.
    pub(crate) components: Components,
}

pub(crate) struct Tag {
    pub(crate) name: String,
    pub(crate) description: String,
}

/// One operation of the spec.
pub(crate) struct Operation {
    /// The operationId, snake_case.
    pub(crate) id: String,
    /// Upper case, e.g. `GET`.
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) tag: String,
    pub(crate) summary: String,
    pub(crate) description: String,
    /// Path-level parameters first, then the operation's own (which replace a path-level one
    /// of the same name and location in place).
    pub(crate) parameters: Vec<Param>,
    pub(crate) body: Option<Body>,
    /// Every response, in spec order.
    pub(crate) responses: Vec<Reply>,
    /// The one 200 or 201 response.
    pub(crate) success: Success,
    /// The Rust error type of the operation's error responses (from [`ERROR_TYPES`]).
    pub(crate) error_type: &'static str,
    /// The security requirements as written (the operation's, or else the spec's).
    pub(crate) security: Vec<Requirement>,
    /// The OAuth2 scopes that may call the operation (any one suffices), in spec order.
    pub(crate) scopes: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    Path,
    Query,
}

impl Location {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::Query => "query",
        }
    }
}

pub(crate) struct Param {
    pub(crate) name: String,
    pub(crate) location: Location,
    pub(crate) schema: ReferenceOr<Schema>,
    pub(crate) required: bool,
    pub(crate) description: Option<String>,
    /// The parameter's `example`, or else its schema's.
    pub(crate) example: Option<serde_json::Value>,
}

pub(crate) struct Body {
    pub(crate) content_type: String,
    pub(crate) schema: ReferenceOr<Schema>,
    pub(crate) required: bool,
    /// The media type's `example`.
    pub(crate) example: Option<serde_json::Value>,
}

/// One response of an operation.
pub(crate) struct Reply {
    /// As the spec writes it, e.g. `201` or `4XX`.
    pub(crate) status: String,
    pub(crate) description: String,
    /// (media type, schema) in spec order.
    pub(crate) content: Vec<(String, Option<ReferenceOr<Schema>>)>,
}

/// The success response: `200` (with or without a JSON body), `201` (with a JSON body and a
/// `Location` header) or `307` (a `Location` header and no body).
pub(crate) struct Success {
    pub(crate) kind: SuccessKind,
    pub(crate) body: Option<ReferenceOr<Schema>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SuccessKind {
    Ok,
    Created,
    TemporaryRedirect,
}

/// One security requirement: a scheme and the scopes it names.
pub(crate) struct Requirement {
    pub(crate) scheme: String,
    pub(crate) scopes: Vec<String>,
}

/// Something `components` holds by name, under `#/components/<KIND>/`.
pub(crate) trait Component: Sized {
    const KIND: &'static str;
    fn table(components: &Components) -> &indexmap::IndexMap<String, ReferenceOr<Self>>;
}

impl Component for Schema {
    const KIND: &'static str = "schemas";
    fn table(components: &Components) -> &indexmap::IndexMap<String, ReferenceOr<Self>> {
        &components.schemas
    }
}

impl Component for Parameter {
    const KIND: &'static str = "parameters";
    fn table(components: &Components) -> &indexmap::IndexMap<String, ReferenceOr<Self>> {
        &components.parameters
    }
}

impl Component for RequestBody {
    const KIND: &'static str = "requestBodies";
    fn table(components: &Components) -> &indexmap::IndexMap<String, ReferenceOr<Self>> {
        &components.request_bodies
    }
}

impl Component for Response {
    const KIND: &'static str = "responses";
    fn table(components: &Components) -> &indexmap::IndexMap<String, ReferenceOr<Self>> {
        &components.responses
    }
}

/// `item` itself, or the component its `$ref` names. A reference must be local
/// (`#/components/<kind>/<name>`) and name an item, not another reference.
pub(crate) fn resolve<'a, T: Component>(
    item: &'a ReferenceOr<T>,
    components: Option<&'a Components>,
) -> Result<&'a T, String> {
    let reference = match item {
        ReferenceOr::Item(t) => return Ok(t),
        ReferenceOr::Reference { reference } => reference,
    };
    let prefix = format!("#/components/{}/", T::KIND);
    let name = reference
        .strip_prefix(&prefix)
        .ok_or_else(|| format!("reference {reference} is not under {prefix}"))?;
    match components.and_then(|c| T::table(c).get(name)) {
        Some(ReferenceOr::Item(t)) => Ok(t),
        Some(ReferenceOr::Reference { .. }) => {
            Err(format!("reference {reference} points at another reference"))
        }
        None => Err(format!("reference {reference} does not exist")),
    }
}

/// The path's segments, without the empty ones around slashes.
pub(crate) fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Whether a path segment is a variable, `{name}`.
pub(crate) fn is_var(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

impl Spec {
    /// The schema behind a reference (or the schema itself); `None` if it does not resolve
    /// (typify refuses such a spec before anything is rendered).
    pub(crate) fn schema<'a>(&'a self, schema: &'a ReferenceOr<Schema>) -> Option<&'a Schema> {
        resolve(schema, Some(&self.components)).ok()
    }
}

impl Operation {
    /// `GET /path`, for messages.
    pub(crate) fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    pub(crate) fn params_in(&self, location: Location) -> impl Iterator<Item = &Param> {
        self.parameters.iter().filter(move |p| p.location == location)
    }
}
