//! The router: dropshot answers a request its router cannot place (an unknown path, a wrong
//! method) with its own error body and has no hook to change that, and its router cannot hold a
//! literal segment beside a variable one (`/users/tags` beside `/users/{user_id}`). So the
//! generated `api_description()` registers one unpublished catch-all endpoint, `/{path:.*}`,
//! per HTTP method, and the generated `route` function places every request itself:
//!
//! - by path first, then by method, as OpenAPI reads a spec: a path template matches segment
//!   for segment, and a literal segment beats a variable one (so `/users/tags` is not a user);
//! - then the unpublished pages (`crate::api::unrouted`), else a 404 envelope;
//! - a path whose operations lack the method gets a 405 envelope with `Allow`;
//! - before all that, an over-long URI or oversized headers get a 414 or 431 envelope
//!   (`crate::api::check_head`), and each body is read within the server's body timeout
//!   (`crate::api::read_body`).
//!
//! Each operation is a plain trait method with dropshot's extractor types; the `route_to`
//! function of an operation sets the request's endpoint metadata to the operation's (its
//! operationId, its body's content type), parses its path parameters from the segments with
//! `crate::api::path_param`, runs its query and body extractors and calls it. `doc_endpoint`
//! publishes each operation at its own path in `openapi_document()`.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use openapiv3::{SchemaKind, Type};

use super::model::{is_var, segments, Location, Operation, Param, Spec};
use super::reader::JSON;
use super::server::{arguments, docs, Signature};

/// The HTTP methods that get a catch-all endpoint: those of OpenAPI 3.0 (a spec may use any of
/// them) and QUERY (which API fuzzers send), so that a method no operation of a path has gets
/// the router's 405, not dropshot's.
const METHODS: &[&str] =
    &["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE", "QUERY"];

/// The operations at one path template.
pub(crate) struct PathRoute<'a> {
    segments: Vec<&'a str>,
    operations: Vec<&'a Operation>,
}

/// The path templates of `ops`, most specific first (segment by segment, a literal before a
/// variable), which is the order the router tries them in.
pub(crate) fn plan(spec: &Spec) -> Result<Vec<PathRoute<'_>>, Vec<String>> {
    let ops = &spec.operations;
    let mut errors = non_string_path_params(spec);
    let mut by_path: Vec<PathRoute> = Vec::new();
    // The template with its variables unnamed, so two spellings of one path are caught.
    let mut shapes: BTreeMap<Vec<&str>, &str> = BTreeMap::new();
    for op in ops {
        let segs = segments(&op.path);
        if let Some(seg) = segs.iter().find(|s| !is_var(s) && (s.contains('{') || s.contains('}')))
        {
            errors.push(format!(
                "{}: the segment {seg:?} mixes text and a variable; only whole-segment \
                 variables are supported",
                op.name()
            ));
            continue;
        }
        let shape: Vec<&str> = segs.iter().map(|s| if is_var(s) { "{}" } else { s }).collect();
        match shapes.get(&shape) {
            Some(path) if *path != op.path => errors.push(format!(
                "{}: the same path as {path} with other variable names; a server cannot tell \
                 them apart",
                op.name()
            )),
            _ => {
                shapes.insert(shape, &op.path);
            }
        }
        match by_path.iter_mut().find(|route| route.operations[0].path == op.path) {
            Some(route) => route.operations.push(op),
            None => by_path.push(PathRoute { segments: segs, operations: vec![op] }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    by_path.sort_by_key(|route| route.segments.iter().map(|s| is_var(s)).collect::<Vec<_>>());
    Ok(by_path)
}

/// The router hands a path parameter its segment as text (`crate::api::path_param`), which
/// only a string schema (of any format or enum) reads.
fn non_string_path_params(spec: &Spec) -> Vec<String> {
    let is_string = |param: &&Param| {
        let schema = spec.schema(&param.schema);
        schema.is_some_and(|s| matches!(s.schema_kind, SchemaKind::Type(Type::String(_))))
    };
    let ops = spec.operations.iter();
    ops.flat_map(|op| op.params_in(Location::Path).filter(|p| !is_string(p)).map(move |p| (op, p)))
        .map(|(op, param)| {
            format!("{}: path parameter {:?} must have a string schema", op.name(), param.name)
        })
        .collect()
}

/// The trait's methods (one per operation) and the items beside the trait: the API description
/// with the catch-all endpoints, `route` and the `route_to` module.
pub(crate) fn render<'s>(
    routes: &[PathRoute],
    sig: impl Fn(&Operation) -> &'s Signature,
) -> (Vec<TokenStream>, TokenStream) {
    let ops = || routes.iter().flat_map(|route| &route.operations);
    let trait_items = ops().map(|op| operation_method(op, sig(op))).collect();
    let calls = ops().map(|op| route_to(op, sig(op)));
    let catch_alls = catch_alls();
    let router = router(routes);
    let items = quote! {
        #catch_alls

        #router

        /// One function per operation: the request made into the operation's arguments.
        mod route_to {
            use super::{types, PrivxApi};
            #(#calls)*
        }
    };
    (trait_items, items)
}

/// A trait method for an operation, which the router calls (it has no endpoint of its own).
fn operation_method(op: &Operation, sig: &Signature) -> TokenStream {
    let docs = docs(op);
    let name = format_ident!("{}", op.id);
    let (response, error) = (&sig.response, &sig.error);
    let (names, types): (Vec<_>, Vec<_>) = arguments(sig).into_iter().unzip();
    let note = format!(" Served at `{}` by the router.", op.name());
    quote! {
        #docs
        #[doc = ""]
        #[doc = #note]
        fn #name(
            rqctx: dropshot::RequestContext<Self::Context>,
            #(#names: #types),*
        ) -> impl std::future::Future<Output = Result<#response, #error>> + Send + 'static;
    }
}

/// `api_description()`: one unpublished `/{path:.*}` endpoint per method of [`METHODS`], each
/// handing the request to `route`. They are registered as plain `ApiEndpoint`s because
/// `#[endpoint]` knows neither TRACE nor QUERY.
fn catch_alls() -> TokenStream {
    let methods = METHODS;
    quote! {
        /// The API description to serve: every request of the [`METHODS`] goes to the router,
        /// through one unpublished catch-all endpoint, `/{path:.*}`, per method (dropshot's own
        /// router could answer an unknown path or method only with its own error body).
        pub fn api_description<A: PrivxApi + 'static>(
        ) -> Result<dropshot::ApiDescription<A::Context>, dropshot::ApiDescriptionRegisterError> {
            let mut api = dropshot::ApiDescription::new();
            for method in METHODS {
                let method = http::Method::from_bytes(method.as_bytes()).expect("a method name");
                api.register(
                    dropshot::ApiEndpoint::new(
                        format!("route_{}", method.as_str().to_lowercase()),
                        catch_all::<A>,
                        method,
                        dropshot::CONTENT_TYPE_JSON,
                        "/{path:.*}",
                        dropshot::ApiEndpointVersions::All,
                    )
                    .visible(false),
                )?;
            }
            Ok(api)
        }

        /// The HTTP methods routed to the operations: OpenAPI's, and QUERY.
        pub const METHODS: &[&str] = &[#(#methods),*];

        /// The catch-all endpoints' handler: the request placed (see `route`) before the first
        /// poll, so that what dropshot boxes and moves is this small future, not an operation's,
        /// and watched by the server context from its placing to its answer (see
        /// `crate::api::Observe`).
        fn catch_all<A: PrivxApi>(
            rqctx: dropshot::RequestContext<A::Context>,
            request: crate::api::AnyRequest,
        ) -> impl std::future::Future<
            Output = Result<http::Response<dropshot::Body>, crate::api::RouteError>,
        > + Send {
            let observed = <A::Context as crate::api::Observe>::observe(rqctx, |rqctx| {
                match crate::api::check_head(&request.0) {
                    Ok(()) => route::<A>(rqctx, request.0),
                    Err(error) => crate::api::routed(Err(error)),
                }
            });
            futures::FutureExt::map(observed, |answer| {
                answer.or_else(crate::api::RouteError::with_headers)
            })
        }
    }
}

/// The name a path variable's segment is bound to in `route` (clear of its own locals).
fn segment_ident(var: &str) -> syn::Ident {
    format_ident!("segment_{}", var.trim_matches(['{', '}']))
}

/// `route`: the request's path matched against every path template, then its method.
fn router(routes: &[PathRoute]) -> TokenStream {
    // At least the one segment of the unpublished pages.
    let max = routes.iter().map(|route| route.segments.len()).max().unwrap_or(0).max(1);
    let arms = routes.iter().map(|route| {
        let pattern = route.segments.iter().map(|seg| match is_var(seg) {
            true => {
                let ident = segment_ident(seg);
                quote! { #ident }
            }
            false => quote! { #seg },
        });
        let vars: Vec<_> =
            route.segments.iter().filter(|s| is_var(s)).map(|s| segment_ident(s)).collect();
        let methods = route.operations.iter().map(|op| {
            let (method, id) = (&op.method, format_ident!("{}", op.id));
            quote! { #method => crate::api::routed(route_to::#id::<A>(rqctx, request, #(#vars),*)), }
        });
        let allow = route.operations.iter().map(|op| op.method.as_str()).collect::<Vec<_>>();
        let allow = allow.join(", ");
        quote! {
            [#(#pattern),*] => match method.as_str() {
                #(#methods)*
                _ => crate::api::ready(crate::api::method_not_allowed(method.as_str(), #allow)),
            },
        }
    });
    quote! {
        /// Places a request: the operation whose path template matches the request's path (a
        /// literal segment before a variable one) and whose method is the request's; else the
        /// unpublished pages or a 404, or a 405 when the path's operations lack the method.
        ///
        /// Placing is synchronous and the answer a box (`crate::api::Routed`): the operation's
        /// future is built once, in its box, however large it is, and nothing around it is
        /// moved while it runs. (An async router held each operation's future, 2.4 KB for a get
        /// user, inside its own, 2.7 KB, and dropshot moved them: `perf record` put `memcpy` at
        /// 1.5 µs of a get user, twice the ceiling's.)
        fn route<A: PrivxApi>(
            rqctx: dropshot::RequestContext<A::Context>,
            request: hyper::Request<dropshot::Body>,
        ) -> crate::api::Routed {
            // The segments borrow this copy of the URI (it shares the request's bytes), so that
            // the request and its context can move into the operation.
            let uri = request.uri().clone();
            let method = request.method().clone();
            let Some(segments) = crate::api::PathSegments::<#max>::parse(uri.path()) else {
                return crate::api::ready(Err(crate::api::not_found(uri.path())));
            };
            let (segments, len) = segments.strs();
            match &segments[..len] {
                #(#arms)*
                segments => crate::api::unrouted(rqctx, method.as_str(), segments, uri.path()),
            }
        }
    }
}

/// The dropshot content type of a request body's media type.
fn body_content_type(content_type: &str) -> TokenStream {
    match content_type {
        JSON => quote! { Json },
        "application/x-www-form-urlencoded" => quote! { UrlEncoded },
        other => unreachable!("the reader accepts no {other} request body"),
    }
}

/// `route_to::<operation>`: the operation's arguments from the request and its path's
/// segments, in dropshot's order (path, query, body), each failing as dropshot's extractor
/// would; then the call.
fn route_to(op: &Operation, sig: &Signature) -> TokenStream {
    let name = format_ident!("{}", op.id);
    let id = &op.id;
    let error = &sig.error;
    let vars: Vec<_> = segments(&op.path)
        .into_iter()
        .filter(|s| is_var(s))
        .map(|s| format_ident!("{}", s.trim_matches(['{', '}'])))
        .collect();
    // What runs before the operation's future is built: its metadata and its path parameters.
    let mut lets = Vec::new();
    if let Some(body) = &op.body {
        let content_type = body_content_type(&body.content_type);
        lets.push(quote! {
            rqctx.endpoint.body_content_type = dropshot::ApiEndpointBodyContentType::#content_type;
        });
    }
    if let Some(p) = &sig.path {
        let names = vars.iter().map(|v| v.to_string());
        lets.push(quote! {
            let path = crate::api::Path::from(#p { #(#vars: crate::api::path_param(#names, #vars)?),* });
        });
    }
    // What the operation awaits before it runs: its query and body extractors.
    let mut awaits = Vec::new();
    if let Some(q) = &sig.query {
        awaits.push(quote! {
            let query = <dropshot::Query<#q> as dropshot::SharedExtractor>::from_request(&rqctx).await?;
        });
    }
    let request = match &sig.body {
        Some(b) => {
            awaits.push(quote! {
                let body = crate::api::read_body(&rqctx, <#b as dropshot::ExclusiveExtractor>::from_request(&rqctx, request)).await?;
            });
            quote! { request }
        }
        None => quote! { _request },
    };
    let names = arguments(sig).into_iter().map(|(name, _)| name);
    let operation = quote! { A::#name(rqctx, #(#names),*) };
    let operation = match awaits.is_empty() {
        true => operation,
        false => quote! { async move { #(#awaits)* #operation.await } },
    };
    quote! {
        pub(super) fn #name<A: PrivxApi>(
            mut rqctx: dropshot::RequestContext<A::Context>,
            #request: hyper::Request<dropshot::Body>,
            #(#vars: &str),*
        ) -> Result<crate::api::Routed, #error> {
            // The catch-all endpoint's own operationId names no operation: the operation runs
            // under its own, as if dropshot had routed to it (in the same buffer where it fits).
            rqctx.endpoint.operation_id.replace_range(.., #id);
            #(#lets)*
            Ok(crate::api::call(#operation))
        }
    }
}

/// The endpoint `openapi_document()` publishes for an operation.
pub(crate) fn doc_endpoint(op: &Operation, sig: &Signature) -> TokenStream {
    let (id, path, tag) = (&op.id, &op.path, &op.tag);
    let (response, error) = (&sig.response, &sig.error);
    let method = format_ident!("{}", op.method);
    let params = arguments(sig).into_iter().map(|(_, ty)| ty);
    let content_type = op.body.as_ref().map_or(JSON, |body| &body.content_type);
    let summary = &op.summary;
    let description = op.description.trim_end();
    let description = (!description.is_empty()).then(|| quote! { .description(#description) });
    quote! {
        dropshot::ApiEndpoint::new_for_types::<(#(#params,)*), Result<#response, #error>>(
            #id.to_string(),
            dropshot::Method::#method,
            #content_type,
            #path,
            dropshot::ApiEndpointVersions::All,
        )
        .summary(#summary)
        #description
        .tag(#tag)
    }
}
