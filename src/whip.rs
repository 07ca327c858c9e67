//! WHIP over HTTP (RFC 9725 §4): `POST /live/{stream}/whip` with an SDP offer creates a
//! session (201, the answer, `Location`); `DELETE` on the session resource ends it; `PATCH`
//! gets 405 (no trickle ICE or ICE restart: the answer carries every candidate, ICE-lite);
//! `OPTIONS` answers browsers' CORS preflight.

use bytes::Bytes;
use ferrocast_edge::body::ChunkBody;
use ferrocast_edge::ingest::{BodyFuture, BodyRequest, BodyRoutes};
use ferrocast_edge::reply::{self, error, response};
use ferrocast_ingest::whip::server::WhipServer;
use http::{header, HeaderValue, Method, Response, StatusCode};
use std::sync::Arc;

/// The WHIP routes of an ingesting node.
#[derive(Debug)]
pub struct WhipRoutes {
    server: Arc<WhipServer>,
}

/// A parsed WHIP path: the stream and, for a session resource, its id.
fn parse(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix("/live/")?;
    let (stream, rest) = rest.split_once('/')?;
    match rest {
        "whip" => Some((stream, None)),
        _ => {
            let id = rest.strip_prefix("whip/")?;
            (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
                .then_some((stream, Some(id)))
        }
    }
}

const ENDPOINT_METHODS: &str = "POST, OPTIONS";
const SESSION_METHODS: &str = "DELETE, OPTIONS";

fn with_allow(mut r: Response<ChunkBody>, allow: &'static str) -> Response<ChunkBody> {
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn preflight(allow: &'static str) -> Response<ChunkBody> {
    with_allow(
        reply::preflight(allow, "Authorization, Content-Type, If-Match"),
        allow,
    )
}

impl WhipRoutes {
    /// Routes over `server`.
    pub fn new(server: Arc<WhipServer>) -> Self {
        Self { server }
    }

    async fn post(&self, stream: &str, req: &BodyRequest<'_>) -> Response<ChunkBody> {
        let sdp = req
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"));
        if !sdp {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                0,
                "a WHIP offer is Content-Type: application/sdp",
            );
        }
        let Some(body) = &req.body else {
            return error(StatusCode::PAYLOAD_TOO_LARGE, 0, "offer too large");
        };
        let credential = req
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(ferrocast_auth::playback::bearer_token);
        match self
            .server
            .publish(stream, credential, req.peer, body)
            .await
        {
            Ok(created) => {
                let mut r = response(
                    StatusCode::CREATED,
                    Some("no-store".into()),
                    Some("application/sdp"),
                    ChunkBody::full(Bytes::from(created.answer)),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("/live/{stream}/whip/{}", created.id))
                {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            Err(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                let mut r = error(status, 0, &e.to_string());
                if status == StatusCode::UNAUTHORIZED {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                r
            }
        }
    }
}

impl BodyRoutes for WhipRoutes {
    fn wants(&self, path: &str) -> bool {
        parse(path).is_some()
    }

    fn handle<'a>(&'a self, req: BodyRequest<'a>) -> BodyFuture<'a> {
        Box::pin(async move {
            let Some((stream, id)) = parse(req.path) else {
                return error(StatusCode::NOT_FOUND, 0, "not found");
            };
            match (req.method, id) {
                (&Method::OPTIONS, None) => preflight(ENDPOINT_METHODS),
                (&Method::OPTIONS, Some(_)) => preflight(SESSION_METHODS),
                (&Method::POST, None) => self.post(stream, &req).await,
                (&Method::DELETE, Some(id)) => match self.server.delete(stream, id).await {
                    Ok(()) => response(StatusCode::OK, None, None, ChunkBody::empty()),
                    Err(e) => error(StatusCode::NOT_FOUND, 0, &e.to_string()),
                },
                (&Method::PATCH, Some(id)) if self.server.exists(stream, id) => with_allow(
                    error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        0,
                        "no trickle ICE or ICE restart: the answer has every candidate",
                    ),
                    SESSION_METHODS,
                ),
                (_, Some(id)) if !self.server.exists(stream, id) => {
                    error(StatusCode::NOT_FOUND, 0, "no such WHIP session")
                }
                (_, None) => with_allow(
                    error(StatusCode::METHOD_NOT_ALLOWED, 0, "method not allowed"),
                    ENDPOINT_METHODS,
                ),
                (_, Some(_)) => with_allow(
                    error(StatusCode::METHOD_NOT_ALLOWED, 0, "method not allowed"),
                    SESSION_METHODS,
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse("/live/a/whip"), Some(("a", None)));
        assert_eq!(parse("/live/a/whip/0f3a"), Some(("a", Some("0f3a"))));
        assert_eq!(parse("/live/a/whip/"), None);
        assert_eq!(parse("/live/a/whip/x/y"), None);
        assert_eq!(parse("/live/a/index.m3u8"), None);
        assert_eq!(parse("/live/a/whipx"), None);
    }
}
