//! The edge role: an in-memory cache of origin objects with request coalescing, filled through
//! [`crate::upstream`].
//!
//! - [`key`]: request → cache key and object class (sans-IO).
//! - [`object`]: a cached response (the origin's `Bytes`, kept headers, freshness).
//! - [`table`]: the object table, coalescing and the byte budget.
//!
//! [`Edge::handle`] looks the key up; on a miss the first request starts one fill task (it does
//! not run inside any viewer's request, so a viewer that goes away cannot cancel it for the
//! others), and every request for that key, first included, waits on the fill's channel with
//! a bounded wait. When all waiters are gone the fill stops its upstream request.

pub mod key;
pub mod object;
pub mod table;

pub use object::PUBLISHED_HEADER;

use crate::body::ChunkBody;
use crate::metrics::EdgeMetrics;
use crate::reply::{self, error, Request};
use crate::upstream::{Upstream, UpstreamError};
use http::{header, HeaderValue, Response, StatusCode};
use key::{Class, KeyError};
use object::Object;
use std::sync::Arc;
use std::time::{Duration, Instant};
use table::{Cache, FillError, FillPermit, Lookup};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The edge request handler.
#[derive(Clone)]
pub struct Edge {
    cache: Arc<Cache>,
    upstream: Arc<Upstream>,
    metrics: EdgeMetrics,
    wait_limit: Duration,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge").finish_non_exhaustive()
    }
}

impl Edge {
    /// An edge over `upstream` with a cache of `budget` bytes; a viewer waits at most
    /// `wait_limit` for a fill.
    pub fn new(
        upstream: Arc<Upstream>,
        budget: usize,
        wait_limit: Duration,
        metrics: EdgeMetrics,
    ) -> Self {
        Self {
            cache: Cache::new(budget, metrics.clone()),
            upstream,
            metrics,
            wait_limit,
        }
    }

    /// The object table (tests and metrics look at it).
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Removes expired objects every `every` until `shutdown`.
    pub async fn sweeper(self, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.cache.sweep(Instant::now()),
            }
        }
    }

    /// Handles one request.
    pub async fn handle(&self, req: Request<'_>) -> Response<ChunkBody> {
        if let Some(r) = reply::non_get(req.method) {
            return r;
        }
        let target = match key::target(req.path, req.query) {
            Ok(t) => t,
            Err(KeyError::NotFound) => return error(StatusCode::NOT_FOUND, 2, "not found"),
            Err(KeyError::Directives(e)) => {
                return error(StatusCode::BAD_REQUEST, 2, &e.to_string())
            }
        };
        let blocking = target.class.blocking();
        let deadline = tokio::time::Instant::now() + self.wait_limit;
        // an abandoned fill (its task died, or all its waiters left just as we joined) makes
        // us compete again; a few rounds at most
        for _ in 0..4 {
            let mut rx = match self.cache.lookup(&target.key, Instant::now()) {
                Lookup::Hit(o) => return respond(&o, req.gzip),
                Lookup::Wait(rx) => rx,
                Lookup::Fill(permit, rx) => {
                    self.spawn_fill(permit, blocking, target.class, None);
                    rx
                }
            };
            let state = match tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await
            {
                Err(_) => {
                    return error(
                        StatusCode::GATEWAY_TIMEOUT,
                        1,
                        "timed out waiting for the origin",
                    )
                }
                Ok(Err(_)) => continue,
                Ok(Ok(s)) => s.clone(),
            };
            match state {
                Some(Ok(o)) => return respond(&o, req.gzip),
                Some(Err(FillError::Abandoned)) | None => continue,
                Some(Err(FillError::Timeout)) => {
                    return error(StatusCode::GATEWAY_TIMEOUT, 1, "origin timed out")
                }
                // the cause (origin names, addresses) is logged by the fill, not shown
                Some(Err(FillError::Upstream(_))) => {
                    return error(StatusCode::BAD_GATEWAY, 1, "no origin could serve this")
                }
            }
        }
        error(StatusCode::BAD_GATEWAY, 1, "origin fill kept failing")
    }

    /// Runs one fill in its own task. `hold` keeps a prefetch alive without any viewer.
    fn spawn_fill(
        &self,
        permit: FillPermit,
        blocking: bool,
        class: Class,
        hold: Option<watch::Receiver<table::FillState>>,
    ) {
        let edge = self.clone();
        tokio::spawn(async move {
            let _hold = hold;
            edge.metrics.fills_in_flight.inc();
            let key = permit.key().to_string();
            let outcome = tokio::select! {
                r = edge.upstream.fetch(&key, blocking) => Some(r),
                _ = permit.abandoned() => None,
            };
            match outcome {
                Some(r) => {
                    let r = r
                        .map(|f| Arc::new(Object::new(f.status, &f.headers, f.body, f.received)))
                        .map_err(|e| match e {
                            UpstreamError::Timeout => FillError::Timeout,
                            e => {
                                tracing::warn!(%key, error = %e, "fill failed");
                                FillError::Upstream(e.to_string())
                            }
                        });
                    let store = matches!(&r, Ok(o) if o.cacheable());
                    let hinted = match (&r, class) {
                        (Ok(o), Class::Playlist { .. }) if store => {
                            o.body_text().and_then(|t| key::hinted_part(&key, t))
                        }
                        _ => None,
                    };
                    permit.finish(r, store);
                    if let Some(part) = hinted {
                        edge.prefetch(&part);
                    }
                }
                None => {
                    edge.metrics.fills_abandoned.inc();
                    drop(permit);
                }
            }
            edge.metrics.fills_in_flight.dec();
        });
    }

    /// Starts filling a preload-hinted part nobody has asked for yet: the origin holds the
    /// request until the part exists, so the part is here when the viewers' blocking playlist
    /// reloads reveal it. One upstream request, whatever the number of viewers.
    fn prefetch(&self, key: &str) {
        if let Lookup::Fill(permit, rx) = self.cache.lookup_quiet(key, Instant::now()) {
            self.metrics.prefetches.inc();
            self.spawn_fill(permit, true, Class::Media { blocking: true }, Some(rx));
        }
    }
}

/// A response from a cached object, with its `Age`.
fn respond(o: &Object, gzip: bool) -> Response<ChunkBody> {
    let Some((body, gzipped)) = o.body(gzip) else {
        return error(
            StatusCode::BAD_GATEWAY,
            1,
            "origin sent a corrupt gzip body",
        );
    };
    let mut r = Response::new(body);
    *r.status_mut() = o.status;
    let h = r.headers_mut();
    for (k, v) in &o.headers {
        h.insert(k.clone(), v.clone());
    }
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(
        header::AGE,
        reply::volatile(HeaderValue::from(o.age(Instant::now()))),
    );
    r
}
