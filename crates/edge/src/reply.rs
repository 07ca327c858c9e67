//! Shared pieces of request handling for both roles: the request as handlers see it, plain
//! responses, and the answers to non-GET methods.

use crate::body::ChunkBody;
use http::{header, HeaderValue, Method, Response, StatusCode};

/// A request as the handler needs it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method.
    pub method: &'a Method,
    /// Path.
    pub path: &'a str,
    /// Query string (without `?`).
    pub query: &'a str,
    /// The client accepts gzip.
    pub gzip: bool,
}

/// A response with optional cache control and content type.
pub fn response(
    status: StatusCode,
    cache: Option<String>,
    content_type: Option<&'static str>,
    body: ChunkBody,
) -> Response<ChunkBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Some(ct) = content_type {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if let Some(c) = cache.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CACHE_CONTROL, c);
    }
    r
}

/// A plain-text error with a `max-age`.
pub fn error(status: StatusCode, max_age: u32, msg: &str) -> Response<ChunkBody> {
    response(
        status,
        Some(format!("max-age={max_age}")),
        Some("text/plain; charset=utf-8"),
        ChunkBody::full(bytes::Bytes::from(format!("{msg}\n"))),
    )
}

/// The answer to a CORS preflight (`OPTIONS`): these methods and request headers are allowed,
/// for a day.
pub fn preflight(methods: &'static str, headers: &'static str) -> Response<ChunkBody> {
    let mut r = response(
        StatusCode::NO_CONTENT,
        Some("max-age=86400".into()),
        None,
        ChunkBody::empty(),
    );
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(headers),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

/// The answer to a method other than GET/HEAD (`OPTIONS` preflight or 405), `None` for GET/HEAD.
pub fn non_get(method: &Method) -> Option<Response<ChunkBody>> {
    if method == Method::OPTIONS {
        return Some(preflight(
            "GET, HEAD, OPTIONS",
            "Range, Content-Type, Authorization",
        ));
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, 0, "method not allowed");
        r.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        return Some(r);
    }
    None
}

/// A header value that changes from response to response (`Content-Length`, `Age`, publish
/// time). Marked so HPACK/QPACK send it as a literal instead of searching and churning the
/// dynamic table with values that will never repeat.
pub fn volatile(mut v: HeaderValue) -> HeaderValue {
    v.set_sensitive(true);
    v
}
