//! The spec as the tests read it: the served document (`spec/privx.yaml` as JSON), `$ref`s
//! followed by JSON pointer, and one validator of values against the spec's schemas, shared by
//! the response checks, the auth matrix's examples and the example check.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// The spec as the server serves it.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        serde_json::from_str(privx_mock::api::SPEC_JSON).expect("the served spec is JSON")
    })
}

/// `node` itself, or the part of the spec its `$ref` points at.
pub fn resolved(node: &Value) -> &Value {
    match node["$ref"].as_str() {
        Some(reference) => spec()
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{reference} points at nothing in the spec")),
        None => node,
    }
}

/// What is wrong with `value` against `schema`, whose `$ref`s point into the spec's
/// components; nothing when it is valid.
pub fn schema_errors(schema: &Value, value: &Value) -> Vec<String> {
    static COMPONENTS: OnceLock<Value> = OnceLock::new();
    let components = COMPONENTS.get_or_init(|| draft4(&spec()["components"]));
    let root = json!({ "allOf": [draft4(schema)], "components": components });
    let validator = jsonschema::draft4::new(&root).expect("the spec's schemas compile");
    validator.iter_errors(value).map(|e| format!("{e} (at {})", e.instance_path())).collect()
}

/// `schema` in JSON Schema draft 4, which the validator speaks: OpenAPI 3.0's
/// `nullable: true` becomes `null` among the allowed types.
fn draft4(schema: &Value) -> Value {
    match schema {
        Value::Object(fields) => {
            let mut converted: Map<String, Value> =
                fields.iter().map(|(key, value)| (key.clone(), draft4(value))).collect();
            if fields.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(kind)) = fields.get("type") {
                    converted.insert("type".into(), json!([kind, "null"]));
                }
            }
            Value::Object(converted)
        }
        Value::Array(items) => Value::Array(items.iter().map(draft4).collect()),
        other => other.clone(),
    }
}
