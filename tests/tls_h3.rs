//! HTTPS (HTTP/2 and HTTP/1.1 by ALPN) and HTTP/3 (QUIC) on both roles, with real clients:
//! hyper over tokio-rustls, and quinn + h3, trusting the server's generated certificate.

mod common;

use bytes::Bytes;
use common::h3client::H3;
use common::*;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// GET over TLS with ALPN `h2` or `http/1.1`; returns the response and the version used.
async fn get_tls(
    addr: SocketAddr,
    cert: &Path,
    alpn: &'static [u8],
    path: &str,
) -> (HttpResponse, http::Version) {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(cert, &[alpn])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the generated certificate");
    let io = hyper_util::rt::TokioIo::new(tls);
    let req = http::Request::get(format!("https://localhost:{}{path}", addr.port()))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let resp = if alpn == b"h2" {
        let (mut s, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        s.send_request(req).await.unwrap()
    } else {
        let (mut s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        s.send_request(req).await.unwrap()
    };
    let v = resp.version();
    (HttpResponse::read(resp).await, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_http3_on_origin_and_edge() {
    let a = Node::origin();
    let edge = Node::edge(&[(a.http, a.admin)], "");
    let push = spawn_publish(a.rtmp.unwrap(), "secure", SMALL, 1.0).await;
    wait_for_200(a.http, "/live/secure/video.m3u8", Duration::from_secs(10)).await;
    for node in [&a, &edge] {
        let (https, h3, cert) = (
            node.https.unwrap(),
            node.h3.unwrap(),
            node.cert.clone().unwrap(),
        );
        assert_eq!(https.port(), h3.port());
        // HTTPS: HTTP/2 and HTTP/1.1 by ALPN, with Alt-Svc pointing at HTTP/3
        for (alpn, version) in [
            (&b"h2"[..], http::Version::HTTP_2),
            (&b"http/1.1"[..], http::Version::HTTP_11),
        ] {
            let (r, v) = get_tls(https, &cert, alpn, "/live/secure/index.m3u8").await;
            assert_eq!((r.status, v), (200, version));
            assert_eq!(
                r.headers.get("alt-svc").unwrap(),
                &format!("h3=\":{}\"; ma=86400", h3.port())
            );
            assert!(r.text().contains("#EXT-X-STREAM-INF"));
        }
        // plain HTTP does not advertise h3 (it is only usable for https origins)
        assert!(get(node.http, "/live/secure/index.m3u8")
            .await
            .headers
            .get("alt-svc")
            .is_none());

        // HTTP/3: playlist, a blocking reload for the next part, then that part
        let mut c = H3::connect(h3, &cert).await;
        let r = c.get("/live/secure/video.m3u8").await;
        assert_eq!(r.status, 200);
        assert!(r.headers.get("alt-svc").is_none());
        let (parts, _) = playlist_parts(&decoded(&r));
        let (m, i, _) = parts.last().cloned().unwrap();
        let r = c
            .get(&format!(
                "/live/secure/video.m3u8?_HLS_msn={m}&_HLS_part={}",
                i + 1
            ))
            .await;
        assert_eq!(r.status, 200);
        let (parts, _) = playlist_parts(&decoded(&r));
        let (m2, i2, uri) = parts.last().cloned().unwrap();
        assert!(
            (m2, i2) > (m, i),
            "blocking reload returned before the next part"
        );
        let part = c.get(&format!("/live/secure/{uri}")).await;
        assert_eq!(part.status, 200);
        let direct = get(a.http, &format!("/live/secure/{uri}")).await;
        assert_eq!(part.body, direct.body);
        assert!(part.body.len() > 100);
        let h3_requests = metric(
            node.admin,
            "ferrocast_http_requests_total",
            &["version=\"3\""],
        )
        .await;
        assert_eq!(h3_requests, 3.0);
        // a request whose FIN has not arrived when its answer is complete is stopped with
        // H3_NO_ERROR (RFC 9114 §4.1), not quinn's default code 0, which a client reports
        // as the request failing
        let (status, stopped) = c.get_unfinished("/live/secure/index.m3u8").await;
        assert_eq!(status, 200);
        assert!(
            ferrocast_loadgen::client::h3_no_error(&stopped),
            "stopped with {stopped}"
        );
    }
    push.await.unwrap();
}

#[tokio::test]
async fn http3_connections_count_against_the_shared_limits() {
    // two connections per address, HTTP/1.1, HTTP/2 and HTTP/3 together
    let s = start_server("[limits]\nmax_connections_per_ip = 2\n").await;
    let (h3, cert) = (s.h3_addr.expect("h3"), s.tls_cert.clone().expect("cert"));
    let mut first = H3::connect(h3, &cert).await;
    let mut second = H3::connect(h3, &cert).await;
    for c in [&mut first, &mut second] {
        assert_eq!(c.get("/live/x/index.m3u8").await.status, 404);
    }
    // a third QUIC connection is refused at its first packet
    let refused = H3::try_connect(h3, &cert).await;
    assert!(
        matches!(refused, Err(quinn::ConnectionError::ConnectionClosed(_))),
        "{:?}",
        refused.err()
    );
    assert_eq!(http_refused(s.admin_addr, "per_ip").await, 1.0);
    // and so is a TCP connection: the QUIC ones hold the address's places
    assert!(
        closed_unanswered(s.http_addr, HTTP_GET, Duration::from_secs(5)).await,
        "no answer over the limit"
    );
    // the admitted ones still work; closing one frees its place
    assert_eq!(first.get("/live/x/index.m3u8").await.status, 404);
    drop(second);
    eventually("a QUIC place frees", Duration::from_secs(10), || async {
        metric(s.admin_addr, "ferrocast_http_connections", &[]).await <= 1.0
    })
    .await;
    let mut third = H3::connect(h3, &cert).await;
    assert_eq!(third.get("/live/x/index.m3u8").await.status, 404);
    s.shutdown().await;
}
