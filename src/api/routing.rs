//! What the generated router (`route` in the generated code) needs besides the operations: the
//! request path as segments, the answers for a path or method that no operation has, the
//! unpublished pages served beside the API, and one error type for operations whose error
//! types differ.
//!
//! dropshot answers a request its router cannot place with its own `{request_id, message}` body
//! and offers no hook to change that, so the generated API registers one unpublished catch-all
//! endpoint, `/{path:.*}`, per HTTP method and routes every request itself; these answers are
//! then the PrivX envelope like every other error.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use dropshot::{
    ApiEndpointBodyContentType, ErrorStatusCode, ExclusiveExtractor, ExtractorMetadata, HttpError,
    HttpResponse, HttpResponseError, RequestContext, ServerContext, SharedExtractor,
};
use futures::FutureExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::ErrorCode;
use super::{ApiError, OAuthError, DOCS_HTML, SPEC_JSON, SPEC_YAML};

/// The whole request, as the catch-all endpoints take it for the router. dropshot requires
/// an extractor for their `{path:.*}` variable; this one declares it (with the metadata of
/// dropshot's `Path<{path: Vec<String>}>`) but leaves the path in the request, where the router
/// reads its segments without copying them.
pub struct AnyRequest(pub hyper::Request<dropshot::Body>);

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)] // read by dropshot's metadata only, never extracted
struct AnyPathParams {
    path: Vec<String>,
}

#[async_trait::async_trait]
impl ExclusiveExtractor for AnyRequest {
    async fn from_request<Context: ServerContext>(
        _rqctx: &RequestContext<Context>,
        request: hyper::Request<dropshot::Body>,
    ) -> Result<Self, HttpError> {
        Ok(Self(request))
    }

    fn metadata(content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        <dropshot::Path<AnyPathParams> as SharedExtractor>::metadata(content_type)
    }
}

/// The percent-decoded segments of a request path (empty ones left out, as dropshot's router
/// does), up to `N` of them; borrowed from the path unless a segment has an escape.
pub struct PathSegments<'a, const N: usize> {
    segments: [Cow<'a, str>; N],
    len: usize,
}

impl<'a, const N: usize> PathSegments<'a, N> {
    /// The segments of `path`, or `None` when it has more than `N` (no operation's path is that
    /// long) or a segment does not decode to UTF-8 (which dropshot's router has already refused
    /// with a 400 of its own before any endpoint runs). One pass over the bytes finds both the
    /// `/`s and the segments with a `%` to decode (this runs on every request).
    pub fn parse(path: &'a str) -> Option<Self> {
        let segments = std::array::from_fn(|_| Cow::Borrowed(""));
        let mut parsed = Self { segments, len: 0 };
        let (mut start, mut escaped) = (0, false);
        for (at, byte) in path.bytes().enumerate() {
            if byte == b'/' {
                parsed.push(&path[start..at], escaped)?;
                (start, escaped) = (at + 1, false);
            } else if byte == b'%' {
                escaped = true;
            }
        }
        parsed.push(&path[start..], escaped)?;
        Some(parsed)
    }

    /// Adds `segment` (decoded if `escaped`) unless it is empty; `None` as for [`Self::parse`].
    fn push(&mut self, segment: &'a str, escaped: bool) -> Option<()> {
        if !segment.is_empty() {
            *self.segments.get_mut(self.len)? = match escaped {
                true => Cow::Owned(percent_decode(segment)?),
                false => Cow::Borrowed(segment),
            };
            self.len += 1;
        }
        Some(())
    }

    /// The segments, to match a slice pattern against: `&strs[..len]`.
    pub fn strs(&self) -> ([&str; N], usize) {
        (std::array::from_fn(|i| self.segments[i].as_ref()), self.len)
    }
}

/// `segment` with its `%XX` escapes decoded, if the result is UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                i += 3;
            }
            // Like dropshot (and RFC 3986 parsers generally), a `%` without two hex digits
            // stands for itself.
            (byte, ..) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

/// The answer to a path that no operation (nor page) has: the 404 every missing resource gets.
pub fn not_found(path: &str) -> RouteError {
    ApiError::not_found(format!("no resource at {path}")).into()
}

/// The answer to a method that the path's operations do not have: 405, the `Allow` header
/// (RFC 9110 §15.5.6) listing `allow`, and a `BAD_REQUEST` envelope.
pub fn method_not_allowed(
    method: &str,
    allow: &str,
) -> Result<http::Response<dropshot::Body>, RouteError> {
    let error = ApiError::new(
        ErrorStatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        format!("method {method} is not allowed here; allowed: {allow}"),
        None,
    );
    error_with_header(error.status_code(), &error, http::header::ALLOW, allow)
}

/// An error answer that needs a header. dropshot renders an error type's response with no
/// headers of its own, so such an answer is built here, whole, and handed to dropshot as a
/// response (which dropshot logs by its status like any other).
fn error_with_header(
    status: ErrorStatusCode,
    body: &impl Serialize,
    header: http::header::HeaderName,
    value: &str,
) -> Result<http::Response<dropshot::Body>, RouteError> {
    let body = serde_json::to_vec(body).map_err(|e| ApiError::internal(e.to_string()))?;
    let response = http::Response::builder()
        .status(status.as_status())
        .header(http::header::CONTENT_TYPE, dropshot::CONTENT_TYPE_JSON)
        .header(header, value)
        .body(body.into());
    Ok(response.map_err(HttpError::from)?)
}

/// The challenge of a 401 from the token endpoint: the OAuth client authenticates with HTTP
/// Basic (RFC 6749 §2.3.1).
pub const CLIENT_CHALLENGE: &str = "Basic realm=\"privx\"";

impl RouteError {
    /// The last step of routing: a 401 `invalid_client` gets its `WWW-Authenticate` (RFC 6749
    /// §5.2), a 429 or 503 its `Retry-After`; every other error stays an error, for dropshot
    /// to render.
    pub fn with_headers(self) -> Result<http::Response<dropshot::Body>, RouteError> {
        let retry_after = match &self {
            Self::Api(error) => error.retry_after(),
            Self::OAuth(error) => error.retry_after(),
        };
        match (self, retry_after) {
            (Self::OAuth(error), _) if error.status_code() == ErrorStatusCode::UNAUTHORIZED => {
                let header = http::header::WWW_AUTHENTICATE;
                error_with_header(error.status_code(), &error, header, CLIENT_CHALLENGE)
            }
            (error, Some(seconds)) => {
                let header = http::header::RETRY_AFTER;
                error_with_header(error.status_code(), &error, header, &seconds.to_string())
            }
            (other, None) => Err(other),
        }
    }
}

/// The answer the router placed a request with (an operation's call, a page, an error): boxed,
/// so that the catch-all endpoint's future, which dropshot boxes and moves, stays small
/// whichever operation runs.
pub type Routed =
    Pin<Box<dyn Future<Output = Result<http::Response<dropshot::Body>, RouteError>> + Send>>;

/// The call of an operation: its response, or its error rendered as its error type renders.
pub fn call<R, E>(operation: impl Future<Output = Result<R, E>> + Send + 'static) -> Routed
where
    R: HttpResponse,
    E: From<HttpError>,
    RouteError: From<E>,
{
    Box::pin(operation.map(|result| Ok(result.and_then(|r| r.to_result().map_err(E::from))?)))
}

/// The call of an operation, or the error that refused it before the call (a path parameter
/// that does not parse, an over-long URI).
pub fn routed<E>(call: Result<Routed, E>) -> Routed
where
    RouteError: From<E>,
{
    call.unwrap_or_else(|error| ready(Err(error.into())))
}

/// An answer known without running anything (a 404, a 405, a page).
pub fn ready(answer: Result<http::Response<dropshot::Body>, RouteError>) -> Routed {
    Box::pin(std::future::ready(answer))
}

/// What `/healthz` asks of the server context: why it cannot serve every operation, if it
/// cannot (its store refuses writes, say).
pub trait Readiness {
    fn unready(&self) -> impl std::future::Future<Output = Option<String>> + Send;
}

/// What the catch-all endpoints ask of the server context for every request they take: to
/// watch it from its placing to its answer (the server keeps a journal of requests and writes
/// a log line for each). Whatever routing answers (an operation, a page, a 404 or 405, a 414)
/// is watched; the requests dropshot answers before any endpoint runs are not.
pub trait Observe: ServerContext + Sized {
    /// The answer of `place`, which routes `rqctx`'s request, watched.
    fn observe(
        rqctx: RequestContext<Self>,
        place: impl FnOnce(RequestContext<Self>) -> Routed,
    ) -> impl Future<Output = Result<http::Response<dropshot::Body>, RouteError>> + Send;
}

/// The unpublished pages served beside the operations, `GET` only, by their one segment: the
/// spec as JSON and as written, the HTML API reference and the readiness check (200 while the
/// server serves every operation; else 503 with the envelope saying why, see [`Readiness`]).
const PAGES: &[(&str, &str, &str)] = &[
    ("openapi.json", "application/json", SPEC_JSON),
    ("openapi.yaml", "application/yaml", SPEC_YAML),
    ("docs", "text/html; charset=utf-8", DOCS_HTML),
    ("healthz", "text/plain", "ok\n"),
];

/// The answer to a request whose path, `path` with the `segments`, no operation has: one of
/// the [`PAGES`], or a 404 (405 for a page with another method than GET).
pub fn unrouted<C: ServerContext + Readiness>(
    rqctx: RequestContext<C>,
    method: &str,
    segments: &[&str],
    path: &str,
) -> Routed {
    let page = match segments {
        [segment] => PAGES.iter().find(|(page, ..)| page == segment),
        _ => None,
    };
    let Some(&(name, content_type, body)) = page else {
        return ready(Err(not_found(path)));
    };
    if method != "GET" {
        return ready(method_not_allowed(method, "GET"));
    }
    let page = move || {
        let response = http::Response::builder()
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body.into());
        Ok(response.map_err(HttpError::from)?)
    };
    if name != "healthz" {
        return ready(page());
    }
    Box::pin(async move {
        match rqctx.context().unready().await {
            Some(reason) => {
                let status = ErrorStatusCode::SERVICE_UNAVAILABLE;
                Err(ApiError::new(status, ErrorCode::DatabaseError, reason, None).into())
            }
            None => page(),
        }
    })
}

/// The error of whichever operation the router called: the PrivX envelope, or the token
/// endpoint's OAuth error. The catch-all endpoints answer for every operation, so they need one
/// error type; each variant is rendered exactly as its own type is.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RouteError {
    Api(ApiError),
    OAuth(OAuthError),
}

impl From<ApiError> for RouteError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<OAuthError> for RouteError {
    fn from(error: OAuthError) -> Self {
        Self::OAuth(error)
    }
}

/// dropshot's own errors outside any operation (e.g. a response that fails to build).
impl From<HttpError> for RouteError {
    fn from(error: HttpError) -> Self {
        Self::Api(error.into())
    }
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(error) => error.fmt(f),
            Self::OAuth(error) => error.fmt(f),
        }
    }
}

impl HttpResponseError for RouteError {
    fn status_code(&self) -> ErrorStatusCode {
        match self {
            Self::Api(error) => error.status_code(),
            Self::OAuth(error) => error.status_code(),
        }
    }
}
