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
    let mut publisher = Publisher::accepted(a.rtmp.unwrap(), "crowd").await;
    let push = tokio::spawn(async move {
        publisher.send_flv(SMALL, Some(1.0)).await;
        publisher.close().await;
    });
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
    let started = Instant::now();
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
    let elapsed = started.elapsed();

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
    let plain_keys = distinct(|t| t.ends_with(".m3u8"));
    let after = |r: &'static str| {
        let b = before[r];
        async move { route_requests(a.admin, r).await - b }
    };
    // parts are immutable: exactly one origin request per distinct part
    assert_eq!(after("part").await, part_keys, "origin part requests");
    // playlists: one per distinct blocking position, plus the plain playlist once per
    // freshness lifetime (1 s) at most
    let playlists = after("playlist").await;
    let plain_bound = plain_keys * (elapsed.as_secs_f64().ceil() + 1.0);
    assert!(
        playlists >= blocking_keys && playlists <= blocking_keys + plain_bound,
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
        "{requests} viewer requests, {upstream} upstream ({:.1}x), {hits} hits, {coalesced} coalesced",
        requests as f64 / upstream
    );
    // nothing left waiting
    let (_, fills) = edge.edge.as_ref().unwrap().cache().counts();
    assert_eq!(fills, 0);
}
