//! Segmenter tests on synthetic timelines (virtual time: timestamps only, no clocks).

use super::*;
use bytes::Bytes;
use std::time::Duration;

/// AAC at 48 kHz: 1024-sample frames.
const AAC_48K: AudioClock = AudioClock {
    timescale: 48_000,
    frame: 1024,
};

/// Opus as WebRTC sends it: 20 ms packets on a 48 kHz clock.
const OPUS: AudioClock = AudioClock {
    timescale: 48_000,
    frame: 960,
};

/// A synthetic RTMP-like input: video at `fps` with a keyframe every `gop` frames, AAC at
/// 48 kHz, timestamps rounded to milliseconds like RTMP, interleaved by time.
fn input(from_ms: i64, to_ms: i64, fps: f64, gop: i64, audio: bool) -> Vec<MediaUnit> {
    let mut v = Vec::new();
    let mut i = 0i64;
    loop {
        let ms = (i as f64 * 1000.0 / fps).round() as i64;
        if ms >= to_ms {
            break;
        }
        if ms >= from_ms {
            v.push((
                ms,
                MediaUnit {
                    track: TrackKind::Video,
                    dts: ms * 90,
                    cts: 0,
                    keyframe: i % gop == 0,
                    data: Bytes::from(vec![(i % 251) as u8; 10 + (i % 7) as usize]),
                },
            ));
        }
        i += 1;
    }
    if audio {
        let mut j = 0i64;
        loop {
            let ticks = j * 1024;
            let ms = ticks * 1000 / 48_000;
            if ms >= to_ms {
                break;
            }
            if ms >= from_ms {
                v.push((
                    ms,
                    MediaUnit {
                        track: TrackKind::Audio,
                        dts: ticks,
                        cts: 0,
                        keyframe: true,
                        data: Bytes::from(vec![1u8; 6]),
                    },
                ));
            }
            j += 1;
        }
    }
    v.sort_by_key(|(ms, u)| (*ms, u.track == TrackKind::Audio));
    v.into_iter().map(|(_, u)| u).collect()
}

fn run(cfg: SegmenterConfig, units: Vec<MediaUnit>, video: bool, audio: bool) -> Vec<Event> {
    let mut s = Segmenter::new(cfg, video, audio.then_some(AAC_48K));
    let mut out = Vec::new();
    for u in units {
        s.push(u, &mut out);
    }
    s.flush(&mut out);
    out
}

fn parts(events: &[Event], track: TrackKind) -> Vec<&ClosedPart> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Part(p) if p.track == track => Some(p),
            _ => None,
        })
        .collect()
}

fn timing(events: &[Event]) -> Timing {
    match events.first() {
        Some(Event::Timing(t)) => *t,
        other => panic!("first event is not Timing: {other:?}"),
    }
}

/// Segments as (msn, start, duration) per track, from the parts.
fn segments(events: &[Event], track: TrackKind) -> Vec<(u64, i64, i64)> {
    let mut segs: Vec<(u64, i64, i64)> = Vec::new();
    for p in parts(events, track) {
        match segs.last_mut() {
            Some(s) if s.0 == p.msn => s.2 += p.duration,
            _ => segs.push((p.msn, p.start, p.duration)),
        }
    }
    segs
}

#[test]
fn steady_30fps_one_second_gop() {
    let ev = run(
        SegmenterConfig::default(),
        input(0, 10_000, 30.0, 30, true),
        true,
        true,
    );
    let t = timing(&ev);
    assert_eq!(t.target_duration, 2);
    // 6 frames = 200 ms video parts; audio parts up to 10 AAC frames = 213.3 ms
    assert_eq!(t.part_target_ms, 214);
    assert!((t.frame_rate.unwrap() - 30.0).abs() < 0.01);

    let vsegs = segments(&ev, TrackKind::Video);
    let msns: Vec<u64> = vsegs.iter().map(|s| s.0).collect();
    assert_eq!(msns, vec![0, 1, 2, 3, 4]);
    for s in &vsegs[..4] {
        assert_eq!(s.2, 180_000, "segment {s:?} is not 2 s");
    }
    let pt = i64::from(t.part_target_ms) * 90;
    let vparts = parts(&ev, TrackKind::Video);
    for (i, p) in vparts.iter().enumerate() {
        assert!(p.duration <= pt, "{p:?} longer than PART-TARGET");
        // parts are exactly 6 frames here
        assert_eq!(p.samples.len(), 6, "part {} of {}", p.index, p.msn);
        // INDEPENDENT on every part that starts with a keyframe: the segment's first part and
        // the part at the mid-segment keyframe (1 s GOP in 2 s segments)
        assert_eq!(p.independent, p.samples[0].keyframe);
        assert_eq!(p.independent, p.index == 0 || p.index == 5);
        if i > 0 {
            let prev = vparts[i - 1];
            assert_eq!(
                prev.start + prev.duration,
                p.start,
                "decode timeline has a hole"
            );
        }
    }
    assert_eq!(vparts.len(), 50);
    // every video frame is emitted exactly once, in order
    let n: usize = vparts.iter().map(|p| p.samples.len()).sum();
    assert_eq!(n, 300);

    let aparts = parts(&ev, TrackKind::Audio);
    let apt = i64::from(t.part_target_ms) * 48;
    assert_eq!(aparts.len(), vparts.len());
    for (a, v) in aparts.iter().zip(&vparts) {
        assert_eq!((a.msn, a.index), (v.msn, v.index));
        assert!(!a.is_gap());
        assert!(a.duration <= apt);
        assert!(a.duration * 100 >= apt * 85, "audio part {a:?} < 85 %");
        // audio part within half an AAC frame of the video part's start
        let vstart = v.start * 48_000 / 90_000;
        assert!((a.start - vstart).abs() <= 512, "{} vs {}", a.start, vstart);
    }
    for w in aparts.windows(2) {
        assert_eq!(w[0].start + w[0].duration, w[1].start);
    }
    // segment ends: each track ends every segment once, after its parts
    for track in [TrackKind::Video, TrackKind::Audio] {
        let ends: Vec<u64> = ev
            .iter()
            .filter_map(|e| match e {
                Event::SegmentEnd { track: t, msn, .. } if *t == track => Some(*msn),
                _ => None,
            })
            .collect();
        assert_eq!(ends, vec![0, 1, 2, 3, 4], "{track:?}");
    }
}

#[test]
fn opus_follows_video_parts_in_whole_20ms_packets() {
    // 30 fps video and 20 ms Opus packets, as a WebRTC publisher sends them
    let mut units: Vec<(i64, MediaUnit)> = input(0, 10_000, 30.0, 30, false)
        .into_iter()
        .map(|u| (u.dts / 90, u))
        .collect();
    for j in 0..500i64 {
        let dts = j * 960;
        let unit = MediaUnit {
            track: TrackKind::Audio,
            dts,
            cts: 0,
            keyframe: true,
            data: Bytes::from(vec![0xfc, j as u8]),
        };
        units.push((dts / 48, unit));
    }
    units.sort_by_key(|(ms, u)| (*ms, u.track == TrackKind::Audio));
    let mut s = Segmenter::new(SegmenterConfig::default(), true, Some(OPUS));
    let mut ev = Vec::new();
    for (_, u) in units {
        s.push(u, &mut ev);
    }
    s.flush(&mut ev);
    let t = timing(&ev);
    // 6 video frames = 200 ms; 10 Opus packets cover them exactly (with AAC it is 214)
    assert_eq!(t.part_target_ms, 200);
    let vparts = parts(&ev, TrackKind::Video);
    let aparts = parts(&ev, TrackKind::Audio);
    assert_eq!(aparts.len(), vparts.len());
    assert_contiguous(&aparts);
    for (a, v) in aparts.iter().zip(&vparts) {
        assert_eq!((a.msn, a.index), (v.msn, v.index));
        assert!(a.duration <= i64::from(t.part_target_ms) * 48, "{a:?}");
        assert_eq!(
            a.duration % 960,
            0,
            "part {}.{} splits a packet",
            a.msn,
            a.index
        );
        assert!(a.samples.iter().all(|x| x.duration == 960));
        let vstart = v.start * 48_000 / 90_000;
        assert!((a.start - vstart).abs() <= 480, "{} vs {}", a.start, vstart);
    }
    // every packet once, in order
    let seen: Vec<u8> = aparts
        .iter()
        .flat_map(|p| p.samples.iter().map(|x| x.data[1]))
        .collect();
    let want: Vec<u8> = (0..seen.len()).map(|j| j as u8).collect();
    assert_eq!(seen, want);
    assert!(seen.len() >= 490, "{} packets out", seen.len());
    assert_eq!(segments(&ev, TrackKind::Audio)[1].2, 96_000);
}

#[test]
fn parts_close_on_their_last_frame() {
    // After the probe, a part must be emitted by the push of its last frame, not the next one.
    let units = input(0, 4_000, 30.0, 30, false);
    let mut s = Segmenter::new(SegmenterConfig::default(), true, None);
    let mut out = Vec::new();
    let mut closed_by_last = 0;
    for u in units {
        let ptr = u.data.as_ptr();
        out.clear();
        s.push(u, &mut out);
        for e in &out {
            if let Event::Part(p) = e {
                if p.samples.last().map(|x| x.data.as_ptr()) == Some(ptr) {
                    closed_by_last += 1;
                }
            }
        }
    }
    // parts after the probe (the first GOP is replayed at once) close on their last frame
    assert!(closed_by_last >= 14, "{closed_by_last}");
}

#[test]
fn deterministic_across_late_start() {
    let cfg = SegmenterConfig::default();
    let a = run(cfg, input(0, 12_000, 30.0, 30, true), true, true);
    // B joins mid-bucket: its first keyframes (3 s, 5 s) do not open a 2 s bucket, so it waits
    // for the next one that does rather than cutting a short segment A never made
    for (late_ms, first_msn) in [(2_500, 2u64), (3_500, 2), (4_900, 3)] {
        let b = run(cfg, input(late_ms, 12_000, 30.0, 30, true), true, true);
        assert_eq!(timing(&a), timing(&b));
        for tr in [TrackKind::Video, TrackKind::Audio] {
            let pa = parts(&a, tr);
            let pb = parts(&b, tr);
            assert_eq!(pb.first().map(|p| (p.msn, p.index)), Some((first_msn, 0)));
            // every part B makes (samples, times, flags) is the one A made, up to the end
            // of the input where both flush
            let common: Vec<_> = pa
                .iter()
                .filter(|p| p.msn >= first_msn && p.msn < 5)
                .collect();
            assert!(common.len() >= 10);
            for (x, y) in common.iter().zip(&pb) {
                assert_eq!(x, &y, "{tr:?} from {late_ms} ms");
            }
        }
    }
}

#[test]
fn resumed_session_starts_on_its_first_keyframe() {
    let cfg = SegmenterConfig {
        align_start: false,
        min_msn: 7,
        ..SegmenterConfig::default()
    };
    let b = run(cfg, input(2_500, 8_000, 30.0, 30, true), true, true);
    let first = parts(&b, TrackKind::Video)[0];
    assert_eq!((first.msn, first.index, first.start), (7, 0, 3_000 * 90));
}

#[test]
fn b_frames_keep_presentation_times() {
    // decode order I P B B P B B … with cts offsets, 30 fps, 1 s GOP
    let mut units = Vec::new();
    for i in 0..120i64 {
        let ms = (i as f64 * 1000.0 / 30.0).round() as i64;
        let cts_frames: i64 = match i % 3 {
            0 => 2,
            _ => 0,
        };
        units.push(MediaUnit {
            track: TrackKind::Video,
            dts: ms * 90,
            cts: (cts_frames * 3000) as i32,
            keyframe: i % 30 == 0,
            data: Bytes::from_static(b"x"),
        });
    }
    let orig: Vec<(i64, i32)> = units.iter().map(|u| (u.dts, u.cts)).collect();
    let ev = run(SegmenterConfig::default(), units, true, false);
    let out: Vec<(i64, i32)> = parts(&ev, TrackKind::Video)
        .iter()
        .flat_map(|p| p.samples.iter().map(|s| (s.dts, s.cts)))
        .collect();
    assert_eq!(out.len(), orig.len());
    for ((d0, c0), (d1, c1)) in orig.iter().zip(&out) {
        assert_eq!(d0 + i64::from(*c0), d1 + i64::from(*c1), "PTS changed");
        assert!((d0 - d1).abs() <= 90, "DTS moved by more than 1 ms");
        assert_eq!(d1 % 3000, 0, "DTS not on the frame grid");
    }
}

#[test]
fn long_gop_sets_target_duration() {
    // 4 s GOP with a 2 s target: TARGETDURATION 4, one segment per GOP, no forced cuts
    let ev = run(
        SegmenterConfig::default(),
        input(0, 16_000, 30.0, 120, true),
        true,
        true,
    );
    assert_eq!(timing(&ev).target_duration, 4);
    let segs = segments(&ev, TrackKind::Video);
    assert_eq!(segs.len(), 4);
    for s in &segs {
        assert_eq!(s.2, 360_000);
    }
    assert!(!ev.iter().any(|e| matches!(
        e,
        Event::SegmentEnd {
            forced_next: true,
            ..
        }
    )));
}

#[test]
fn growing_gop_is_cut_without_exceeding_target_duration() {
    // first GOP 1 s (TD 2), then the encoder switches to 5 s GOPs
    let mut units = input(0, 2_000, 30.0, 30, false);
    for u in input(2_000, 14_000, 30.0, 150, false) {
        units.push(MediaUnit {
            keyframe: (u.dts / 90 - 2_000) % 5_000 == 0,
            ..u
        });
    }
    let ev = run(SegmenterConfig::default(), units, true, false);
    let td = timing(&ev).target_duration;
    assert_eq!(td, 2);
    for s in segments(&ev, TrackKind::Video) {
        let secs = s.2 as f64 / 90_000.0;
        assert!(
            secs.round() as u32 <= td,
            "segment {s:?} exceeds TARGETDURATION"
        );
    }
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::SegmentEnd {
            forced_next: true,
            ..
        }
    )));
}

#[test]
fn audio_only_cuts_on_time() {
    let units: Vec<_> = input(0, 9_000, 30.0, 30, true)
        .into_iter()
        .filter(|u| u.track == TrackKind::Audio)
        .collect();
    let ev = run(SegmenterConfig::default(), units, false, true);
    let t = timing(&ev);
    assert_eq!(t.target_duration, 2);
    assert_eq!(t.frame_rate, None);
    let segs = segments(&ev, TrackKind::Audio);
    assert!(segs.len() >= 4);
    for s in &segs[..segs.len() - 1] {
        assert!((s.2 - 96_000).abs() <= 1024, "{s:?}");
    }
    let ap = parts(&ev, TrackKind::Audio);
    for (i, p) in ap.iter().enumerate() {
        let last_of_segment = ap.get(i + 1).is_none_or(|n| n.msn != p.msn);
        if !last_of_segment {
            assert_eq!(p.samples.len(), 9); // 9 × 21.3 ms = 192 ms
        }
        assert!(p.duration <= i64::from(t.part_target_ms) * 48);
    }
}

#[test]
fn audio_dropout_becomes_gap_parts() {
    let units: Vec<_> = input(0, 8_000, 30.0, 30, true)
        .into_iter()
        .filter(|u| u.track == TrackKind::Video || !(3_000 * 48..5_000 * 48).contains(&u.dts))
        .collect();
    let ev = run(SegmenterConfig::default(), units, true, true);
    let v = parts(&ev, TrackKind::Video);
    let a = parts(&ev, TrackKind::Audio);
    assert_eq!(v.len(), a.len());
    let gaps = a.iter().filter(|p| p.is_gap()).count();
    assert!((8..=12).contains(&gaps), "{gaps} gap parts");
    for (x, y) in a.iter().zip(&v) {
        assert_eq!((x.msn, x.index), (y.msn, y.index));
    }
}

#[test]
fn non_keyframe_start_is_dropped_until_keyframe() {
    let units: Vec<_> = input(0, 5_000, 30.0, 30, false)
        .into_iter()
        .skip(5)
        .collect();
    let unaligned = SegmenterConfig {
        align_start: false,
        ..SegmenterConfig::default()
    };
    let ev = run(unaligned, units.clone(), true, false);
    let p = parts(&ev, TrackKind::Video);
    assert_eq!((p[0].msn, p[0].index), (0, 0));
    assert_eq!(p[0].start, 90_000); // the keyframe at 1 s: bucket 0
    assert!(p[0].samples[0].keyframe);
    // aligned (a first session): the keyframe at 1 s shares bucket 0 with the GOP before it,
    // which another origin may have had, so the stream starts at the bucket edge (2 s)
    let ev = run(SegmenterConfig::default(), units, true, false);
    let p = parts(&ev, TrackKind::Video);
    assert_eq!((p[0].msn, p[0].index, p[0].start), (1, 0, 180_000));
    assert!(p[0].samples[0].keyframe);
}

#[test]
fn part_length_divides_the_gop() {
    // 24 fps, 1 s GOP: 200 ms is 4.8 frames; 4 frames (167 ms) divide the GOP, so keyframes
    // fall on part boundaries and every part is whole
    let ev = run(
        SegmenterConfig::default(),
        input(0, 8_000, 24.0, 24, true),
        true,
        true,
    );
    let t = timing(&ev);
    assert_eq!(t.part_target_ms, 171); // 4 frames = 166.7 ms video; audio: 8 AAC frames = 170.7 ms
    let v = parts(&ev, TrackKind::Video);
    for p in &v[..v.len() - 1] {
        assert_eq!(p.samples.len(), 4);
    }
    let a = parts(&ev, TrackKind::Audio);
    assert_eq!(a.len(), v.len());
    for (x, y) in a.iter().zip(&v) {
        assert_eq!((x.msn, x.index), (y.msn, y.index));
        assert!(x.duration <= i64::from(t.part_target_ms) * 48);
    }
    assert_eq!(part_frames(18_000, 3_750, 24), 4);
    assert_eq!(part_frames(18_000, 3_000, 30), 6);
    assert_eq!(part_frames(18_000, 3_000, 31), 6); // prime GOP: nearest
    assert_eq!(part_frames(9_600, 1_024, 1), 9); // audio-only
}

#[test]
fn video_gap_keeps_part_indices_unique() {
    // the encoder's video jumps 67 ms forward at a keyframe (a looped file whose audio is
    // longer than its video): audio closes its parts on nominal boundaries while video samples
    // of the same part still arrive; every (msn, index) must be emitted exactly once per track
    let mut units = input(0, 4_000, 30.0, 30, true);
    for u in input(0, 4_000, 30.0, 30, true) {
        let shift = 4_067;
        let dts = match u.track {
            TrackKind::Video => u.dts + shift * 90,
            TrackKind::Audio => u.dts + (shift * 48 + 512) / 1024 * 1024,
        };
        if u.track == TrackKind::Audio && dts < 4_000 * 48 {
            continue;
        }
        units.push(MediaUnit { dts, ..u });
    }
    // audio travels 100 ms ahead of video (as with B-frame encoders, whose DTS lag)
    units.sort_by_key(|u| match u.track {
        TrackKind::Video => u.dts * 2,
        TrackKind::Audio => (u.dts * 90 / 48 - 9_000) * 2 + 1,
    });
    let ev = run(SegmenterConfig::default(), units, true, true);
    for tr in [TrackKind::Video, TrackKind::Audio] {
        let keys: Vec<(u64, u32)> = parts(&ev, tr).iter().map(|p| (p.msn, p.index)).collect();
        for w in keys.windows(2) {
            assert!(w[1] > w[0], "{tr:?}: {:?} then {:?}", w[0], w[1]);
        }
    }
    assert_eq!(
        parts(&ev, TrackKind::Video).len(),
        parts(&ev, TrackKind::Audio).len()
    );
}

#[test]
fn frame_rates_snap_to_standard_rates() {
    assert_eq!(nominal_frame_rate(30.0048), 30.0);
    assert!((nominal_frame_rate(29.971) - 29.97).abs() < 0.001);
    assert_eq!(nominal_frame_rate(27.0), 27.0);
}

#[test]
fn probe_is_bounded_when_the_leader_never_sends_a_keyframe() {
    // a publisher announces video but only sends audio (and non-key video): memory stays bounded
    let mut s = Segmenter::new(SegmenterConfig::default(), true, Some(AAC_48K));
    let mut out = Vec::new();
    for i in 0..20_000i64 {
        s.push(
            MediaUnit {
                track: TrackKind::Audio,
                dts: i * 1024,
                cts: 0,
                keyframe: true,
                data: Bytes::from_static(b"a"),
            },
            &mut out,
        );
    }
    assert!(out.is_empty());
    assert!(s.probe.as_ref().unwrap().len() <= MAX_PROBE_UNITS);
}

/// Parts of a track must tile the timeline: each starts where the previous one ended, with
/// strictly increasing (msn, index).
fn assert_contiguous(ps: &[&ClosedPart]) {
    for w in ps.windows(2) {
        assert!(
            (w[1].msn, w[1].index) > (w[0].msn, w[0].index),
            "{:?} then {:?}",
            (w[0].msn, w[0].index),
            (w[1].msn, w[1].index)
        );
        assert_eq!(
            w[1].start,
            w[0].start + w[0].duration,
            "hole or overlap before part {}.{}",
            w[1].msn,
            w[1].index
        );
    }
}

/// Feeds `units`, then reports the input silent in steps of 100 ms for `silent_ms`.
fn stall(s: &mut Segmenter, units: Vec<MediaUnit>, silent_ms: u64, out: &mut Vec<Event>) {
    for u in units {
        s.push(u, out);
    }
    for ms in (100..=silent_ms).step_by(100) {
        s.fill(Duration::from_millis(ms), out);
    }
}

/// 4 s of 30 fps video and audio, then the publisher leaves and `gap_ms` of GAP follows.
fn published_then_lost(gap_ms: u64) -> (Segmenter, Vec<Event>) {
    let mut s = Segmenter::new(SegmenterConfig::default(), true, Some(AAC_48K));
    let mut ev = Vec::new();
    for u in input(0, 4_000, 30.0, 30, true) {
        s.push(u, &mut ev);
    }
    s.input_lost(&mut ev);
    s.fill(Duration::from_millis(gap_ms), &mut ev);
    (s, ev)
}

#[test]
fn stalled_input_becomes_gap_parts_on_the_grid() {
    let mut s = Segmenter::new(SegmenterConfig::default(), true, Some(AAC_48K));
    let mut ev = Vec::new();
    // 4 s of media (last frame at 3967 ms), then 3 s of silence
    let input_end = 3_967 * 90;
    let mut gap_ends = Vec::new();
    for u in input(0, 4_000, 30.0, 30, true) {
        s.push(u, &mut ev);
    }
    for ms in (100..=3_000).step_by(100) {
        let before = ev.len();
        s.fill(Duration::from_millis(ms), &mut ev);
        // a GAP part is published as soon as the input has been missing past its end, not
        // before
        let until = input_end + ms as i64 * 90;
        for e in &ev[before..] {
            if let Event::Part(p) = e {
                if p.track == TrackKind::Video {
                    assert!(p.is_gap());
                    assert!(p.start + p.duration <= until);
                    gap_ends.push(p.start + p.duration);
                }
            }
        }
        let last = gap_ends.last().copied().unwrap_or(4_000 * 90);
        assert!(
            last > until - 18_000,
            "{ms} ms silent: gap only up to {last}"
        );
    }
    // the encoder's clock kept running (OBS): it is back at 7 s; frames before its keyframe
    // are dropped
    for u in input(6_500, 10_000, 30.0, 30, true) {
        s.push(u, &mut ev);
    }
    s.flush(&mut ev);
    let v = parts(&ev, TrackKind::Video);
    let a = parts(&ev, TrackKind::Audio);
    assert_contiguous(&v);
    assert_contiguous(&a);
    assert_eq!(
        v.iter().map(|p| (p.msn, p.index)).collect::<Vec<_>>(),
        a.iter().map(|p| (p.msn, p.index)).collect::<Vec<_>>()
    );
    // gap segments: the bucket [4 s, 6 s) and [6 s, 7 s); the input returns in segment 4
    let gaps: Vec<_> = v.iter().filter(|p| p.is_gap()).collect();
    assert_eq!(
        gaps.first().map(|p| (p.msn, p.index, p.start)),
        Some((2, 0, 360_000))
    );
    assert_eq!(gaps.last().map(|p| p.start + p.duration), Some(630_000));
    assert_eq!(gaps.len(), 15);
    assert!(gaps.iter().all(|p| p.duration == 18_000));
    let back = v.iter().find(|p| p.start == 630_000).unwrap();
    assert_eq!((back.msn, back.index), (4, 0));
    assert!(back.independent && back.samples[0].keyframe);
    // segments after the return follow the buckets again (8 s opens bucket 4)
    assert_eq!(
        segments(&ev, TrackKind::Video)
            .iter()
            .map(|s| (s.0, s.1 / 90))
            .filter(|s| s.0 >= 2)
            .collect::<Vec<_>>(),
        vec![(2, 4_000), (3, 6_000), (4, 7_000), (5, 8_000)]
    );
    // one discontinuity, after the gap segments ended and before the returning media
    let disc: Vec<usize> = (0..ev.len())
        .filter(|&i| ev[i] == Event::Discontinuity)
        .collect();
    assert_eq!(disc.len(), 1);
    let first_back = ev
        .iter()
        .position(|e| matches!(e, Event::Part(p) if p.start == 630_000))
        .unwrap();
    assert!(disc[0] < first_back);
    assert!(ev[..disc[0]].contains(&Event::SegmentEnd {
        track: TrackKind::Audio,
        msn: 3,
        forced_next: false
    }));
}

#[test]
fn input_back_on_an_earlier_clock_continues_the_timeline() {
    let mut s = Segmenter::new(SegmenterConfig::default(), true, Some(AAC_48K));
    let mut ev = Vec::new();
    stall(&mut s, input(0, 4_000, 30.0, 30, true), 1_000, &mut ev);
    let gap_end = parts(&ev, TrackKind::Video)
        .last()
        .map(|p| p.start + p.duration)
        .unwrap();
    // an encoder restarted at timestamp 0 on the same connection
    for u in input(0, 3_000, 30.0, 30, true) {
        s.push(u, &mut ev);
    }
    s.flush(&mut ev);
    let v = parts(&ev, TrackKind::Video);
    assert_contiguous(&v);
    assert_contiguous(&parts(&ev, TrackKind::Audio));
    let back = v
        .iter()
        .find(|p| !p.is_gap() && p.start >= gap_end)
        .unwrap();
    assert_eq!(back.start, gap_end);
    assert!(back.independent);
    let frames: usize = v
        .iter()
        .filter(|p| p.start >= gap_end)
        .map(|p| p.samples.len())
        .sum();
    assert_eq!(frames, 90, "every frame of the new clock is kept");
    assert_eq!(ev.iter().filter(|e| **e == Event::Discontinuity).count(), 1);
}

#[test]
fn resumed_session_continues_and_remeasures_its_frame_rate() {
    let (mut s, mut ev) = published_then_lost(500);
    // the publisher reconnects at 60 fps, its clock restarted
    s.resume(Some(AAC_48K), &mut ev);
    assert!(!s.is_probing());
    for u in input(0, 4_000, 60.0, 60, true) {
        s.push(u, &mut ev);
    }
    s.flush(&mut ev);
    let v = parts(&ev, TrackKind::Video);
    assert_contiguous(&v);
    let new: Vec<&SegSample> = v
        .iter()
        .filter(|p| p.start >= 4_000 * 90)
        .flat_map(|p| &p.samples)
        .collect();
    assert_eq!(new.len(), 240);
    // decode times on the new 60 fps grid, not squeezed onto the old 30 fps one
    for w in new.windows(2) {
        assert!(w[1].dts - w[0].dts >= 1_400, "{} → {}", w[0].dts, w[1].dts);
    }
    assert_eq!(ev.iter().filter(|e| **e == Event::Discontinuity).count(), 1);
}

#[test]
fn a_stall_inside_a_resumed_sessions_first_gop_keeps_the_frame_grid() {
    let (mut s, mut ev) = published_then_lost(300);
    assert!(s.resume(Some(AAC_48K), &mut ev));
    // the new session (clock restarted) sends 10 frames, stalls for 1.5 s, then goes on with
    // its clock running: the frame-rate check must not take the stall for frame spacing
    let units = input(0, 6_000, 30.0, 30, true);
    let (head, tail): (Vec<_>, Vec<_>) = units.into_iter().partition(|u| match u.track {
        TrackKind::Video => u.dts < 333 * 90,
        TrackKind::Audio => u.dts < 333 * 48,
    });
    stall(&mut s, head, 1_500, &mut ev);
    for u in tail.into_iter().filter(|u| match u.track {
        TrackKind::Video => u.dts >= 2_000 * 90,
        TrackKind::Audio => u.dts >= 2_000 * 48,
    }) {
        s.push(u, &mut ev);
    }
    s.flush(&mut ev);
    let v = parts(&ev, TrackKind::Video);
    assert_contiguous(&v);
    assert_contiguous(&parts(&ev, TrackKind::Audio));
    assert_eq!(ev.iter().filter(|e| **e == Event::Discontinuity).count(), 2);
    let t = timing(&ev);
    let mut previous: Option<i64> = None;
    for p in &v {
        assert!(
            p.duration <= i64::from(t.part_target_ms) * 90,
            "part {}.{} is {} ticks",
            p.msn,
            p.index,
            p.duration
        );
        if p.is_gap() {
            previous = None;
        }
        // frames stay 1/30 s apart (the first GOP of a resumed session keeps the publisher's
        // millisecond timestamps)
        for s in &p.samples {
            if let Some(prev) = previous {
                let step = s.dts - prev;
                assert!(
                    (2_900..=3_100).contains(&step),
                    "part {}.{}: {step}",
                    p.msn,
                    p.index
                );
            }
            previous = Some(s.dts);
        }
    }
}
