//! The API's error answers: the PrivX error envelope, `{error_code, error_message, property,
//! details}`, which every 4xx and 5xx answer carries, and the token endpoint's OAuth error.
//! Both are part of the API (the generated trait names them), so dropshot's own errors (bad
//! JSON, bad path or query parameters, oversized bodies) are turned into them here; errors of
//! the layers below are mapped where HTTP meets them (`crate::http`).

use dropshot::{ErrorStatusCode, HttpError, HttpResponseError};
use schemars::JsonSchema;
use serde::Serialize;

use super::types::{Error as Envelope, ErrorCode, OAuthError as OAuthReply, OAuthErrorError};

/// An error answer: a status code and the PrivX error envelope.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: ErrorStatusCode,
    /// Seconds for a `Retry-After` header (added by the router, like `WWW-Authenticate`).
    #[serde(skip)]
    retry_after: Option<u64>,
    #[serde(flatten)]
    envelope: Envelope,
}

impl ApiError {
    pub fn new(
        status: ErrorStatusCode,
        code: ErrorCode,
        message: impl Into<String>,
        property: Option<&str>,
    ) -> Self {
        Self {
            status,
            retry_after: None,
            envelope: Envelope {
                error_code: code,
                error_message: Some(message.into()),
                property: property.map(str::to_string),
                details: Vec::new(),
            },
        }
    }

    pub fn bad_request(
        code: ErrorCode,
        message: impl Into<String>,
        property: Option<&str>,
    ) -> Self {
        Self::new(ErrorStatusCode::BAD_REQUEST, code, message, property)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorStatusCode::NOT_FOUND, ErrorCode::ObjectNotFound, message, None)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorStatusCode::INTERNAL_SERVER_ERROR, ErrorCode::GeneralError, message, None)
    }

    /// 503 `MAX_LOAD` with `Retry-After: 1`: the password hashing queue is full.
    pub fn busy() -> Self {
        let message = "the server is hashing as many passwords as it can; retry shortly";
        let error =
            Self::new(ErrorStatusCode::SERVICE_UNAVAILABLE, ErrorCode::MaxLoad, message, None);
        Self { retry_after: Some(1), ..error }
    }

    /// The `Retry-After` seconds this answer carries, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.envelope.error_message.as_deref().unwrap_or_default();
        write!(f, "{}: {message}", self.envelope.error_code)
    }
}

/// The schema is the spec's `Error`, so the published document names the envelope.
impl JsonSchema for ApiError {
    fn schema_name() -> String {
        Envelope::schema_name()
    }
    fn json_schema(generator: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        Envelope::json_schema(generator)
    }
}

impl HttpResponseError for ApiError {
    fn status_code(&self) -> ErrorStatusCode {
        self.status
    }
}

/// dropshot's own errors: everything it rejects before a handler runs (unparsable JSON, a
/// field of the wrong type, a bad uuid in the path, a body over the size limit...).
///
/// The spec promises 400 for bad input, so every client error other than 401/403/404 (and the
/// 408 of a body that did not arrive in time) becomes a 400; the envelope's code and
/// `property` are read from serde's message where it names them.
impl From<HttpError> for ApiError {
    fn from(error: HttpError) -> Self {
        let message = error.external_message;
        let status = error.status_code;
        if status.is_server_error() {
            return Self::internal(message);
        }
        if status.as_u16() == 404 {
            return Self::not_found(message);
        }
        // A body that did not arrive in time (`crate::api::read_body`) is no bad input.
        if status == ErrorStatusCode::REQUEST_TIMEOUT {
            return Self::new(status, ErrorCode::BadRequest, message, None);
        }
        let property = quoted_after(&message, "field `").or_else(|| named_path(&message));
        let code = SERDE_WORDING
            .iter()
            .find(|(wording, _)| message.contains(wording))
            .map_or(ErrorCode::BadRequest, |&(_, code)| code);
        Self::bad_request(code, message, property.as_deref())
    }
}

/// How serde (and the parsers it calls) words each kind of bad value, and the PrivX code that
/// kind gets, first match wins. dropshot hands an extractor's error over as text only, so the
/// text is all there is to go by; `tests/api/bad_input.rs` pins each wording with a request
/// that produces it, so a change of wording in serde, uuid or dropshot fails a test instead of
/// quietly turning into `BAD_REQUEST`.
const SERDE_WORDING: &[(&str, ErrorCode)] = &[
    ("missing field", ErrorCode::RequiredValueMissing),
    ("longer than", ErrorCode::ValueOutOfBounds),
    ("invalid type", ErrorCode::ValueIncorrectType),
    ("unknown variant", ErrorCode::ValueIncorrectFormat),
    ("invalid value", ErrorCode::ValueIncorrectFormat),
    ("invalid digit", ErrorCode::ValueIncorrectFormat),
    ("UUID", ErrorCode::ValueIncorrectFormat),
    ("invalid length", ErrorCode::ValueIncorrectFormat),
];

/// The text between `marker` and the next backtick, e.g. the field in "missing field `x`".
fn quoted_after(message: &str, marker: &str) -> Option<String> {
    let rest = &message[message.find(marker)? + marker.len()..];
    Some(rest[..rest.find('`')?].to_string())
}

/// The field a JSON body error is about: dropshot prefixes serde's message with its path, as
/// in "unable to parse JSON body: tags: invalid type: ...", and `Path` with the parameter's
/// name, as in "bad parameter in URL path: user_id: UUID parsing failed: ...".
fn named_path(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unable to parse JSON body: ")
        .or_else(|| message.strip_prefix(super::path::BAD_PATH_PARAMETER))?;
    let (path, _) = rest.split_once(": ")?;
    let valid = !path.is_empty() && path != "." && !path.contains(' ');
    valid.then(|| path.to_string())
}

/// The OAuth endpoints' error answer: RFC 6749 §5.2's `{error, error_description}`, with the
/// PrivX envelope's `error_code` and `error_message` beside them, because the PrivX SDKs print
/// only those.
///
/// A 401 `invalid_client` also carries `WWW-Authenticate` (RFC 6749 §5.2), which the router
/// adds (`RouteError::with_headers`): dropshot gives an error type's response no headers.
#[derive(Debug, Serialize)]
pub struct OAuthError {
    #[serde(skip)]
    status: ErrorStatusCode,
    /// Seconds for a `Retry-After` header (added by the router).
    #[serde(skip)]
    retry_after: Option<u64>,
    #[serde(flatten)]
    reply: OAuthReply,
}

impl OAuthError {
    fn new(
        status: ErrorStatusCode,
        error: OAuthErrorError,
        description: impl Into<String>,
    ) -> Self {
        let description = description.into();
        let error_code = match error {
            OAuthErrorError::InvalidRequest => ErrorCode::BadRequest,
            OAuthErrorError::UnsupportedGrantType | OAuthErrorError::UnsupportedResponseType => {
                ErrorCode::InvalidRequestData
            }
            OAuthErrorError::ServerError => ErrorCode::GeneralError,
            OAuthErrorError::TemporarilyUnavailable => ErrorCode::MaxLoad,
            OAuthErrorError::InvalidClient
            | OAuthErrorError::InvalidGrant
            | OAuthErrorError::UnauthorizedClient
            | OAuthErrorError::InvalidScope => ErrorCode::PermissionDenied,
        };
        let reply = OAuthReply {
            error,
            error_code,
            error_message: Some(description.clone()),
            error_description: Some(description),
        };
        Self { status, retry_after: None, reply }
    }

    /// 400 `invalid_request`: a parameter is missing or malformed.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorStatusCode::BAD_REQUEST, OAuthErrorError::InvalidRequest, description)
    }

    /// 401 `invalid_client`: the client failed to authenticate.
    pub fn invalid_client() -> Self {
        Self::new(
            ErrorStatusCode::UNAUTHORIZED,
            OAuthErrorError::InvalidClient,
            "client authentication failed",
        )
    }

    /// 400 `invalid_grant`: the username/password pair is wrong (which one is not said).
    pub fn invalid_grant() -> Self {
        Self::bad_grant("invalid username or password")
    }

    /// 400 `invalid_grant`: a code, verifier, redirect URI or refresh token does not hold.
    pub fn bad_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorStatusCode::BAD_REQUEST, OAuthErrorError::InvalidGrant, description)
    }

    /// 400 `unauthorized_client`: the client may not use this flow.
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(ErrorStatusCode::BAD_REQUEST, OAuthErrorError::UnauthorizedClient, description)
    }

    /// 400 `unsupported_response_type`: the authorization endpoint serves only `code`.
    pub fn unsupported_response_type(description: impl Into<String>) -> Self {
        Self::new(
            ErrorStatusCode::BAD_REQUEST,
            OAuthErrorError::UnsupportedResponseType,
            description,
        )
    }

    /// 400 `invalid_scope`: the asked scopes are not the caller's.
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(ErrorStatusCode::BAD_REQUEST, OAuthErrorError::InvalidScope, description)
    }

    pub fn server_error(description: impl Into<String>) -> Self {
        Self::new(ErrorStatusCode::INTERNAL_SERVER_ERROR, OAuthErrorError::ServerError, description)
    }

    /// 503 `temporarily_unavailable` with `Retry-After: 1`: the password hashing queue is full.
    pub fn busy() -> Self {
        let error = Self::new(
            ErrorStatusCode::SERVICE_UNAVAILABLE,
            OAuthErrorError::TemporarilyUnavailable,
            "the server is checking as many passwords as it can; retry shortly",
        );
        Self { retry_after: Some(1), ..error }
    }

    /// 429 `invalid_grant` with `Retry-After`: too many failed logins for the username or the
    /// client address; no credential was checked.
    pub fn throttled(retry_after: u64) -> Self {
        let error = Self::new(
            ErrorStatusCode::TOO_MANY_REQUESTS,
            OAuthErrorError::InvalidGrant,
            format!("too many failed logins for this user or address; retry in {retry_after} s"),
        );
        Self { retry_after: Some(retry_after), ..error }
    }

    /// The `Retry-After` seconds this answer carries, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// Whether this is the answer to wrong credentials (client or user): what the brute-force
    /// brake counts.
    pub fn is_bad_credentials(&self) -> bool {
        matches!(self.reply.error, OAuthErrorError::InvalidClient | OAuthErrorError::InvalidGrant)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let description = self.reply.error_description.as_deref().unwrap_or_default();
        write!(f, "{}: {description}", self.reply.error)
    }
}

impl JsonSchema for OAuthError {
    fn schema_name() -> String {
        OAuthReply::schema_name()
    }
    fn json_schema(generator: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        OAuthReply::json_schema(generator)
    }
}

impl HttpResponseError for OAuthError {
    fn status_code(&self) -> ErrorStatusCode {
        self.status
    }
}

/// dropshot's rejections of an OAuth request (a missing `grant_type` or query parameter, an
/// unknown grant...).
/// serde's "unknown variant" is an unknown `grant_type`, the only enum of the token request
/// (pinned by `tests/api/auth.rs`, which expects `unsupported_grant_type` for one).
impl From<HttpError> for OAuthError {
    fn from(error: HttpError) -> Self {
        if error.status_code.is_server_error() {
            return Self::server_error(error.external_message);
        }
        if error.status_code == ErrorStatusCode::REQUEST_TIMEOUT {
            let (status, message) = (error.status_code, error.external_message);
            return Self::new(status, OAuthErrorError::InvalidRequest, message);
        }
        if error.external_message.contains("unknown variant") {
            return Self::new(
                ErrorStatusCode::BAD_REQUEST,
                OAuthErrorError::UnsupportedGrantType,
                error.external_message,
            );
        }
        Self::invalid_request(error.external_message)
    }
}
