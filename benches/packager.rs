//! Hot paths of the packager: segmenter + fragment header writing per frame, and playlist
//! rendering per change. `cargo bench --bench packager`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferrocast_media::{MediaUnit, TrackKind};
use ferrocast_packager::cmaf::fragment_header;
use ferrocast_packager::metrics::PackagerMetrics;
use ferrocast_packager::segmenter::{Event, Segmenter, SegmenterConfig};
use ferrocast_packager::stream::{Stream, StreamSettings, Tracks};
use std::time::Instant;

fn units(n: usize) -> Vec<MediaUnit> {
    let payload = Bytes::from(vec![0u8; 10_000]);
    (0..n)
        .map(|i| MediaUnit {
            track: TrackKind::Video,
            dts: (i as i64 * 1000 / 30) * 90,
            cts: 0,
            keyframe: i % 30 == 0,
            data: payload.slice(0..1000 + (i % 7) * 100),
        })
        .collect()
}

fn segmenter_and_boxes(c: &mut Criterion) {
    const N: usize = 30 * 60; // one minute of 30 fps video
    let mut g = c.benchmark_group("segmenter");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("video_frames_segment_and_moof", |b| {
        b.iter_batched(
            || units(N),
            |units| {
                let mut s = Segmenter::new(SegmenterConfig::default(), true, None);
                let mut out = Vec::with_capacity(8);
                let mut bytes = 0usize;
                for u in units {
                    s.push(u, &mut out);
                    for e in out.drain(..) {
                        if let Event::Part(p) = e {
                            bytes +=
                                fragment_header(1, p.start as u64, &p.fragment_samples(), true)
                                    .len();
                        }
                    }
                }
                bytes
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn playlist_render(c: &mut Criterion) {
    // a stream with a full window (the fixture's configs, synthetic frames), then time the
    // work done per part: segmenter + header + playlist render + gzip, i.e. Stream::push of
    // a part-closing frame
    let file = Bytes::from(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sample-h264-aac-small.flv"
        ))
        .unwrap(),
    );
    let mut tracks = Tracks::default();
    for t in ferrocast_media::flv::read_file(&file).unwrap() {
        if let Ok(ferrocast_media::flv::VideoTag::AvcSequenceHeader(r)) =
            ferrocast_media::flv::parse_video(&t.body)
        {
            tracks.video = Some(ferrocast_media::avc::AvcConfig::parse(r).unwrap());
            break;
        }
    }
    let stream = Stream::new(
        "bench",
        StreamSettings::default(),
        PackagerMetrics::unregistered(),
    );
    stream.claim().unwrap();
    stream.begin_publish(tracks).unwrap();
    for u in units(30 * 60) {
        stream.push(u, Instant::now(), 0);
    }
    let payload = Bytes::from(vec![0u8; 2000]);
    let mut next = 30 * 60usize;
    let mut g = c.benchmark_group("stream");
    // 6 frames = one part: segmenter + fragment header + one playlist render + gzip
    g.throughput(Throughput::Elements(1));
    g.bench_function("push_one_part_with_playlist_render", |b| {
        b.iter_batched(
            || {
                let batch: Vec<MediaUnit> = (next..next + 6)
                    .map(|i| MediaUnit {
                        track: TrackKind::Video,
                        dts: (i as i64 * 1000 / 30) * 90,
                        cts: 0,
                        keyframe: i % 30 == 0,
                        data: payload.clone(),
                    })
                    .collect();
                next += 6;
                batch
            },
            |batch| {
                for u in batch {
                    stream.push(u, Instant::now(), 0);
                }
                // what the first viewer of this playlist version pays: render + gzip
                let view = stream.rendition(TrackKind::Video).borrow().clone().unwrap();
                view.playlist().gzip().len()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, segmenter_and_boxes, playlist_render);
criterion_main!(benches);
