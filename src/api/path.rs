//! Path parameters. The generated router matches the path's segments itself and parses each
//! parameter with [`path_param`], naming the parameter in the message of one that does not
//! parse (a malformed uuid) the way `ApiError` reads it back ("bad parameter in URL path:
//! <name>: ..."): the spec promises a 400 whose envelope names it, which dropshot's own `Path`
//! extractor does not say. Operations take their parameters as this [`Path`], published
//! exactly as dropshot's `Path<T>`.

use dropshot::{
    ApiEndpointBodyContentType, ExtractorMetadata, HttpError, RequestContext, ServerContext,
    SharedExtractor,
};
use schemars::JsonSchema;
use serde::de::value::Error as ValueError;
use serde::de::{DeserializeOwned, IntoDeserializer};

/// How the message of a path parameter that does not parse starts.
pub(super) const BAD_PATH_PARAMETER: &str = "bad parameter in URL path: ";

/// An operation's path parameters, made by the router from the segments it matched.
pub struct Path<T>(T);

impl<T> Path<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Path<T> {
    fn from(params: T) -> Self {
        Self(params)
    }
}

/// dropshot needs an operation's arguments to be extractors to publish them; the router, not
/// dropshot, makes this one, so extracting it from a request is a bug of the generator.
#[async_trait::async_trait]
impl<T: DeserializeOwned + JsonSchema + Send + Sync + 'static> SharedExtractor for Path<T> {
    async fn from_request<C: ServerContext>(_: &RequestContext<C>) -> Result<Self, HttpError> {
        Err(HttpError::for_internal_error("path parameters come from the router".to_string()))
    }

    fn metadata(body_content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        <dropshot::Path<T> as SharedExtractor>::metadata(body_content_type)
    }
}

/// The path parameter `name` from the text of its segment. The text is read as a string, so
/// the generator accepts only path parameters with a string schema (of any format).
pub fn path_param<T: DeserializeOwned>(name: &str, segment: &str) -> Result<T, HttpError> {
    T::deserialize(segment.into_deserializer()).map_err(|e: ValueError| {
        HttpError::for_bad_request(None, format!("{BAD_PATH_PARAMETER}{name}: {e}"))
    })
}
