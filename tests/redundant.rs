//! Redundant origins (groundwork for interchangeable origins): two origins fed the same input
//! publish the same media sequence numbers, part lists and byte-identical init segments,
//! parts and segments. PROGRAM-DATE-TIME still comes from each origin's own clock.

mod common;

use common::*;
use std::time::Duration;

fn without_pdt(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("#EXT-X-PROGRAM-DATE-TIME"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_origins_fed_the_same_input_publish_identical_objects() {
    let a = Node::origin();
    let b = Node::origin();
    let mut pa = Publisher::accepted(a.rtmp.unwrap(), "twin").await;
    let mut pb = Publisher::accepted(b.rtmp.unwrap(), "twin").await;
    tokio::join!(
        async {
            pa.send_flv(SMALL, None).await;
            pa.close().await;
        },
        async {
            pb.send_flv(SMALL, None).await;
            pb.close().await;
        }
    );
    let mut compared = 0;
    for rendition in ["video", "audio"] {
        let path = format!("/live/twin/{rendition}.m3u8");
        let ta = wait_for_endlist(a.http, &path, Duration::from_secs(20)).await;
        let tb = wait_for_endlist(b.http, &path, Duration::from_secs(20)).await;
        assert_eq!(
            without_pdt(&ta),
            without_pdt(&tb),
            "{rendition} playlists differ"
        );
        let mut uris: Vec<String> = ta
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_string)
            .collect();
        uris.extend(playlist_parts(&ta).0.into_iter().map(|p| p.2));
        uris.extend(ferrocast_loadgen::playlist::init_uri(&ta).map(str::to_string));
        for uri in uris {
            let oa = get(a.http, &format!("/live/twin/{uri}")).await;
            let ob = get(b.http, &format!("/live/twin/{uri}")).await;
            assert_eq!((oa.status, ob.status), (200, 200), "{uri}");
            assert_eq!(oa.body, ob.body, "{uri} differs between the origins");
            compared += 1;
        }
    }
    assert!(compared > 40, "only {compared} objects compared");
}
