//! An HTTP/3 client for tests (quinn + h3), trusting the server's generated certificate.

use super::{client_tls, HttpResponse};
use bytes::{Buf, Bytes};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// An HTTP/3 client connection (quinn + h3).
pub struct H3 {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    authority: String,
    _endpoint: quinn::Endpoint,
}

impl H3 {
    pub async fn connect(addr: SocketAddr, cert: &Path) -> H3 {
        H3::try_connect(addr, cert).await.expect("QUIC handshake")
    }

    pub async fn try_connect(addr: SocketAddr, cert: &Path) -> Result<H3, quinn::ConnectionError> {
        let tls = client_tls(cert, &[b"h3"]);
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
        )));
        let conn = endpoint.connect(addr, "localhost").unwrap().await?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
            .await
            .unwrap();
        tokio::spawn(async move { driver.wait_idle().await });
        Ok(H3 {
            send,
            authority: format!("localhost:{}", addr.port()),
            _endpoint: endpoint,
        })
    }

    pub async fn get(&mut self, path: &str) -> HttpResponse {
        self.request("GET", path, &[("accept-encoding", "gzip")], Bytes::new())
            .await
    }

    /// One request with `body` (none when empty).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> HttpResponse {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.authority));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut stream = self
            .send
            .send_request(req.body(()).unwrap())
            .await
            .expect("h3 request");
        if !body.is_empty() {
            stream.send_data(body).await.expect("h3 request body");
        }
        // a server that has answered may stop the rest of the request with H3_NO_ERROR
        if let Err(e) = stream.finish().await {
            assert!(ferrocast_loadgen::client::h3_no_error(&e), "h3 finish: {e}");
        }
        let resp = stream.recv_response().await.expect("h3 response");
        assert_eq!(resp.version(), http::Version::HTTP_3);
        let mut body = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.expect("h3 body") {
            let n = chunk.remaining();
            body.extend_from_slice(&chunk.copy_to_bytes(n));
        }
        HttpResponse {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: Bytes::from(body),
        }
    }

    /// GETs `path` without finishing the request, reads the whole response, then writes to
    /// the request stream until the server's STOP_SENDING arrives: the status and the error
    /// the write failed with (within 5 s).
    pub async fn get_unfinished(&mut self, path: &str) -> (u16, h3::error::StreamError) {
        let req = http::Request::get(format!("https://{}{path}", self.authority))
            .body(())
            .unwrap();
        let mut stream = self.send.send_request(req).await.expect("h3 request");
        let resp = stream.recv_response().await.expect("h3 response");
        while stream.recv_data().await.expect("h3 body").is_some() {}
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if let Err(e) = stream.send_data(Bytes::from_static(b"x")).await {
                return (resp.status().as_u16(), e);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server never stopped the request stream"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
