//! Stream tests driven by the real FLV fixture (virtual time: no clocks but `Instant::now()`
//! for the latency metric).

use super::*;
use ferrocast_media::aac::AacConfig;
use ferrocast_media::flv::{parse_audio, parse_video, read_file, AudioTag, FlvTagKind, VideoTag};
use std::time::Duration;

/// Units and tracks from an FLV fixture, the way ingest produces them.
pub(crate) fn fixture_units(path: &str) -> (Tracks, Vec<MediaUnit>) {
    let file = Bytes::from(std::fs::read(path).unwrap());
    let mut tracks = Tracks::default();
    let mut units = Vec::new();
    for tag in read_file(&file).unwrap() {
        match tag.kind {
            FlvTagKind::Video => match parse_video(&tag.body).unwrap() {
                VideoTag::AvcSequenceHeader(r) => tracks.video = Some(AvcConfig::parse(r).unwrap()),
                VideoTag::AvcFrame {
                    keyframe,
                    cts_ms,
                    data,
                } => units.push(MediaUnit {
                    track: TrackKind::Video,
                    dts: i64::from(tag.timestamp) * 90,
                    cts: cts_ms * 90,
                    keyframe,
                    data,
                }),
                _ => {}
            },
            FlvTagKind::Audio => match parse_audio(&tag.body).unwrap() {
                AudioTag::AacSequenceHeader(a) => {
                    tracks.audio = Some(AudioConfig::Aac(AacConfig::parse(a).unwrap()))
                }
                AudioTag::AacFrame(data) => units.push(MediaUnit {
                    track: TrackKind::Audio,
                    dts: (i64::from(tag.timestamp) * 48 + 512) / 1024 * 1024,
                    cts: 0,
                    keyframe: true,
                    data,
                }),
            },
            FlvTagKind::Script => {}
        }
    }
    (tracks, units)
}

const SMALL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/sample-h264-aac-small.flv"
);

/// A stream with default settings, outside any store (no input-loss clock: tests call
/// [`Stream::tick`] themselves).
fn new_stream() -> Stream {
    Stream::new(
        "t",
        StreamSettings::default(),
        PackagerMetrics::unregistered(),
    )
}

/// The current video media playlist.
fn video_text(stream: &Stream) -> String {
    let v = stream.rendition(TrackKind::Video).borrow().clone().unwrap();
    std::str::from_utf8(&v.playlist().plain)
        .unwrap()
        .to_string()
}

fn publish(stream: &Stream, tracks: Tracks, units: Vec<MediaUnit>) {
    stream.claim().unwrap();
    stream.begin_publish(tracks).unwrap();
    for u in units {
        stream.push(u, Instant::now(), 1_795_420_800_000_000);
    }
}

#[test]
fn parts_share_the_ingest_bytes() {
    let (tracks, units) = fixture_units(SMALL);
    let ptrs: std::collections::HashSet<usize> =
        units.iter().map(|u| u.data.as_ptr() as usize).collect();
    let stream = new_stream();
    publish(&stream, tracks, units);
    let view = stream.rendition(TrackKind::Video).borrow().clone().unwrap();
    let mut checked = 0;
    for seg in &view.segments {
        for part in &seg.parts {
            for s in &part.samples {
                assert!(
                    ptrs.contains(&(s.as_ptr() as usize)),
                    "sample payload was copied"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked}");
}

#[test]
fn playlists_after_a_fixture() {
    let (tracks, units) = fixture_units(SMALL);
    let stream = new_stream();
    publish(&stream, tracks, units);
    let v = stream.rendition(TrackKind::Video).borrow().clone().unwrap();
    let text = std::str::from_utf8(&v.playlist().plain)
        .unwrap()
        .to_string();
    assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
    assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART"), "{text}");
    assert!(
        text.contains("#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\""),
        "{text}"
    );
    assert_eq!(v.target_duration, 2);
    // 6 s of 1 s GOPs: segments 0,1 complete (2 s each); the rest is open or pending
    assert!(v.segments.len() >= 2, "{text}");
    let mv = stream.multivariant().unwrap();
    let mv = std::str::from_utf8(&mv.plain).unwrap();
    assert!(
        mv.contains("CODECS=\"avc1.42c00d,mp4a.40.2\",RESOLUTION=320x180,FRAME-RATE=30.000"),
        "{mv}"
    );
    // end of publish: everything flushed, then ENDLIST and no hint
    stream.end_publish();
    assert!(stream.finish(1));
    let v = stream.rendition(TrackKind::Video).borrow().clone().unwrap();
    let text = std::str::from_utf8(&v.playlist().plain).unwrap();
    assert!(text.contains("#EXT-X-ENDLIST\n"), "{text}");
    assert!(!text.contains("PRELOAD-HINT"));
    let frames: usize = v
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .map(|p| p.samples.len())
        .sum();
    assert_eq!(frames, 180);
    // the gzip body decodes to the plain one
    let mut d = flate2::read::GzDecoder::new(&v.playlist().gzip()[..]);
    let mut s = String::new();
    std::io::Read::read_to_string(&mut d, &mut s).unwrap();
    assert_eq!(s.as_bytes(), &v.playlist().plain[..]);
}

#[test]
fn reconnect_continues_with_discontinuity() {
    let (tracks, units) = fixture_units(SMALL);
    let stream = new_stream();
    publish(&stream, tracks.clone(), units.clone());
    stream.end_publish();
    let before = stream.rendition(TrackKind::Video).borrow().clone().unwrap();
    let last = before.position.last_segment.unwrap();
    assert!(stream.claim().is_ok());
    assert_eq!(stream.claim(), Err(PublishError::AlreadyPublishing));
    assert!(
        !stream.finish(1),
        "a returned publisher must not be ended by the old timer"
    );
    stream.begin_publish(tracks).unwrap();
    for u in units {
        stream.push(u, Instant::now(), 1_795_420_900_000_000);
    }
    let v = stream.rendition(TrackKind::Video).borrow().clone().unwrap();
    let text = std::str::from_utf8(&v.playlist().plain).unwrap();
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"video_init1.mp4\"\n"),
        "{text}"
    );
    let after: Vec<u64> = v.segments.iter().map(|s| s.msn).collect();
    // MSNs continue without a gap or a repeat
    for w in after.windows(2) {
        assert_eq!(w[1], w[0] + 1);
    }
    assert!(after.contains(&(last + 1)));
    // decode times continue after the first session's end
    let first_new = v.segments.iter().find(|s| s.msn == last + 1).unwrap();
    assert!(first_new.discontinuity);
}

#[test]
fn a_publisher_after_the_end_gets_a_fresh_stream_with_new_names() {
    use crate::store::Store;
    let store = Store::new(StreamSettings::default(), PackagerMetrics::unregistered());
    let (tracks, units) = fixture_units(SMALL);
    let first = store.get_or_create("x");
    let gen = first.claim().unwrap();
    first.begin_publish(tracks.clone()).unwrap();
    for u in units.clone() {
        first.push(u, Instant::now(), 0);
    }
    first.end_publish();
    // within the grace period the same stream is handed out again
    assert!(Arc::ptr_eq(&first, &store.get_or_create("x")));
    assert!(first.finish(gen));
    let old = first.rendition(TrackKind::Video).borrow().clone().unwrap();
    let old_last = old.position.last_part.unwrap().0;
    let second = store.get_or_create("x");
    assert!(
        !Arc::ptr_eq(&first, &second),
        "an ended stream must not be resumed"
    );
    second.claim().unwrap();
    second.begin_publish(tracks).unwrap();
    for u in units {
        second.push(u, Instant::now(), 0);
    }
    let v = second.rendition(TrackKind::Video).borrow().clone().unwrap();
    let text = std::str::from_utf8(&v.playlist().plain)
        .unwrap()
        .to_string();
    assert!(
        text.contains("#EXT-X-MAP:URI=\"video_init1.mp4\""),
        "{text}"
    );
    assert!(!text.contains("#EXT-X-ENDLIST"));
    assert!(
        v.segments[0].msn > old_last,
        "MSN {} reuses a name of the ended stream",
        v.segments[0].msn
    );
}

#[test]
fn gap_parts_go_on_while_the_returning_input_waits_for_a_keyframe() {
    let (tracks, units) = fixture_units(SMALL);
    let stream = new_stream();
    stream.claim().unwrap();
    stream.begin_publish(tracks).unwrap();
    // units arrive in real time (virtual clock: arrival = t0 + decode time)
    let ticks_per_ms = |u: &MediaUnit| match u.track {
        TrackKind::Video => 90,
        TrackKind::Audio => 48,
    };
    let ms = |u: &MediaUnit| u.dts / ticks_per_ms(u);
    let t0 = Instant::now();
    let at = |u: &MediaUnit| t0 + Duration::from_millis(ms(u) as u64);
    for u in units.iter().filter(|u| ms(u) < 2_500) {
        stream.push(u.clone(), at(u), 0);
    }
    // the newest part, and whether it is a GAP part
    let last_part = || {
        let v = stream.rendition(TrackKind::Video).borrow().clone().unwrap();
        let (m, i) = v.position.last_part.unwrap();
        match v.part(m, i) {
            PartLookup::Found(p) => ((m, i), p.gap),
            other => panic!("last part {m}.{i}: {other:?}"),
        }
    };
    // 1.5 s without input: GAP parts
    assert!(stream.tick(t0 + Duration::from_millis(4_000)).is_some());
    let (stalled, gap) = last_part();
    assert!(gap, "GAP parts after 1.5 s without input");
    // the input comes back mid-GOP (its clock kept running): frames that cannot be decoded
    // without their keyframe are dropped, and the timeline must not wait for the keyframe
    let mid_gop: Vec<_> = units
        .iter()
        .filter(|u| (2_500..3_000).contains(&ms(u)))
        .map(|u| MediaUnit {
            dts: u.dts + 1_500 * ticks_per_ms(u),
            ..u.clone()
        })
        .collect();
    assert!(mid_gop
        .iter()
        .all(|u| u.track == TrackKind::Audio || !u.keyframe));
    for u in &mid_gop {
        stream.push(u.clone(), at(u), 0);
    }
    stream.tick(t0 + Duration::from_millis(4_500));
    let (later, gap) = last_part();
    assert!(gap);
    assert!(
        later > stalled,
        "GAP parts stopped while non-keyframes arrived: {stalled:?} then {later:?}"
    );
}

#[test]
fn a_reconnect_before_anything_was_published_uses_its_own_init_segment() {
    let (tracks, units) = fixture_units(SMALL);
    let stream = new_stream();
    stream.claim().unwrap();
    stream.begin_publish(tracks.clone()).unwrap();
    // the first session leaves after one frame (at wall time 0): nothing is listed
    let first = units.iter().find(|u| u.track == TrackKind::Video).unwrap();
    stream.push(first.clone(), Instant::now(), 0);
    stream.end_publish();
    assert!(stream.rendition(TrackKind::Video).borrow().is_none());
    stream.claim().unwrap();
    stream.begin_publish(tracks).unwrap();
    // the second session arrives later by the wall clock: its PDT epoch is its own
    for u in units {
        stream.push(u, Instant::now(), 1_795_420_800_000_000);
    }
    let text = video_text(&stream);
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-23T08:00:0"),
        "{text}"
    );
    assert!(
        text.contains("#EXT-X-MAP:URI=\"video_init1.mp4\""),
        "{text}"
    );
    assert!(!text.contains("video_init0.mp4"), "{text}");
    assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    let v = stream.rendition(TrackKind::Video).borrow().clone().unwrap();
    assert!(v.init(1).is_some());
}
