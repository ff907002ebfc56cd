//! Every example in the spec is valid against its schema: a parameter's and a media type's
//! (request and response bodies) against the schema beside it, a schema's (and a property's)
//! against that schema. The docs page shows these examples as ready requests and responses,
//! so what it shows can be sent as it is.

use serde_json::{json, Value};

use crate::spec::{resolved, schema_errors, spec};

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
fn examples<'a>(node: &'a Value, at: &str, named: bool, out: &mut Vec<Example<'a>>) {
    let Value::Object(fields) = node else {
        if let Value::Array(items) = node {
            for (i, item) in items.iter().enumerate() {
                examples(item, &format!("{at}/{i}"), false, out);
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
                let example = &resolved(example)["value"];
                out.push(Example { at: format!("{at}/examples/{name}"), schema, example });
            }
        }
    }
    for (key, value) in fields {
        if key == "example" || key == "examples" {
            continue;
        }
        let child = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
        examples(value, &child, matches!(key.as_str(), "properties" | "schemas"), out);
    }
}

#[test]
fn every_spec_example_is_valid_against_its_schema() {
    let spec = spec();
    let mut found = Vec::new();
    examples(spec, "", false, &mut found);
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
            let errors = schema_errors(e.schema, e.example);
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
    let body = &spec()["paths"]["/local-user-store/api/v1/users"]["post"]["requestBody"]["content"]
        ["application/json"];
    assert_eq!(schema_errors(&body["schema"], &body["example"]), Vec::<String>::new());
    let mut broken = body["example"].clone();
    broken["username"] = json!(42);
    assert_ne!(schema_errors(&body["schema"], &broken), Vec::<String>::new());
}
