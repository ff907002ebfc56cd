//! The limits the router enforces on a request before an operation sees it: the size of its
//! URI and of its headers, and how long its body may take to arrive.
//!
//! hyper answers a URI over 64 KiB with a bare 414 and headers over about 400 KiB (or more
//! than 100 of them) with a bare 431, before any of this code runs, and neither limit can be
//! set through dropshot. The limits here are far lower, so every request a client can
//! reasonably send over a limit gets the PrivX envelope; only the grossly oversized ones
//! still get hyper's empty answers.
//!
//! dropshot reads a request body with no deadline, so a client that stops sending half-way
//! through a body held its request (and the server's shutdown, which waits for it) forever.
//! The body of every operation is read here, within the server's body timeout.

use std::future::Future;
use std::time::Duration;

use dropshot::{ClientErrorStatusCode, ErrorStatusCode, HttpError, RequestContext};

use super::types::ErrorCode;
use super::ApiError;

/// The longest request URI (path and query) answered; a longer one is 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes (names, values and their separators) answered; more is 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What the router needs to know of the server's configuration.
pub trait RequestLimits {
    /// How long a request's whole body may take to arrive, from when the operation starts to
    /// read it.
    fn body_timeout(&self) -> Duration;
}

/// The 414 or 431 of a request whose URI or headers are over [`MAX_URI_BYTES`] or
/// [`MAX_HEADER_BYTES`].
pub fn check_head<B>(request: &http::Request<B>) -> Result<(), ApiError> {
    let uri = request.uri();
    let uri_bytes = uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Err(ApiError::new(
            ErrorStatusCode::URI_TOO_LONG,
            ErrorCode::BadRequest,
            format!(
                "the request URI is {uri_bytes} bytes long; at most {MAX_URI_BYTES} are served"
            ),
            None,
        ));
    }
    // As on the wire: `name: value` and the line's end.
    let header_bytes: usize =
        request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            ErrorStatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::BadRequest,
            format!("the request headers are {header_bytes} bytes; at most {MAX_HEADER_BYTES} are served"),
            None,
        ));
    }
    Ok(())
}

/// `read`, the body extractor of an operation, within the server's body timeout; past it,
/// 408. The error is dropshot's, as the extractor's own are, so that each operation's error
/// type renders it (the envelope, or the OAuth error of the token endpoint).
pub async fn read_body<C: RequestLimits + Send + Sync + 'static, T>(
    rqctx: &RequestContext<C>,
    read: impl Future<Output = Result<T, HttpError>>,
) -> Result<T, HttpError> {
    let timeout = rqctx.context().body_timeout();
    tokio::time::timeout(timeout, read).await.unwrap_or_else(|_| {
        Err(HttpError::for_client_error(
            None,
            ClientErrorStatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {} ms", timeout.as_millis()),
        ))
    })
}
