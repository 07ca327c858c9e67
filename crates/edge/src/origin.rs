//! The origin role's request handler: serves playlists and media from the packager's store.
//! Blocking playlist reloads (RFC 8216bis §6.2.5.2) and preload-hinted parts (§6.2.6) wait on
//! the rendition's `watch` channel, bounded by 3 × target duration. Cache headers follow
//! Appendix B.1 / PROTOCOLS.md A.1.7.

use crate::body::ChunkBody;
use crate::metrics::HttpMetrics;
use crate::route::{self, Route};
use ferrocast_packager::blocking::{advance_part_limit, decide, Decision, Directives};
use ferrocast_packager::store::Store;
use ferrocast_packager::stream::{PartLookup, RenditionView};
use http::{header, HeaderValue, Method, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Object lifetimes for immutable objects (init, parts, segments), seconds. Kept modest
/// because a stream name can be reused after a stream ends and is removed.
const MEDIA_MAX_AGE: u32 = 60;
/// Lifetime of the multivariant playlist, seconds.
const MULTIVARIANT_MAX_AGE: u32 = 10;

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

/// The origin handler.
#[derive(Debug, Clone)]
pub struct Origin {
    store: Arc<Store>,
    metrics: HttpMetrics,
}

struct InFlight<'a>(&'a HttpMetrics);

impl<'a> InFlight<'a> {
    fn new(m: &'a HttpMetrics) -> Self {
        m.blocking_in_flight.inc();
        Self(m)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.blocking_in_flight.dec();
    }
}

fn response(
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

fn error(status: StatusCode, max_age: u32, msg: &str) -> Response<ChunkBody> {
    response(
        status,
        Some(format!("max-age={max_age}")),
        Some("text/plain; charset=utf-8"),
        ChunkBody::full(bytes::Bytes::from(format!("{msg}\n"))),
    )
}

/// Route label of a path, for metrics.
pub fn route_label(path: &str) -> &'static str {
    route::parse(path).map_or("other", |r| r.label())
}

impl Origin {
    /// A handler over `store`.
    pub fn new(store: Arc<Store>, metrics: HttpMetrics) -> Self {
        Self { store, metrics }
    }

    /// Handles one request.
    pub async fn handle(&self, req: Request<'_>) -> Response<ChunkBody> {
        if req.method == Method::OPTIONS {
            let mut r = response(
                StatusCode::NO_CONTENT,
                Some("max-age=86400".into()),
                None,
                ChunkBody::empty(),
            );
            r.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            r.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Range, Content-Type"),
            );
            r.headers_mut().insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
            return r;
        }
        if req.method != Method::GET && req.method != Method::HEAD {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, 0, "method not allowed");
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            return r;
        }
        let Some(route) = route::parse(req.path) else {
            return error(StatusCode::NOT_FOUND, 2, "not found");
        };
        let stream_name = match &route {
            Route::Multivariant { stream }
            | Route::Media { stream, .. }
            | Route::Init { stream, .. }
            | Route::Segment { stream, .. }
            | Route::Part { stream, .. } => *stream,
        };
        let Some(stream) = self.store.get(stream_name) else {
            return error(StatusCode::NOT_FOUND, 1, "no such stream");
        };
        match route {
            Route::Multivariant { .. } => match stream.multivariant() {
                Some(mv) => {
                    let body = if req.gzip {
                        mv.gzip().clone()
                    } else {
                        mv.plain.clone()
                    };
                    let mut r = response(
                        StatusCode::OK,
                        Some(format!("max-age={MULTIVARIANT_MAX_AGE}")),
                        Some("application/vnd.apple.mpegurl"),
                        ChunkBody::full(body),
                    );
                    vary_gzip(&mut r, req.gzip);
                    r
                }
                None => error(StatusCode::NOT_FOUND, 1, "stream not ready yet"),
            },
            Route::Media { kind, .. } => self.playlist(stream.rendition(kind), req).await,
            Route::Init {
                kind, generation, ..
            } => {
                let rx = stream.rendition(kind);
                let view = rx.borrow().clone();
                match view.as_ref().and_then(|v| v.init(generation).cloned()) {
                    Some(b) => response(
                        StatusCode::OK,
                        Some(immutable()),
                        Some(if kind == ferrocast_media::TrackKind::Video {
                            "video/mp4"
                        } else {
                            "audio/mp4"
                        }),
                        ChunkBody::full(b),
                    ),
                    None => error(StatusCode::NOT_FOUND, 2, "no such init segment"),
                }
            }
            Route::Segment { kind, msn, .. } => {
                let rx = stream.rendition(kind);
                let view = rx.borrow().clone();
                match view.as_ref().and_then(|v| v.segment(msn).cloned()) {
                    Some(s) if !s.is_gap() => response(
                        StatusCode::OK,
                        Some(immutable()),
                        Some("video/iso.segment"),
                        ChunkBody::new(s.chunks()),
                    ),
                    Some(_) => error(StatusCode::NOT_FOUND, 2, "gap segment"),
                    None => error(StatusCode::NOT_FOUND, 1, "no such segment"),
                }
            }
            Route::Part {
                kind, msn, index, ..
            } => self.part(stream.rendition(kind), msn, index).await,
        }
    }

    async fn playlist(
        &self,
        mut rx: watch::Receiver<Option<Arc<RenditionView>>>,
        req: Request<'_>,
    ) -> Response<ChunkBody> {
        let directives = match Directives::parse(req.query) {
            Ok(d) => d,
            Err(e) => return error(StatusCode::BAD_REQUEST, 2, &e.to_string()),
        };
        let blocking = directives.msn.is_some();
        let Some(first) = rx.borrow_and_update().clone() else {
            return error(StatusCode::NOT_FOUND, 1, "stream not ready yet");
        };
        let td = first.target_duration;
        let limit = advance_part_limit(first.part_target_ms);
        let mut view = first;
        let mut guard = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3 * u64::from(td));
        loop {
            match decide(&directives, &view.position, limit) {
                Decision::Ready => break,
                Decision::BadRequest(why) => return error(StatusCode::BAD_REQUEST, td, why),
                Decision::Wait => {
                    guard.get_or_insert_with(|| InFlight::new(&self.metrics));
                    match next_view(&mut rx, deadline).await {
                        Ok(v) => view = v,
                        Err(Ended::Removed) => {
                            return error(StatusCode::NOT_FOUND, td, "stream removed")
                        }
                        Err(Ended::TimedOut) => {
                            return error(
                                StatusCode::SERVICE_UNAVAILABLE,
                                4 * td,
                                "playlist did not reach the requested position in time",
                            )
                        }
                    }
                }
            }
        }
        let rendered = match (directives.skip, view.delta()) {
            (true, Some(d)) => d,
            _ => view.playlist(),
        };
        let body = if req.gzip {
            rendered.gzip().clone()
        } else {
            rendered.plain.clone()
        };
        let cache = if blocking {
            format!("public, max-age={}", 6 * td)
        } else {
            format!("public, max-age={}", (td / 2).max(1))
        };
        let mut r = response(
            StatusCode::OK,
            Some(cache),
            Some("application/vnd.apple.mpegurl"),
            ChunkBody::full(body),
        );
        vary_gzip(&mut r, req.gzip);
        r
    }

    async fn part(
        &self,
        mut rx: watch::Receiver<Option<Arc<RenditionView>>>,
        msn: u64,
        index: u32,
    ) -> Response<ChunkBody> {
        let Some(mut view) = rx.borrow_and_update().clone() else {
            return error(StatusCode::NOT_FOUND, 1, "stream not ready yet");
        };
        let td = view.target_duration;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3 * u64::from(td));
        let mut guard = None;
        loop {
            match view.part(msn, index) {
                PartLookup::Found(p) if p.gap => {
                    return error(StatusCode::NOT_FOUND, td, "gap part")
                }
                PartLookup::Found(p) => {
                    let cache = if guard.is_some() {
                        format!("public, max-age={}", 6 * td)
                    } else {
                        immutable()
                    };
                    return response(
                        StatusCode::OK,
                        Some(cache),
                        Some("video/iso.segment"),
                        ChunkBody::new(p.chunks()),
                    );
                }
                PartLookup::Gone => return error(StatusCode::NOT_FOUND, td, "no such part"),
                PartLookup::Pending => {
                    guard.get_or_insert_with(|| InFlight::new(&self.metrics));
                    match next_view(&mut rx, deadline).await {
                        Ok(v) => view = v,
                        Err(Ended::Removed) => {
                            return error(StatusCode::NOT_FOUND, td, "stream removed")
                        }
                        Err(Ended::TimedOut) => {
                            return error(
                                StatusCode::NOT_FOUND,
                                td,
                                "part was not produced in time",
                            )
                        }
                    }
                }
            }
        }
    }
}

/// Why a wait for the next view ended without one.
enum Ended {
    Removed,
    TimedOut,
}

/// Waits (until `deadline`) for the rendition's next published view.
async fn next_view(
    rx: &mut watch::Receiver<Option<Arc<RenditionView>>>,
    deadline: tokio::time::Instant,
) -> Result<Arc<RenditionView>, Ended> {
    loop {
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {
                if let Some(v) = rx.borrow_and_update().clone() {
                    return Ok(v);
                }
            }
            Ok(Err(_)) => return Err(Ended::Removed),
            Err(_) => return Err(Ended::TimedOut),
        }
    }
}

fn immutable() -> String {
    format!("public, max-age={MEDIA_MAX_AGE}")
}

fn vary_gzip(r: &mut Response<ChunkBody>, gzip: bool) {
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
}
