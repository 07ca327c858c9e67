//! Redundant origins: two origins fed the same input publish the same media playlists
//! (media sequence numbers, part lists, PROGRAM-DATE-TIME) and byte-identical init segments,
//! parts and segments, whether they start together or one joins the stream late.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::Duration;

const ANY: &str = "127.0.0.1:0";

/// Two origins that list each other as peers.
fn pair() -> (Node, Node) {
    let (admin_a, admin_b) = (free_addr(), free_addr());
    let any = ANY.parse().unwrap();
    let a = Node::origin_with(any, admin_a, &[admin_b], "");
    let b = Node::origin_with(any, admin_b, &[admin_a], "");
    (a, b)
}

/// Origin B, and origin A relaying every stream to B's RTMP address `b_rtmp` (B listens there
/// only once `start_b` is called). B relays to A in turn, as a pair that may be fed through
/// either would: what B receives by relay must not come back.
fn relay_pair(b_rtmp: SocketAddr) -> (Node, impl FnOnce() -> Node) {
    let (admin_a, admin_b) = (free_addr(), free_addr());
    let any = ANY.parse().unwrap();
    let a = Node::origin_with(
        any,
        admin_a,
        &[admin_b],
        &format!("[relay]\ntargets = [\"rtmp://{b_rtmp}/live\"]\nbackoff_min = \"100ms\"\nbackoff_max = \"400ms\"\n"),
    );
    // B lists A as a redundant variant stream, and relays to A
    let backup = format!(
        "[packager]\nredundant_urls = [\"http://{}/live\"]\n[relay]\ntargets = [\"rtmp://{}/live\"]\n",
        a.http,
        a.rtmp.unwrap()
    );
    let start_b = move || Node::origin_with(b_rtmp, admin_b, &[admin_a], &backup);
    (a, start_b)
}

/// Every object a playlist names (media segments, parts, init segment).
fn objects(playlist: &str) -> Vec<String> {
    let mut uris = media_segment_uris(playlist);
    uris.extend(playlist_parts(playlist).0.into_iter().map(|p| p.2));
    uris.extend(ferrocast_loadgen::playlist::init_uri(playlist).map(str::to_string));
    uris
}

/// The playlist up to its trailing GAP segments (the grace period after the publisher left).
fn before_trailing_gap(playlist: &str) -> String {
    let first_gap = [",GAP=YES", "#EXT-X-GAP\n"]
        .iter()
        .filter_map(|t| playlist.find(t))
        .min()
        .expect("the grace period after the end is GAP");
    let segment = playlist[..first_gap]
        .rfind("#EXT-X-PROGRAM-DATE-TIME")
        .expect("PDT before a GAP");
    playlist[..segment].to_string()
}

/// Fetches `uris` from both origins and asserts they are byte-identical; returns the count.
async fn same_bytes(a: SocketAddr, b: SocketAddr, stream: &str, uris: &[String]) -> usize {
    for uri in uris {
        let oa = get(a, &format!("/live/{stream}/{uri}")).await;
        let ob = get(b, &format!("/live/{stream}/{uri}")).await;
        assert_eq!((oa.status, ob.status), (200, 200), "{uri}");
        assert_eq!(oa.body, ob.body, "{uri} differs between the origins");
    }
    uris.len()
}

/// Waits for both origins to end `stream`, then checks each rendition: B's playlist is A's
/// (`Whole`) or the tail of it from B's first segment on (`Suffix`: same PDT, durations, parts,
/// URIs), and every object B lists is byte-identical on A. Returns the objects compared and
/// B's playlists.
async fn compare(a: &Node, b: &Node, stream: &str, suffix: bool) -> (usize, Vec<String>) {
    let mut compared = 0;
    let mut b_playlists = Vec::new();
    for rendition in ["video", "audio"] {
        let path = format!("/live/{stream}/{rendition}.m3u8");
        let ta = wait_for_endlist(a.http, &path, Duration::from_secs(20)).await;
        let tb = wait_for_endlist(b.http, &path, Duration::from_secs(20)).await;
        // after the publishers left, each origin filled its grace period with GAP on its own
        // clock (one may have one more GAP part): compare up to there
        let (ta, tb) = (before_trailing_gap(&ta), before_trailing_gap(&tb));
        assert!(ta.contains("#EXT-X-PROGRAM-DATE-TIME:"));
        if suffix {
            let from = tb
                .find("#EXT-X-PROGRAM-DATE-TIME")
                .expect("PDT in B's playlist");
            assert!(
                ta.ends_with(&tb[from..]),
                "{rendition}: B's segments differ from A's\nA:\n{ta}\nB:\n{tb}"
            );
        } else {
            assert_eq!(ta, tb, "{rendition} playlists differ");
        }
        compared += same_bytes(a.http, b.http, stream, &objects(&tb)).await;
        b_playlists.push(tb);
    }
    (compared, b_playlists)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_origins_fed_the_same_input_publish_identical_objects() {
    let (a, b) = pair();
    let mut pa = Publisher::accepted(a.rtmp.unwrap(), "twin").await;
    let mut pb = Publisher::accepted(b.rtmp.unwrap(), "twin").await;
    // paced (4× real time) so the first GOP takes as long to arrive as the peers' epoch
    // agreement may take, as with a live encoder
    tokio::join!(
        async {
            pa.send_flv(SMALL, Some(4.0)).await;
            pa.close().await;
        },
        async {
            pb.send_flv(SMALL, Some(4.0)).await;
            pb.close().await;
        }
    );
    let (compared, _) = compare(&a, &b, "twin", false).await;
    assert!(compared > 40, "only {compared} objects compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_joining_late_publishes_what_the_first_one_did() {
    let (a, b) = pair();
    let feed_a = spawn_publish(a.rtmp.unwrap(), "late", SMALL, 4.0).await;
    // B starts once A is serving, and receives the stream from 0.5 s on (mid-GOP, mid
    // segment): the keyframe at 1 s shares segment 0's bucket, so B's first segment is the
    // one A cuts at 2 s
    wait_for_200(a.http, "/live/late/video.m3u8", Duration::from_secs(10)).await;
    let mut pb = Publisher::accepted(b.rtmp.unwrap(), "late").await;
    pb.send_flv_from(SMALL, 500, Some(4.0)).await;
    pb.close().await;
    feed_a.await.unwrap();
    let (compared, b_playlists) = compare(&a, &b, "late", true).await;
    for tb in &b_playlists {
        assert!(
            tb.contains("#EXT-X-MEDIA-SEQUENCE:1\n"),
            "B does not start at segment 1:\n{tb}"
        );
    }
    assert!(compared > 30, "only {compared} objects compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_origin_publishes_identical_objects() {
    let b_rtmp = free_addr();
    let (a, start_b) = relay_pair(b_rtmp);
    let b = start_b();
    let mut p = Publisher::accepted(a.rtmp.unwrap(), "relayed").await;
    p.send_flv(SMALL, Some(4.0)).await;
    p.close().await;
    let (compared, _) = compare(&a, &b, "relayed", false).await;
    assert!(compared > 40, "only {compared} objects compared");
    assert_eq!(
        metric(a.admin, "ferrocast_relay_dropped_total", &[]).await,
        0.0
    );
    // B's multivariant playlist lists the variant again on A, and those URIs work
    let mv = get(b.http, "/live/relayed/index.m3u8").await.text();
    let backup_video = format!("http://{}/live/relayed/video.m3u8", a.http);
    assert!(mv.contains(&format!("\n{backup_video}\n")), "{mv}");
    assert!(mv.contains("AUDIO=\"audio-backup1\""), "{mv}");
    for rendition in ["video", "audio"] {
        let r = get(a.http, &format!("/live/relayed/{rendition}.m3u8")).await;
        assert_eq!(r.status, 200);
    }
    // B relays to A, but not what it receives by relay (the stream key carries the mark): it
    // never connected, and A never saw a second publisher of the stream
    for m in [
        "ferrocast_relay_connected",
        "ferrocast_relay_reconnects_total",
    ] {
        assert_eq!(metric(b.admin, m, &[]).await, 0.0, "{m} on B");
    }
    assert_eq!(
        metric(a.admin, "ferrocast_ingest_rejected_total", &[]).await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_reconnects_to_a_target_that_comes_up_late() {
    let b_rtmp = free_addr();
    let (a, start_b) = relay_pair(b_rtmp);
    let feed = spawn_publish(a.rtmp.unwrap(), "backoff", SMALL, 1.0).await;
    // the relay has found B down and is backing off
    eventually("the relay retrying", Duration::from_secs(10), || async {
        metric(a.admin, "ferrocast_relay_reconnects_total", &[]).await >= 1.0
    })
    .await;
    let b = start_b();
    feed.await.unwrap();
    let (compared, _) = compare(&a, &b, "backoff", true).await;
    assert!(compared >= 10, "only {compared} objects compared");
}
