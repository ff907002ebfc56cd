//! The routes the server's API description publishes are the routes of `spec/privx.yaml`.
//!
//! Both documents are reduced to a route table (method, path, operationId, parameters with
//! location/type/required, request body, success status/schema/headers, error responses) and
//! compared; a difference fails with one readable line per route.

use std::collections::{BTreeMap, BTreeSet};

use openapiv3::{
    Components, OpenAPI, Parameter, ParameterSchemaOrContent, ReferenceOr, RequestBody, Response,
    Schema, SchemaKind, StatusCode, Type,
};

use crate::generator::build_script::model;
use crate::helpers::repo_path;

#[derive(Debug, PartialEq, Eq)]
struct Route {
    operation_id: String,
    /// (location, name, type, required)
    parameters: BTreeSet<(String, String, String, bool)>,
    /// (required, schema)
    body: Option<(bool, String)>,
    /// (status, schema, header names)
    success: BTreeSet<(String, String, BTreeSet<String>)>,
    /// (status class, schema)
    errors: BTreeSet<(String, String)>,
}

type RouteTable = BTreeMap<(String, String), Route>;

fn spec() -> OpenAPI {
    let text = std::fs::read_to_string(repo_path("spec/privx.yaml")).expect("spec/privx.yaml");
    serde_yaml::from_str(&text).expect("the spec is OpenAPI 3.0")
}

fn served() -> OpenAPI {
    serde_json::from_value(privx_mock::api::openapi_document()).expect("dropshot's document")
}

/// `item`, or the component it references, by the generator's own resolver.
fn resolve<'a, T: model::Component>(item: &'a ReferenceOr<T>, components: &'a Components) -> &'a T {
    model::resolve(item, Some(components)).unwrap_or_else(|e| panic!("{e}"))
}

/// A schema as a comparable string: a named schema by its name, anything else by its shape.
fn describe(schema: &ReferenceOr<Schema>, components: &Components, inline_refs: bool) -> String {
    match schema {
        ReferenceOr::Reference { reference } if !inline_refs => {
            match resolve(schema, components).schema_kind {
                // A schema that admits any value is the same under any name, or none.
                SchemaKind::Any(_) => "any".to_string(),
                _ => reference.rsplit('/').next().unwrap().to_string(),
            }
        }
        ReferenceOr::Reference { .. } => {
            describe(&ReferenceOr::Item(resolve(schema, components).clone()), components, true)
        }
        ReferenceOr::Item(schema) => match &schema.schema_kind {
            SchemaKind::Type(Type::String(s)) => {
                let format = serde_json::to_value(&s.format).unwrap();
                let format = format.as_str().unwrap_or_default().to_string();
                let mut values: Vec<_> = s.enumeration.iter().flatten().cloned().collect();
                values.sort();
                format!("string({format}){values:?}")
            }
            // Integer width is Rust's business (schemars adds int64/uint64 formats).
            SchemaKind::Type(Type::Integer(_)) => "integer".to_string(),
            SchemaKind::Type(Type::Boolean(_)) => "boolean".to_string(),
            SchemaKind::Type(Type::Array(a)) => {
                let items = a.items.as_ref().map(|i| i.clone().unbox());
                format!(
                    "array<{}>",
                    items.map(|i| describe(&i, components, inline_refs)).unwrap_or_default()
                )
            }
            // dropshot wraps a referenced parameter schema in allOf.
            SchemaKind::AllOf { all_of } if all_of.len() == 1 => {
                describe(&all_of[0], components, inline_refs)
            }
            SchemaKind::Any(_) => "any".to_string(),
            other => format!("{other:?}"),
        },
    }
}

fn json_schema(
    content: &indexmap::IndexMap<String, openapiv3::MediaType>,
    components: &Components,
) -> String {
    match content.get("application/json").and_then(|m| m.schema.as_ref()) {
        Some(schema) => describe(schema, components, false),
        None if content.is_empty() => "none".to_string(),
        None => format!("content types {:?}", content.keys().collect::<Vec<_>>()),
    }
}

fn route_table(doc: &OpenAPI) -> RouteTable {
    let components = doc.components.clone().unwrap_or_default();
    let mut table = RouteTable::new();
    for (path, item) in doc.paths.paths.iter() {
        let item = item.as_item().expect("inline path items");
        for (method, op) in item.iter() {
            let mut parameters = BTreeSet::new();
            for p in item.parameters.iter().chain(op.parameters.iter()) {
                let p = resolve(p, &components);
                let location = match p {
                    Parameter::Path { .. } => "path",
                    Parameter::Query { .. } => "query",
                    Parameter::Header { .. } => "header",
                    Parameter::Cookie { .. } => "cookie",
                };
                let data = p.parameter_data_ref();
                let ParameterSchemaOrContent::Schema(schema) = &data.format else {
                    panic!("content")
                };
                parameters.insert((
                    location.to_string(),
                    data.name.clone(),
                    describe(schema, &components, true),
                    data.required,
                ));
            }
            let body = op.request_body.as_ref().map(|b| {
                let b: &RequestBody = resolve(b, &components);
                (b.required, json_schema(&b.content, &components))
            });
            let mut success = BTreeSet::new();
            let mut errors = BTreeSet::new();
            for (code, response) in &op.responses.responses {
                let response: &Response = resolve(response, &components);
                let schema = json_schema(&response.content, &components);
                let class = match code {
                    StatusCode::Code(c) => c / 100,
                    StatusCode::Range(r) => *r,
                };
                if class >= 4 {
                    errors.insert((format!("{class}XX"), schema));
                } else {
                    let headers = response.headers.keys().cloned().collect();
                    success.insert((code.to_string(), schema, headers));
                }
            }
            let route = Route {
                operation_id: op.operation_id.clone().unwrap_or_default(),
                parameters,
                body,
                success,
                errors,
            };
            table.insert((method.to_uppercase(), path.clone()), route);
        }
    }
    table
}

/// One line per difference between the spec's routes and the served routes.
fn differences(spec: &RouteTable, served: &RouteTable) -> Vec<String> {
    let mut lines = Vec::new();
    for (key, route) in spec {
        match served.get(key) {
            None => lines.push(format!("only in the spec:   {} {}", key.0, key.1)),
            Some(other) if other != route => lines.push(format!(
                "differs: {} {}\n    spec:   {route:?}\n    served: {other:?}",
                key.0, key.1
            )),
            Some(_) => {}
        }
    }
    for key in served.keys().filter(|k| !spec.contains_key(*k)) {
        lines.push(format!("only served:        {} {}", key.0, key.1));
    }
    lines
}

#[test]
fn served_routes_match_the_spec() {
    let spec = route_table(&spec());
    let operations: BTreeSet<(String, String, String)> = privx_mock::api::OPERATIONS
        .iter()
        .map(|op| (op.method.to_string(), op.path.to_string(), op.operation_id.to_string()))
        .collect();
    let routes: BTreeSet<(String, String, String)> = spec
        .iter()
        .map(|((method, path), route)| (method.clone(), path.clone(), route.operation_id.clone()))
        .collect();
    assert_eq!(routes, operations, "the route table reads every operation of the spec");
    let lines = differences(&spec, &route_table(&served()));
    assert!(lines.is_empty(), "the served API drifted from spec/privx.yaml:\n{}", lines.join("\n"));
}

#[test]
fn tags_and_user_view_are_both_published_at_their_own_paths() {
    let served = route_table(&served());
    let tags = &served[&("GET".to_string(), "/local-user-store/api/v1/users/tags".to_string())];
    let view =
        &served[&("GET".to_string(), "/local-user-store/api/v1/users/{user_id}".to_string())];
    assert_eq!(tags.operation_id, "user_tags_list");
    assert_eq!(view.operation_id, "user_view");
}

/// The comparison notices a change of route, method, parameter, status or schema, whichever
/// side it is on.
#[test]
fn drift_of_any_kind_is_reported() {
    let served = route_table(&served());
    type Mutation = fn(&mut OpenAPI);
    let mutations: [(&str, Mutation); 6] = [
        ("a removed route", |doc| {
            doc.paths.paths.shift_remove("/host-store/api/v1/settings/default_service_options");
        }),
        ("a changed method", |doc| {
            let item = doc.paths.paths["/host-store/api/v1/settings/default_service_options"]
                .as_item_mut_for_test();
            item.post = item.get.take();
        }),
        ("a dropped parameter", |doc| {
            doc.paths.paths["/local-user-store/api/v1/users"]
                .as_item_mut_for_test()
                .get
                .as_mut()
                .unwrap()
                .parameters
                .pop();
        }),
        ("a changed status", |doc| {
            let op = doc.paths.paths["/local-user-store/api/v1/users"]
                .as_item_mut_for_test()
                .post
                .as_mut()
                .unwrap();
            let created = op.responses.responses.shift_remove(&StatusCode::Code(201)).unwrap();
            op.responses.responses.insert(StatusCode::Code(200), created);
        }),
        ("a required flag", |doc| {
            let op = doc.paths.paths["/local-user-store/api/v1/users"]
                .as_item_mut_for_test()
                .post
                .as_mut()
                .unwrap();
            if let Some(ReferenceOr::Item(body)) = op.request_body.as_mut() {
                body.required = !body.required;
            }
        }),
        ("a renamed operation", |doc| {
            let op = doc.paths.paths["/local-user-store/api/v1/users"]
                .as_item_mut_for_test()
                .get
                .as_mut()
                .unwrap();
            op.operation_id = Some("users_get".to_string());
        }),
    ];
    for (what, mutate) in mutations {
        let mut doc = spec();
        mutate(&mut doc);
        let lines = differences(&route_table(&doc), &served);
        assert!(!lines.is_empty(), "{what} went unnoticed");
    }
}

trait ItemMut {
    fn as_item_mut_for_test(&mut self) -> &mut openapiv3::PathItem;
}

impl ItemMut for ReferenceOr<openapiv3::PathItem> {
    fn as_item_mut_for_test(&mut self) -> &mut openapiv3::PathItem {
        match self {
            ReferenceOr::Item(item) => item,
            ReferenceOr::Reference { .. } => panic!("inline path items"),
        }
    }
}
