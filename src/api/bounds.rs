//! The spec's `maxItems`, which the generated types do not check (typify checks `maxLength`
//! and `minLength` of strings, not the length of arrays): a request body over one is a 400
//! `VALUE_OUT_OF_BOUNDS` naming the property, read from the spec itself so the server holds
//! exactly the bounds the spec publishes.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use super::types::ErrorCode;
use super::{ApiError, SPEC_JSON};

/// Checks `body` against the `maxItems` of the spec's schema `schema` (`components.schemas`).
pub fn check_max_items<T: Serialize>(schema: &str, body: &T) -> Result<(), ApiError> {
    static SPEC: OnceLock<Value> = OnceLock::new();
    let spec = SPEC.get_or_init(|| serde_json::from_str(SPEC_JSON).expect("the spec is JSON"));
    let value = serde_json::to_value(body).map_err(|e| ApiError::internal(e.to_string()))?;
    let schema = &spec["components"]["schemas"][schema];
    match over_bound(spec, schema, &value, "") {
        Some((property, max)) => Err(ApiError::bad_request(
            ErrorCode::ValueOutOfBounds,
            format!("{property}: more than {max} items"),
            Some(&property),
        )),
        None => Ok(()),
    }
}

/// The first array in `value` (at `path`) longer than its schema allows, and that bound.
fn over_bound(spec: &Value, schema: &Value, value: &Value, path: &str) -> Option<(String, u64)> {
    let schema = resolve(spec, schema);
    if let Some(parts) = schema["allOf"].as_array() {
        return parts.iter().find_map(|part| over_bound(spec, part, value, path));
    }
    match value {
        Value::Array(items) => {
            let max = schema["maxItems"].as_u64().unwrap_or(u64::MAX);
            if items.len() as u64 > max {
                return Some((path.to_string(), max));
            }
            let item = &schema["items"];
            items.iter().find_map(|v| over_bound(spec, item, v, path))
        }
        Value::Object(fields) => fields.iter().find_map(|(name, v)| {
            let property = schema["properties"].get(name)?;
            let path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            over_bound(spec, property, v, &path)
        }),
        _ => None,
    }
}

/// A schema with its `$ref` followed.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => resolve(spec, spec.pointer(pointer).unwrap_or(&Value::Null)),
        None => schema,
    }
}
