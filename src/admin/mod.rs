//! The admin listener: `/metrics` (Prometheus text format), `/healthz` (the process is up),
//! `/readyz` (listeners are accepting and not shutting down), the admin API under `/api/v1/`
//! ([`api`]); on origins, `/cluster/epoch/{stream}` for peer origins (see [`crate::cluster`]).

pub mod api;
pub mod streams;

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

/// What the admin listener serves from.
pub struct AdminState {
    /// Every metric of the process.
    pub registry: Registry,
    /// Listeners are up and not shutting down.
    pub ready: Arc<AtomicBool>,
    /// The streams (`None` on an edge).
    pub store: Option<Arc<Store>>,
    /// Viewers per stream.
    pub viewers: Arc<ferrocast_edge::viewers::Viewers>,
    /// Reloadable state and the admin token.
    pub live: Arc<crate::reload::Live>,
    /// `role` of the config.
    pub role: String,
    /// When the server started.
    pub started: std::time::Instant,
}

/// Serves admin requests until `shutdown`.
pub async fn serve(listener: TcpListener, state: AdminState, shutdown: CancellationToken) {
    let state = Arc::new(state);
    loop {
        let (tcp, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
        };
        let state = state.clone();
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(&req, &state).await) }
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

/// A JSON response.
fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            text(status, body, "application/json")
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "text/plain",
        ),
    }
}

async fn route(req: &Request<hyper::body::Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path.starts_with("/api/v1/") {
        return api::handle(state, req.method(), path, req.headers()).await;
    }
    if let (Some(name), Some(store)) = (path.strip_prefix("/cluster/epoch/"), &state.store) {
        let a = crate::cluster::answer(store, name, req.uri().query());
        return text(StatusCode::OK, a.to_text(), "text/plain");
    }
    match path {
        "/metrics" => {
            let mut buf = Vec::new();
            let enc = TextEncoder::new();
            match enc.encode(&state.registry.gather(), &mut buf) {
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
            if state.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "ready\n", "text/plain")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n", "text/plain")
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
    }
}
