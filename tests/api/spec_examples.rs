//! Every example in the spec is valid against its schema: a parameter's and a media type's
//! (request and response bodies) against the schema beside it, a schema's (and a property's)
//! against that schema. The docs page shows these examples as ready requests and responses,
//! so what it shows can be sent as it is.

use serde_json::{json, Map, Value};

/// The spec as the server serves it (`spec/privx.yaml` as JSON).
fn spec() -> Value {
    serde_json::from_str(privx_mock::api::SPEC_JSON).expect("the served spec is JSON")
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

/// The errors of `example` against `schema`, whose `$ref`s point into `components` (the
/// spec's, through [`draft4`]).
pub(crate) fn errors_of(components: &Value, schema: &Value, example: &Value) -> Vec<String> {
    let root = json!({ "allOf": [draft4(schema)], "components": components });
    let validator = jsonschema::draft4::new(&root).expect("the spec's schemas compile");
    validator.iter_errors(example).map(|e| format!("{e} (at {})", e.instance_path())).collect()
}

/// `node` itself, or what its `$ref` points at in the spec.
fn resolved<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str() {
        Some(reference) => spec.pointer(reference.trim_start_matches('#')).unwrap_or(node),
        None => node,
    }
}

/// An example found in the spec: where it is, the schema it must match, and the example.
struct Example<'a> {
    at: String,
    schema: &'a Value,
    example: &'a Value,
}

/// Every example under `node` (at JSON pointer `at`). A node with a `schema` beside its
/// example(s) is a parameter or media type; any other node with an `example` is a schema.
/// The entries of a `properties` or `schemas` map are named by the spec's author, so the map
/// itself is never taken for a node with an example.
fn examples<'a>(
    spec: &'a Value,
    node: &'a Value,
    at: &str,
    named: bool,
    out: &mut Vec<Example<'a>>,
) {
    let Value::Object(fields) = node else {
        if let Value::Array(items) = node {
            for (i, item) in items.iter().enumerate() {
                examples(spec, item, &format!("{at}/{i}"), false, out);
            }
        }
        return;
    };
    if !named {
        let schema = fields.get("schema").unwrap_or(node);
        if let Some(example) = fields.get("example") {
            out.push(Example { at: at.to_string(), schema, example });
        }
        if let (Some(Value::Object(many)), Some(schema)) =
            (fields.get("examples"), fields.get("schema"))
        {
            for (name, example) in many {
                let example = &resolved(spec, example)["value"];
                out.push(Example { at: format!("{at}/examples/{name}"), schema, example });
            }
        }
    }
    for (key, value) in fields {
        if key == "example" || key == "examples" {
            continue;
        }
        let child = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
        examples(spec, value, &child, matches!(key.as_str(), "properties" | "schemas"), out);
    }
}

#[test]
fn every_spec_example_is_valid_against_its_schema() {
    let spec = spec();
    let components = draft4(&spec["components"]);
    let mut found = Vec::new();
    examples(&spec, &spec, "", false, &mut found);
    let user_create =
        "/paths/~1local-user-store~1api~1v1~1users/post/requestBody/content/application~1json";
    assert!(
        found.iter().any(|e| e.at == user_create),
        "the walk finds the request body example of user_create; found {:?}",
        found.iter().map(|e| &e.at).collect::<Vec<_>>()
    );
    let invalid: Vec<String> = found
        .iter()
        .filter_map(|e| {
            let errors = errors_of(&components, e.schema, e.example);
            (!errors.is_empty())
                .then(|| format!("{}: {} does not match: {errors:?}", e.at, e.example))
        })
        .collect();
    assert!(
        invalid.is_empty(),
        "{} of {} spec examples are invalid:\n{}",
        invalid.len(),
        found.len(),
        invalid.join("\n")
    );
}

#[test]
fn the_example_check_rejects_an_example_that_breaks_its_schema() {
    let spec = spec();
    let components = draft4(&spec["components"]);
    let body = &spec["paths"]["/local-user-store/api/v1/users"]["post"]["requestBody"]["content"]
        ["application/json"];
    assert_eq!(errors_of(&components, &body["schema"], &body["example"]), Vec::<String>::new());
    let mut broken = body["example"].clone();
    broken["username"] = json!(42);
    assert_ne!(errors_of(&components, &body["schema"], &broken), Vec::<String>::new());
}
