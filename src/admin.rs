//! The admin listener: `/metrics` (Prometheus text format), `/healthz` (the process is up),
//! `/readyz` (listeners are accepting and not shutting down); on origins,
//! `/cluster/epoch/{stream}` for peer origins (see [`crate::cluster`]).

use bytes::Bytes;
use ferrocast_packager::store::Store;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus::{Encoder, Registry, TextEncoder};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves admin requests until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    ready: Arc<AtomicBool>,
    store: Option<Arc<Store>>,
    shutdown: CancellationToken,
) {
    let registry = Arc::new(registry);
    loop {
        let (tcp, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
        };
        let registry = registry.clone();
        let ready = ready.clone();
        let store = store.clone();
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let registry = registry.clone();
            let ready = ready.clone();
            let store = store.clone();
            async move { Ok::<_, Infallible>(route(&req, &registry, &ready, store.as_deref())) }
        });
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>, ct: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", ct)
        .header("cache-control", "no-store")
        .body(Full::new(body.into()))
        .expect("static response")
}

fn route(
    req: &Request<hyper::body::Incoming>,
    registry: &Registry,
    ready: &AtomicBool,
    store: Option<&Store>,
) -> Response<Full<Bytes>> {
    if let (Some(name), Some(store)) = (req.uri().path().strip_prefix("/cluster/epoch/"), store) {
        let a = crate::cluster::answer(store, name, req.uri().query());
        return text(StatusCode::OK, a.to_text(), "text/plain");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut buf = Vec::new();
            let enc = TextEncoder::new();
            match enc.encode(&registry.gather(), &mut buf) {
                Ok(()) => text(StatusCode::OK, buf, "text/plain; version=0.0.4"),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    e.to_string(),
                    "text/plain",
                ),
            }
        }
        "/healthz" => text(StatusCode::OK, "ok\n", "text/plain"),
        "/readyz" => {
            if ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "ready\n", "text/plain")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n", "text/plain")
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
    }
}
