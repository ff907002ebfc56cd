//! The `Location` of created resources, from the spec: for each operation whose 201 response
//! declares a `Location` header, the path of the operation that GETs what it created (its own
//! path plus one `{param}` segment). The server's handlers call the generated
//! `crate::api::locations::<create operationId>(...)` instead of formatting paths by hand.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::model::{is_var, segments, Operation, SuccessKind};

/// A create operation and the operation that reads what it creates.
pub(crate) struct Located<'a> {
    create: &'a Operation,
    view: &'a Operation,
}

/// The view of every create operation, or which create operations have none.
pub(crate) fn plan(ops: &[Operation]) -> Result<Vec<Located<'_>>, Vec<String>> {
    let mut located = Vec::new();
    let mut errors = Vec::new();
    for create in ops.iter().filter(|op| op.success.kind == SuccessKind::Created) {
        let base = segments(&create.path);
        let view = ops.iter().find(|op| {
            let path = segments(&op.path);
            op.method == "GET"
                && path.len() == base.len() + 1
                && path[..base.len()] == base[..]
                && is_var(path[base.len()])
        });
        match view {
            Some(view) => located.push(Located { create, view }),
            None => errors.push(format!(
                "{}: its 201 response declares a Location header, but there is no GET operation \
                 at {}/{{...}} to locate the created resource",
                create.name(),
                create.path.trim_end_matches('/'),
            )),
        }
    }
    if errors.is_empty() {
        Ok(located)
    } else {
        Err(errors)
    }
}

/// `pub mod locations`: one function per create operation, named by its operationId, taking
/// the view's path parameters in path order and returning the view's path.
pub(crate) fn render(located: &[Located]) -> TokenStream {
    let functions = located.iter().map(|Located { create, view }| {
        let name = format_ident!("{}", create.id);
        let params = segments(&view.path)
            .into_iter()
            .filter(|s| is_var(s))
            .map(|s| format_ident!("{}", s.trim_matches(['{', '}'])));
        let path = &view.path;
        let doc = format!(
            " The `Location` of what `{}` creates: the path `{}` reads it at.",
            create.id, view.id
        );
        quote! {
            #[doc = #doc]
            pub fn #name(#(#params: impl std::fmt::Display),*) -> String {
                format!(#path)
            }
        }
    });
    quote! {
        /// The `Location` header of each create operation's `201 Created`: the path of the
        /// operation that reads the created resource.
        pub mod locations {
            #(#functions)*
        }
    }
}
