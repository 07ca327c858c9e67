//! The origin role's request handler: serves playlists and media from the packager's store.
//! Blocking playlist reloads (RFC 8216bis §6.2.5.2) and preload-hinted parts (§6.2.6) wait on
//! the rendition's `watch` channel, bounded by 3 × target duration. Cache headers follow
//! Appendix B.1 / PROTOCOLS.md A.1.7.

use crate::body::ChunkBody;
use crate::metrics::HttpMetrics;
use crate::reply::{self, error, response, Request};
use crate::route::{self, Route};
use ferrocast_packager::blocking::{advance_part_limit, decide, Decision, Directives};
use ferrocast_packager::store::Store;
use ferrocast_packager::stream::{PartLookup, RenditionView};
use http::{header, HeaderValue, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Object lifetimes for immutable objects (init, parts, segments), seconds. Kept modest
/// because a stream name can be reused after a stream ends and is removed.
const MEDIA_MAX_AGE: u32 = 60;
/// Lifetime of the multivariant playlist, seconds.
const MULTIVARIANT_MAX_AGE: u32 = 10;

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
        if let Some(r) = reply::non_get(req.method) {
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
                    let timed_out = (
                        StatusCode::SERVICE_UNAVAILABLE,
                        4 * td,
                        "playlist did not reach the requested position in time",
                    );
                    match self
                        .hold(&mut rx, deadline, &mut guard, td, timed_out)
                        .await
                    {
                        Ok(v) => view = v,
                        Err(r) => return r,
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
        // A blocking response names an immutable position: cache it (App. B.1). A plain
        // request is how a player tunes in; a cached copy up to TD/2 old would make it start
        // that much further behind the live edge for good (hls.js does not speed up to catch
        // up), so it must be fresh: `no-cache` (caches may still coalesce concurrent requests).
        let cache = if blocking {
            format!("public, max-age={}", 6 * td)
        } else {
            "no-cache".to_string()
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
                    let mut r = response(
                        StatusCode::OK,
                        Some(cache),
                        Some("video/iso.segment"),
                        ChunkBody::new(p.chunks()),
                    );
                    r.headers_mut().insert(
                        crate::cache::PUBLISHED_HEADER,
                        reply::volatile(HeaderValue::from(p.published_us)),
                    );
                    return r;
                }
                PartLookup::Gone => return error(StatusCode::NOT_FOUND, td, "no such part"),
                PartLookup::Pending => {
                    let timed_out = (StatusCode::NOT_FOUND, td, "part was not produced in time");
                    match self
                        .hold(&mut rx, deadline, &mut guard, td, timed_out)
                        .await
                    {
                        Ok(v) => view = v,
                        Err(r) => return r,
                    }
                }
            }
        }
    }
}

impl Origin {
    /// Holds a request (counted in the in-flight gauge) until the rendition's next view; the
    /// answer instead when the stream goes away (404) or `deadline` passes (`timed_out`:
    /// status, max-age, message).
    async fn hold<'m>(
        &'m self,
        rx: &mut watch::Receiver<Option<Arc<RenditionView>>>,
        deadline: tokio::time::Instant,
        guard: &mut Option<InFlight<'m>>,
        td: u32,
        timed_out: (StatusCode, u32, &str),
    ) -> Result<Arc<RenditionView>, Response<ChunkBody>> {
        guard.get_or_insert_with(|| InFlight::new(&self.metrics));
        next_view(rx, deadline).await.map_err(|e| match e {
            Ended::Removed => error(StatusCode::NOT_FOUND, td, "stream removed"),
            Ended::TimedOut => error(timed_out.0, timed_out.1, timed_out.2),
        })
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
