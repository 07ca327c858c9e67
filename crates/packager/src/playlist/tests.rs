use super::*;
use crate::model::{OpenSegment, Part, Segment};
use bytes::Bytes;

fn part(msn: u64, index: u32, ms: i64, independent: bool, gap: bool) -> Arc<Part> {
    Arc::new(Part {
        msn,
        index,
        duration: ms * 90,
        independent,
        gap,
        header: Bytes::new(),
        samples: vec![],
        size: 0,
        published_us: 0,
    })
}

fn segment(
    msn: u64,
    parts: Vec<Arc<Part>>,
    pdt_ms: i64,
    discontinuity: bool,
    init_gen: u32,
) -> Arc<Segment> {
    Arc::new(Segment {
        msn,
        duration: parts.iter().map(|p| p.duration).sum(),
        pdt_ms,
        discontinuity,
        init_gen,
        parts,
    })
}

const T0: i64 = 1_795_420_800_000; // 2026-11-23T08:00:00.000Z

#[test]
fn pdt_format() {
    assert_eq!(format_pdt(T0), "2026-11-23T08:00:00.000Z");
    assert_eq!(format_pdt(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(format_pdt(951_782_400_123), "2000-02-29T00:00:00.123Z");
}

#[test]
fn secs_format() {
    assert_eq!(secs(180_000, 90_000), "2.00000");
    assert_eq!(secs(19_200, 90_000), "0.21333");
    assert_eq!(secs(1, 3), "0.33333");
}

#[test]
fn golden_media_playlist() {
    let segs = vec![
        segment(
            7,
            vec![
                part(7, 0, 1000, true, false),
                part(7, 1, 1000, false, false),
            ],
            T0,
            false,
            0,
        ),
        segment(
            8,
            vec![part(8, 0, 1000, true, false), part(8, 1, 1000, true, true)],
            T0 + 2000,
            false,
            0,
        ),
        segment(
            9,
            vec![part(9, 0, 1000, true, true), part(9, 1, 1000, true, true)],
            T0 + 4000,
            true,
            1,
        ),
    ];
    let open = OpenSegment {
        msn: 10,
        pdt_ms: T0 + 6000,
        discontinuity: false,
        init_gen: 1,
        parts: vec![part(10, 0, 200, true, false)],
    };
    let reports = vec![("audio.m3u8".to_string(), 10, 0)];
    let pl = MediaPlaylist {
        prefix: "video",
        timescale: 90_000,
        target_duration: 2,
        part_target_ms: 214,
        discontinuity_sequence: 3,
        segments: &segs,
        open: Some(&open),
        hint: Some((10, 1)),
        ended: false,
        reports: &reports,
    };
    let expected = "\
#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=0.642
#EXT-X-PART-INF:PART-TARGET=0.214
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DISCONTINUITY-SEQUENCE:3
#EXT-X-MAP:URI=\"video_init0.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T08:00:00.000Z
#EXT-X-PART:DURATION=1.00000,URI=\"video_7.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.00000,URI=\"video_7.1.m4s\"
#EXTINF:2.00000,
video_7.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T08:00:02.000Z
#EXT-X-PART:DURATION=1.00000,URI=\"video_8.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.00000,URI=\"video_8.1.m4s\",GAP=YES
#EXTINF:2.00000,
video_8.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"video_init1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T08:00:04.000Z
#EXT-X-PART:DURATION=1.00000,URI=\"video_9.0.m4s\",GAP=YES
#EXT-X-PART:DURATION=1.00000,URI=\"video_9.1.m4s\",GAP=YES
#EXT-X-GAP
#EXTINF:2.00000,
video_9.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T08:00:06.000Z
#EXT-X-PART:DURATION=0.20000,URI=\"video_10.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"video_10.1.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\",LAST-MSN=10,LAST-PART=0
";
    assert_eq!(pl.render(false), expected);
    // nothing is older than the skip boundary (12 s): a delta update equals the full playlist
    assert_eq!(pl.skippable(), 0);
    assert_eq!(pl.render(true), expected);
}

#[test]
fn delta_update_skips_old_segments_and_endlist_drops_hint() {
    let segs: Vec<_> = (0..10)
        .map(|m| {
            segment(
                m,
                vec![part(m, 0, 2000, true, false)],
                T0 + m as i64 * 2000,
                false,
                0,
            )
        })
        .collect();
    let pl = MediaPlaylist {
        prefix: "audio",
        timescale: 90_000,
        target_duration: 2,
        part_target_ms: 200,
        discontinuity_sequence: 0,
        segments: &segs,
        open: None,
        hint: Some((10, 0)),
        ended: true,
        reports: &[],
    };
    // 20 s listed; segments ending more than 12 s before the end: msn 0..=2 (7 are kept)
    assert_eq!(pl.skippable(), 3);
    let text = pl.render(true);
    assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXT-X-MAP:URI=\"audio_init0.mp4\"\n"));
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"));
    assert!(!text.contains("audio_2.m4s"));
    assert!(text.contains("audio_3.m4s"));
    assert!(text.ends_with("audio_9.m4s\n#EXT-X-ENDLIST\n"));
    assert!(!text.contains("PRELOAD-HINT"));
    // a real parser accepts it (ignoring the LL tags it does not know)
    let full = pl.render(false);
    match m3u8_rs::parse_playlist_res(full.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => {
            assert_eq!(p.segments.len(), 10);
            assert_eq!(p.target_duration, 2);
            assert!(p.end_list);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn golden_multivariant() {
    let mv = Multivariant {
        video: Some(("avc1.42c00d".into(), 320, 180, 30.0)),
        audio: Some(("mp4a.40.2".into(), 2)),
        bandwidth: 500_000,
        average_bandwidth: 400_000,
        backups: Vec::new(),
    };
    assert_eq!(
        mv.render(),
        "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"main\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=500000,AVERAGE-BANDWIDTH=400000,CODECS=\"avc1.42c00d,mp4a.40.2\",RESOLUTION=320x180,FRAME-RATE=30.000,AUDIO=\"audio\"
video.m3u8
"
    );
    let audio_only = Multivariant {
        video: None,
        ..mv.clone()
    };
    assert!(audio_only
        .render()
        .ends_with("CODECS=\"mp4a.40.2\"\naudio.m3u8\n"));
    // redundant variant streams: the same variant again on a backup server, its own audio group
    let redundant = Multivariant {
        backups: vec!["https://b.example/live/s/".into()],
        ..mv
    };
    assert_eq!(
        redundant.render(),
        "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"main\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=500000,AVERAGE-BANDWIDTH=400000,CODECS=\"avc1.42c00d,mp4a.40.2\",RESOLUTION=320x180,FRAME-RATE=30.000,AUDIO=\"audio\"
video.m3u8
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio-backup1\",NAME=\"main\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"https://b.example/live/s/audio.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=500000,AVERAGE-BANDWIDTH=400000,CODECS=\"avc1.42c00d,mp4a.40.2\",RESOLUTION=320x180,FRAME-RATE=30.000,AUDIO=\"audio-backup1\"
https://b.example/live/s/video.m3u8
"
    );
}
