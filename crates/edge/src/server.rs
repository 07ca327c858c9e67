//! The HTTP/1.1 + HTTP/2 listener (hyper 1.x): cleartext (HTTP/2 with prior knowledge,
//! detected from the connection preface) or TLS (HTTP/2 or HTTP/1.1 by ALPN). One task per connection; the router is shared.

use crate::idle::{Activity, Tracked};
use crate::service::Service;
use ferrocast_auth::admission::Admission;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

/// What every client connection of the HTTP listeners is held to.
#[derive(Debug, Clone)]
pub struct ConnPolicy {
    /// Open connections in total and per client address, shared by all HTTP listeners.
    pub admission: Arc<Admission>,
    /// A connection on which no bytes move either way for this long is closed.
    pub idle_timeout: Duration,
    /// HTTP/1.1 request headers must be complete within this, counted from when the
    /// connection opens or goes idle after a response (slowloris).
    pub header_timeout: Duration,
    /// TLS handshakes must complete within this.
    pub handshake_timeout: Duration,
}

/// Serves HTTP/1.1 and HTTP/2 on `listener` until `shutdown`; then stops accepting and gives
/// open connections `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    tls: Option<TlsAcceptor>,
    policy: ConnPolicy,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .max_buf_size(64 * 1024)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(policy.header_timeout);
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
        let metrics = service.metrics().clone();
        let slot = match policy.admission.admit(peer.ip()) {
            Ok(s) => s,
            Err(limit) => {
                // closed at once: a refused client costs nothing more
                metrics.refused.with_label_values(&[limit.label()]).inc();
                debug!(%peer, limit = limit.label(), "connection refused: limit reached");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        next += 1;
        let service = service.clone();
        let svc = service_fn(move |req: http::Request<Incoming>| {
            let service = service.clone();
            async move {
                if service.wants_body(req.uri().path()) {
                    let (head, body) = req.into_parts();
                    let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
                        body,
                        crate::ingest::MAX_BODY,
                    ))
                    .await
                    .ok()
                    .map(|b| b.to_bytes());
                    return Ok::<_, Infallible>(
                        service
                            .handle_body(
                                &head.method,
                                &head.uri,
                                head.version,
                                &head.headers,
                                body,
                                peer,
                            )
                            .await,
                    );
                }
                Ok::<_, Infallible>(
                    service
                        .handle(
                            req.method(),
                            req.uri(),
                            req.version(),
                            req.headers(),
                            Some(peer.ip()),
                        )
                        .await,
                )
            }
        });
        let span = tracing::debug_span!("http", conn = next, %peer, tls = tls.is_some());
        let graceful = graceful.watcher();
        let builder = builder.clone();
        let tls = tls.clone();
        let (idle, handshake) = (policy.idle_timeout, policy.handshake_timeout);
        tokio::spawn(
            async move {
                let _slot = slot;
                let activity = Activity::new();
                let served = async {
                    match tls {
                        None => {
                            #[cfg(target_os = "linux")]
                            let tcp = crate::memfile::SendfileTcp::new(
                                tcp,
                                metrics.sendfile_bytes.clone(),
                            );
                            let io = Tracked::new(tcp, activity.clone());
                            let conn = builder.serve_connection(TokioIo::new(io), svc);
                            graceful.watch(conn.into_owned()).await
                        }
                        Some(acceptor) => {
                            let io = Tracked::new(tcp, activity.clone());
                            let stream =
                                match tokio::time::timeout(handshake, acceptor.accept(io)).await {
                                    Ok(Ok(s)) => s,
                                    Ok(Err(e)) => {
                                        debug!(error = %e, "TLS handshake failed");
                                        return Ok(());
                                    }
                                    Err(_) => {
                                        debug!("TLS handshake timed out");
                                        return Ok(());
                                    }
                                };
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            graceful.watch(conn.into_owned()).await
                        }
                    }
                };
                tokio::select! {
                    result = served => if let Err(e) = result {
                        debug!(error = %e, "connection error");
                    },
                    _ = activity.expired(idle) => {
                        metrics.idle_closed.inc();
                        debug!("connection idle: closed");
                    }
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
