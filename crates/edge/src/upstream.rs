//! Requests from an edge to its origins: one mechanism for origin selection, health and retry.
//!
//! Origins are tried in configured order, healthy ones first; a request that fails (connection
//! error, timeout, 5xx, or its origin being marked down while it waits) is retried on the next
//! origin not yet tried, with the same target, so a blocking playlist request keeps its
//! `_HLS_msn`/`_HLS_part`. Health is both active (`GET` of each origin's health URL every
//! interval; `fall` failures mark it down, one success marks it up) and passive (a connection
//! error or timeout marks it down at once). Marking an origin down cancels the requests waiting
//! on it, which are then retried elsewhere: a hung origin costs one health timeout, not a
//! request timeout.
//!
//! Connections are keep-alive HTTP/2 with prior knowledge (origins serve h2c).

use crate::metrics::EdgeMetrics;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// One origin.
#[derive(Debug, Clone)]
pub struct OriginSpec {
    /// Label in metrics and logs.
    pub name: String,
    /// Base URL (`http://host:port`).
    pub base: Uri,
    /// Health URL (the origin's admin `/readyz`).
    pub health: Uri,
}

/// Upstream settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Origins in order of preference.
    pub origins: Vec<OriginSpec>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Whole-response timeout of a non-blocking request.
    pub response_timeout: Duration,
    /// Whole-response timeout of a blocking request (playlist with `_HLS_msn`, or a part that
    /// may not exist yet).
    pub blocking_timeout: Duration,
    /// Interval of active health checks.
    pub health_interval: Duration,
    /// Timeout of one health check.
    pub health_timeout: Duration,
    /// Consecutive failed checks that mark an origin down.
    pub fall: u32,
    /// Largest object accepted from an origin.
    pub max_object_bytes: usize,
    /// When origins check playback tokens: the edge's own, minted per request (viewers'
    /// tokens are never passed on: one upstream request serves many viewers).
    pub auth: ferrocast_auth::playback::SharedPlayback,
}

/// Lifetime of the tokens an edge mints for its requests to origins (seconds; generous for
/// clock skew between the two).
const UPSTREAM_TOKEN_TTL: u64 = 300;

/// An origin's answer.
#[derive(Debug)]
pub struct Fetched {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body, in one buffer (joined once if it came in several DATA frames).
    pub body: Bytes,
    /// When the whole body had arrived.
    pub received: Instant,
}

/// Why no origin answered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// Every origin failed; the last failure.
    #[error("no origin answered (last: {0})")]
    Exhausted(String),
    /// The last origin tried timed out.
    #[error("origins timed out")]
    Timeout,
}

#[derive(Debug)]
enum Attempt {
    Answer(Fetched),
    Failed {
        why: String,
        mark_down: bool,
        timeout: bool,
    },
}

struct OriginState {
    spec: OriginSpec,
    up: watch::Sender<bool>,
    failed_checks: AtomicU32,
}

/// The upstream side of an edge. Cheap to share (`Arc`).
pub struct Upstream {
    cfg: UpstreamConfig,
    origins: Vec<OriginState>,
    client: Client<HttpConnector, Empty<Bytes>>,
    metrics: EdgeMetrics,
    /// The edge's own `Authorization` for its origins and when it was signed (Unix seconds):
    /// signed again once half its lifetime has passed, not per request.
    /// The token minted last: when, by which auth (a reload replaces it), and the header.
    token: parking_lot::Mutex<
        Option<(
            u64,
            Arc<ferrocast_auth::playback::PlaybackAuth>,
            http::HeaderValue,
        )>,
    >,
}

impl Upstream {
    /// A new upstream; every origin starts healthy.
    pub fn new(cfg: UpstreamConfig, metrics: EdgeMetrics) -> Arc<Self> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_keep_alive_interval(Some(Duration::from_secs(5)))
            .http2_keep_alive_timeout(Duration::from_secs(5))
            .build(http);
        let origins = cfg
            .origins
            .iter()
            .map(|spec| {
                metrics.origin_up.with_label_values(&[&spec.name]).set(1);
                OriginState {
                    spec: spec.clone(),
                    up: watch::channel(true).0,
                    failed_checks: AtomicU32::new(0),
                }
            })
            .collect();
        Arc::new(Self {
            cfg,
            origins,
            client,
            metrics,
            token: parking_lot::Mutex::new(None),
        })
    }

    /// Whether origin `i` is considered healthy.
    pub fn is_up(&self, i: usize) -> bool {
        *self.origins[i].up.borrow()
    }

    /// Fetches `target` (path and query), trying origins in order until one answers.
    pub async fn fetch(&self, target: &str, blocking: bool) -> Result<Fetched, UpstreamError> {
        let mut tried = 0u64; // bitmask of origins tried (at most 64 origins)
        let mut last = UpstreamError::Exhausted("no origin configured".into());
        for attempt in 0..self.origins.len().min(64) {
            let Some(i) = self.select(tried) else { break };
            tried |= 1 << i;
            if attempt > 0 {
                self.metrics.failovers.inc();
                debug!(origin = %self.origins[i].spec.name, %target, "retrying on another origin");
            }
            match self.attempt(i, target, blocking).await {
                Attempt::Answer(f) => return Ok(f),
                Attempt::Failed {
                    why,
                    mark_down,
                    timeout,
                } => {
                    if mark_down {
                        self.set_up(i, false, &why);
                    }
                    last = if timeout {
                        UpstreamError::Timeout
                    } else {
                        UpstreamError::Exhausted(why)
                    };
                }
            }
        }
        Err(last)
    }

    /// The first healthy origin not yet tried, else the first not yet tried.
    fn select(&self, tried: u64) -> Option<usize> {
        let untried = (0..self.origins.len().min(64)).filter(|i| tried & (1 << i) == 0);
        untried
            .clone()
            .find(|&i| self.is_up(i))
            .or_else(|| untried.into_iter().next())
    }

    async fn attempt(&self, i: usize, target: &str, blocking: bool) -> Attempt {
        let o = &self.origins[i];
        let name = o.spec.name.as_str();
        let uri = match join(&o.spec.base, target) {
            Some(u) => u,
            None => {
                return Attempt::Failed {
                    why: format!("bad target {target}"),
                    mark_down: false,
                    timeout: false,
                }
            }
        };
        let limit = if blocking {
            self.cfg.blocking_timeout
        } else {
            self.cfg.response_timeout
        };
        let started = Instant::now();
        let mut down = o.up.subscribe();
        // an origin marked down is still asked when it is the last one left; only a request
        // to an origin that is up moves on when it goes down
        let was_up = *down.borrow_and_update();
        let request = self.get(uri);
        let result = tokio::select! {
            r = tokio::time::timeout(limit, request) => r,
            _ = down.wait_for(|up| !*up), if was_up => {
                self.count(name, "down");
                return Attempt::Failed { why: format!("origin {name} went down"), mark_down: false, timeout: false };
            }
        };
        self.metrics
            .upstream_seconds
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Err(_) => {
                self.count(name, "timeout");
                // a blocking request may legitimately wait long; only a plain request's
                // timeout says the origin is unwell
                Attempt::Failed {
                    why: format!("origin {name} timed out after {limit:?}"),
                    mark_down: !blocking,
                    timeout: true,
                }
            }
            Ok(Err(e)) => {
                self.count(name, "error");
                Attempt::Failed {
                    why: format!("origin {name}: {e}"),
                    mark_down: true,
                    timeout: false,
                }
            }
            Ok(Ok(f)) => {
                self.count(name, f.status.as_str());
                if f.status.is_server_error() {
                    Attempt::Failed {
                        why: format!("origin {name} answered {}", f.status),
                        mark_down: f.status != StatusCode::SERVICE_UNAVAILABLE,
                        timeout: false,
                    }
                } else {
                    Attempt::Answer(f)
                }
            }
        }
    }

    /// The `Authorization` of requests to origins that check playback tokens.
    fn authorization(&self) -> Option<http::HeaderValue> {
        let auth = self.cfg.auth.load();
        let auth = auth.as_ref()?;
        let now = ferrocast_auth::unix_now();
        let mut t = self.token.lock();
        if let Some((signed, signer, v)) = &*t {
            if now < signed + UPSTREAM_TOKEN_TTL / 2 && Arc::ptr_eq(signer, auth) {
                return Some(v.clone());
            }
        }
        let token = auth.upstream_token(now, UPSTREAM_TOKEN_TTL)?;
        let v = http::HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
        // sent as a never-indexed literal: it is a credential
        let v = crate::reply::volatile(v);
        *t = Some((now, auth.clone(), v.clone()));
        Some(v)
    }

    fn count(&self, origin: &str, status: &str) {
        self.metrics
            .upstream_requests
            .with_label_values(&[origin, status])
            .inc();
    }

    async fn get(&self, uri: Uri) -> Result<Fetched, String> {
        let mut req = Request::get(uri)
            .header(http::header::ACCEPT_ENCODING, "gzip")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        if let Some(v) = self.authorization() {
            req.headers_mut().insert(http::header::AUTHORIZATION, v);
        }
        let resp = self.client.request(req).await.map_err(|e| {
            // the connect error's source says what actually failed
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(c) = src {
                s.push_str(": ");
                s.push_str(&c.to_string());
                src = c.source();
            }
            s
        })?;
        let (head, body) = resp.into_parts();
        let mut body = Limited::new(body, self.cfg.max_object_bytes);
        let mut chunks = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(|e| format!("body: {e}"))?.into_data() {
                chunks.push(data);
            }
        }
        let body = join_body(chunks);
        Ok(Fetched {
            status: head.status,
            headers: head.headers,
            body,
            received: Instant::now(),
        })
    }

    fn set_up(&self, i: usize, up: bool, why: &str) {
        let o = &self.origins[i];
        let changed = o.up.send_if_modified(|v| {
            let c = *v != up;
            *v = up;
            c
        });
        if changed {
            self.metrics
                .origin_up
                .with_label_values(&[&o.spec.name])
                .set(i64::from(up));
            if up {
                info!(origin = %o.spec.name, "origin is up");
            } else {
                warn!(origin = %o.spec.name, reason = why, "origin marked down");
            }
        }
    }

    /// Runs active health checks until `shutdown`.
    pub async fn health_checks(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.cfg.health_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let checks = (0..self.origins.len()).map(|i| self.check(i));
            futures_util::future::join_all(checks).await;
        }
    }

    async fn check(&self, i: usize) {
        let o = &self.origins[i];
        let ok =
            match tokio::time::timeout(self.cfg.health_timeout, self.get(o.spec.health.clone()))
                .await
            {
                Ok(Ok(f)) if f.status.is_success() => Ok(()),
                Ok(Ok(f)) => Err(format!("health check answered {}", f.status)),
                Ok(Err(e)) => Err(format!("health check failed: {e}")),
                Err(_) => Err("health check timed out".to_string()),
            };
        match ok {
            Ok(()) => {
                o.failed_checks.store(0, Ordering::Relaxed);
                self.set_up(i, true, "");
            }
            Err(why) => {
                let n = o.failed_checks.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= self.cfg.fall {
                    self.set_up(i, false, &why);
                }
            }
        }
    }
}

/// `base` (scheme and authority) joined with `target` (path and query).
fn join(base: &Uri, target: &str) -> Option<Uri> {
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(target.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// One buffer per object: a single small DATA frame stays a slice of the connection's read
/// buffer; several are joined once here (never per viewer), so every response writes exactly
/// the bytes the cache budget counts. A large object is joined into a memory file, which
/// HTTP/1.1 without TLS sends with `sendfile` (see [`crate::memfile`]).
fn join_body(mut chunks: Vec<Bytes>) -> Bytes {
    chunks.retain(|c| !c.is_empty());
    let len: usize = chunks.iter().map(Bytes::len).sum();
    #[cfg(target_os = "linux")]
    if len >= crate::memfile::MIN_LEN {
        match crate::memfile::from_chunks(&chunks) {
            Ok(b) => return b,
            Err(e) => {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(
                    || warn!(error = %e, "memory files unavailable: objects stay on the heap"),
                );
            }
        }
    }
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().expect("one chunk"),
        _ => {
            let mut v = Vec::with_capacity(len);
            for c in &chunks {
                v.extend_from_slice(c);
            }
            Bytes::from(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_targets() {
        let b: Uri = "http://127.0.0.1:8081".parse().unwrap();
        assert_eq!(
            join(&b, "/live/a/video.m3u8?_HLS_msn=3")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:8081/live/a/video.m3u8?_HLS_msn=3"
        );
    }

    fn upstream(ports: &[u16]) -> Arc<Upstream> {
        let spec = |i: usize, p: u16| OriginSpec {
            name: format!("o{i}"),
            base: format!("http://127.0.0.1:{p}").parse().unwrap(),
            health: format!("http://127.0.0.1:{p}/readyz").parse().unwrap(),
        };
        Upstream::new(
            UpstreamConfig {
                origins: ports.iter().enumerate().map(|(i, p)| spec(i, *p)).collect(),
                connect_timeout: Duration::from_millis(100),
                response_timeout: Duration::from_millis(500),
                blocking_timeout: Duration::from_millis(500),
                health_interval: Duration::from_millis(100),
                health_timeout: Duration::from_millis(100),
                fall: 2,
                max_object_bytes: 1 << 20,
                auth: Default::default(),
            },
            EdgeMetrics::unregistered(),
        )
    }

    #[tokio::test]
    async fn selection_prefers_healthy_origins_in_order() {
        let u = upstream(&[1, 2, 3]);
        assert_eq!(u.select(0), Some(0));
        assert_eq!(u.select(0b001), Some(1));
        u.set_up(1, false, "test");
        assert_eq!(u.select(0b001), Some(2));
        assert_eq!(
            u.select(0b101),
            Some(1),
            "a down origin is still tried last"
        );
        assert_eq!(u.select(0b111), None);
    }

    /// An origin marked down (say by a passing timeout) is still asked when no other is left:
    /// the request is sent and answered, not failed at once.
    #[tokio::test]
    async fn the_last_origin_is_asked_even_when_marked_down() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(Bytes::from_static(b"ok")),
                    ))
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc),
                );
            }
        });
        let u = upstream(&[port]);
        u.set_up(0, false, "test");
        let f = u
            .fetch("/live/a/video.m3u8", false)
            .await
            .expect("answered");
        assert_eq!((f.status, &f.body[..]), (StatusCode::OK, &b"ok"[..]));
    }
}
