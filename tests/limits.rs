//! Limits and timeouts on the real server: the publisher limit, the publish bitrate limit,
//! HTTP connections per client address, the idle timeout, slowloris headers and long URLs —
//! each while a healthy publisher and viewer carry on.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn publisher_limit() {
    let s = start_server("[limits]\nmax_publishers = 2\n").await;
    let rtmp = s.rtmp_addr.unwrap();
    let a = try_publish(rtmp, "a").await.expect("first");
    let _b = try_publish(rtmp, "b").await.expect("second");
    let why = try_publish(rtmp, "c").await.expect_err("third");
    assert!(why.contains("publisher limit"), "{why}");
    assert_eq!(
        metric(
            s.admin_addr,
            "ferrocast_ingest_rejected_total",
            &["max_publishers"]
        )
        .await,
        1.0
    );
    // a place frees when a publisher leaves
    a.close().await;
    eventually(
        "a publisher place frees",
        Duration::from_secs(5),
        || async { metric(s.admin_addr, "ferrocast_ingest_publishers", &[]).await == 1.0 },
    )
    .await;
    try_publish(rtmp, "c")
        .await
        .expect("accepted once a place is free");
    s.shutdown().await;
}

#[tokio::test]
async fn a_publisher_over_the_bitrate_limit_is_dropped_alone() {
    // the fixture is ~0.4 Mbit/s in real time; 1.5 Mbit/s over 1 s windows
    let s = start_server("[limits]\nmax_publish_kbps = 1500\nbitrate_window = \"1s\"\n").await;
    let rtmp = s.rtmp_addr.unwrap();
    let healthy = spawn_publish(rtmp, "healthy", SMALL, 1.0).await;
    let mut hog = Publisher::accepted(rtmp, "hog").await;
    // the same tags looped as fast as the socket takes them, until the server hangs up
    let tags = looped_tags(SMALL, 20, 10_000);
    let started = Instant::now();
    let mut dropped = false;
    for (kind, body, ts) in tags {
        if hog.send_tag(kind, body, ts).await.is_err() {
            dropped = true;
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    assert!(dropped || hog.closed_by_server(Duration::from_secs(3)).await);
    assert_eq!(
        metric(s.admin_addr, "ferrocast_ingest_errors_total", &["bitrate"]).await,
        1.0
    );
    // the healthy publisher's stream plays on
    wait_for_200(
        s.http_addr,
        "/live/healthy/video.m3u8",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        !healthy.is_finished(),
        "the paced publisher was not dropped"
    );
    healthy.abort();
    s.shutdown().await;
}

#[tokio::test]
async fn connections_per_address_are_bounded() {
    let s = start_server("[limits]\nmax_connections_per_ip = 4\n").await;
    let http = s.http_addr;
    let mut conns = Vec::new();
    for _ in 0..4 {
        let mut c = Conn::open(http).await;
        assert_eq!(c.get("/live/x/index.m3u8").await.status, 404);
        conns.push(c);
    }
    // the fifth is closed at once, before any request is read
    assert!(
        closed_unanswered(http, HTTP_GET, Duration::from_secs(5)).await,
        "no answer on a connection over the limit"
    );
    assert_eq!(http_refused(s.admin_addr, "per_ip").await, 1.0);
    // the admitted ones still work, and a closed one frees a place
    assert_eq!(conns[0].get("/live/x/index.m3u8").await.status, 404);
    drop(conns.pop());
    eventually(
        "a connection place frees",
        Duration::from_secs(5),
        || async { metric(s.admin_addr, "ferrocast_http_connections", &[]).await <= 3.0 },
    )
    .await;
    assert_eq!(get(http, "/live/x/index.m3u8").await.status, 404);
    s.shutdown().await;
}

#[tokio::test]
async fn idle_slow_and_oversized_requests_are_dropped() {
    // the idle timeout must outlast a blocking request: 3 × max_target_duration = 6 s
    let s = start_server(
        "[packager]\nmax_target_duration = \"2s\"\n[limits]\nhttp_idle_timeout = \"7s\"\nhttp_header_timeout = \"1s\"\n",
    )
    .await;
    let http = s.http_addr;
    let mut p = Publisher::accepted(s.rtmp_addr.unwrap(), "cam").await;
    p.send_flv(SMALL, None).await;
    wait_for_200(http, "/live/cam/video.m3u8", Duration::from_secs(10)).await;

    // slowloris: a request line and then one header byte every 200 ms
    let mut slow = TcpStream::connect(http).await.unwrap();
    slow.write_all(b"GET /live/cam/index.m3u8 HTTP/1.1\r\nx-slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let closed = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if slow.write_all(b"a").await.is_err() {
            break started.elapsed();
        }
        let mut b = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(_)) => break started.elapsed(), // an error response, then close
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "slowloris kept open"
        );
    };
    assert!(closed < Duration::from_secs(3), "{closed:?}");

    // an HTTP/2 connection that says nothing after its preface is closed after the idle
    // timeout
    let tcp = TcpStream::connect(http).await.unwrap();
    let (_sender, conn) =
        hyper::client::conn::http2::handshake::<_, _, http_body_util::Empty<bytes::Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(15), conn).await;
    assert!(r.is_ok(), "the idle HTTP/2 connection was never closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(6) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert_eq!(
        metric(
            s.admin_addr,
            "ferrocast_http_connections_idle_closed_total",
            &[]
        )
        .await,
        1.0
    );

    // an oversized URL
    let long = format!("/live/cam/{}/index.m3u8", "a".repeat(5000));
    assert_eq!(get(http, &long).await.status, 414);
    // and the stream was served all along
    assert_eq!(get(http, "/live/cam/video.m3u8").await.status, 200);
    p.close().await;
    s.shutdown().await;
}

#[tokio::test]
async fn rtmp_connections_per_address_and_http_connections_in_total_are_bounded() {
    let s = start_server("[limits]\nrtmp_connections_per_ip = 3\nmax_connections = 3\n").await;
    let (rtmp, http, admin) = (s.rtmp_addr.expect("rtmp"), s.http_addr, s.admin_addr);
    // RTMP: three publishers' connections are admitted (one publishes), the fourth is closed
    let publisher = Publisher::accepted(rtmp, "cam").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(rtmp).await.unwrap());
    }
    eventually("three RTMP connections", Duration::from_secs(5), || async {
        metric(admin, "ferrocast_ingest_connections", &[]).await == 3.0
    })
    .await;
    assert!(
        closed_unanswered(rtmp, &[], Duration::from_millis(500)).await,
        "the fourth RTMP connection is refused"
    );
    assert_eq!(
        metric(
            admin,
            "ferrocast_ingest_rejected_total",
            &["connections_per_ip"]
        )
        .await,
        1.0
    );
    drop(held.pop());
    eventually("an RTMP place frees", Duration::from_secs(5), || async {
        metric(admin, "ferrocast_ingest_connections", &[]).await == 2.0
    })
    .await;
    // a freed place admits again: a whole publish goes through
    let again = Publisher::accepted(rtmp, "cam2").await;
    again.close().await;
    publisher.close().await;

    // HTTP: three connections in total, whoever opens them
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut c = Conn::open(http).await;
        assert_eq!(c.get("/live/x/index.m3u8").await.status, 404);
        conns.push(c);
    }
    assert!(
        closed_unanswered(http, &[], Duration::from_millis(500)).await,
        "the fourth HTTP connection is refused"
    );
    assert_eq!(http_refused(admin, "total").await, 1.0);
    assert_eq!(conns[2].get("/live/x/index.m3u8").await.status, 404);
    drop(conns.pop());
    eventually("an HTTP place frees", Duration::from_secs(5), || async {
        metric(admin, "ferrocast_http_connections", &[]).await <= 2.0
    })
    .await;
    assert_eq!(get(http, "/live/x/index.m3u8").await.status, 404);
    s.shutdown().await;
}

/// The soft and hard "Max open files" of a process, from /proc.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let mut f = line["Max open files".len()..].split_whitespace();
    (f.next().unwrap().to_string(), f.next().unwrap().to_string())
}

#[tokio::test]
async fn the_server_raises_its_soft_open_file_limit_to_the_hard_one() {
    // started the way a shell or service manager often starts it: a soft limit of 256
    let (rtmp, http, admin) = (free_addr(), free_addr(), free_addr());
    let config = format!(
        "[rtmp]\nlisten = \"{rtmp}\"\n[http]\nlisten = \"{http}\"\n[https]\nenabled = false\n[admin]\nlisten = \"{admin}\"\n[log]\nlevel = \"info\"\n"
    );
    let process = Process::start_with_soft_nofile(&config, rtmp, http, admin, Some(256)).await;
    let (soft, hard) = open_file_limits(process.pid());
    assert_ne!(hard, "256", "the hard limit leaves nothing to raise");
    assert_eq!(soft, hard, "soft limit not raised:\n{}", process.log_tail());
    assert!(
        process.log().contains("raised the open-file limit"),
        "{}",
        process.log_tail()
    );
    assert_eq!(get(http, "/live/nope/video.m3u8").await.status, 404);
}
