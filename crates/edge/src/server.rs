//! The HTTP/1.1 + HTTP/2 listener (hyper 1.x; HTTP/2 over cleartext with prior knowledge,
//! detected from the connection preface). One task per connection; the router is shared.

use crate::body::ChunkBody;
use crate::metrics::HttpMetrics;
use crate::origin::{route_label, Origin, Request};
use http::{header, HeaderValue, Method, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

fn version_label(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "other",
    }
}

fn accepts_gzip(h: &http::HeaderMap) -> bool {
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

/// Handles one hyper request: routing, CORS and metrics around [`Origin::handle`].
pub async fn handle(
    origin: &Origin,
    metrics: &HttpMetrics,
    req: http::Request<Incoming>,
) -> http::Response<ChunkBody> {
    let version = req.version();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let head = req.method() == Method::HEAD;
    let r = Request {
        method: req.method(),
        path: &path,
        query: &query,
        gzip: accepts_gzip(req.headers()),
    };
    let mut resp = origin.handle(r).await;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Age, Date, Content-Length"),
    );
    let len = http_body::Body::size_hint(resp.body()).exact().unwrap_or(0);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let route = route_label(&path);
    if resp.status().is_client_error() || resp.status().is_server_error() {
        debug!(status = resp.status().as_u16(), %path, %query, "request failed");
    }
    metrics
        .requests
        .with_label_values(&[route, resp.status().as_str(), version_label(version)])
        .inc();
    if head {
        *resp.body_mut() = ChunkBody::empty();
    } else {
        metrics.bytes.with_label_values(&[route]).inc_by(len);
    }
    resp
}

/// Serves HTTP/1.1 and HTTP/2 on `listener` until `shutdown`; then stops accepting and gives
/// open connections `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    origin: Origin,
    metrics: HttpMetrics,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let state = Arc::new((origin, metrics));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .max_buf_size(64 * 1024)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    builder
        .http2()
        .max_concurrent_streams(256)
        .timer(hyper_util::rt::TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut next = 0u64;
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        next += 1;
        let state = state.clone();
        let svc = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(&state.0, &state.1, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(tcp), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        let span = tracing::debug_span!("http", conn = next, %peer);
        tokio::spawn(
            async move {
                if let Err(e) = conn.await {
                    debug!(error = %e, "connection error");
                }
            }
            .instrument(span),
        );
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("HTTP connections still open after the grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let mut h = http::HeaderMap::new();
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
