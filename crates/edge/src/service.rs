//! The router shared by every listener (HTTP/1.1, HTTP/2, HTTP/3): dispatches to the role's
//! handler and adds what every response carries — CORS, `Alt-Svc`, `Content-Length` — and
//! the request metrics.

use crate::body::ChunkBody;
use crate::cache::Edge;
use crate::ingest::{BodyRequest, BodyRoutes};
use crate::metrics::HttpMetrics;
use crate::origin::Origin;
use crate::reply::{volatile, Request};
use crate::route::Route;
use crate::viewers::Viewers;
use ferrocast_auth::playback::{self, PlaybackAuth, SharedPlayback};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, Version};
use std::net::IpAddr;
use tracing::debug;

/// The longest path and query accepted (414 beyond): ours are short; a token adds a few hundred
/// bytes at most.
pub const MAX_URL_LENGTH: usize = 4096;

/// The role's request handler.
#[derive(Debug, Clone)]
pub enum Handler {
    /// Serves the local packager store.
    Origin(Origin),
    /// Serves from the cache over upstream origins.
    Edge(Edge),
}

/// The shared router.
#[derive(Debug)]
pub struct Service {
    handler: Handler,
    metrics: HttpMetrics,
    alt_svc: Option<HeaderValue>,
    /// `Access-Control-Expose-Headers`: what a player's script may read.
    expose: HeaderValue,
    /// Viewers need a token (signed URL or JWT) when set.
    auth: SharedPlayback,
    /// Counts clients of each stream's media playlists, when set.
    viewers: Option<std::sync::Arc<Viewers>>,
    /// Routes with a request body (WHIP), when this node ingests.
    ingest: Option<std::sync::Arc<dyn BodyRoutes>>,
}

fn version_label(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "other",
    }
}

/// Adds the CORS headers every answer carries (any origin; `expose` readable by scripts) and
/// `Content-Length`; returns the length.
fn cors_and_length(resp: &mut Response<ChunkBody>, expose: HeaderValue) -> u64 {
    let len = http_body::Body::size_hint(resp.body()).exact().unwrap_or(0);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
    h.insert(header::CONTENT_LENGTH, volatile(HeaderValue::from(len)));
    len
}

/// Whether an `Accept-Encoding` header list admits gzip.
pub fn accepts_gzip(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut it = e.split(';');
            let name = it.next().unwrap_or("").trim();
            let q0 = it.any(|p| p.trim().replace(' ', "") == "q=0");
            (name == "gzip" || name == "*") && !q0
        })
}

impl Service {
    /// A router over `handler`. `h3_port`, when set, is advertised in `Alt-Svc`.
    pub fn new(handler: Handler, metrics: HttpMetrics, h3_port: Option<u16>) -> Self {
        let alt_svc =
            h3_port.and_then(|p| HeaderValue::from_str(&format!("h3=\":{p}\"; ma=86400")).ok());
        Self {
            handler,
            metrics,
            alt_svc,
            expose: HeaderValue::from_str(&format!(
                "Age, Date, Content-Length, {}",
                crate::cache::PUBLISHED_HEADER
            ))
            .expect("static header value"),
            auth: SharedPlayback::default(),
            viewers: None,
            ingest: None,
        }
    }

    /// Serves the ingest's routes (WHIP) too.
    pub fn with_ingest(mut self, ingest: std::sync::Arc<dyn BodyRoutes>) -> Self {
        self.ingest = Some(ingest);
        self
    }

    /// True when a request for `path` goes to the ingest: the listener then reads its body
    /// and calls [`Service::handle_body`].
    pub fn wants_body(&self, path: &str) -> bool {
        self.ingest.as_ref().is_some_and(|i| i.wants(path))
    }

    /// Answers a request for one of the ingest's routes (see [`Service::wants_body`]).
    pub async fn handle_body(
        &self,
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
        body: Option<bytes::Bytes>,
        peer: std::net::SocketAddr,
    ) -> Response<ChunkBody> {
        let mut resp = match &self.ingest {
            Some(i) => {
                i.handle(BodyRequest {
                    method,
                    path: uri.path(),
                    query: uri.query().unwrap_or(""),
                    headers,
                    body,
                    peer,
                })
                .await
            }
            None => crate::reply::error(StatusCode::NOT_FOUND, 0, "not found"),
        };
        cors_and_length(
            &mut resp,
            HeaderValue::from_static("Location, ETag, Accept-Patch, Link"),
        );
        self.metrics
            .requests
            .with_label_values(&["whip", resp.status().as_str(), version_label(version)])
            .inc();
        resp
    }

    /// The request metrics (listeners count their connections there too).
    pub fn metrics(&self) -> &HttpMetrics {
        &self.metrics
    }

    /// Requires a playback token for every stream path.
    pub fn with_playback_auth(mut self, auth: SharedPlayback) -> Self {
        self.auth = auth;
        self
    }

    /// Counts the viewers of every stream in `viewers`.
    pub fn with_viewers(mut self, viewers: std::sync::Arc<Viewers>) -> Self {
        self.viewers = Some(viewers);
        self
    }

    /// The playback check: `Some(403)` when the request needs a token and has no valid one.
    /// `path` has its token segment taken out already.
    fn refuse(
        &self,
        method: &Method,
        path: &str,
        path_token: Option<&str>,
        query: &str,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Option<Response<ChunkBody>> {
        let auth = self.auth.load();
        let auth = auth.as_ref()?;
        if method == Method::OPTIONS || !PlaybackAuth::guards(path) {
            return None;
        }
        let token = path_token
            .or_else(|| playback::query_token(query))
            .or_else(|| {
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(playback::bearer_token)
            });
        let e = auth
            .check(path, token, peer, ferrocast_auth::unix_now())
            .err()?;
        debug!(%path, reason = %e, "playback refused");
        // the same answer whatever the reason or whether the stream exists
        let mut r = crate::reply::error(StatusCode::FORBIDDEN, 0, "forbidden");
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(r)
    }

    /// Handles one request from `peer`. `HEAD` gets the headers of `GET` and no body. A
    /// token segment in the path (`/live/{stream}/{token}/{file}`) is checked and taken out
    /// before routing, so every viewer's request names the same object.
    pub async fn handle(
        &self,
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Response<ChunkBody> {
        if uri.path_and_query().map_or(0, |pq| pq.as_str().len()) > MAX_URL_LENGTH {
            let r = crate::reply::error(StatusCode::URI_TOO_LONG, 0, "URI too long");
            self.metrics
                .requests
                .with_label_values(&["other", r.status().as_str(), version_label(version)])
                .inc();
            return r;
        }
        let (path, path_token) = playback::split_path_token(uri.path());
        let path = path.as_ref();
        let query = uri.query().unwrap_or("");
        let refused = self.refuse(method, path, path_token, query, headers, peer);
        let mut resp = match refused {
            Some(r) => r,
            None => {
                let r = Request {
                    method,
                    path,
                    query,
                    gzip: accepts_gzip(headers),
                };
                match &self.handler {
                    Handler::Origin(o) => o.handle(r).await,
                    Handler::Edge(e) => e.handle(r).await,
                }
            }
        };
        if let (Some(a), false) = (&self.alt_svc, version == Version::HTTP_3) {
            resp.headers_mut().insert(header::ALT_SVC, a.clone());
        }
        let len = cors_and_length(&mut resp, self.expose.clone());
        let parsed = crate::route::parse(path);
        let route = parsed.as_ref().map_or("other", |r| r.label());
        if let (Some(v), Some(Route::Media { stream, .. }), true) =
            (&self.viewers, &parsed, resp.status().is_success())
        {
            let ua = headers
                .get(header::USER_AGENT)
                .map_or(&[][..], |v| v.as_bytes());
            v.saw(stream, peer, ua, std::time::Instant::now());
        }
        if resp.status().is_client_error() || resp.status().is_server_error() {
            // the query is not logged: it may carry a token
            debug!(status = resp.status().as_u16(), %path, "request failed");
        }
        self.metrics
            .requests
            .with_label_values(&[route, resp.status().as_str(), version_label(version)])
            .inc();
        if method == Method::HEAD {
            *resp.body_mut() = ChunkBody::empty();
        } else {
            self.metrics.bytes.with_label_values(&[route]).inc_by(len);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("deflate, gzip;q=1.0, br"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert!(!accepts_gzip(&h));
    }
}
