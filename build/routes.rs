//! Routing around dropshot's one limit: its router cannot hold a literal path segment beside a
//! variable one at the same depth (`/users/tags` beside `/users/{user_id}`). Such a literal
//! operation needs a same-method operation at the variable path; both become plain trait
//! methods, and one unpublished routing endpoint at the variable path hands each request to
//! the right one by the segment's value. Each is published at its own path through
//! [`doc_endpoint`].

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::model::{is_var, segments, Operation};
use super::server::{arguments, docs, pascal, Signature};

pub(crate) enum Route<'a> {
    Plain(&'a Operation),
    /// Operations that dropshot cannot route side by side: `variable` owns the route, and each
    /// literal operation is chosen when the segment variable `segment_var` equals its literal.
    Dispatch {
        variable: &'a Operation,
        literals: Vec<&'a Operation>,
        segment_var: String,
    },
}

/// The routes of `ops`, in spec order (a routing endpoint where its variable operation is).
pub(crate) fn plan(ops: &[Operation]) -> Result<Vec<Route<'_>>, Vec<String>> {
    let mut errors = Vec::new();
    // Literal operations that collide with a variable sibling, keyed by the index of the
    // operation that will route them.
    let mut routed: BTreeMap<usize, (Vec<&Operation>, String)> = BTreeMap::new();
    let mut is_routed = vec![false; ops.len()];
    for (li, lit) in ops.iter().enumerate() {
        let Some((depth, seg)) = collision(ops, lit) else {
            continue;
        };
        match router(ops, lit, depth) {
            Some(oi) => {
                let var = segments(&ops[oi].path)[depth].trim_matches(['{', '}']).to_string();
                routed.entry(oi).or_insert_with(|| (Vec::new(), var)).0.push(lit);
                is_routed[li] = true;
                is_routed[oi] = true;
            }
            None => errors.push(format!(
                "{}: the literal segment {seg:?} sits beside a variable segment, which dropshot \
                 cannot route; the generator supports this only for a last segment, without \
                 request bodies, when an operation with the same method and error type exists at \
                 the variable path and that segment is its only variable",
                lit.name()
            )),
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

/// The first literal segment of `lit`'s path that some operation has a variable beside.
fn collision<'a>(ops: &[Operation], lit: &'a Operation) -> Option<(usize, &'a str)> {
    let ls = segments(&lit.path);
    ls.iter().enumerate().filter(|(_, seg)| !is_var(seg)).find_map(|(depth, seg)| {
        let collides = ops.iter().any(|o| {
            let os = segments(&o.path);
            os.len() > depth && os[..depth] == ls[..depth] && is_var(os[depth])
        });
        collides.then_some((depth, *seg))
    })
}

/// The operation whose routing endpoint can serve `lit`, whose segment at `depth` collides.
fn router(ops: &[Operation], lit: &Operation, depth: usize) -> Option<usize> {
    let ls = segments(&lit.path);
    let oi = ops.iter().position(|o| {
        let os = segments(&o.path);
        o.method == lit.method
            && os.len() == ls.len()
            && is_var(os[depth])
            && os.iter().zip(&ls).enumerate().all(|(i, (a, b))| i == depth || a == b)
    })?;
    let owner = &ops[oi];
    let supported = depth + 1 == ls.len()
        && ls.iter().all(|s| !is_var(s))
        && segments(&owner.path).iter().filter(|s| is_var(s)).count() == 1
        && lit.body.is_none()
        && owner.body.is_none()
        && lit.error_type == owner.error_type;
    supported.then_some(oi)
}

fn route_segment_name(variable: &Operation) -> String {
    format!("{}RouteSegment", pascal(&variable.id))
}

/// Adds the type of the raw path segment a routing endpoint reads to choose the operation.
pub(crate) fn add_route_segment(
    types: &mut typify::TypeSpace,
    variable: &Operation,
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
        .map_err(|e| format!("{}: {e}", variable.name()))
}

/// A trait method for an operation that a routing endpoint calls (it has no route of its own).
pub(crate) fn routed_method(op: &Operation, sig: &Signature) -> TokenStream {
    let docs = docs(op);
    let name = format_ident!("{}", op.id);
    let (response, error) = (&sig.response, &sig.error);
    let (names, types): (Vec<_>, Vec<_>) = arguments(sig, true).into_iter().unzip();
    let note = format!(" Served at `{}` through a routing endpoint.", op.name());
    quote! {
        #docs
        #[doc = ""]
        #[doc = #note]
        fn #name(
            rqctx: dropshot::RequestContext<Self::Context>,
            #(#names: #types),*
        ) -> impl std::future::Future<Output = Result<#response, #error>> + Send;
    }
}

/// Extracts `op`'s own arguments from the request and calls it; its path parameters (if it
/// has any, it is the variable operation and `segment_var` is its only one) come from the
/// routing endpoint's `segment`.
fn routed_call(op: &Operation, sig: &Signature, segment_var: &str) -> TokenStream {
    let name = format_ident!("{}", op.id);
    let mut lets = Vec::new();
    let mut names = Vec::new();
    if let Some(p) = &sig.path {
        let var = format_ident!("{segment_var}");
        lets.push(
            quote! { let path = #p { #var: crate::api::path_param(#segment_var, segment)? }; },
        );
        names.push(quote! { path });
    }
    if let Some(q) = &sig.query {
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

/// The unpublished endpoint at the variable path that calls the operation the segment names.
pub(crate) fn dispatch_method<'s>(
    variable: &Operation,
    literals: &[&Operation],
    segment_var: &str,
    sig: impl Fn(&Operation) -> &'s Signature,
) -> TokenStream {
    let name = format_ident!("{}_route", variable.id);
    let method = format_ident!("{}", variable.method);
    let path = &variable.path;
    let segment_struct = format_ident!("{}", route_segment_name(variable));
    let var = format_ident!("{segment_var}");
    let arms = literals.iter().map(|lit| {
        let literal = *segments(&lit.path).last().expect("a literal path has segments");
        let call = routed_call(lit, sig(lit), segment_var);
        quote! { #literal => #call }
    });
    let fallback = routed_call(variable, sig(variable), segment_var);
    let error = &sig(variable).error;
    let list = |f: fn(&Operation) -> &str| {
        literals.iter().map(|l| format!("`{}`", f(l))).collect::<Vec<_>>().join(", ")
    };
    let doc = format!(
        " Routes `{}`: dropshot cannot route {} beside it, so this endpoint serves `{}` and, by \
         the segment's value, {}.",
        variable.name(),
        list(|l| &l.path),
        variable.id,
        list(|l| &l.id),
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

/// The endpoint `openapi_document()` publishes for an operation a routing endpoint serves.
pub(crate) fn doc_endpoint(op: &Operation, sig: &Signature) -> TokenStream {
    let (id, path, tag) = (&op.id, &op.path, &op.tag);
    let (response, error) = (&sig.response, &sig.error);
    let method = format_ident!("{}", op.method);
    let params = arguments(sig, false).into_iter().map(|(_, ty)| ty);
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
