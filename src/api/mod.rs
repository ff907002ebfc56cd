//! The API as the spec defines it: the generated types, the `PrivxApi` trait, the table of
//! operations and their scopes, its error answers ([`ApiError`], [`OAuthError`], in `error`),
//! and the few hand-written pieces the generated code names
//! (`crate::api::...`): dropshot has no 200-with-no-body response, no optional JSON body and
//! no `Location` header type, its 200 response cannot carry JSON that is already encoded, and
//! the generated OpenAPI document is assembled here. `routing` holds what the generated router
//! needs: path segments, the 404/405 answers, the unpublished pages and one error type for all
//! operations.
//!
//! This is the only module through which generated code enters the crate.

use dropshot::{
    ApiDescription, ApiEndpoint, ApiEndpointBodyContentType, ApiEndpointResponse,
    ExclusiveExtractor, ExtractorMetadata, HttpError, HttpResponse, RequestContext, ServerContext,
    StubContext, TypedBody, UntypedBody,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod bounds;
mod error;
mod limits;
mod path;
mod routing;
pub use bounds::check_max_items;
pub use error::{ApiError, OAuthError};
pub use limits::{check_head, read_body, RequestLimits, MAX_HEADER_BYTES, MAX_URI_BYTES};
pub use path::{path_param, Path};
pub use routing::{
    call, method_not_allowed, not_found, ready, routed, unrouted, AnyRequest, Observe,
    PathSegments, Readiness, RouteError, Routed,
};

#[allow(clippy::all, clippy::pedantic, dead_code, unused_imports, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/privx_api.rs"));
}
pub use generated::{
    api_description, locations, openapi_document, types, PrivxApi, METHODS, OPERATIONS,
};

/// The spec, `spec/privx.yaml`, as JSON.
pub const SPEC_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));
/// The spec as written.
pub const SPEC_YAML: &str = include_str!("../../spec/privx.yaml");
/// The HTML API reference build.rs renders from the spec.
pub const DOCS_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/docs.html"));

/// Sort direction of the list operations (`SortDir` in the spec). PrivX documents `ASC` and
/// `DESC`; the Python SDK sends them lower-cased, so both spellings are accepted (typify cannot
/// generate an enum whose variant names differ only in case).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortDir {
    #[default]
    #[serde(rename = "ASC", alias = "asc")]
    Asc,
    #[serde(rename = "DESC", alias = "desc")]
    Desc,
}

impl JsonSchema for SortDir {
    fn schema_name() -> String {
        "SortDir".to_string()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        serde_json::from_value(serde_json::json!({
            "type": "string",
            "description": "Sort direction; lower case is accepted too.",
            "enum": ["ASC", "DESC", "asc", "desc"],
            "default": "ASC",
        }))
        .expect("a valid schema")
    }
}

/// One operation of the spec and the scopes that may call it (any one suffices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub operation_id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    /// The operation's (first) tag in the spec, which groups it, e.g. `test-control`.
    pub tag: &'static str,
    pub scopes: &'static [&'static str],
}

/// A `200 OK` with a JSON body of the spec's type `T`: a value of it, or JSON the store already
/// holds in exactly `T`'s form, sent as it is (a hot read then neither decodes nor re-encodes
/// the record). Published exactly as dropshot's own `HttpResponseOk<T>`.
pub enum HttpResponseOk<T> {
    Value(T),
    Stored(Vec<u8>),
}

impl<T: JsonSchema + Serialize + Send + Sync + 'static> HttpResponse for HttpResponseOk<T> {
    fn to_result(self) -> Result<http::Response<dropshot::Body>, HttpError> {
        match self {
            Self::Value(value) => dropshot::HttpResponseOk(value).to_result(),
            Self::Stored(json) => {
                // Built directly (a new response is a 200), with a static header value: no
                // builder checks, no copy of the content type (this is every get user).
                let mut response = http::Response::new(json.into());
                let json_type = http::HeaderValue::from_static(dropshot::CONTENT_TYPE_JSON);
                response.headers_mut().insert(http::header::CONTENT_TYPE, json_type);
                Ok(response)
            }
        }
    }
    fn response_metadata() -> ApiEndpointResponse {
        dropshot::HttpResponseOk::<T>::response_metadata()
    }
    fn status_code(&self) -> http::StatusCode {
        http::StatusCode::OK
    }
}

/// A `200 OK` with an empty body: what PrivX answers to updates, deletes and terminations.
/// (dropshot's `HttpResponseUpdatedNoContent` is a 204, which the PrivX SDKs reject.)
pub struct HttpResponseOkEmpty;

impl HttpResponse for HttpResponseOkEmpty {
    fn to_result(self) -> Result<http::Response<dropshot::Body>, HttpError> {
        Ok(http::Response::builder().status(http::StatusCode::OK).body(dropshot::Body::empty())?)
    }
    fn response_metadata() -> ApiEndpointResponse {
        // dropshot publishes "no content" only for its 204 type; borrow that, as a 200.
        ApiEndpointResponse {
            success: Some(http::StatusCode::OK),
            description: Some("successful operation".to_string()),
            ..dropshot::HttpResponseUpdatedNoContent::response_metadata()
        }
    }
    fn status_code(&self) -> http::StatusCode {
        http::StatusCode::OK
    }
}

/// A `307 Temporary Redirect` to `Location`. dropshot's own redirect type publishes the
/// header as `location`; this one publishes it as the spec spells it, `Location`.
pub struct HttpResponseRedirect(pub String);

impl HttpResponse for HttpResponseRedirect {
    fn to_result(self) -> Result<http::Response<dropshot::Body>, HttpError> {
        dropshot::http_response_temporary_redirect(self.0)?.to_result()
    }
    fn response_metadata() -> ApiEndpointResponse {
        let mut metadata = dropshot::HttpResponseTemporaryRedirect::response_metadata();
        metadata.headers.iter_mut().for_each(|header| header.name = "Location".to_string());
        metadata
    }
    fn status_code(&self) -> http::StatusCode {
        http::StatusCode::TEMPORARY_REDIRECT
    }
}

/// The `Location` header of a `201 Created` response.
#[derive(Serialize, JsonSchema)]
pub struct LocationHeader {
    /// Location of the created resource
    #[serde(rename = "Location")]
    pub location: String,
}

/// A JSON request body that may be absent (`requestBody.required: false` in the spec).
pub struct OptionalJsonBody<T>(pub Option<T>);

#[async_trait::async_trait]
impl<T: JsonSchema + DeserializeOwned + Send + Sync + 'static> ExclusiveExtractor
    for OptionalJsonBody<T>
{
    async fn from_request<Context: ServerContext>(
        rqctx: &RequestContext<Context>,
        request: hyper::Request<dropshot::Body>,
    ) -> Result<Self, HttpError> {
        let bytes = UntypedBody::from_request(rqctx, request).await?;
        let bytes = bytes.as_bytes();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        serde_json::from_slice(bytes).map(|v| Self(Some(v))).map_err(|e| {
            HttpError::for_bad_request(None, format!("unable to parse JSON body: {e}"))
        })
    }

    fn metadata(content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        let mut metadata = <TypedBody<T> as ExclusiveExtractor>::metadata(content_type);
        for parameter in &mut metadata.parameters {
            parameter.required = false;
        }
        metadata
    }
}

/// The OpenAPI document of an API description, as JSON.
pub fn openapi_json(
    description: &ApiDescription<StubContext>,
    title: &str,
    version: &str,
) -> serde_json::Value {
    description
        .openapi(title, semver::Version::parse(version).expect("info.version is semver"))
        .json()
        .expect("an OpenAPI document serializes")
}

/// An API description holding just `endpoint`.
pub fn single_endpoint(endpoint: ApiEndpoint<StubContext>) -> ApiDescription<StubContext> {
    let mut description = ApiDescription::new();
    description.register(endpoint).expect("a lone endpoint registers");
    description
}

/// Marks the request body of `method path` optional: dropshot publishes every body as required.
pub fn optional_body(document: &mut serde_json::Value, method: &str, path: &str) {
    if let Some(body) = document
        .pointer_mut(&format!(
            "/paths/{}/{method}/requestBody",
            path.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(serde_json::Value::as_object_mut)
    {
        body.insert("required".to_string(), false.into());
    }
}

/// Adds the paths and components of `extra` to `document`.
pub fn merge_openapi(document: &mut serde_json::Value, extra: serde_json::Value) {
    fn merge_map(into: &mut serde_json::Value, from: &serde_json::Value) {
        if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
            for (key, value) in from {
                match into.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_map(existing, value)
                    }
                    _ => {
                        into.insert(key.clone(), value.clone());
                    }
                }
            }
        }
    }
    for section in ["paths", "components"] {
        if let Some(from) = extra.get(section) {
            let into = document
                .as_object_mut()
                .expect("an OpenAPI document is an object")
                .entry(section)
                .or_insert_with(|| serde_json::json!({}));
            merge_map(into, from);
        }
    }
}
