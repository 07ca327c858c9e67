//! Conversion tests: alignment by sender reports and by arrival, loss, parameter set changes.

use super::*;

const V0: u32 = 4_294_000_000; // wraps within the test
const A0: u32 = 123_456;
/// NTP time 1000.0 s.
const NTP0: u64 = 1000 << 32;

fn idr(seq: u16, ts: u32, sps_last: u8) -> Vec<RtpPacket> {
    let sps = [
        0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, sps_last,
    ];
    let stap = super::super::rtp::tests::stap_a(&[&sps, &[0x68, 0xce, 0x3c, 0x80]]);
    vec![
        RtpPacket {
            seq,
            timestamp: ts,
            marker: false,
            payload: Bytes::from(stap),
        },
        RtpPacket {
            seq: seq.wrapping_add(1),
            timestamp: ts,
            marker: true,
            payload: Bytes::from_static(&[0x65, 0x88, 2]),
        },
    ]
}

fn p_frame(seq: u16, ts: u32) -> RtpPacket {
    RtpPacket {
        seq,
        timestamp: ts,
        marker: true,
        payload: Bytes::from_static(&[0x41, 0x9a]),
    }
}

fn opus(seq: u16, ts: u32) -> RtpPacket {
    RtpPacket {
        seq,
        timestamp: ts,
        marker: false,
        payload: Bytes::from_static(&[0xf8, 0xff, 0xfe]),
    }
}

fn units(out: &[Output], kind: TrackKind) -> Vec<(i64, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Unit(u) if u.track == kind => Some((u.dts, u.keyframe)),
            _ => None,
        })
        .collect()
}

fn sps_ok() -> bool {
    // the SPS above must parse (640x368-ish baseline); if not, the tests below say so
    AvcConfig::from_parameter_sets(
        &[0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x40],
        &[0x68, 0xce, 0x3c, 0x80],
    )
    .is_ok()
}

/// One second of 30 fps video and 20 ms audio, the audio's RTP clock starting at NTP0 + 0.1 s
/// relative to the video's.
fn feed(c: &mut WhipToUnits, t0: Instant, reports: bool, out: &mut Vec<Output>) {
    if reports {
        // video RTP V0 is NTP0; audio RTP A0 is NTP0 + 0.1 s
        c.sender_report(TrackKind::Video, NTP0, V0); // ignored: no packet yet
    }
    let mut vseq = 100u16;
    for i in 0..30u32 {
        let at = t0 + Duration::from_millis(u64::from(i) * 33);
        let ts = V0.wrapping_add(i * 3000);
        if i % 15 == 0 {
            for p in idr(vseq, ts, 0x40) {
                c.rtp(TrackKind::Video, p, at, out);
            }
            vseq = vseq.wrapping_add(2);
        } else {
            c.rtp(TrackKind::Video, p_frame(vseq, ts), at, out);
            vseq = vseq.wrapping_add(1);
        }
        if i == 0 && reports {
            c.sender_report(TrackKind::Video, NTP0, V0);
        }
    }
    for j in 0..50u32 {
        // the audio arrives 300 ms late (a slow audio path): reports still align it
        let at = t0 + Duration::from_millis(300 + u64::from(j) * 20);
        c.rtp(TrackKind::Audio, opus(j as u16, A0 + j * 960), at, out);
        if j == 0 && reports {
            c.sender_report(TrackKind::Audio, NTP0 + (1 << 32) / 10, A0);
        }
    }
}

#[test]
fn sender_reports_align_audio_with_video() {
    assert!(sps_ok());
    let mut c = WhipToUnits::new(true, Some(OpusConfig::webrtc(2).unwrap()));
    let mut out = Vec::new();
    let t0 = Instant::now();
    feed(&mut c, t0, true, &mut out);
    assert!(
        matches!(&out[0], Output::Start(t) if t.video.is_some() && matches!(t.audio, Some(AudioConfig::Opus(_))))
    );
    let v = units(&out, TrackKind::Video);
    assert_eq!(v.len(), 30);
    assert_eq!(v[0], (0, true));
    assert_eq!(v[29], (29 * 3000, false)); // across the RTP timestamp wrap
    assert!(v[15].1);
    let a = units(&out, TrackKind::Audio);
    // audio RTP A0 is 0.1 s after the first video frame: 4800 ticks
    assert_eq!(a[0].0, 4800);
    assert_eq!(a[1].0, 4800 + 960);
    assert_eq!(a.len(), 50);
    assert_eq!(c.stats, Stats::default());
    assert!(!c.needs_keyframe());
}

#[test]
fn without_reports_arrival_times_align_the_tracks() {
    let mut c = WhipToUnits::new(true, Some(OpusConfig::webrtc(2).unwrap()));
    let mut out = Vec::new();
    let t0 = Instant::now();
    feed(&mut c, t0, false, &mut out);
    assert!(out.is_empty(), "nothing before the tracks are aligned");
    c.tick(t0 + SYNC_WAIT, &mut out);
    let v = units(&out, TrackKind::Video);
    let a = units(&out, TrackKind::Audio);
    assert_eq!(v.len(), 30);
    // the first audio packet arrived 300 ms after the first video frame
    assert_eq!(a[0].0, 14_400);
    assert_eq!(a.len(), 50);
}

#[test]
fn video_only_and_audio_only() {
    let mut c = WhipToUnits::new(false, Some(OpusConfig::webrtc(1).unwrap()));
    let mut out = Vec::new();
    let t0 = Instant::now();
    c.rtp(TrackKind::Audio, opus(0, A0), t0, &mut out);
    c.sender_report(TrackKind::Audio, NTP0, A0);
    c.rtp(TrackKind::Audio, opus(1, A0 + 960), t0, &mut out);
    assert!(matches!(&out[0], Output::Start(t) if t.video.is_none()));
    assert_eq!(units(&out, TrackKind::Audio), vec![(0, true), (960, true)]);
    // video packets for a publish without video are ignored
    c.rtp(TrackKind::Video, p_frame(1, 0), t0, &mut out);
    assert_eq!(out.len(), 3);
}

#[test]
fn loss_drops_video_to_the_next_idr_and_asks_for_it() {
    let mut c = WhipToUnits::new(true, None);
    let mut out = Vec::new();
    let t0 = Instant::now();
    assert!(c.needs_keyframe());
    for p in idr(1, 0, 0x40) {
        c.rtp(TrackKind::Video, p, t0, &mut out);
    }
    c.sender_report(TrackKind::Video, NTP0, 0);
    c.rtp(TrackKind::Video, p_frame(3, 3000), t0, &mut out);
    assert!(!c.needs_keyframe());
    // packet 4 never comes
    c.rtp(TrackKind::Video, p_frame(5, 9000), t0, &mut out);
    c.rtp(TrackKind::Video, p_frame(6, 12000), t0, &mut out);
    assert_eq!(units(&out, TrackKind::Video).len(), 2);
    c.tick(t0 + REORDER_WAIT / 2, &mut out);
    assert_eq!(
        units(&out, TrackKind::Video).len(),
        2,
        "still waiting for packet 4"
    );
    c.tick(t0 + REORDER_WAIT, &mut out);
    assert!(c.needs_keyframe());
    assert_eq!(c.stats.packets_lost, [1, 0]);
    assert_eq!(c.stats.frames_dropped_loss, 2);
    for p in idr(7, 15000, 0x40) {
        c.rtp(TrackKind::Video, p, t0, &mut out);
    }
    assert_eq!(
        units(&out, TrackKind::Video),
        vec![(0, true), (3000, false), (15000, true)]
    );
    // a reordered packet is put back in place
    c.rtp(TrackKind::Video, p_frame(10, 21000), t0, &mut out);
    c.rtp(TrackKind::Video, p_frame(9, 18000), t0, &mut out);
    let v = units(&out, TrackKind::Video);
    assert_eq!(&v[3..], &[(18000, false), (21000, false)]);
}

#[test]
fn new_parameter_sets_restart_the_publish() {
    let mut c = WhipToUnits::new(true, None);
    let mut out = Vec::new();
    let t0 = Instant::now();
    for p in idr(1, 0, 0x40) {
        c.rtp(TrackKind::Video, p, t0, &mut out);
    }
    c.sender_report(TrackKind::Video, NTP0, 0);
    c.rtp(TrackKind::Video, p_frame(3, 3000), t0, &mut out);
    // the same parameter sets again: nothing new
    for p in idr(4, 6000, 0x40) {
        c.rtp(TrackKind::Video, p, t0, &mut out);
    }
    assert!(!out.iter().any(|o| matches!(o, Output::Restart(_))));
    // a resolution change: new SPS
    for p in idr(6, 9000, 0x20) {
        c.rtp(TrackKind::Video, p, t0, &mut out);
    }
    let restarts = out
        .iter()
        .filter(|o| matches!(o, Output::Restart(_)))
        .count();
    assert_eq!(restarts, 1);
    assert!(matches!(out.last(), Some(Output::Unit(u)) if u.keyframe && u.dts == 9000));
}

#[test]
fn malformed_audio_is_dropped() {
    let mut c = WhipToUnits::new(false, Some(OpusConfig::webrtc(2).unwrap()));
    let mut out = Vec::new();
    let t0 = Instant::now();
    c.rtp(
        TrackKind::Audio,
        RtpPacket {
            seq: 1,
            timestamp: 0,
            marker: false,
            payload: Bytes::new(),
        },
        t0,
        &mut out,
    );
    // code 3 without its frame count byte
    c.rtp(
        TrackKind::Audio,
        RtpPacket {
            seq: 2,
            timestamp: 960,
            marker: false,
            payload: Bytes::from_static(&[0xfb]),
        },
        t0,
        &mut out,
    );
    // padding only (no payload) is not media and not malformed
    assert_eq!(c.stats.frames_dropped_malformed, 1);
    assert!(out.is_empty());
}

#[test]
fn a_track_that_starts_after_the_alignment_joins_at_the_present() {
    let mut c = WhipToUnits::new(true, Some(OpusConfig::webrtc(2).unwrap()));
    let mut out = Vec::new();
    let t0 = Instant::now();
    for p in idr(1, 0, 0x40) {
        c.rtp(TrackKind::Video, p, t0, &mut out);
    }
    c.rtp(TrackKind::Video, p_frame(3, 3000), t0, &mut out);
    // no audio for the whole wait: video goes alone
    c.tick(t0 + SYNC_WAIT, &mut out);
    c.rtp(TrackKind::Video, p_frame(4, 6000), t0 + SYNC_WAIT, &mut out);
    assert_eq!(units(&out, TrackKind::Video).len(), 3);
    // audio then starts: its first packet is at the video's latest time (6000 ticks = 3200)
    c.rtp(TrackKind::Audio, opus(0, A0), t0 + SYNC_WAIT, &mut out);
    c.rtp(
        TrackKind::Audio,
        opus(1, A0 + 960),
        t0 + SYNC_WAIT,
        &mut out,
    );
    assert_eq!(
        units(&out, TrackKind::Audio),
        vec![(3200, true), (4160, true)]
    );
}
