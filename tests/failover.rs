//! Hitless origin failover: two origin processes fed the same live input, an edge in front of
//! them, 100 viewers reading through the edge; the primary origin is SIGKILLed mid-run. Every
//! viewer must go on taking every part once, in order, on one decode timeline, with no error.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_origin_is_invisible_to_viewers() {
    let (admin_a, admin_b) = (free_addr(), free_addr());
    let mut a = Process::origin(admin_a, &[admin_b]).await;
    let b = Process::origin(admin_b, &[admin_a]).await;
    let edge = Node::edge(&[(a.http, a.admin), (b.http, b.admin)], "");

    // one live input (the fixture looped, real time) written to both origins, as an encoder's
    // two outputs would; writes to the dead origin fail and are ignored
    let tags = looped_tags(SMALL, 3, 6000);
    let mut pa = Publisher::accepted(a.rtmp, "fo").await;
    let mut pb = Publisher::accepted(b.rtmp, "fo").await;
    let feed = tokio::spawn(async move {
        let start = Instant::now();
        let mut a_alive = true;
        for (kind, body, ts) in tags {
            tokio::time::sleep_until((start + Duration::from_millis(u64::from(ts))).into()).await;
            if a_alive && pa.send_tag(kind, body.clone(), ts).await.is_err() {
                a_alive = false;
            }
            pb.send_tag(kind, body, ts)
                .await
                .expect("origin B takes the input");
        }
        pb.close().await;
    });
    wait_for_200(edge.http, "/live/fo/audio.m3u8", Duration::from_secs(10)).await;

    let args = ferrocast_loadgen::Args {
        url: format!("http://{}/live/fo/index.m3u8", edge.http),
        viewers: 100,
        http: ferrocast_loadgen::client::Proto::H1,
        duration: 10,
        ramp: 1.0,
        warmup: 1.0,
        cafile: None,
        video_only: false,
        threads: 1,
        json: false,
    };
    let viewers = tokio::spawn(async move { ferrocast_loadgen::run(&args).await });
    // kill once the viewers are following the stream, inside the measured window (after the
    // 2 s ramp + warmup: 100 viewers make ~2,000 requests/s, so ~3 s into the run)
    eventually(
        "viewers getting parts through the edge",
        Duration::from_secs(8),
        || async { metric(edge.admin, "ferrocast_http_requests_total", &[]).await >= 6000.0 },
    )
    .await;
    let before_a = metric(
        edge.admin,
        "ferrocast_edge_upstream_requests_total",
        &["origin=\"o0\""],
    )
    .await;
    assert!(
        before_a > 100.0,
        "the edge was not using origin A ({before_a} requests)"
    );
    let killed = Instant::now();
    a.kill();
    // kill → the edge marks A down (a refused or reset request does it at once; the health
    // check within `health_fall` × `health_interval`)
    while metric(edge.admin, "ferrocast_edge_origin_up", &["origin=\"o0\""]).await != 0.0 {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "A never marked down"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let detect = killed.elapsed();

    let report = viewers.await.unwrap().expect("load generator");
    eprintln!("kill → origin A marked down: {detect:?}");
    eprintln!("{report:?}");
    assert_eq!(report.connected, 100);
    assert_eq!(report.error_total(), 0, "{:?}", report.errors);
    assert_eq!(
        (report.gaps, report.repeats, report.timeline_breaks),
        (0, 0, 0),
        "viewers skipped or repeated parts across the switch"
    );
    assert!(report.timeline_checked > 3000, "video timeline not checked");
    // 100 viewers × 2 renditions × 5 parts/s over the 8 s measured
    assert!(report.parts >= 6000, "{} parts", report.parts);
    assert!(metric(edge.admin, "ferrocast_edge_failovers_total", &[]).await >= 1.0);
    let from_b = metric(
        edge.admin,
        "ferrocast_edge_upstream_requests_total",
        &["origin=\"o1\""],
    )
    .await;
    assert!(from_b > 100.0, "origin B served {from_b} requests");
    feed.await.unwrap();
    drop(b);
}
