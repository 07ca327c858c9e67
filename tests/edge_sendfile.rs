//! An edge sends large cached objects over HTTP/1.1 with sendfile, intact. In its own test
//! binary: cargo runs test binaries one after another, so this origin and publisher do not
//! load the machine while `tests/edge.rs` counts requests under timing-sensitive bounds.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_leave_the_edge_by_sendfile_intact() {
    let a = Node::origin();
    let edge = Node::edge(&[(a.http, a.admin)], "");
    let push = spawn_publish(a.rtmp.unwrap(), "big", SMALL, 1.0).await;
    // blocking reloads return once segment 2 has begun: segments 0 and 1 are complete
    wait_for_200(a.http, "/live/big/video.m3u8", Duration::from_secs(10)).await;
    let mut text = String::new();
    for msn in 1..=2 {
        let r = get(
            edge.http,
            &format!("/live/big/video.m3u8?_HLS_msn={msn}&_HLS_part=0"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        text = r.text();
    }
    let segments = media_segment_uris(&text);
    assert!(segments.len() >= 2, "{text}");
    let mut through_edge = 0usize;
    for uri in &segments[..2] {
        let path = format!("/live/big/{uri}");
        let want = get(a.http, &path).await;
        assert_eq!(want.status, 200);
        assert!(
            want.body.len() >= 16 * 1024,
            "{uri}: {} bytes",
            want.body.len()
        );
        // the fill, then a hit: both answered from the stored object
        for _ in 0..2 {
            let r = get(edge.http, &path).await;
            assert_eq!(r.status, 200, "{uri}");
            assert!(r.body == want.body, "{uri} differs through the edge");
            through_edge += r.body.len();
        }
    }
    let sent = metric(edge.admin, "ferrocast_http_sendfile_bytes_total", &[]).await;
    assert_eq!(
        sent, through_edge as f64,
        "every segment byte left the edge by sendfile"
    );
    push.await.unwrap();
}
