//! End-to-end: a real RTMP publisher pushes the FLV fixtures into the real server on loopback;
//! playlists are parsed with m3u8-rs and every segment with the `mp4` crate, and checked
//! against the source FLV.

mod common;

use bytes::Bytes;
use common::*;
use ferrocast_media::flv::{parse_audio, parse_video, read_file, AudioTag, FlvTagKind, VideoTag};
use std::io::Cursor;
use std::time::{Duration, Instant};

/// (pts in 90 kHz, keyframe) of every video frame and the count of AAC frames that fall in
/// the video's time range (audio is aligned to video parts: frames whose midpoint lies before
/// the first video frame or after the last one are not published).
fn source_frames(path: &str) -> (Vec<(i64, bool)>, usize) {
    let file = Bytes::from(std::fs::read(path).unwrap());
    let mut video = Vec::new();
    let mut video_dts = Vec::new();
    let mut audio_ms = Vec::new();
    for t in read_file(&file).unwrap() {
        match t.kind {
            FlvTagKind::Video => {
                if let VideoTag::AvcFrame {
                    keyframe, cts_ms, ..
                } = parse_video(&t.body).unwrap()
                {
                    video.push(((i64::from(t.timestamp) + i64::from(cts_ms)) * 90, keyframe));
                    video_dts.push(i64::from(t.timestamp) * 90);
                }
            }
            FlvTagKind::Audio => {
                if let AudioTag::AacFrame(_) = parse_audio(&t.body).unwrap() {
                    audio_ms.push(i64::from(t.timestamp));
                }
            }
            _ => {}
        }
    }
    let (first, last) = (video_dts[0], *video_dts.last().unwrap() + 3000);
    let audio = audio_ms
        .iter()
        .filter(|ms| {
            let ticks = (*ms * 48 + 512) / 1024 * 1024;
            let mid90 = (ticks + 512) * 90 / 48;
            mid90 >= first - 1 && mid90 < last
        })
        .count();
    (video, audio)
}

struct Decoded {
    samples: usize,
    sync_first: bool,
    pts: Vec<(i64, bool)>,
    tfdt_first: u64,
    end: u64,
}

/// Parses init + segment with the `mp4` crate.
fn decode(init: &Bytes, seg: &Bytes) -> Decoded {
    let mut all = init.to_vec();
    all.extend_from_slice(seg);
    let size = all.len() as u64;
    let r = mp4::Mp4Reader::read_header(Cursor::new(all), size).expect("mp4 parses");
    assert!(r.is_fragmented());
    let mut samples = 0;
    let mut pts = Vec::new();
    let mut tfdt_first = None;
    let mut end = 0;
    let mut sync_first = false;
    for moof in &r.moofs {
        for traf in &moof.trafs {
            let base = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
            if tfdt_first.is_none() {
                tfdt_first = Some(base);
            } else {
                assert_eq!(base, end, "tfdt does not continue the previous fragment");
            }
            let trun = traf.trun.as_ref().expect("trun");
            let mut dts = base as i64;
            for i in 0..trun.sample_count as usize {
                let flags = trun.sample_flags.get(i).copied().unwrap_or(0);
                let sync = flags & 0x0001_0000 == 0;
                if samples == 0 {
                    sync_first = sync;
                }
                let cts = trun.sample_cts.get(i).map_or(0, |c| *c as i32 as i64);
                pts.push((dts + cts, sync));
                dts += i64::from(trun.sample_durations[i]);
                samples += 1;
            }
            end = dts as u64;
        }
    }
    Decoded {
        samples,
        sync_first,
        pts,
        tfdt_first: tfdt_first.unwrap_or(0),
        end,
    }
}

/// True for an EXT-X-GAP segment (no media; the origin answers 404).
fn is_gap(seg: &m3u8_rs::MediaSegment) -> bool {
    seg.unknown_tags.iter().any(|t| t.tag == "X-GAP")
}

fn media_playlist(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
        other => panic!("not a media playlist: {other:?}\n{text}"),
    }
}

async fn check_fixture(path: &str, stream: &str) {
    let server = start_server("").await;
    let (rtmp, http) = (server.rtmp_addr.expect("rtmp listener"), server.http_addr);
    let mut p = Publisher::accepted(rtmp, stream).await;
    p.send_flv(path, None).await;
    p.close().await;
    let base = format!("/live/{stream}");
    let video_text =
        wait_for_endlist(http, &format!("{base}/video.m3u8"), Duration::from_secs(20)).await;
    let audio_text =
        wait_for_endlist(http, &format!("{base}/audio.m3u8"), Duration::from_secs(20)).await;
    let mv = get(http, &format!("{base}/index.m3u8")).await;
    assert_eq!(mv.status, 200);
    match m3u8_rs::parse_playlist_res(&mv.body) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
            assert_eq!(m.variants.len(), 1);
            let v = &m.variants[0];
            assert!(v.codecs.as_deref().unwrap().starts_with("avc1."));
            assert!(v.codecs.as_deref().unwrap().ends_with(",mp4a.40.2"));
            assert_eq!(v.resolution.map(|r| (r.width, r.height)), Some((320, 180)));
            assert_eq!(m.alternatives.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    let (src_video, src_audio) = source_frames(path);
    for (text, kind) in [(&video_text, "video"), (&audio_text, "audio")] {
        let pl = media_playlist(text);
        assert_eq!(pl.target_duration, 2);
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET="));
        assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES"));
        let init = get(http, &format!("{base}/{kind}_init0.mp4")).await;
        assert_eq!(init.status, 200);
        assert_eq!(
            init.headers["content-type"],
            if kind == "video" {
                "video/mp4"
            } else {
                "audio/mp4"
            }
        );
        let mut total = 0;
        let mut pts = Vec::new();
        let mut expected_tfdt = None;
        for (i, seg) in pl.segments.iter().enumerate() {
            assert!(
                f64::from(seg.duration).round() as u64 <= pl.target_duration,
                "EXTINF exceeds TARGETDURATION"
            );
            if is_gap(seg) {
                // the publisher left: GAP segments for the grace period, after all the media
                assert_eq!(get(http, &format!("{base}/{}", seg.uri)).await.status, 404);
                assert!(pl.segments[i..].iter().all(is_gap), "media after a GAP");
                continue;
            }
            let r = get(http, &format!("{base}/{}", seg.uri)).await;
            assert_eq!(r.status, 200, "{}", seg.uri);
            let d = decode(&init.body, &r.body);
            assert!(
                d.sync_first,
                "segment {} does not start with a sync sample",
                seg.uri
            );
            if let Some(e) = expected_tfdt {
                assert_eq!(d.tfdt_first, e, "segment {i} tfdt is not continuous");
            }
            expected_tfdt = Some(d.end);
            total += d.samples;
            pts.extend(d.pts);
            // the segment is exactly its parts
            let msn = pl.media_sequence + i as u64;
            let mut concat = Vec::new();
            for idx in 0.. {
                let part = get(http, &format!("{base}/{kind}_{msn}.{idx}.m4s")).await;
                if part.status != 200 {
                    break;
                }
                concat.extend_from_slice(&part.body);
            }
            assert_eq!(
                concat,
                r.body.to_vec(),
                "segment {msn} != concatenation of its parts"
            );
        }
        if kind == "video" {
            assert_eq!(total, src_video.len(), "video frames");
            // presentation times and keyframes match the source exactly
            let mut got = pts.clone();
            got.sort();
            let mut want = src_video.clone();
            want.sort();
            assert_eq!(got, want);
        } else {
            assert_eq!(total, src_audio, "audio frames");
        }
    }
    // ffprobe-free sanity: metrics report the stream
    let metrics = get(server.admin_addr, "/metrics").await.text();
    assert!(metrics.contains("ferrocast_parts_total{rendition=\"video\"}"));
    assert!(metrics.contains("ferrocast_part_publish_latency_seconds_count"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_fixture_produces_valid_llhls() {
    check_fixture(SMALL, "small").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_frames_keep_their_timestamps() {
    check_fixture(BFRAMES, "bframes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reload_is_held_until_the_part_exists() {
    // a silent publisher is not taken for lost here (no GAP parts), so that a request for a
    // part that never comes times out
    let server = start_server("[packager]\nstall_timeout = \"60s\"").await;
    let (rtmp, http) = (server.rtmp_addr.expect("rtmp listener"), server.http_addr);
    let mut p = Publisher::accepted(rtmp, "live1").await;
    let pusher = tokio::spawn(async move {
        p.send_flv(SMALL, Some(1.0)).await;
        p
    });
    let first = wait_for_200(http, "/live/live1/video.m3u8", Duration::from_secs(10)).await;
    let pl = first.text();
    // the hinted part is the next one: ask for the part after it
    let hint = pl
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .expect("hint")
        .to_string();
    let uri = hint.split("URI=\"").nth(1).unwrap().trim_end_matches('"');
    let (m, i) = uri
        .trim_start_matches("video_")
        .trim_end_matches(".m4s")
        .split_once('.')
        .unwrap();
    let (m, i): (u64, u32) = (m.parse().unwrap(), i.parse().unwrap());
    let target = format!("video_{m}.{}.m4s", i + 1);
    assert!(!pl.contains(&target));
    // held by the server: answering at once would return the old playlist without `target`
    let r = get(
        http,
        &format!("/live/live1/video.m3u8?_HLS_msn={m}&_HLS_part={}", i + 1),
    )
    .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains(&target) || text.contains(&format!("video_{}.0.m4s", m + 1)),
        "released before the part existed:\n{text}"
    );
    assert_eq!(r.headers["cache-control"], "public, max-age=12");
    // a plain (tune-in) request must never be answered from a stale copy
    let plain = get(http, "/live/live1/video.m3u8").await;
    assert_eq!(plain.headers["cache-control"], "no-cache");
    // the preload-hinted part request blocks until the whole part exists
    let hinted = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .unwrap()
        .to_string();
    let hinted_uri = hinted
        .split("URI=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let part = get(http, &format!("/live/live1/{hinted_uri}")).await;
    assert_eq!(part.status, 200, "{hinted_uri}");
    assert_eq!(&part.body[4..8], b"moof");
    // 400: _HLS_part without _HLS_msn, msn too far ahead; 404: unknown objects
    assert_eq!(
        get(http, "/live/live1/video.m3u8?_HLS_part=1").await.status,
        400
    );
    assert_eq!(
        get(http, &format!("/live/live1/video.m3u8?_HLS_msn={}", m + 50))
            .await
            .status,
        400
    );
    assert_eq!(get(http, "/live/nosuch/video.m3u8").await.status, 404);
    assert_eq!(
        get(http, "/live/live1/video_999999.0.m4s").await.status,
        404
    );
    assert_eq!(get(http, "/live/live1/../../etc/passwd").await.status, 404);
    let p = pusher.await.unwrap();
    // the publisher is silent now but connected: a request two segments ahead times out (503)
    let last = media_playlist(&get(http, "/live/live1/video.m3u8").await.text());
    let last_msn = last.media_sequence + last.segments.len() as u64 - 1;
    let t1 = Instant::now();
    let r = get(
        http,
        &format!("/live/live1/video.m3u8?_HLS_msn={}", last_msn + 2),
    )
    .await;
    assert_eq!(r.status, 503);
    assert!(
        t1.elapsed() >= Duration::from_secs(6),
        "503 before 3 × target duration"
    );
    p.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_is_refused_and_bad_app_rejected() {
    let server = start_server("").await;
    let rtmp = server.rtmp_addr.expect("rtmp listener");
    let first = Publisher::accepted(rtmp, "dup").await;
    match Publisher::connect(rtmp, "live", "dup").await.unwrap() {
        PublishOutcome::Rejected(why) => assert!(why.contains("already being published"), "{why}"),
        PublishOutcome::Accepted(_) => panic!("second publisher accepted"),
    }
    match Publisher::connect(rtmp, "wrongapp", "x").await.unwrap() {
        PublishOutcome::Rejected(_) => {}
        PublishOutcome::Accepted(_) => panic!("unknown app accepted"),
    }
    // a publisher sending an unsupported codec is dropped
    let mut bad = Publisher::accepted(rtmp, "badcodec").await;
    bad.send_video(Bytes::from_static(&[0x12, 0, 0, 0]), 0)
        .await
        .unwrap();
    assert!(bad.closed_by_server(Duration::from_secs(5)).await);
    first.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_publishers() {
    let server = start_server("").await;
    let (rtmp, http) = (server.rtmp_addr.expect("rtmp listener"), server.http_addr);
    let mut tasks = Vec::new();
    for n in 0..20 {
        tasks.push(tokio::spawn(async move {
            let mut p = Publisher::accepted(rtmp, &format!("s{n}")).await;
            p.send_flv(SMALL, None).await;
            p.close().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (src_video, _) = source_frames(SMALL);
    for n in 0..20 {
        let text = wait_for_endlist(
            http,
            &format!("/live/s{n}/video.m3u8"),
            Duration::from_secs(30),
        )
        .await;
        let pl = media_playlist(&text);
        let init = get(http, &format!("/live/s{n}/video_init0.mp4")).await.body;
        let mut frames = 0;
        for seg in pl.segments.iter().filter(|s| !is_gap(s)) {
            let body = get(http, &format!("/live/s{n}/{}", seg.uri)).await.body;
            frames += decode(&init, &body).samples;
        }
        assert_eq!(frames, src_video.len(), "stream s{n}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_grace_continues_with_discontinuity() {
    // grace 3 s: the second session starts well inside it
    let server = start_server_with_grace("3s", "").await;
    let (rtmp, http) = (server.rtmp_addr.expect("rtmp listener"), server.http_addr);
    let mut p = Publisher::accepted(rtmp, "again").await;
    p.send_flv(SMALL, None).await;
    p.close().await;
    // wait until the first session's segments are listed (flushed when the publisher left)
    let first = wait_for_200(http, "/live/again/video.m3u8", Duration::from_secs(10))
        .await
        .text();
    assert!(!first.contains("#EXT-X-ENDLIST"));
    // the server must have seen the first publisher leave (until then a new one is refused)
    let stream = server
        .store
        .as_ref()
        .expect("store")
        .get("again")
        .expect("stream exists");
    let deadline = Instant::now() + Duration::from_secs(5);
    while stream.is_publishing() {
        assert!(
            Instant::now() < deadline,
            "first publisher never released the stream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut p = Publisher::accepted(rtmp, "again").await;
    p.send_flv(SMALL, None).await;
    p.close().await;
    let text = wait_for_endlist(http, "/live/again/video.m3u8", Duration::from_secs(20)).await;
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"video_init1.mp4\""),
        "{text}"
    );
    let pl = media_playlist(&text);
    // 2 × 6 s of media, all listed, in one playlist with continuous media sequence numbers
    let total: f32 = pl
        .segments
        .iter()
        .filter(|s| !is_gap(s))
        .map(|s| s.duration)
        .sum();
    assert!((11.0..=12.5).contains(&total), "{total} s listed");
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0"));
    // both init segments are served
    assert_eq!(get(http, "/live/again/video_init0.mp4").await.status, 200);
    assert_eq!(get(http, "/live/again/video_init1.mp4").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_and_graceful_shutdown() {
    let server = start_server("").await;
    let admin = server.admin_addr;
    assert_eq!(get(admin, "/healthz").await.status, 200);
    assert_eq!(get(admin, "/readyz").await.status, 200);
    let m = get(admin, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.text().contains("ferrocast_active_streams 0"));
    let (rtmp, http) = (server.rtmp_addr.expect("rtmp listener"), server.http_addr);
    // shutdown completes while a publisher is connected (bounded: the test has a timeout)
    let _p = Publisher::accepted(rtmp, "bye").await;
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("graceful shutdown finished");
    assert!(
        tokio::net::TcpStream::connect(http).await.is_err(),
        "HTTP still accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_serves_the_same_objects() {
    let server = start_server("").await;
    let (rtmp, http, admin) = (
        server.rtmp_addr.expect("rtmp listener"),
        server.http_addr,
        server.admin_addr,
    );
    let mut p = Publisher::accepted(rtmp, "h2").await;
    p.send_flv(SMALL, None).await;
    p.close().await;
    let text = wait_for_endlist(http, "/live/h2/video.m3u8", Duration::from_secs(20)).await;
    let h2 = get_h2(http, "/live/h2/video.m3u8").await;
    assert_eq!(h2.status, 200);
    assert_eq!(h2.text(), text);
    assert_eq!(h2.headers["access-control-allow-origin"], "*");
    let h1_part = get(http, "/live/h2/video_0.0.m4s").await;
    let h2_part = get_h2(http, "/live/h2/video_0.0.m4s").await;
    assert_eq!(h2_part.status, 200);
    assert_eq!(h1_part.body, h2_part.body);
    assert_eq!(
        h2_part.headers["content-length"],
        h2_part.body.len().to_string().as_str()
    );
    // requests are counted by HTTP version
    let metrics = get(admin, "/metrics").await.text();
    assert!(
        metrics.contains(
            "ferrocast_http_requests_total{route=\"part\",status=\"200\",version=\"2\"} 1"
        ),
        "{metrics}"
    );
    // gzip is negotiated for playlists
    let gz = get_with(http, "/live/h2/video.m3u8", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.headers["content-encoding"], "gzip");
    assert_eq!(decoded(&gz), text);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_rtmp_port_is_dropped_and_others_keep_working() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_server("").await;
    let (rtmp, http) = (server.rtmp_addr.expect("rtmp listener"), server.http_addr);
    // a wrong RTMP version byte, then noise
    let mut bad = tokio::net::TcpStream::connect(rtmp).await.unwrap();
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = bad.write_all(&[0x07]).await;
    let _ = bad.write_all(&noise).await;
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match bad.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept a garbage connection open");
    // a publisher sending chunk-stream garbage after a valid handshake is dropped too, and a
    // healthy publisher at the same time is unaffected
    let mut good = Publisher::accepted(rtmp, "healthy").await;
    let mut evil = Publisher::accepted(rtmp, "evil").await;
    evil.send_raw(&noise).await;
    good.send_flv(SMALL, None).await;
    assert!(evil.closed_by_server(Duration::from_secs(10)).await);
    good.close().await;
    let text = wait_for_endlist(http, "/live/healthy/video.m3u8", Duration::from_secs(20)).await;
    assert!(media_playlist(&text).segments.len() >= 2);
    server.shutdown().await;
}
