//! The HTTP/3 listener (quinn + h3) serving the same router as the TCP listeners. A response
//! is its head, then one DATA frame per shared `Bytes` chunk (no copy).
//!
//! Known gap: h3 0.0.8 has no send-side prioritisation, so RFC 9218 `priority` request headers
//! are accepted but not acted on.

use crate::service::Service;
use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument};

/// Concurrent request streams per connection: each LL-HLS viewer holds a few blocked
/// requests (playlist reloads, hinted parts) per rendition.
const MAX_STREAMS: u32 = 256;

/// Binds the QUIC endpoint on `addr` (UDP).
pub fn bind(
    addr: SocketAddr,
    crypto: quinn::crypto::rustls::QuicServerConfig,
    idle_timeout: Duration,
) -> std::io::Result<quinn::Endpoint> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(MAX_STREAMS))
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(idle_timeout)
                .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::from_u32(60_000))),
        ));
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport));
    quinn::Endpoint::server(cfg, addr)
}

/// Serves HTTP/3 on `endpoint` until `shutdown`, then closes connections after `grace`.
pub async fn serve(
    endpoint: quinn::Endpoint,
    service: Arc<Service>,
    admission: Arc<ferrocast_auth::admission::Admission>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut next = 0u64;
    loop {
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        // only a validated address is counted against the limits: an unvalidated one may
        // be spoofed (one Initial packet per place taken), so it gets a Retry first
        if !incoming.remote_address_validated() {
            if let Err(e) = incoming.retry() {
                debug!(error = %e, "QUIC retry failed");
            }
            continue;
        }
        let metrics = service.metrics().clone();
        let slot = match admission.admit(incoming.remote_address().ip()) {
            Ok(s) => s,
            Err(limit) => {
                metrics.refused.with_label_values(&[limit.label()]).inc();
                debug!(peer = %incoming.remote_address(), limit = limit.label(), "QUIC connection refused: limit reached");
                incoming.refuse();
                continue;
            }
        };
        next += 1;
        let span = tracing::debug_span!("h3", conn = next, peer = %incoming.remote_address());
        let service = service.clone();
        tokio::spawn(
            async move {
                let _slot = slot;
                connection(incoming, service).await;
            }
            .instrument(span),
        );
    }
    endpoint.close(quinn::VarInt::from_u32(0x100), b"shutting down"); // H3_NO_ERROR
    let _ = tokio::time::timeout(grace, endpoint.wait_idle()).await;
}

async fn connection(incoming: quinn::Incoming, service: Arc<Service>) {
    let conn = match tokio::time::timeout(Duration::from_secs(10), incoming).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return debug!(error = %e, "QUIC handshake failed"),
        Err(_) => return debug!("QUIC handshake timed out"),
    };
    let peer = conn.remote_address();
    let mut h3c: h3::server::Connection<h3_quinn::Connection, Bytes> =
        match h3::server::Connection::new(h3_quinn::Connection::new(conn)).await {
            Ok(c) => c,
            Err(e) => return debug!(error = %e, "HTTP/3 setup failed"),
        };
    loop {
        match h3c.accept().await {
            Ok(Some(resolver)) => {
                let service = service.clone();
                tokio::spawn(
                    async move {
                        if let Err(e) = request(resolver, &service, peer).await {
                            if !e.is_h3_no_error() {
                                debug!(error = %e, "HTTP/3 request failed");
                            }
                        }
                    }
                    .in_current_span(),
                );
            }
            Ok(None) => break,
            Err(e) => {
                if !e.is_h3_no_error() {
                    debug!(error = %e, "HTTP/3 connection closed");
                }
                break;
            }
        }
    }
}

async fn request(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    service: &Service,
    peer: std::net::SocketAddr,
) -> Result<(), h3::error::StreamError> {
    let (req, mut stream) = resolver.resolve_request().await?;
    let resp = if service.wants_body(req.uri().path()) {
        let mut body = bytes::BytesMut::new();
        let mut fits = true;
        while let Some(mut chunk) = stream.recv_data().await? {
            use bytes::Buf;
            if body.len() + chunk.remaining() > crate::ingest::MAX_BODY {
                fits = false;
                break;
            }
            while chunk.has_remaining() {
                let c = chunk.chunk();
                body.extend_from_slice(c);
                let n = c.len();
                chunk.advance(n);
            }
        }
        service
            .handle_body(
                req.method(),
                req.uri(),
                http::Version::HTTP_3,
                req.headers(),
                fits.then(|| body.freeze()),
                peer,
            )
            .await
    } else {
        service
            .handle(
                req.method(),
                req.uri(),
                http::Version::HTTP_3,
                req.headers(),
                Some(peer.ip()),
            )
            .await
    };
    let (head, mut body) = resp.into_parts();
    stream
        .send_response(http::Response::from_parts(head, ()))
        .await?;
    while !body.is_end_stream() {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    stream.send_data(data).await?;
                }
            }
            Some(Err(e)) => match e {},
            None => break,
        }
    }
    let finished = stream.finish().await;
    // The response is complete, so whatever is left of the request is not needed (a GET's
    // FIN may still be on its way). Stop it with H3_NO_ERROR as RFC 9114 §4.1 asks: quinn's
    // default on drop is code 0, which a client writing its FIN (or h3's GREASE frame) after
    // our answer reports as the request failing.
    stream.stop_sending(h3::error::Code::H3_NO_ERROR);
    finished
}

/// Binds UDP on the TCP listener's port when the configured port was 0 (tests), so that the
/// `Alt-Svc` port is right for both.
pub fn same_port(tcp: SocketAddr, configured: SocketAddr) -> SocketAddr {
    if configured.port() == 0 {
        SocketAddr::new(configured.ip(), tcp.port())
    } else {
        configured
    }
}
