//! The HTML API reference: one self-contained page (inline CSS and JS, nothing fetched) with
//! every operation by tag (its scopes, parameters, bodies, responses, error codes, a
//! copy-ready example request and response, and a "try it" form), every schema, a login box
//! and a search box, all in spec order. Descriptions are Markdown, rendered here.
//!
//! An operation's anchor is its operationId (`/docs#user_create`); a schema's is
//! `schema-<name>`, a tag's `tag-<name>`. Without its script the page still reads in full;
//! the script adds search, copy buttons, the serving origin in `curl` lines, and "try it".
//!
//! The page is `docs/page.html` with its style `docs/style.css` and script `docs/script.js`;
//! this module renders the operations and schemas and fills in the page's `{{slot}}`s,
//! `docs/markdown.rs` renders descriptions and `docs/request.rs` the examples and forms.

use std::fmt::Write;

use openapiv3::{ReferenceOr, Schema, SchemaKind, Type};
use serde_json::Value;

use super::model::{Operation, Spec};

#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/request.rs"]
mod request;

use markdown::to_html as md;

const PAGE: &str = include_str!("docs/page.html");
const STYLE: &str = include_str!("docs/style.css");
const SCRIPT: &str = include_str!("docs/script.js");

/// The page for `spec`.
pub(crate) fn render(spec: &Spec) -> String {
    let mut nav = String::new();
    let mut body = String::new();
    for tag in &spec.tags {
        let name = &tag.name;
        write!(nav, "<li><a href=\"#tag-{name}\">{name}</a><ul>").unwrap();
        write!(
            body,
            "<section class=\"tag\" id=\"tag-{name}\"><h2>{name}</h2>{}",
            md(&tag.description)
        )
        .unwrap();
        for op in spec.operations.iter().filter(|op| op.tag == *name) {
            write!(nav, "<li><a href=\"#{id}\">{id}</a></li>", id = op.id).unwrap();
            operation(spec, op, &mut body);
        }
        nav.push_str("</ul></li>");
        body.push_str("</section>");
    }
    nav.push_str("<li><a href=\"#tag-schemas\">schemas</a></li>");
    body.push_str("<section class=\"tag\" id=\"tag-schemas\"><h2>Schemas</h2>");
    for (name, s) in &spec.components.schemas {
        schema(spec, name, s, &mut body);
    }
    body.push_str("</section>");
    let title = esc(&spec.title);
    let intro = md(&spec.description);
    fill(
        PAGE,
        &[
            ("title", &title),
            ("style", STYLE),
            ("nav", &nav),
            ("intro", &intro),
            ("login", &request::login(spec)),
            ("body", &body),
            ("script", SCRIPT),
        ],
    )
}

/// `template` with each `{{name}}` replaced by its value, in one pass (so a value that
/// happens to contain `{{...}}` stays as it is).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let end = start + rest[start..].find("}}").expect("a template slot is closed");
        let name = &rest[start + 2..end];
        let value = values.iter().find(|(n, _)| *n == name);
        out.push_str(&rest[..start]);
        out.push_str(value.unwrap_or_else(|| panic!("the page has no value for {{{{{name}}}}}")).1);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// A short type description: a schema link, or type/format with default and enum.
fn type_of<T: serde::Serialize>(schema: &T) -> String {
    describe(&serde_json::to_value(schema).expect("schemas serialize"))
}

fn describe(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return format!("<a href=\"#schema-{name}\">{name}</a>");
    }
    if let Some(one) = schema["allOf"].as_array().and_then(|a| a.first()) {
        return describe(one);
    }
    let mut text = esc(schema["type"].as_str().unwrap_or("any"));
    if let Some(items) = schema.get("items") {
        text = format!("array of {}", describe(items));
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

/// The schema's own example as a `<pre>`.
fn example(spec: &Spec, schema: &ReferenceOr<Schema>, out: &mut String) {
    if let Some(example) = spec.schema(schema).and_then(|s| s.schema_data.example.as_ref()) {
        request::pretty(example, out);
    }
}

fn content(spec: &Spec, content: &[(String, Option<ReferenceOr<Schema>>)], out: &mut String) {
    for (media, schema) in content {
        write!(out, "<div class=\"media\"><code>{}</code> {}", esc(media), type_of(schema))
            .unwrap();
        if let Some(schema) = schema {
            example(spec, schema, out);
        }
        out.push_str("</div>");
    }
}

/// Who may call: each OAuth2 scope, or a scheme without scopes (the token endpoint's client
/// authentication) by name.
fn callers(op: &Operation) -> Vec<String> {
    op.security
        .iter()
        .flat_map(|r| match r.scopes.as_slice() {
            [] => vec![format!("{} (HTTP Basic)", r.scheme)],
            scopes => scopes.to_vec(),
        })
        .collect()
}

fn operation(spec: &Spec, op: &Operation, out: &mut String) {
    let (id, summary, path) = (&op.id, &op.summary, &op.path);
    let search = esc(&format!("{} {path} {id} {summary}", op.method).to_lowercase());
    write!(
        out,
        "<article class=\"op\" id=\"{id}\" data-search=\"{search}\"><h3><span class=\"method \
         {m}\">{M}</span> <code>{p}</code> <a class=\"anchor\" href=\"#{id}\">#</a></h3><p \
         class=\"summary\">{s}</p><p class=\"id\">operationId <code>{id}</code> &middot; \
         scopes (any one): {scopes}</p><div class=\"description\">{d}</div>",
        m = op.method.to_lowercase(),
        M = op.method,
        p = esc(path),
        s = esc(summary),
        scopes = esc(&callers(op).join(", ")),
        d = md(&op.description),
    )
    .unwrap();
    if !op.parameters.is_empty() {
        out.push_str("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>");
        for p in &op.parameters {
            write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.name),
                p.location.as_str(),
                type_of(&p.schema),
                yes_no(p.required),
                md(p.description.as_deref().unwrap_or_default()),
            )
            .unwrap();
        }
        out.push_str("</table>");
    }
    if let Some(body) = &op.body {
        let required = if body.required { "required" } else { "optional" };
        write!(
            out,
            "<h4>Request body ({required})</h4><div class=\"media\"><code>{}</code> {}",
            esc(&body.content_type),
            type_of(&body.schema)
        )
        .unwrap();
        if let Some((_, example)) = request::body_example(spec, op) {
            request::pretty(&example, out);
        }
        out.push_str("</div>");
    }
    responses(spec, op, out);
    request::example_request(spec, op, out);
    request::try_it(spec, op, out);
    out.push_str("</article>");
}

fn responses(spec: &Spec, op: &Operation, out: &mut String) {
    out.push_str(
        "<h4>Responses</h4><table><tr><th>status</th><th>description</th><th>body</th></tr>",
    );
    for reply in &op.responses {
        let mut body = String::new();
        content(spec, &reply.content, &mut body);
        write!(
            out,
            "<tr><td class=\"status\">{}</td><td>{}</td><td>{body}</td></tr>",
            esc(&reply.status),
            md(&reply.description),
        )
        .unwrap();
    }
    out.push_str("</table>");
    let envelope = op.responses.iter().flat_map(|r| &r.content).any(|(media, schema)| {
        media == "application/json"
            && matches!(schema, Some(ReferenceOr::Reference { reference })
                if reference == "#/components/schemas/Error")
    });
    if envelope {
        let codes = match spec.components.schemas.get("ErrorCode") {
            Some(ReferenceOr::Item(Schema {
                schema_kind: SchemaKind::Type(Type::String(s)),
                ..
            })) => s.enumeration.iter().flatten().cloned().collect(),
            _ => Vec::new(),
        };
        write!(
            out,
            "<p class=\"codes\">Error codes: <code>{}</code></p>",
            codes.join("</code> <code>")
        )
        .unwrap();
    }
}

fn schema(spec: &Spec, name: &str, schema: &ReferenceOr<Schema>, out: &mut String) {
    let search = esc(&format!("schema {name}").to_lowercase());
    let item = match schema {
        ReferenceOr::Item(item) => Some(item),
        ReferenceOr::Reference { .. } => None,
    };
    let description = item.and_then(|s| s.schema_data.description.as_deref()).unwrap_or_default();
    write!(
        out,
        "<article class=\"op schema\" id=\"schema-{name}\" data-search=\"{search}\"><h3>{name}</h3>{}",
        md(description)
    )
    .unwrap();
    match item.map(|s| &s.schema_kind) {
        Some(SchemaKind::Type(Type::Object(object))) if !object.properties.is_empty() => {
            out.push_str(
                "<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>",
            );
            for (field, property) in &object.properties {
                let description = match property {
                    ReferenceOr::Item(p) => p.schema_data.description.as_deref(),
                    ReferenceOr::Reference { .. } => None,
                };
                write!(
                    out,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(field),
                    type_of(property),
                    yes_no(object.required.contains(field)),
                    md(description.unwrap_or_default())
                )
                .unwrap();
            }
            out.push_str("</table>");
        }
        _ => write!(out, "<p>{}</p>", type_of(schema)).unwrap(),
    }
    example(spec, schema, out);
    out.push_str("</article>");
}
