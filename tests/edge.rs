//! The edge role end to end: origins and an edge as separate nodes (each on its own runtime)
//! on loopback, a real RTMP publisher, many viewers through the edge.

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What one viewer saw of one rendition.
#[derive(Default)]
struct Seen {
    parts: Vec<(u64, u32)>,
    /// Every request target it sent.
    targets: Vec<String>,
    /// part URI → body length and a checksum
    bodies: HashMap<String, (usize, u64)>,
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100000001b3)
    })
}

/// A viewer of one rendition that behaves like hls.js in low-latency mode: one plain playlist
/// load, start at the live edge, then blocking reloads for the next part and a GET of every
/// new part, until ENDLIST.
async fn follow(edge: SocketAddr, base: &str, rendition: &str) -> Seen {
    let mut conn = Conn::open(edge).await;
    let mut seen = Seen::default();
    let playlist = format!("{base}/{rendition}.m3u8");
    seen.targets.push(playlist.clone());
    let first = conn.get(&playlist).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let (parts, mut ended) = playlist_parts(&decoded(&first));
    let mut last = parts
        .last()
        .map(|p| (p.0, p.1))
        .expect("live playlist has parts");
    // start with the newest part, like a player joining at the edge
    let mut pending: Vec<(u64, u32, String)> = parts.last().cloned().into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (m, i, uri) in pending.drain(..) {
            let target = format!("{base}/{uri}");
            let r = conn.get(&target).await;
            assert_eq!(r.status, 200, "{target}: {}", r.text());
            assert!(r.headers.contains_key("ferrocast-published-us"));
            seen.bodies.insert(uri, (r.body.len(), checksum(&r.body)));
            seen.targets.push(target);
            seen.parts.push((m, i));
        }
        if ended {
            return seen;
        }
        assert!(Instant::now() < deadline, "viewer did not reach ENDLIST");
        let target = format!("{playlist}?_HLS_msn={}&_HLS_part={}", last.0, last.1 + 1);
        let r = conn.get(&target).await;
        seen.targets.push(target.clone());
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        let (parts, e) = playlist_parts(&decoded(&r));
        ended = e;
        pending = parts.into_iter().filter(|p| (p.0, p.1) > last).collect();
        if let Some(p) = pending.last() {
            last = (p.0, p.1);
        }
    }
}

/// Parts must follow each other: the next index, or index 0 of the next segment.
fn assert_in_order(parts: &[(u64, u32)]) {
    for w in parts.windows(2) {
        let ((m0, i0), (m1, i1)) = (w[0], w[1]);
        assert!(
            (m1 == m0 && i1 == i0 + 1) || (m1 == m0 + 1 && i1 == 0),
            "part {m1}.{i1} after {m0}.{i0}"
        );
    }
}

async fn route_requests(admin: SocketAddr, route: &str) -> f64 {
    metric(
        admin,
        "ferrocast_http_requests_total",
        &[&format!("route=\"{route}\"")],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_viewers_through_an_edge_cost_one_upstream_request_per_object() {
    let a = Node::origin();
    let b = Node::origin();
    let edge = Node::edge(&[(a.http, a.admin), (b.http, b.admin)], "");
    let push = spawn_publish(a.rtmp.unwrap(), "crowd", SMALL, 1.0).await;
    // the stream is live at the origin (its own clients, counted before the viewers start)
    wait_for_200(a.http, "/live/crowd/video.m3u8", Duration::from_secs(10)).await;
    wait_for_200(a.http, "/live/crowd/audio.m3u8", Duration::from_secs(10)).await;
    let before: BTreeMap<&str, f64> = {
        let mut m = BTreeMap::new();
        for r in ["playlist", "part", "init", "segment", "multivariant"] {
            m.insert(r, route_requests(a.admin, r).await);
        }
        m
    };
    let before_ok_parts = metric(
        a.admin,
        "ferrocast_http_requests_total",
        &["route=\"part\"", "status=\"200\""],
    )
    .await;
    let edge_http = edge.http;
    let mut viewers = tokio::task::JoinSet::new();
    for _ in 0..200 {
        for rendition in ["video", "audio"] {
            viewers.spawn(
                async move { (rendition, follow(edge_http, "/live/crowd", rendition).await) },
            );
        }
    }
    let mut seen = Vec::new();
    while let Some(r) = viewers.join_next().await {
        seen.push(r.expect("viewer"));
    }
    push.await.unwrap();

    // every viewer got every part from where it joined, in order, with the same bytes
    let mut bodies: HashMap<String, (usize, u64)> = HashMap::new();
    let mut targets: HashSet<String> = HashSet::new();
    let mut requests = 0usize;
    for (rendition, s) in &seen {
        assert!(
            s.parts.len() >= 10,
            "{rendition} viewer saw only {} parts",
            s.parts.len()
        );
        assert_in_order(&s.parts);
        for (uri, b) in &s.bodies {
            assert!(b.0 > 0);
            let prev = bodies.entry(uri.clone()).or_insert(*b);
            assert_eq!(prev, b, "{uri} differs between viewers");
        }
        requests += s.targets.len();
        targets.extend(s.targets.iter().cloned());
    }
    let distinct = |suffix: fn(&str) -> bool| targets.iter().filter(|t| suffix(t)).count() as f64;
    let part_keys = distinct(|t| t.ends_with(".m4s"));
    let blocking_keys = distinct(|t| t.contains("_HLS_msn="));
    let after = |r: &'static str| {
        let b = before[r];
        async move { route_requests(a.admin, r).await - b }
    };
    // parts are immutable: exactly one successful origin request per distinct part. The edge
    // also prefetches preload-hinted parts; a hint for a part that the segment's end made
    // moot costs at most one wasted request per segment and rendition (answered 404), and so
    // does, once per rendition, the hint that the end of the publish made moot: the origin then
    // fills its reconnect grace with GAP parts, whose hints the edge does not prefetch
    let ok_parts = metric(
        a.admin,
        "ferrocast_http_requests_total",
        &["route=\"part\"", "status=\"200\""],
    )
    .await
        - before_ok_parts;
    assert_eq!(ok_parts, part_keys, "successful origin part requests");
    let segments: HashSet<(&str, u64)> = seen
        .iter()
        .flat_map(|(r, s)| s.parts.iter().map(move |p| (*r, p.0)))
        .collect();
    let wasted = after("part").await - ok_parts;
    assert!(
        wasted <= (segments.len() + 2) as f64,
        "{wasted} hinted prefetches wasted for {} segments",
        segments.len()
    );
    assert!(metric(edge.admin, "ferrocast_edge_prefetches_total", &[]).await > 0.0);
    // playlists: one per distinct blocking position; plain (tune-in) playlists are
    // `no-cache`, so they are coalesced but never stored: at most one per viewer request
    let playlists = after("playlist").await;
    let plain_requests = seen.len() as f64; // one per viewer and rendition
    assert!(
        playlists >= blocking_keys && playlists <= blocking_keys + plain_requests,
        "origin playlist requests {playlists}, distinct blocking {blocking_keys}"
    );
    assert_eq!(after("segment").await, 0.0);
    // the second origin was never needed
    assert_eq!(route_requests(b.admin, "part").await, 0.0);
    let coalesced = metric(edge.admin, "ferrocast_edge_coalesced_waits_total", &[]).await;
    let hits = metric(edge.admin, "ferrocast_edge_cache_hits_total", &[]).await;
    let upstream = metric(edge.admin, "ferrocast_edge_upstream_requests_total", &[]).await;
    assert!(coalesced + hits > 0.0);
    eprintln!(
        "{requests} viewer requests, {upstream} upstream ({:.1}x), {hits} hits, {coalesced} coalesced, {wasted} wasted prefetches for {} segments",
        requests as f64 / upstream,
        segments.len()
    );
    // nothing left waiting
    let (_, fills) = edge.edge.as_ref().unwrap().cache().counts();
    assert_eq!(fills, 0);
}

/// Audio and video frames (not sequence headers) in an FLV file.
fn fixture_frames(path: &str) -> f64 {
    use ferrocast_media::flv::{
        parse_audio, parse_video, read_file, AudioTag, FlvTagKind, VideoTag,
    };
    let file = bytes::Bytes::from(std::fs::read(path).unwrap());
    read_file(&file)
        .unwrap()
        .iter()
        .filter(|t| match t.kind {
            FlvTagKind::Video => matches!(parse_video(&t.body), Ok(VideoTag::AvcFrame { .. })),
            FlvTagKind::Audio => matches!(parse_audio(&t.body), Ok(AudioTag::AacFrame(_))),
            FlvTagKind::Script => false,
        })
        .count() as f64
}

/// A stream that is live but paused: everything of the fixture sent at once, the publisher
/// still connected, so the next part never comes.
async fn paused_stream(origin: &Node, name: &str) -> (Publisher, (u64, u32)) {
    let mut p = Publisher::accepted(origin.rtmp.unwrap(), name).await;
    p.send_flv(SMALL, None).await;
    // every frame ingested: the playlist will not move again
    let frames = fixture_frames(SMALL);
    let label = format!("stream=\"{name}\"");
    eventually(
        "the whole fixture is ingested",
        Duration::from_secs(10),
        || async {
            metric(origin.admin, "ferrocast_ingest_frames_total", &[&label]).await == frames
        },
    )
    .await;
    let path = format!("/live/{name}/video.m3u8");
    let r = wait_for_200(origin.http, &path, Duration::from_secs(10)).await;
    let (parts, _) = playlist_parts(&r.text());
    let last = parts.last().map(|p| (p.0, p.1)).unwrap();
    (p, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_leaves_mid_wait_frees_the_fill_and_the_origin_request() {
    let a = Node::origin();
    let edge = Node::edge(&[(a.http, a.admin)], "");
    let (_publisher, (m, i)) = paused_stream(&a, "paused").await;
    for version in ["1.1", "2"] {
        let target = format!("/live/paused/video.m3u8?_HLS_msn={m}&_HLS_part={}", i + 1);
        let waiting = tokio::spawn({
            let edge = edge.http;
            let target = target.clone();
            async move {
                if version == "2" {
                    get_h2(edge, &target).await
                } else {
                    Conn::open(edge).await.get(&target).await
                }
            }
        });
        eventually(
            "the edge holds one fill open at the origin",
            Duration::from_secs(5),
            || async {
                metric(a.admin, "ferrocast_http_blocking_requests_in_flight", &[]).await == 1.0
                    && metric(edge.admin, "ferrocast_edge_fills_in_flight", &[]).await == 1.0
            },
        )
        .await;
        // the viewer goes away (its connection closes)
        waiting.abort();
        let _ = waiting.await;
        // well before the origin's own 3 × TD (6 s) timeout, everything is released
        let left = Instant::now();
        eventually(
            "the fill and the origin request are released",
            Duration::from_secs(3),
            || async {
                metric(a.admin, "ferrocast_http_blocking_requests_in_flight", &[]).await == 0.0
                    && metric(edge.admin, "ferrocast_edge_fills_in_flight", &[]).await == 0.0
            },
        )
        .await;
        assert_eq!(
            edge.edge.as_ref().unwrap().cache().counts().1,
            0,
            "HTTP/{version}"
        );
        eprintln!(
            "HTTP/{version}: released {:?} after the viewer left",
            left.elapsed()
        );
    }
    assert_eq!(
        metric(edge.admin, "ferrocast_edge_fills_abandoned_total", &[]).await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_the_cache_under_its_budget() {
    let a = Node::origin();
    let budget = 96 * 1024;
    let edge = Node::edge(&[(a.http, a.admin)], "cache_size = \"96KiB\"");
    let push = spawn_publish(a.rtmp.unwrap(), "small", SMALL, 2.0).await;
    wait_for_200(a.http, "/live/small/video.m3u8", Duration::from_secs(10)).await;
    let cache = edge.edge.as_ref().unwrap().cache().clone();
    let sampler = tokio::spawn(async move {
        let mut max = 0;
        for _ in 0..2000 {
            max = max.max(cache.bytes());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        max
    });
    let mut viewers = tokio::task::JoinSet::new();
    for _ in 0..10 {
        for rendition in ["video", "audio"] {
            let e = edge.http;
            viewers.spawn(async move { follow(e, "/live/small", rendition).await });
        }
    }
    while let Some(s) = viewers.join_next().await {
        let s = s.unwrap();
        assert!(s.parts.len() >= 5);
        assert_in_order(&s.parts);
    }
    push.await.unwrap();
    // every segment, fetched after the fact, still comes whole through a full cache
    let r = get(a.http, "/live/small/video.m3u8").await;
    for line in media_segment_uris(&r.text()) {
        let via_edge = get(edge.http, &format!("/live/small/{line}")).await;
        let direct = get(a.http, &format!("/live/small/{line}")).await;
        assert_eq!(via_edge.status, 200);
        assert_eq!(via_edge.body, direct.body);
    }
    let max = sampler.await.unwrap();
    let evicted = metric(
        edge.admin,
        "ferrocast_edge_cache_evictions_total",
        &["reason=\"budget\""],
    )
    .await;
    eprintln!("max cached {max} bytes of {budget}, {evicted} evictions");
    assert!(max <= budget, "cache held {max} bytes, budget {budget}");
    assert!(evicted > 0.0, "the budget never forced an eviction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_over_from_dead_and_hung_origins() {
    let a = Node::origin();
    // a dead origin (nothing listens) and a hung one (accepts, never answers)
    let dead = free_addr();
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            held.push(s);
        }
    });
    let (_publisher, (m, i)) = paused_stream(&a, "fo").await;

    // a blocking request parked on a hung origin moves on when health checks mark it down
    let edge = Node::edge(
        &[(hung_addr, hung_addr), (a.http, a.admin)],
        "health_interval = \"200ms\"\nhealth_timeout = \"200ms\"\nresponse_timeout = \"500ms\"",
    );
    let t0 = Instant::now();
    let r = get(
        edge.http,
        &format!("/live/fo/video.m3u8?_HLS_msn={m}&_HLS_part={i}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(
        metric(edge.admin, "ferrocast_edge_origin_up", &["origin=\"o0\""]).await,
        0.0
    );
    assert!(metric(edge.admin, "ferrocast_edge_failovers_total", &[]).await >= 1.0);
    eprintln!("blocking request moved off the hung origin after {took:?}");
    edge.stop();

    // plain requests: a refused connection and a timeout both move on at once
    let edge = Node::edge(
        &[(dead, dead), (hung_addr, hung_addr), (a.http, a.admin)],
        "health_interval = \"10s\"\nresponse_timeout = \"300ms\"",
    );
    let t0 = Instant::now();
    let r = get(edge.http, "/live/fo/video_init0.mp4").await;
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(2));
    for (o, up) in [("o0", 0.0), ("o1", 0.0), ("o2", 1.0)] {
        let v = metric(
            edge.admin,
            "ferrocast_edge_origin_up",
            &[&format!("origin=\"{o}\"")],
        )
        .await;
        assert_eq!(v, up, "{o}");
    }
    assert_eq!(
        metric(edge.admin, "ferrocast_edge_failovers_total", &[]).await,
        2.0
    );
    // once marked down, they are skipped: the next object goes straight to the healthy one
    let t0 = Instant::now();
    let r = get(edge.http, "/live/fo/audio_init0.mp4").await;
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() < Duration::from_millis(250));
    assert_eq!(
        metric(edge.admin, "ferrocast_edge_failovers_total", &[]).await,
        2.0
    );
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_viewers_over_http1_http2_and_http3() {
    let a = Node::origin();
    let edge = Node::edge(&[(a.http, a.admin)], "");
    let push = spawn_publish(a.rtmp.unwrap(), "lg", SMALL, 1.0).await;
    wait_for_200(a.http, "/live/lg/audio.m3u8", Duration::from_secs(10)).await;
    let cert = edge.cert.clone().unwrap();
    let runs = [
        (
            ferrocast_loadgen::client::Proto::H1,
            format!("http://{}/live/lg/index.m3u8", edge.http),
        ),
        (
            ferrocast_loadgen::client::Proto::H2,
            format!(
                "https://localhost:{}/live/lg/index.m3u8",
                edge.https.unwrap().port()
            ),
        ),
        (
            ferrocast_loadgen::client::Proto::H3,
            format!(
                "https://localhost:{}/live/lg/index.m3u8",
                edge.h3.unwrap().port()
            ),
        ),
    ];
    // the three run side by side within the fixture's 6 s
    let mut set = tokio::task::JoinSet::new();
    for (http, url) in runs {
        let args = ferrocast_loadgen::Args {
            url,
            viewers: 10,
            http,
            duration: 3,
            ramp: 0.2,
            warmup: 0.3,
            cafile: Some(cert.clone()),
            video_only: false,
            threads: 1,
            json: false,
        };
        set.spawn(async move { (http, ferrocast_loadgen::run(&args).await) });
    }
    while let Some(r) = set.join_next().await {
        let (http, report) = r.unwrap();
        let report = report.unwrap_or_else(|e| panic!("{http:?}: {e:#}"));
        eprintln!("{http:?}: {report:?}");
        assert_eq!(report.connected, 10, "{http:?}");
        assert_eq!(report.error_total(), 0, "{http:?}: {:?}", report.errors);
        // 10 viewers × 2 renditions × ~5 parts/s over ~2.5 s
        assert!(report.parts >= 100, "{http:?}: {} parts", report.parts);
        assert_eq!(
            (report.gaps, report.repeats, report.timeline_breaks),
            (0, 0, 0),
            "{http:?}: every viewer takes every part once, in order, on one timeline"
        );
        assert!(
            report.timeline_checked > 50,
            "{http:?}: timeline not checked"
        );
        assert!(
            report.delay_ms[2].is_finite() && report.delay_ms[2] < 2000.0,
            "{http:?}"
        );
    }
    push.await.unwrap();
}
