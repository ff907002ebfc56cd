//! What a reader can send: each operation's example request as a copy-ready `curl` line, its
//! example response, and the "try it" form that the page's script sends to the server serving
//! the page. All of it comes from the spec's examples, so a new operation gets them unedited.

use std::fmt::Write;

use openapiv3::{ReferenceOr, Schema, SchemaKind, SecurityScheme, Type};
use serde_json::Value;

use super::super::model::{is_var, segments, Location, Operation, Spec};
use super::esc;

/// Where the `curl` lines point when the page is read without its script (which puts the
/// serving origin in): the server's default address.
const DEFAULT_ORIGIN: &str = "http://127.0.0.1:8080";

/// An example of `schema`, as Swagger UI makes one: its own `example`, else its `default`,
/// else its first `enum` value, else one built from its properties (or items), with a
/// placeholder of the right type and format where the spec gives nothing.
pub(crate) fn example_of(spec: &Spec, schema: &ReferenceOr<Schema>) -> Option<Value> {
    example_within(spec, schema, 0)
}

fn example_within(spec: &Spec, schema: &ReferenceOr<Schema>, depth: usize) -> Option<Value> {
    let schema = spec.schema(schema)?;
    let data = &schema.schema_data;
    if let Some(example) = data.example.as_ref().or(data.default.as_ref()) {
        return Some(example.clone());
    }
    // A schema that contains itself, without an example on the way, has no finite example.
    if depth > 8 {
        return None;
    }
    let nested = |schema: &ReferenceOr<Schema>| example_within(spec, schema, depth + 1);
    Some(match &schema.schema_kind {
        SchemaKind::Type(Type::String(string)) => {
            match string.enumeration.iter().flatten().next() {
                Some(first) => Value::from(first.as_str()),
                None => Value::from(placeholder(&serde_json::to_value(&string.format).ok()?)),
            }
        }
        SchemaKind::Type(Type::Integer(integer)) => Value::from(integer.minimum.unwrap_or(0)),
        SchemaKind::Type(Type::Number(number)) => Value::from(number.minimum.unwrap_or(0.0)),
        SchemaKind::Type(Type::Boolean(_)) => Value::Bool(true),
        SchemaKind::Type(Type::Object(object)) => Value::Object(
            object
                .properties
                .iter()
                .filter_map(|(name, property)| {
                    Some((name.clone(), nested(&property.clone().unbox())?))
                })
                .collect(),
        ),
        SchemaKind::Type(Type::Array(array)) => {
            Value::Array(vec![nested(&array.items.clone()?.unbox())?])
        }
        SchemaKind::AllOf { all_of: some }
        | SchemaKind::OneOf { one_of: some }
        | SchemaKind::AnyOf { any_of: some } => nested(some.first()?)?,
        _ => return None,
    })
}

/// A string of the given `format` (as the spec writes it, or null).
fn placeholder(format: &Value) -> &'static str {
    match format.as_str().unwrap_or_default() {
        "uuid" => "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "date-time" => "2017-01-01T15:05:05Z",
        "date" => "2017-01-01",
        "email" => "user@example.com",
        _ => "string",
    }
}

/// The example of the operation's request body: the spec's, or one built from its schema.
pub(crate) fn body_example(spec: &Spec, op: &Operation) -> Option<(String, Value)> {
    let body = op.body.as_ref()?;
    let example = body.example.clone().or_else(|| example_of(spec, &body.schema))?;
    Some((body.content_type.clone(), example))
}

/// How an operation authenticates.
#[derive(Clone, Copy)]
enum Auth {
    /// A bearer token with one of the operation's scopes.
    Bearer,
    /// The OAuth client's HTTP Basic (the token endpoint).
    Basic,
    None,
}

impl Auth {
    fn of(op: &Operation) -> Self {
        match (op.scopes.is_empty(), op.security.is_empty()) {
            (false, _) => Auth::Bearer,
            (true, false) => Auth::Basic,
            (true, true) => Auth::None,
        }
    }

    /// As the page's script reads it from `data-auth`.
    fn as_str(self) -> &'static str {
        match self {
            Auth::Bearer => "bearer",
            Auth::Basic => "basic",
            Auth::None => "none",
        }
    }
}

/// An example as it goes into a URL or form field.
fn text_of(example: &Value) -> String {
    example.as_str().map_or_else(|| example.to_string(), str::to_string)
}

/// `text` percent-encoded for a URL path segment or query component.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A form body as `application/x-www-form-urlencoded` text.
fn form_text(example: &Value) -> String {
    let fields = example.as_object().into_iter().flatten();
    let pairs = fields.map(|(k, v)| format!("{}={}", url_encode(k), url_encode(&text_of(v))));
    pairs.collect::<Vec<_>>().join("&")
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The path with the examples of its parameters, and the query of those query parameters
/// that have an example.
fn example_target(op: &Operation) -> String {
    let example = |location, name: &str| {
        let mut params = op.params_in(location);
        params.find(|p| p.name == name).and_then(|p| p.example.as_ref()).map(text_of)
    };
    let mut target = String::new();
    for segment in segments(&op.path) {
        let name = segment.trim_start_matches('{').trim_end_matches('}');
        match example(Location::Path, name).filter(|_| is_var(segment)) {
            Some(value) => write!(target, "/{}", url_encode(&value)).unwrap(),
            None => write!(target, "/{segment}").unwrap(),
        }
    }
    let query: Vec<String> = op
        .params_in(Location::Query)
        .filter_map(|p| Some(format!("{}={}", p.name, url_encode(&text_of(p.example.as_ref()?)))))
        .collect();
    if !query.is_empty() {
        write!(target, "?{}", query.join("&")).unwrap();
    }
    target
}

/// The operation's example request as a `curl` command line (HTML, with the origin in a
/// `span.origin` the script replaces). Credentials stay in shell variables: `$PRIVX_TOKEN`, and
/// for the token endpoint the OAuth client's, named as the server reads them from its
/// environment (`PRIVX_OAUTH_CLIENT_ID`, `PRIVX_OAUTH_CLIENT_SECRET`).
fn curl(spec: &Spec, op: &Operation) -> String {
    let mut lines = vec![format!(
        "curl -sS -X {} '<span class=\"origin\">{DEFAULT_ORIGIN}</span>{}'",
        op.method,
        esc(&example_target(op))
    )];
    match Auth::of(op) {
        Auth::Bearer => lines.push(esc("-H \"Authorization: Bearer $PRIVX_TOKEN\"")),
        Auth::Basic => lines.push(esc("-u \"$PRIVX_OAUTH_CLIENT_ID:$PRIVX_OAUTH_CLIENT_SECRET\"")),
        Auth::None => {}
    }
    match body_example(spec, op) {
        Some((media, example)) if media == "application/x-www-form-urlencoded" => {
            for (name, value) in example.as_object().into_iter().flatten() {
                let field = format!("{name}={}", text_of(value));
                lines.push(esc(&format!("--data-urlencode {}", shell_quote(&field))));
            }
        }
        Some((media, example)) => {
            lines.push(esc(&format!("-H {}", shell_quote(&format!("Content-Type: {media}")))));
            lines.push(esc(&format!("-d {}", shell_quote(&example.to_string()))));
        }
        None => {}
    }
    lines.join(" \\\n  ")
}

/// The example request (copy-ready `curl`) and the example success response.
pub(crate) fn example_request(spec: &Spec, op: &Operation, out: &mut String) {
    write!(
        out,
        "<div class=\"request\"><h4>Example request</h4><div class=\"curl-box\"><pre \
         class=\"curl\"><code>{}</code></pre><button type=\"button\" class=\"copy\" \
         hidden>Copy</button></div>",
        curl(spec, op)
    )
    .unwrap();
    if let Some(success) = op.responses.iter().find(|r| r.status.starts_with('2')) {
        write!(
            out,
            "<h4>Example response</h4><p><span class=\"status\">{}</span> {}</p>",
            esc(&success.status),
            esc(&success.description)
        )
        .unwrap();
        let schema = success.content.iter().find_map(|(_, schema)| schema.as_ref());
        if let Some(example) = schema.and_then(|schema| example_of(spec, schema)) {
            pretty(&example, out);
        }
    }
    out.push_str("</div>");
}

/// `example` as indented JSON in a `<pre>`.
pub(crate) fn pretty(example: &Value, out: &mut String) {
    let text = serde_json::to_string_pretty(example).expect("JSON values serialize");
    write!(out, "<pre>{}</pre>", esc(&text)).unwrap();
}

/// The "try it" form: one field per path and query parameter (holding its example), the
/// body (holding its example) and a send button; the page's script sends it and shows the
/// reply. Hidden until the script shows it, since without the script it cannot send.
pub(crate) fn try_it(spec: &Spec, op: &Operation, out: &mut String) {
    write!(
        out,
        "<details class=\"try\" hidden data-method=\"{}\" data-path=\"{}\" data-auth=\"{}\">\
         <summary>Try it</summary><form>",
        op.method,
        esc(&op.path),
        Auth::of(op).as_str()
    )
    .unwrap();
    for p in &op.parameters {
        let default = spec.schema(&p.schema).and_then(|s| s.schema_data.default.as_ref());
        write!(
            out,
            "<label><span>{name} <small>{location}</small></span><input name=\"{name}\" \
             data-in=\"{location}\" value=\"{value}\" placeholder=\"{default}\"{required}>\
             </label>",
            name = esc(&p.name),
            location = p.location.as_str(),
            value = esc(&p.example.as_ref().map(text_of).unwrap_or_default()),
            default = esc(&default.map(text_of).unwrap_or_default()),
            required = if p.required { " required" } else { "" },
        )
        .unwrap();
    }
    if let Some(body) = &op.body {
        let text = match body_example(spec, op) {
            Some((media, example)) if media == "application/x-www-form-urlencoded" => {
                form_text(&example)
            }
            Some((_, example)) => serde_json::to_string_pretty(&example).unwrap_or_default(),
            None => String::new(),
        };
        write!(
            out,
            "<label><span>body <small>{media}</small></span><textarea name=\"body\" \
             data-in=\"body\" data-media=\"{media}\" rows=\"{rows}\">{text}</textarea></label>",
            media = esc(&body.content_type),
            rows = text.lines().count().clamp(2, 14),
            text = esc(&text),
        )
        .unwrap();
    }
    out.push_str(
        "<button type=\"submit\">Send</button></form><div class=\"reply\" hidden><p \
         class=\"reply-status\"></p><pre class=\"reply-headers\"></pre><pre \
         class=\"reply-body\"></pre></div></details>",
    );
}

/// The login box at the top of the page: the OAuth2 password grant at the spec's token URL,
/// or nothing if the spec has no password flow.
pub(crate) fn login(spec: &Spec) -> String {
    let token_url = spec.components.security_schemes.values().find_map(|scheme| match scheme {
        ReferenceOr::Item(SecurityScheme::OAuth2 { flows, .. }) => {
            flows.password.as_ref().map(|flow| flow.token_url.clone())
        }
        _ => None,
    });
    let Some(token_url) = token_url else {
        return String::new();
    };
    format!(
        "<section id=\"login\" hidden><h2>Try it</h2><p>Log in to send requests to this \
         server from the page (OAuth2 password grant at <code>{url}</code>; the token stays in \
         this page's memory).</p><form id=\"login-form\" data-token-url=\"{url}\">\
         <label><span>OAuth client id</span><input name=\"client_id\" placeholder=\"privx-mock\"></label>\
         <label><span>OAuth client secret</span><input name=\"client_secret\" type=\"password\"></label>\
         <label><span>username</span><input name=\"username\" autocomplete=\"username\"></label>\
         <label><span>password</span><input name=\"password\" type=\"password\" \
         autocomplete=\"current-password\"></label><button type=\"submit\">Log in</button> \
         <button type=\"button\" id=\"logout\">Log out</button></form><p \
         id=\"login-status\">Not logged in.</p></section>",
        url = esc(&token_url)
    )
}
