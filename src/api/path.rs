//! Path parameters. dropshot's `Path` extractor answers a value that does not parse (a
//! malformed uuid) with a message that does not say which parameter it was; the spec promises
//! a 400 whose envelope names it, so the generated trait takes this [`Path`] instead, and the
//! routing endpoints parse their segment with [`path_param`], both naming the parameter in
//! the message the way `ApiError` reads it back ("bad parameter in URL path: <name>: ...").

use std::collections::BTreeMap;

use dropshot::{
    ApiEndpointBodyContentType, ExtractorMetadata, HttpError, RequestContext, ServerContext,
    SharedExtractor,
};
use schemars::JsonSchema;
use serde::de::value::{Error as ValueError, MapAccessDeserializer};
use serde::de::{DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess};

/// How the message of a path parameter that does not parse starts.
pub(super) const BAD_PATH_PARAMETER: &str = "bad parameter in URL path: ";

/// An operation's path parameters, published exactly as dropshot's `Path<T>`.
pub struct Path<T>(T);

impl<T> Path<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

#[async_trait::async_trait]
impl<T: DeserializeOwned + JsonSchema + Send + Sync + 'static> SharedExtractor for Path<T> {
    async fn from_request<C: ServerContext>(rqctx: &RequestContext<C>) -> Result<Self, HttpError> {
        // Every value as text (dropshot's own extractor can read them so, by name).
        let params = dropshot::Path::<BTreeMap<String, String>>::from_request(rqctx).await?;
        let params: Vec<(String, String)> = params.into_inner().into_iter().collect();
        let mut access = Params { params: params.iter(), current: None };
        match T::deserialize(MapAccessDeserializer::new(&mut access)) {
            Ok(value) => Ok(Path(value)),
            Err(e) => Err(bad_parameter(access.current.unwrap_or_default(), e)),
        }
    }

    fn metadata(body_content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        <dropshot::Path<T> as SharedExtractor>::metadata(body_content_type)
    }
}

/// The path parameter `name` from the text of its segment: routing endpoints read the segment
/// once and hand the operation its parameter.
pub fn path_param<T: DeserializeOwned>(name: &str, segment: String) -> Result<T, HttpError> {
    T::deserialize(segment.into_deserializer()).map_err(|e: ValueError| bad_parameter(name, e))
}

fn bad_parameter(name: &str, error: ValueError) -> HttpError {
    HttpError::for_bad_request(None, format!("{BAD_PATH_PARAMETER}{name}: {error}"))
}

/// The parameters as a map whose every value is text, remembering the parameter being read,
/// which is the one at fault when reading fails.
struct Params<'a> {
    params: std::slice::Iter<'a, (String, String)>,
    current: Option<&'a str>,
}

impl<'de> MapAccess<'de> for Params<'_> {
    type Error = ValueError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ValueError> {
        let Some((name, _)) = self.params.as_slice().first() else {
            return Ok(None);
        };
        self.current = Some(name);
        seed.deserialize(name.as_str().into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ValueError> {
        let (_, value) = self.params.next().expect("a key is read before its value");
        seed.deserialize(value.as_str().into_deserializer())
    }
}
