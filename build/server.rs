//! `privx_api.rs`: typify's serde + schemars types for every schema and for each operation's
//! path and query parameters, the trait `PrivxApi`, its router and the `api_description()`
//! that serves it (`routes.rs`), the `OPERATIONS` table, `openapi_document()` and the
//! `locations` of created resources.

use std::collections::HashMap;

use openapiv3::{ReferenceOr, Schema};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::locations::{self, Located};
use super::model::{Location, Operation, Spec, SuccessKind};
use super::routes::{self, PathRoute};

/// Schemas typify cannot express, served by hand-written types in `crate::api`: `SortDir`
/// accepts both `ASC` and `asc`, whose Rust variant names would clash.
pub(crate) const REPLACEMENTS: &[(&str, &str)] = &[("SortDir", "crate::api::SortDir")];

/// What the server code is made of, and what the client reuses of it.
pub(crate) struct Server {
    pub(crate) tokens: TokenStream,
    pub(crate) schema_types: SchemaTypes,
}

/// The types `crate::api::types` holds for the spec's schemas.
pub(crate) struct SchemaTypes {
    /// The type of each schema of `components.schemas` that typify generates (not the
    /// [`REPLACEMENTS`]), by the name typify gives it.
    pub(crate) schemas: Vec<String>,
    /// Every named type generated for the schemas: those above and the types of their
    /// inline parts (e.g. an inline enum of a field).
    pub(crate) all: Vec<String>,
}

/// The Rust types of one operation's extractors and result.
pub(crate) struct Signature {
    pub(crate) path: Option<TokenStream>,
    pub(crate) query: Option<TokenStream>,
    pub(crate) body: Option<TokenStream>,
    pub(crate) response: TokenStream,
    pub(crate) error: TokenStream,
}

pub(crate) fn generate(
    spec: &Spec,
    routes: &[PathRoute],
    located: &[Located],
) -> Result<Server, Vec<String>> {
    let mut types = type_space();
    let schema_types = add_schemas(&mut types, spec).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut signatures = HashMap::new();
    for op in &spec.operations {
        match signature(&mut types, op) {
            Ok(s) => {
                signatures.insert(op.id.as_str(), s);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let tokens = render(spec, routes, &signatures, types.to_stream(), located);
    Ok(Server { tokens, schema_types })
}

fn type_space() -> typify::TypeSpace {
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
    typify::TypeSpace::new(&settings)
}

/// Adds every schema of `components.schemas`; says which types they became.
fn add_schemas(types: &mut typify::TypeSpace, spec: &Spec) -> Result<SchemaTypes, String> {
    let schemas: Vec<_> =
        spec.components.schemas.iter().map(|(k, v)| (k.clone(), to_schemars(v))).collect();
    types.add_ref_types(schemas).map_err(|e| format!("components.schemas: {e}"))?;
    let named = |t: &typify::Type| {
        matches!(
            t.details(),
            typify::TypeDetails::Struct(_)
                | typify::TypeDetails::Enum(_)
                | typify::TypeDetails::Newtype(_)
        )
    };
    let mut all: Vec<String> = types.iter_types().filter(named).map(|t| t.name()).collect();
    all.sort();
    let mut schemas = Vec::new();
    for name in spec.components.schemas.keys() {
        let reference = ReferenceOr::<Schema>::ref_(&format!("#/components/schemas/{name}"));
        let id = types.add_type(&to_schemars(&reference)).map_err(|e| format!("{name}: {e}"))?;
        let ty = types.get_type(&id).map_err(|e| format!("{name}: {e}"))?;
        if named(&ty) {
            schemas.push(ty.name());
        }
    }
    Ok(SchemaTypes { schemas, all })
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

/// Adds the operation's parameter structs and body and response types to `types`.
fn signature(types: &mut typify::TypeSpace, op: &Operation) -> Result<Signature, String> {
    let path = params_struct(types, op, Location::Path, "Path")?;
    let query = params_struct(types, op, Location::Query, "Query")?;
    let body = match &op.body {
        None => None,
        Some(body) => {
            let ty = schema_type(types, &body.schema, op)?;
            Some(if body.required {
                quote! { dropshot::TypedBody<#ty> }
            } else {
                quote! { crate::api::OptionalJsonBody<#ty> }
            })
        }
    };
    let success = match &op.success.body {
        Some(schema) => Some(schema_type(types, schema, op)?),
        None => None,
    };
    let response = match (op.success.kind, success) {
        (SuccessKind::Ok, Some(ty)) => quote! { crate::api::HttpResponseOk<#ty> },
        (SuccessKind::Ok, None) => quote! { crate::api::HttpResponseOkEmpty },
        (SuccessKind::Created, ty) => quote! {
            dropshot::HttpResponseHeaders<dropshot::HttpResponseCreated<#ty>, crate::api::LocationHeader>
        },
        (SuccessKind::TemporaryRedirect, _) => quote! { crate::api::HttpResponseRedirect },
    };
    let error = op.error_type.parse().expect("an error type is a Rust path");
    Ok(Signature { path, query, body, response, error })
}

/// The Rust type of a schema.
fn schema_type(
    types: &mut typify::TypeSpace,
    schema: &ReferenceOr<Schema>,
    op: &Operation,
) -> Result<TokenStream, String> {
    let id = types.add_type(&to_schemars(schema)).map_err(|e| format!("{}: {e}", op.name()))?;
    Ok(types.get_type(&id).map_err(|e| format!("{}: {e}", op.name()))?.ident())
}

/// The struct of the operation's parameters in `location` (sorted by name), if it has any.
fn params_struct(
    types: &mut typify::TypeSpace,
    op: &Operation,
    location: Location,
    suffix: &str,
) -> Result<Option<TokenStream>, String> {
    let mut params: Vec<_> = op.params_in(location).collect();
    if params.is_empty() {
        return Ok(None);
    }
    params.sort_by(|a, b| a.name.cmp(&b.name));
    let mut properties = serde_json::Map::new();
    for param in &params {
        let mut schema = serde_json::to_value(&param.schema).expect("schemas serialize");
        if let (Some(desc), Some(obj)) = (&param.description, schema.as_object_mut()) {
            obj.entry("description").or_insert_with(|| desc.clone().into());
        }
        properties.insert(param.name.clone(), schema);
    }
    let required: Vec<&str> =
        params.iter().filter(|p| p.required).map(|p| p.name.as_str()).collect();
    let schema = serde_json::json!({
        "type": "object", "properties": properties, "required": required,
    });
    let schema: schemars::schema::Schema = serde_json::from_value(schema).expect("valid");
    let name = format!("{}{suffix}", pascal(&op.id));
    types
        .add_type_with_name(&schema, Some(name.clone()))
        .map_err(|e| format!("{}: {} parameters: {e}", op.name(), location.as_str()))?;
    let ident = format_ident!("{name}");
    Ok(Some(quote! { types::#ident }))
}

fn render(
    spec: &Spec,
    routes: &[PathRoute],
    signatures: &HashMap<&str, Signature>,
    type_stream: TokenStream,
    located: &[Located],
) -> TokenStream {
    let sig = |op: &Operation| &signatures[op.id.as_str()];
    let (trait_items, router) = routes::render(routes, sig);
    let doc_endpoints = spec.operations.iter().map(|op| routes::doc_endpoint(op, sig(op)));
    let operations = spec.operations.iter().map(|op| {
        let (id, method, path, tag, scopes) = (&op.id, &op.method, &op.path, &op.tag, &op.scopes);
        quote! { crate::api::Operation { operation_id: #id, method: #method, path: #path, tag: #tag, scopes: &[#(#scopes),*] } }
    });
    let optional_bodies =
        spec.operations.iter().filter(|op| op.body.as_ref().is_some_and(|b| !b.required)).map(
            |op| {
                let (method, path) = (op.method.to_lowercase(), &op.path);
                quote! { crate::api::optional_body(&mut document, #method, #path); }
            },
        );
    let (title, version) = (&spec.title, &spec.version);
    let locations = locations::render(located);

    quote! {
        /// Types of every schema in the spec, and the typed path and query parameters of every
        /// operation.
        pub mod types {
            #type_stream
        }

        /// The PrivX API: one method per operation of the spec, named by its operationId.
        pub trait PrivxApi {
            type Context: crate::api::RequestLimits
                + crate::api::Readiness
                + crate::api::Observe
                + Send
                + Sync
                + 'static;
            #(#trait_items)*
        }

        #router

        /// Every operation of the spec with the scopes its security requirement accepts (any one
        /// of them suffices), in spec order.
        pub const OPERATIONS: &[crate::api::Operation] = &[#(#operations),*];

        /// The OpenAPI document of the API: every operation at its own path (the served
        /// endpoints are the router's unpublished catch-alls), with the optional request bodies
        /// that dropshot cannot mark. dropshot's router cannot hold some of the paths side by
        /// side, so each operation is described on its own and the documents are merged.
        pub fn openapi_document() -> serde_json::Value {
            let mut document =
                crate::api::openapi_json(&dropshot::ApiDescription::new(), #title, #version);
            #(crate::api::merge_openapi(&mut document, crate::api::openapi_json(&crate::api::single_endpoint(#doc_endpoints), #title, #version));)*
            #(#optional_bodies)*
            document
        }

        #locations
    }
}

/// The operation's summary and description as doc attributes.
pub(crate) fn docs(op: &Operation) -> TokenStream {
    let mut lines = vec![format!(" {}", op.summary)];
    if !op.description.is_empty() {
        lines.push(String::new());
        lines.extend(op.description.trim_end().lines().map(|l| format!(" {l}")));
    }
    quote! { #(#[doc = #lines])* }
}

/// The extractor arguments of an operation (name and type), in dropshot's order (the body
/// comes last).
pub(crate) fn arguments(sig: &Signature) -> Vec<(syn::Ident, TokenStream)> {
    let mut args = Vec::new();
    if let Some(p) = &sig.path {
        args.push((format_ident!("path"), quote! { crate::api::Path<#p> }));
    }
    if let Some(q) = &sig.query {
        args.push((format_ident!("query"), quote! { dropshot::Query<#q> }));
    }
    if let Some(b) = &sig.body {
        args.push((format_ident!("body"), b.clone()));
    }
    args
}
