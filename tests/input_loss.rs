//! Input loss: a publisher that stalls, or drops and comes back within the grace period. The
//! origin keeps the timeline moving with GAP parts and segments on time (RFC 8216bis §6.2.1),
//! then continues after an EXT-X-DISCONTINUITY; a viewer following with blocking reloads sees
//! every part appear in order, on time, with a continuous PROGRAM-DATE-TIME timeline.

mod common;

use common::*;
use ferrocast_media::flv::FlvTagKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The configured stall timeout and part target of these tests.
const STALL: Duration = Duration::from_millis(400);
const PART: Duration = Duration::from_millis(200);

/// A part as a viewer saw it first listed.
#[derive(Debug, Clone)]
struct Seen {
    msn: u64,
    index: u32,
    gap: bool,
    at: Instant,
}

/// Follows a media playlist the way hls.js does (blocking reload for the preload-hinted part)
/// until EXT-X-ENDLIST; returns every part with the time it was first listed, and the last
/// playlist.
async fn follow(http: SocketAddr, path: String) -> (Vec<Seen>, String) {
    let mut seen: Vec<Seen> = Vec::new();
    let mut url = path.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the stream never ended");
        let r = get(http, &url).await;
        assert_eq!(r.status, 200, "{url}");
        let at = Instant::now();
        let text = r.text();
        let (parts, ended) = ferrocast_loadgen::playlist::parts(&text);
        for p in parts {
            if seen
                .last()
                .is_none_or(|l| (p.msn, p.index) > (l.msn, l.index))
            {
                seen.push(Seen {
                    msn: p.msn,
                    index: p.index,
                    gap: p.gap,
                    at,
                });
            }
        }
        if ended {
            return (seen, text);
        }
        let hint = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
            .expect("a live LL-HLS playlist has a part hint");
        let (m, i) = hint
            .trim_end_matches('"')
            .split_once('_')
            .and_then(|(_, rest)| rest.trim_end_matches(".m4s").split_once('.'))
            .expect("hint URI");
        url = format!("{path}?_HLS_msn={m}&_HLS_part={i}");
    }
}

/// Follows both renditions of `stream` until they end: (video, audio) parts and playlists.
async fn follow_both(http: SocketAddr, stream: &str) -> [(Vec<Seen>, String); 2] {
    let video = tokio::spawn(follow(http, format!("/live/{stream}/video.m3u8")));
    let audio = tokio::spawn(follow(http, format!("/live/{stream}/audio.m3u8")));
    [video.await.unwrap(), audio.await.unwrap()]
}

/// Unix ms of an EXT-X-PROGRAM-DATE-TIME value (`YYYY-MM-DDThh:mm:ss.sssZ`).
fn pdt_ms(v: &str) -> i64 {
    let n = |a: usize, b: usize| v[a..b].parse::<i64>().expect("PDT digits");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // days from civil (proleptic Gregorian)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + n(20, 23)
}

/// Segments of a media playlist: (PDT ms, duration ms, gap, discontinuity before it).
fn timeline(text: &str) -> Vec<(i64, i64, bool, bool)> {
    let mut out = Vec::new();
    let (mut pdt, mut gap, mut disc) = (None, false, false);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = Some(pdt_ms(v));
        } else if line == "#EXT-X-GAP" {
            gap = true;
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let secs: f64 = v.trim_end_matches(',').parse().expect("EXTINF");
            let p = pdt.take().expect("every segment has a PROGRAM-DATE-TIME");
            out.push((p, (secs * 1000.0).round() as i64, gap, disc));
            (gap, disc) = (false, false);
        }
    }
    out
}

/// Checks what every input-loss test expects of a rendition's final playlist and parts: parts
/// in order without a hole, GAP parts where the input was missing and nowhere else, one
/// discontinuity right where the media returns, after a GAP segment, and PROGRAM-DATE-TIME
/// moving on by each segment's duration across the gap. Returns the number of EXT-X-GAP
/// segments before the discontinuity.
fn check_rendition(seen: &[Seen], text: &str, kind: &str) -> usize {
    for w in seen.windows(2) {
        let next_ok = (w[1].msn == w[0].msn && w[1].index == w[0].index + 1)
            || (w[1].msn == w[0].msn + 1 && w[1].index == 0);
        assert!(next_ok, "{kind}: {:?} then {:?}", w[0], w[1]);
    }
    // media, GAP, media again, and GAP for the grace period after the publisher left
    let trailing = seen.iter().rev().take_while(|p| p.gap).count();
    assert!(
        trailing > 0,
        "{kind}: the grace period after the end is GAP"
    );
    let runs = seen[..seen.len() - trailing]
        .windows(2)
        .filter(|w| w[0].gap != w[1].gap)
        .count();
    assert_eq!(runs, 2, "{kind}: GAP parts must form one run between media");
    let segs = timeline(text);
    for w in segs.windows(2) {
        let step = w[1].0 - (w[0].0 + w[0].1);
        // exact, but where the media returns its audio may start a little after the video's
        // keyframe (PDT is that of the first audio frame), never before the GAP's end
        let allowed = if w[1].3 && kind == "audio" {
            0..=250
        } else {
            -2..=2
        };
        assert!(
            allowed.contains(&step),
            "{kind}: PROGRAM-DATE-TIME jumps by {step} ms from {:?} to {:?}\n{text}",
            w[0],
            w[1]
        );
    }
    let disc: Vec<usize> = (0..segs.len()).filter(|&i| segs[i].3).collect();
    assert_eq!(disc.len(), 1, "{kind}: one discontinuity\n{text}");
    assert!(
        segs[disc[0] - 1].2,
        "{kind}: the media after a gap is the one marked"
    );
    assert!(!segs[disc[0]].2);
    segs[..disc[0]].iter().filter(|s| s.2).count()
}

/// A viewer's view of the first loss (printed under `label`): how long after the last media
/// part the first GAP part was listed, and the longest wait between two of its GAP parts.
fn gap_timing(label: &str, seen: &[Seen]) -> (Duration, Duration) {
    let first_gap = seen.iter().position(|p| p.gap).expect("GAP parts");
    let last_gap = first_gap + seen[first_gap..].iter().take_while(|p| p.gap).count() - 1;
    let until_first = seen[first_gap].at - seen[first_gap - 1].at;
    let longest = seen[first_gap..=last_gap]
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or_default();
    let span = seen[last_gap].at - seen[first_gap - 1].at;
    eprintln!(
        "{label}: first GAP part {:.3} s after the last media part; longest wait between GAP parts {:.3} s; GAP listed over {:.3} s",
        until_first.as_secs_f64(),
        longest.as_secs_f64(),
        span.as_secs_f64()
    );
    (until_first, longest)
}

fn config(stall: Duration) -> String {
    format!(
        "[packager]\nstall_timeout = \"{}ms\"\npart_target = \"{}ms\"",
        stall.as_millis(),
        PART.as_millis()
    )
}

/// Sends `tags` paced in real time, the first one at once (due times are their timestamps
/// minus `origin_ms`), restamped `shift_ms` later.
async fn send_paced(
    p: &mut Publisher,
    tags: &[(FlvTagKind, bytes::Bytes, u32)],
    origin_ms: u32,
    shift_ms: u32,
) {
    let start = Instant::now();
    for (kind, body, ts) in tags {
        let due = start + Duration::from_millis(u64::from(ts - origin_ms));
        tokio::time::sleep_until(due.into()).await;
        p.send_tag(*kind, body.clone(), ts + shift_ms)
            .await
            .expect("send");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_stall_becomes_gap_parts_on_time_then_a_discontinuity() {
    let server = start_server_with_grace("1s", &config(STALL)).await;
    let (rtmp, http) = (server.rtmp_addr.expect("rtmp"), server.http_addr);
    let tags = looped_tags(SMALL, 2, 6_000);
    let (before, after): (Vec<_>, Vec<_>) = tags.into_iter().partition(|t| t.2 < 3_000);
    let stall = Duration::from_secs(3);
    let mut p = Publisher::accepted(rtmp, "stall").await;
    let publisher = tokio::spawn(async move {
        send_paced(&mut p, &before, 0, 0).await;
        // the encoder's network stalls for 3 s; its clock keeps running (as OBS's does), so
        // what it sends next is stamped 3 s later
        tokio::time::sleep(stall).await;
        send_paced(&mut p, &after, 3_000, 3_000).await;
        p.close().await;
    });
    wait_for_200(http, "/live/stall/video.m3u8", Duration::from_secs(10)).await;
    let [(vseen, vtext), (aseen, atext)] = follow_both(http, "stall").await;
    publisher.await.unwrap();

    let gap_segments = check_rendition(&vseen, &vtext, "video");
    check_rendition(&aseen, &atext, "audio");
    // audio has GAP parts with the same numbers as video's
    let numbers = |s: &[Seen]| -> Vec<(u64, u32, bool)> {
        s.iter().map(|p| (p.msn, p.index, p.gap)).collect()
    };
    let (v, a) = (numbers(&vseen), numbers(&aseen));
    let common = v.len().min(a.len()) - 10; // the trailing grace-period GAP may differ in length
    assert_eq!(v[..common], a[..common]);
    // the stall is covered: 3 s of GAP ≈ 15 parts of 200 ms (the last one may be short)
    let stall_gaps = {
        let first = vseen.iter().position(|p| p.gap).unwrap();
        vseen[first..].iter().take_while(|p| p.gap).count()
    };
    assert!(
        (12..=18).contains(&stall_gaps),
        "{stall_gaps} GAP parts for a 3 s stall"
    );
    // 3.0 s → 6.0 s of media: the rest of the 2 s bucket the stall began in, and the next one
    assert!(
        gap_segments >= 2,
        "EXT-X-GAP segments for the stall\n{vtext}"
    );
    // on time: the first GAP part is listed once the stall timeout has passed, then one per
    // part target (generous bounds: the test machine is shared)
    let (until_first, longest) = gap_timing("stall", &vseen);
    assert!(
        until_first <= STALL + PART * 2 + Duration::from_millis(500),
        "first GAP part after {until_first:?}"
    );
    assert!(longest <= PART + Duration::from_millis(600), "{longest:?}");
    // GAP parts and segments are not fetchable; the parts around them are
    let first_gap = vseen.iter().find(|p| p.gap).unwrap();
    let gap_uri = format!(
        "/live/stall/video_{}.{}.m4s",
        first_gap.msn, first_gap.index
    );
    assert_eq!(get(http, &gap_uri).await.status, 404);
    for uri in media_segment_uris(&vtext) {
        assert_eq!(
            get(http, &format!("/live/stall/{uri}")).await.status,
            200,
            "{uri}"
        );
    }
    let gap_metric = metric(
        server.admin_addr,
        "ferrocast_gap_parts_total",
        &["rendition=\"video\""],
    )
    .await;
    assert!(gap_metric >= stall_gaps as f64);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_grace_is_gapped_on_time_then_resumes() {
    // a long stall timeout: a publisher that is gone must be gapped at once, not after it
    let server = start_server_with_grace("5s", &config(Duration::from_secs(3))).await;
    let (rtmp, http) = (server.rtmp_addr.expect("rtmp"), server.http_addr);
    let tags = looped_tags(SMALL, 1, 6_000);
    let first: Vec<_> = tags.iter().filter(|t| t.2 < 3_000).cloned().collect();
    let store = server.store.clone().expect("origin");
    let publisher = tokio::spawn(async move {
        let mut p = Publisher::accepted(rtmp, "drop").await;
        send_paced(&mut p, &first, 0, 0).await;
        p.close().await;
        // the server sees the publisher leave, then the encoder restarts after 1.5 s with its
        // clock back at 0 (as ffmpeg does)
        let stream = store.get("drop").expect("stream");
        eventually("the publisher is gone", Duration::from_secs(5), || {
            let s = stream.clone();
            async move { !s.is_publishing() }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let mut p = Publisher::accepted(rtmp, "drop").await;
        send_paced(&mut p, &tags, 0, 0).await;
        p.close().await;
    });
    wait_for_200(http, "/live/drop/video.m3u8", Duration::from_secs(10)).await;
    let [(vseen, vtext), (aseen, atext)] = follow_both(http, "drop").await;
    publisher.await.unwrap();

    check_rendition(&vseen, &vtext, "video");
    check_rendition(&aseen, &atext, "audio");
    // a publisher that is gone is gapped at once, not after the stall timeout
    let (until_first, longest) = gap_timing("disconnect", &vseen);
    assert!(
        until_first <= PART * 2 + Duration::from_millis(800),
        "{until_first:?}"
    );
    assert!(longest <= PART + Duration::from_millis(600), "{longest:?}");
    // the new session's init segment starts at the discontinuity
    assert!(
        vtext.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"video_init1.mp4\""),
        "{vtext}"
    );
    for uri in media_segment_uris(&vtext) {
        assert_eq!(
            get(http, &format!("/live/drop/{uri}")).await.status,
            200,
            "{uri}"
        );
    }
    server.shutdown().await;
}
