//! Publish and playback authorization on the real server: RTMP publishers presenting stream
//! keys, JWTs or nothing (and a real `on_publish` webhook deciding), and viewers fetching
//! with signed URL tokens in the path, the query or a bearer header — from an origin, and
//! through an edge whose cache stays shared between viewers with different tokens.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

const JWT_SECRET: &str = "jwt-secret-0123456789abcdef-0123456789";
const URL_SECRET: &str = "playback-secret-0123456789";

fn publish_config(extra: &str) -> String {
    format!(
        "[auth.publish]\nkeys = {{ cam = \"cam-key-123\" }}\njwt = true\n{extra}\n[auth.jwt]\nhs256_secret = \"{JWT_SECRET}\"\n"
    )
}

/// A publishing JWT (`"use": "publish"` unless `claims` says otherwise).
fn jwt(mut claims: serde_json::Value) -> String {
    if claims.get("use").is_none() {
        claims["use"] = "publish".into();
    }
    ferrocast_auth::jwt::sign(&claims, JWT_SECRET.as_bytes(), false).unwrap()
}

#[tokio::test]
async fn publishers_need_a_key_or_token() {
    let s = start_server(&publish_config("")).await;
    let rtmp = s.rtmp_addr.unwrap();
    let now = ferrocast_auth::unix_now();

    // refusals are RTMP errors naming no key or stream, and are counted by reason
    for (name, reason) in [
        ("cam", "missing"),
        ("cam?key=wrong-key", "wrong_key"),
        ("other?key=cam-key-123", "missing"),
    ] {
        let labels = ["deny", reason];
        let count = || metric(s.admin_addr, "ferrocast_auth_decisions_total", &labels);
        let before = count().await;
        let why = try_publish(rtmp, name).await.expect_err(name);
        assert!(
            why.contains("NetStream.Publish.Unauthorized"),
            "{name}: {why}"
        );
        assert!(!why.contains("cam-key"), "{why}");
        assert_eq!(count().await, before + 1.0, "{name}");
    }
    let expired = jwt(serde_json::json!({"stream": "cam", "exp": now - 120}));
    let why = try_publish(rtmp, &format!("cam?token={expired}"))
        .await
        .err()
        .unwrap();
    assert!(why.contains("token expired"), "{why}");
    let other = jwt(serde_json::json!({"stream": "dog", "exp": now + 60}));
    assert!(try_publish(rtmp, &format!("cam?token={other}"))
        .await
        .is_err());
    // a viewer's token, even one for every stream, does not publish
    let play = jwt(serde_json::json!({"stream": "*", "use": "play", "exp": now + 60}));
    let why = try_publish(rtmp, &format!("cam?token={play}"))
        .await
        .unwrap_err();
    assert!(why.contains("Unauthorized"), "{why}");
    assert_eq!(
        metric(
            s.admin_addr,
            "ferrocast_ingest_rejected_total",
            &["unauthorized"]
        )
        .await,
        6.0
    );
    // no stream came to exist from refused attempts
    assert_eq!(get(s.http_addr, "/live/cam/index.m3u8").await.status, 404);

    // the stream key: the stream goes live and plays
    let mut p = try_publish(rtmp, "cam?key=cam-key-123")
        .await
        .expect("key accepted");
    p.send_flv(SMALL, None).await;
    wait_for_200(s.http_addr, "/live/cam/video.m3u8", Duration::from_secs(10)).await;
    p.close().await;
    // a JWT for the stream, and one for every stream
    let t = jwt(serde_json::json!({"stream": "dog", "exp": now + 60}));
    let mut p = try_publish(rtmp, &format!("dog?token={t}"))
        .await
        .expect("jwt accepted");
    p.send_flv(SMALL, None).await;
    wait_for_200(s.http_addr, "/live/dog/video.m3u8", Duration::from_secs(10)).await;
    p.close().await;
    let any = jwt(serde_json::json!({"stream": "*", "exp": now + 60}));
    try_publish(rtmp, &format!("fox?token={any}"))
        .await
        .expect("wildcard jwt");
    assert_eq!(
        metric(
            s.admin_addr,
            "ferrocast_auth_decisions_total",
            &["allow", "jwt"]
        )
        .await,
        2.0
    );
    s.shutdown().await;
}

/// A real HTTP webhook that allows stream "ok" and refuses everything else, reporting each
/// request body.
async fn webhook(delay: Duration) -> (String, mpsc::Receiver<serde_json::Value>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/on_publish", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let tx = tx.clone();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        use http_body_util::BodyExt;
                        let body = req.into_body().collect().await?.to_bytes();
                        let v: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let allow = v["stream"] == "ok";
                        let _ = tx.send(v).await;
                        tokio::time::sleep(delay).await;
                        let status = if allow { 200 } else { 403 };
                        Ok::<_, hyper::Error>(
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc),
            );
        }
    });
    (url, rx)
}

#[tokio::test]
async fn the_webhook_decides_and_fails_closed() {
    let (url, mut asked) = webhook(Duration::ZERO).await;
    let s = start_server(&format!(
        "[auth.publish]\nwebhook = \"{url}\"\nwebhook_timeout = \"2s\"\n"
    ))
    .await;
    let rtmp = s.rtmp_addr.unwrap();
    let mut p = try_publish(rtmp, "ok?key=abc").await.expect("hook allows");
    let body = asked.recv().await.unwrap();
    assert_eq!(body["action"], "publish");
    assert_eq!(body["protocol"], "rtmp");
    assert_eq!(body["stream"], "ok");
    assert_eq!(body["key"], "abc");
    let client: SocketAddr = body["client_addr"].as_str().unwrap().parse().unwrap();
    assert!(client.ip().is_loopback());
    p.send_flv(SMALL, None).await;
    wait_for_200(s.http_addr, "/live/ok/video.m3u8", Duration::from_secs(10)).await;
    let why = try_publish(rtmp, "nope?key=abc").await.err().unwrap();
    assert!(why.contains("Unauthorized"), "{why}");
    assert_eq!(asked.recv().await.unwrap()["stream"], "nope");
    p.close().await;
    s.shutdown().await;

    // a hook slower than its timeout refuses, after the timeout and not before
    let (url, _asked) = webhook(Duration::from_secs(5)).await;
    let s = start_server(&format!(
        "[auth.publish]\nwebhook = \"{url}\"\nwebhook_timeout = \"400ms\"\n"
    ))
    .await;
    let started = std::time::Instant::now();
    let why = try_publish(s.rtmp_addr.unwrap(), "ok").await.err().unwrap();
    let waited = started.elapsed();
    assert!(why.contains("authorization unavailable"), "{why}");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        metric(
            s.admin_addr,
            "ferrocast_auth_decisions_total",
            &["deny", "webhook_error"]
        )
        .await,
        1.0
    );
    s.shutdown().await;
}

fn signer() -> ferrocast_auth::signed::UrlSigner {
    ferrocast_auth::signed::UrlSigner::new(URL_SECRET.as_bytes()).unwrap()
}

/// The first part URI of a media playlist.
fn first_part(text: &str) -> String {
    let (parts, _) = playlist_parts(text);
    parts.first().expect("a part").2.clone()
}

#[tokio::test]
async fn viewers_need_a_signed_url() {
    let s = start_server(&format!("[auth.playback]\nsecret = \"{URL_SECRET}\"\n")).await;
    let http = s.http_addr;
    let mut p = Publisher::accepted(s.rtmp_addr.unwrap(), "cam").await;
    p.send_flv(SMALL, None).await;
    let now = ferrocast_auth::unix_now();
    let t = signer().sign("/live/cam/", now + 60, None);
    let base = format!("/live/cam/{t}");
    let video = wait_for_200(http, &format!("{base}/video.m3u8"), Duration::from_secs(10)).await;

    // without a valid token: 403, the same bare answer whatever the reason, even for a
    // stream that does not exist
    let expired = signer().sign("/live/cam/", now - 1, None);
    let other = signer().sign("/live/dog/", now + 60, None);
    let forged = ferrocast_auth::signed::UrlSigner::new(b"not the secret at all")
        .unwrap()
        .sign("/live/cam/", now + 60, None);
    let bound = signer().sign("/live/cam/", now + 60, Some("192.0.2.1".parse().unwrap()));
    for path in [
        "/live/cam/index.m3u8".to_string(),
        "/live/cam/video.m3u8".to_string(),
        "/live/nothing/index.m3u8".to_string(),
        format!("/live/cam/{expired}/index.m3u8"),
        format!("/live/cam/{other}/index.m3u8"),
        format!("/live/cam/{forged}/index.m3u8"),
        format!("/live/cam/{bound}/index.m3u8"),
        "/live/cam/garbage/index.m3u8".to_string(),
        format!("/live/cam/video.m3u8?token={expired}"),
    ] {
        let r = get(http, &path).await;
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.text(), "forbidden\n", "{path}");
        assert_eq!(r.headers["cache-control"], "no-store", "{path}");
    }

    // with one: every object, through the relative URIs the playlists carry
    let index = get(http, &format!("{base}/index.m3u8")).await;
    assert_eq!(index.status, 200);
    assert!(index.text().contains("video.m3u8"));
    let part = first_part(&video.text());
    let r = get(http, &format!("{base}/{part}")).await;
    assert_eq!(r.status, 200, "{part}");
    assert!(!r.body.is_empty());
    // a blocking reload keeps its directives
    let r = get(http, &format!("{base}/video.m3u8?_HLS_msn=0&_HLS_part=0")).await;
    assert_eq!(r.status, 200);
    // the query and a bearer header work too (that request only)
    let r = get(http, &format!("/live/cam/audio.m3u8?token={t}")).await;
    assert_eq!(r.status, 200);
    let bearer = format!("Bearer {t}");
    let r = get_with(http, "/live/cam/index.m3u8", &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200);
    // a token bound to the viewer's address, and one for every stream
    let mine = signer().sign("/live/cam/", now + 60, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(
        get(http, &format!("/live/cam/{mine}/index.m3u8"))
            .await
            .status,
        200
    );
    let all = signer().sign("/live/", now + 60, None);
    assert_eq!(
        get(http, &format!("/live/cam/{all}/index.m3u8"))
            .await
            .status,
        200
    );
    // the admin listener is not affected
    assert_eq!(get(s.admin_addr, "/metrics").await.status, 200);
    assert!(
        metric(
            s.admin_addr,
            "ferrocast_auth_decisions_total",
            &["playback", "deny", "expired"]
        )
        .await
            >= 2.0
    );
    p.close().await;
    s.shutdown().await;
}

#[tokio::test]
async fn edges_check_tokens_and_share_their_cache() {
    let auth = format!("[auth.playback]\nsecret = \"{URL_SECRET}\"\n");
    let (origin, edge) = Node::origin_and_edge(&auth);
    let mut p = Publisher::accepted(origin.rtmp.unwrap(), "cam").await;
    p.send_flv(SMALL, None).await;
    let now = ferrocast_auth::unix_now();
    // two viewers with their own tokens
    let a = signer().sign("/live/cam/", now + 60, None);
    let b = signer().sign("/live/cam/", now + 120, Some("127.0.0.1".parse().unwrap()));
    assert_ne!(a, b);
    let video = wait_for_200(
        edge.http,
        &format!("/live/cam/{a}/video.m3u8"),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(get(edge.http, "/live/cam/video.m3u8").await.status, 403);
    // the origin refuses requests without a token: the edge's own requests carry one
    assert_eq!(get(origin.http, "/live/cam/video.m3u8").await.status, 403);
    let part = first_part(&video.text());
    let before = metric(
        origin.admin,
        "ferrocast_http_requests_total",
        &["route=\"part\""],
    )
    .await;
    for t in [&a, &b, &a] {
        let r = get(edge.http, &format!("/live/cam/{t}/{part}")).await;
        assert_eq!(r.status, 200);
    }
    let after = metric(
        origin.admin,
        "ferrocast_http_requests_total",
        &["route=\"part\""],
    )
    .await;
    assert!(
        after - before <= 1.0,
        "one upstream request for the part whatever the viewers' tokens ({before} → {after})"
    );
    assert_eq!(
        metric(
            origin.admin,
            "ferrocast_http_requests_total",
            &["route=\"part\"", "status=\"403\""]
        )
        .await,
        0.0
    );
    p.close().await;
    edge.stop();
    origin.stop();
}

#[tokio::test]
async fn a_relay_passes_the_publishers_key_on() {
    let keys = "[auth.publish]\nkeys = { \"*\" = \"studio-key-1\" }\n";
    let b = Node::origin_with(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        &[],
        keys,
    );
    let a = Node::origin_with(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        &[],
        &format!(
            "{keys}[relay]\ntargets = [\"rtmp://{}/live\"]\nbackoff_min = \"100ms\"\nbackoff_max = \"400ms\"\n",
            b.rtmp.unwrap()
        ),
    );
    let task = spawn_publish(a.rtmp.unwrap(), "cam?key=studio-key-1", SMALL, 4.0).await;
    // B let the relay in on the publisher's key: the stream plays there too
    wait_for_200(b.http, "/live/cam/video.m3u8", Duration::from_secs(15)).await;
    assert_eq!(
        metric(b.admin, "ferrocast_auth_decisions_total", &["allow", "key"]).await,
        1.0
    );
    task.abort();
    a.stop();
    b.stop();
}
