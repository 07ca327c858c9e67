//! One viewer connection over HTTP/1.1, HTTP/2 (cleartext h2c or TLS with ALPN) or HTTP/3.

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

/// HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// HTTP/1.1 (one keep-alive connection per rendition, as browsers open several).
    #[value(name = "1.1")]
    H1,
    /// HTTP/2 (one connection per viewer).
    #[value(name = "2")]
    H2,
    /// HTTP/3 (one QUIC connection per viewer).
    #[value(name = "3")]
    H3,
}

/// Where to connect, with everything per-connection setup needs decided once per run.
#[derive(Clone)]
pub struct Target {
    /// Socket address (loopback).
    pub addr: SocketAddr,
    /// `host[:port]` for the Host header.
    pub authority: String,
    /// `scheme://authority`, prefixed to paths for HTTP/2 and HTTP/3 (`:scheme`, `:authority`).
    pub origin: String,
    /// The TLS name to verify (the URL's host).
    pub server_name: ServerName<'static>,
    /// TLS over TCP with the ALPN of the run's protocol (https URLs); `None` for cleartext.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// QUIC with ALPN h3 (HTTP/3 runs).
    pub quic: Option<quinn::ClientConfig>,
}

impl Target {
    /// A target for `proto`: `tls` is the verified-roots config for https URLs (`None` for
    /// http), `host` the URL's host (brackets of an IPv6 literal removed).
    pub fn new(
        proto: Proto,
        addr: SocketAddr,
        authority: String,
        host: &str,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<Self> {
        let with_alpn = |mut c: rustls::ClientConfig, alpn: &[u8]| {
            c.alpn_protocols = vec![alpn.to_vec()];
            c
        };
        let (tls, quic) = match (tls, proto) {
            (None, Proto::H3) => bail!("HTTP/3 needs an https URL"),
            (None, _) => (None, None),
            (Some(c), Proto::H3) => {
                let crypto =
                    quinn::crypto::rustls::QuicClientConfig::try_from(with_alpn(c, b"h3"))?;
                (None, Some(quinn::ClientConfig::new(Arc::new(crypto))))
            }
            (Some(c), Proto::H2) => (Some(Arc::new(with_alpn(c, b"h2"))), None),
            (Some(c), Proto::H1) => (Some(Arc::new(with_alpn(c, b"http/1.1"))), None),
        };
        let scheme = if tls.is_some() || quic.is_some() {
            "https"
        } else {
            "http"
        };
        Ok(Self {
            addr,
            origin: format!("{scheme}://{authority}"),
            authority,
            server_name: ServerName::try_from(host.to_string())?,
            tls,
            quic,
        })
    }
}

/// A response: its body, or (for [`Keep::Head`]) the start of its body.
pub struct Response {
    /// Status.
    pub status: u16,
    /// `ferrocast-published-us` (parts).
    pub published_us: Option<i64>,
    /// Content-Encoding is gzip.
    pub gzip: bool,
    /// Body, or as much of its start as was kept.
    pub body: Bytes,
    /// Length of the whole body, every byte of which was received.
    pub len: usize,
}

/// How much of a response body to keep: every byte is read either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The whole body (playlists).
    All,
    /// The chunks that arrive until at least this many bytes are kept (a part's `moof`
    /// comes first: the rest is counted and dropped, never joined into one buffer).
    Head(usize),
}

/// Gathers a body's chunks as [`Keep`] says.
struct Gather {
    keep: Keep,
    kept: Vec<Bytes>,
    kept_len: usize,
    len: usize,
}

impl Gather {
    fn new(keep: Keep) -> Self {
        Self {
            keep,
            kept: Vec::new(),
            kept_len: 0,
            len: 0,
        }
    }

    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        let full = matches!(self.keep, Keep::Head(n) if self.kept_len >= n);
        if !full && !chunk.is_empty() {
            self.kept_len += chunk.len();
            self.kept.push(chunk);
        }
    }

    fn finish(mut self) -> (Bytes, usize) {
        let body = if self.kept.len() == 1 {
            self.kept.pop().unwrap_or_default()
        } else {
            Bytes::from(self.kept.concat())
        };
        (body, self.len)
    }
}

/// An open connection.
pub enum Conn {
    /// HTTP/1.1.
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    /// HTTP/2.
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
    /// HTTP/3.
    H3(h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>),
}

impl Conn {
    /// Opens a connection. HTTP/3 uses `endpoint`.
    pub async fn open(
        proto: Proto,
        t: &Target,
        endpoint: Option<&quinn::Endpoint>,
    ) -> Result<Conn> {
        if proto == Proto::H3 {
            let cfg = t
                .quic
                .clone()
                .ok_or_else(|| anyhow!("HTTP/3 needs an https URL"))?;
            let endpoint = endpoint.ok_or_else(|| anyhow!("no QUIC endpoint"))?;
            let conn = endpoint
                .connect_with(cfg, t.addr, &t.server_name.to_str())?
                .await
                .context("QUIC handshake")?;
            let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
            tokio::spawn(async move { driver.wait_idle().await });
            return Ok(Conn::H3(send));
        }
        let tcp = TcpStream::connect(t.addr).await.context("connect")?;
        tcp.set_nodelay(true)?;
        match &t.tls {
            None => Self::handshake(proto, TokioIo::new(tcp)).await,
            Some(tls) => {
                let s = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(t.server_name.clone(), tcp)
                    .await
                    .context("TLS handshake")?;
                Self::handshake(proto, TokioIo::new(s)).await
            }
        }
    }

    async fn handshake<I>(proto: Proto, io: TokioIo<I>) -> Result<Conn>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        Ok(match proto {
            Proto::H1 => {
                let (s, c) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(c);
                Conn::H1(s)
            }
            _ => {
                let (s, c) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(c);
                Conn::H2(s)
            }
        })
    }

    /// A clone sharing the connection (HTTP/2 and HTTP/3 multiplex; `None` for HTTP/1.1).
    pub fn share(&self) -> Option<Conn> {
        match self {
            Conn::H1(_) => None,
            Conn::H2(s) => Some(Conn::H2(s.clone())),
            Conn::H3(s) => Some(Conn::H3(s.clone())),
        }
    }

    /// GET `path`, asking for gzip; keeps the body as `keep` says.
    pub async fn get(&mut self, t: &Target, path: &str, keep: Keep) -> Result<Response> {
        let uri = || format!("{}{path}", t.origin);
        let head = |b: http::request::Builder| b.header("accept-encoding", "gzip");
        let resp = match self {
            Conn::H1(s) => {
                s.ready().await?;
                let req = head(http::Request::get(path).header("host", &t.authority))
                    .body(Empty::new())?;
                hyper_response(s.send_request(req).await?, keep).await?
            }
            Conn::H2(s) => {
                s.ready().await?;
                let req = head(http::Request::get(uri())).body(Empty::new())?;
                hyper_response(s.send_request(req).await?, keep).await?
            }
            Conn::H3(s) => {
                let req = head(http::Request::get(uri())).body(())?;
                let mut stream = s.send_request(req).await?;
                // a server that has answered may stop the rest of the request with
                // H3_NO_ERROR; the response still counts (RFC 9114 §4.1)
                if let Err(e) = stream.finish().await {
                    if !h3_no_error(&e) {
                        return Err(e.into());
                    }
                }
                let r = stream.recv_response().await?;
                let mut body = Gather::new(keep);
                while let Some(mut c) = stream.recv_data().await? {
                    let n = c.remaining();
                    body.push(c.copy_to_bytes(n));
                }
                response(r.status().as_u16(), r.headers(), body)
            }
        };
        Ok(resp)
    }
}

/// The error ends a stream with H3_NO_ERROR, however it arrived (`StreamError::is_h3_no_error`
/// in h3 0.0.8 misses a peer's STOP_SENDING or RESET_STREAM carrying it).
pub fn h3_no_error(e: &h3::error::StreamError) -> bool {
    matches!(e, h3::error::StreamError::RemoteTerminate { code, .. } if *code == h3::error::Code::H3_NO_ERROR)
        || e.is_h3_no_error()
}

async fn hyper_response(r: http::Response<hyper::body::Incoming>, keep: Keep) -> Result<Response> {
    let (head, mut incoming) = r.into_parts();
    let mut body = Gather::new(keep);
    while let Some(frame) = incoming.frame().await {
        if let Ok(data) = frame?.into_data() {
            body.push(data);
        }
    }
    Ok(response(head.status.as_u16(), &head.headers, body))
}

fn response(status: u16, h: &http::HeaderMap, body: Gather) -> Response {
    let (body, len) = body.finish();
    Response {
        len,
        status,
        published_us: h
            .get("ferrocast-published-us")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
        gzip: h
            .get("content-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip")),
        body,
    }
}

/// Turns playlist bodies into text, reusing one gzip decoder (its inflate state is sizeable:
/// allocating one per playlist would make the generator, not the server, the bottleneck).
#[derive(Default)]
pub struct TextDecoder {
    gz: Option<flate2::read::GzDecoder<std::io::Cursor<Bytes>>>,
    out: String,
}

impl TextDecoder {
    /// The body as text, gunzipped when needed.
    pub fn text(&mut self, r: &Response) -> Result<&str> {
        use std::io::Read;
        self.out.clear();
        if r.gzip {
            let input = std::io::Cursor::new(r.body.clone());
            let gz = match &mut self.gz {
                Some(gz) => {
                    gz.reset(input);
                    gz
                }
                None => self.gz.insert(flate2::read::GzDecoder::new(input)),
            };
            gz.read_to_string(&mut self.out)?;
        } else {
            self.out.push_str(std::str::from_utf8(&r.body)?);
        }
        Ok(&self.out)
    }
}

/// Fails unless `status` is 200.
pub fn ok(r: &Response, what: &str) -> Result<()> {
    if r.status != 200 {
        bail!("{what}: HTTP {}", r.status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_keeps_the_head_and_counts_every_byte() {
        let chunks = || [&[1u8; 3000][..], &[2; 3000], &[3; 3000]].map(Bytes::copy_from_slice);
        let mut head = Gather::new(Keep::Head(4096));
        chunks().into_iter().for_each(|c| head.push(c));
        let (body, len) = head.finish();
        assert_eq!((body.len(), len), (6000, 9000));
        assert_eq!(&body[2999..3001], &[1, 2]);
        let mut all = Gather::new(Keep::All);
        chunks().into_iter().for_each(|c| all.push(c));
        assert_eq!(all.finish().0.len(), 9000);
        let mut none = Gather::new(Keep::Head(0));
        chunks().into_iter().for_each(|c| none.push(c));
        assert_eq!(none.finish(), (Bytes::new(), 9000));
    }
}
