//! The HTTP/1.1 + HTTP/2 listener (hyper 1.x): cleartext (HTTP/2 with prior knowledge,
//! detected from the connection preface) or TLS (HTTP/2 or HTTP/1.1 by ALPN). One task per connection; the router is shared.

use crate::service::Service;
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

/// Serves HTTP/1.1 and HTTP/2 on `listener` until `shutdown`; then stops accepting and gives
/// open connections `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    grace: Duration,
) {
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
        let service = service.clone();
        let svc = service_fn(move |req: http::Request<Incoming>| {
            let service = service.clone();
            async move {
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
        tokio::spawn(
            async move {
                let result = match tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(tcp), svc);
                        graceful.watch(conn.into_owned()).await
                    }
                    Some(acceptor) => {
                        let stream = match tokio::time::timeout(
                            Duration::from_secs(10),
                            acceptor.accept(tcp),
                        )
                        .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => return debug!(error = %e, "TLS handshake failed"),
                            Err(_) => return debug!("TLS handshake timed out"),
                        };
                        let conn = builder.serve_connection(TokioIo::new(stream), svc);
                        graceful.watch(conn.into_owned()).await
                    }
                };
                if let Err(e) = result {
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
