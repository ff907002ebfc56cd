//! `privx_client.rs`: progenitor's builder-style client of the spec.
//!
//! The client reuses the server's schema types instead of generating copies: every schema
//! progenitor would generate is replaced by the server's `crate::api::types::X`, and the
//! client's own `types` module re-exports the server's schema types, so `client::types::X` is
//! `api::types::X`. Those types derive what the client needs of them (`Clone`, `Debug`,
//! `Serialize`, `Deserialize`, and `Display` for enums used in paths). One thing changes for
//! callers: progenitor offers a `body_map` builder only for body types it generates itself, so
//! a request body is given whole, with `.body(value)`. Types progenitor makes for inline
//! parameter schemas (e.g. `ListenerListSortkey`) are still its own.

use openapiv3::OpenAPI;
use proc_macro2::TokenStream;
use quote::ToTokens;

use super::server::{SchemaTypes, REPLACEMENTS};

pub(crate) fn generate(spec: &OpenAPI, shared: &SchemaTypes) -> Result<TokenStream, String> {
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
    for name in &shared.schemas {
        settings.with_replacement(name, format!("crate::api::types::{name}"), std::iter::empty());
    }
    let tokens = progenitor_impl::Generator::new(&settings)
        .generate_tokens(spec)
        .map_err(|e| format!("progenitor cannot generate the client: {e}"))?;
    let mut file: syn::File =
        syn::parse2(tokens).map_err(|e| format!("progenitor's client does not parse: {e}"))?;
    reexport_schema_types(&mut file, shared)?;
    Ok(file.into_token_stream())
}

/// Adds `pub use crate::api::types::{...}` for the server's schema types to the client's
/// `types` module (leaving out any name the module defines itself).
fn reexport_schema_types(file: &mut syn::File, shared: &SchemaTypes) -> Result<(), String> {
    let types = file
        .items
        .iter_mut()
        .find_map(|item| match item {
            syn::Item::Mod(m) if m.ident == "types" => m.content.as_mut(),
            _ => None,
        })
        .ok_or("progenitor's client has no `types` module")?;
    let own: Vec<String> = types
        .1
        .iter()
        .filter_map(|item| match item {
            syn::Item::Struct(s) => Some(s.ident.to_string()),
            syn::Item::Enum(e) => Some(e.ident.to_string()),
            syn::Item::Type(t) => Some(t.ident.to_string()),
            _ => None,
        })
        .collect();
    let names: Vec<syn::Ident> = shared
        .all
        .iter()
        .filter(|name| !own.contains(name))
        .map(|name| syn::Ident::new(name, proc_macro2::Span::call_site()))
        .collect();
    types.1.insert(
        0,
        syn::parse_quote! {
            /// The server's schema types, which the client shares.
            pub use crate::api::types::{#(#names),*};
        },
    );
    Ok(())
}
