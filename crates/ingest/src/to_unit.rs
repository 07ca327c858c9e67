//! FLV tag bodies (as RTMP delivers them) → media units and track configurations. Sans-IO.
//!
//! The publisher's track set is decided when the first coded frame arrives and both sequence
//! headers are known, or after [`MAX_WAIT_FRAMES`] frames with only one of them (audio-only or
//! video-only streams). Until then frames are held (bounded).

use bytes::Bytes;
use ferrocast_media::aac::{AacConfig, SAMPLES_PER_FRAME};
use ferrocast_media::avc::{contains_idr, AvcConfig};
use ferrocast_media::flv::{parse_audio, parse_video, AudioTag, VideoTag};
use ferrocast_media::time::{rescale, Unwrap32, RTMP_TIMESCALE, VIDEO_TIMESCALE};
use ferrocast_media::{MediaError, MediaUnit, TrackKind};
use ferrocast_packager::cmaf::AudioConfig;
use ferrocast_packager::stream::{PublishError, Stream, Tracks};
use std::time::Instant;

/// Frames held while waiting for the second track's sequence header.
pub const MAX_WAIT_FRAMES: usize = 90;

/// What the converter produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The track set is decided: start publishing.
    Start(Tracks),
    /// A sequence header changed mid-stream: restart with a new init (discontinuity).
    Restart(Tracks),
    /// A media unit.
    Unit(MediaUnit),
}

/// Hands the converter's outputs to `stream`, which the publish holds under `generation`:
/// `Start` begins the publish, `Restart` ends it and begins again under a new generation (a
/// new init segment after a discontinuity), and units are pushed with their arrival time
/// (`counted` sees each first). Returns the generation after the outputs.
pub fn deliver(
    stream: &Stream,
    mut generation: u64,
    outputs: impl IntoIterator<Item = Output>,
    arrival: Instant,
    wall_us: i64,
    mut counted: impl FnMut(&MediaUnit),
) -> Result<u64, PublishError> {
    for o in outputs {
        match o {
            Output::Start(tracks) => stream.begin_publish(tracks)?,
            Output::Restart(tracks) => {
                tracing::info!(stream = %stream.name(), "sequence header changed: new init segment and discontinuity");
                generation = stream.restart_publish(tracks)?;
            }
            Output::Unit(u) => {
                counted(&u);
                stream.push(u, arrival, wall_us);
            }
        }
    }
    Ok(generation)
}

/// Converts one publisher's FLV tags.
#[derive(Debug, Default)]
pub struct FlvToUnits {
    video: Option<AvcConfig>,
    audio: Option<AacConfig>,
    clock_v: Unwrap32,
    clock_a: Unwrap32,
    started: bool,
    held: Vec<MediaUnit>,
}

impl FlvToUnits {
    /// A converter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    fn tracks(&self) -> Tracks {
        Tracks {
            video: self.video.clone(),
            audio: self.audio.clone().map(AudioConfig::Aac),
        }
    }

    /// Handles a video message body with its RTMP timestamp (ms).
    pub fn video(
        &mut self,
        timestamp: u32,
        body: &Bytes,
        out: &mut Vec<Output>,
    ) -> Result<(), MediaError> {
        match parse_video(body)? {
            VideoTag::AvcSequenceHeader(record) => {
                let cfg = AvcConfig::parse(record)?;
                if self.video.as_ref().is_some_and(|v| v.record == cfg.record) {
                    return Ok(());
                }
                let changed = self.video.is_some() && self.started;
                self.video = Some(cfg);
                if changed {
                    out.push(Output::Restart(self.tracks()));
                }
            }
            VideoTag::AvcFrame {
                keyframe,
                cts_ms,
                data,
            } => {
                let Some(cfg) = &self.video else {
                    return Ok(()); // frames before the sequence header cannot be decoded
                };
                let keyframe = keyframe && contains_idr(&data, cfg.nalu_length_size);
                let dts_ms = self.clock_v.unwrap(timestamp);
                let unit = MediaUnit {
                    track: TrackKind::Video,
                    dts: rescale(dts_ms, RTMP_TIMESCALE, VIDEO_TIMESCALE),
                    cts: cts_ms.saturating_mul(90),
                    keyframe,
                    data,
                };
                self.emit(unit, out);
            }
            VideoTag::EndOfSequence | VideoTag::Ignored => {}
        }
        Ok(())
    }

    /// Handles an audio message body with its RTMP timestamp (ms).
    pub fn audio(
        &mut self,
        timestamp: u32,
        body: &Bytes,
        out: &mut Vec<Output>,
    ) -> Result<(), MediaError> {
        match parse_audio(body)? {
            AudioTag::AacSequenceHeader(asc) => {
                let cfg = AacConfig::parse(asc)?;
                if self.audio.as_ref().is_some_and(|a| a.asc == cfg.asc) {
                    return Ok(());
                }
                let changed = self.audio.is_some() && self.started;
                self.audio = Some(cfg);
                if changed {
                    out.push(Output::Restart(self.tracks()));
                }
            }
            AudioTag::AacFrame(data) => {
                let Some(cfg) = &self.audio else {
                    return Ok(());
                };
                let ms = self.clock_a.unwrap(timestamp);
                // Snap to whole AAC frames: encoders produce frame-aligned audio, RTMP rounds it
                // to milliseconds; snapping restores exact, gapless sample times.
                let frame = i64::from(SAMPLES_PER_FRAME);
                let ticks = rescale(ms, RTMP_TIMESCALE, cfg.sample_rate);
                let dts = (ticks + frame / 2).div_euclid(frame) * frame;
                self.emit(
                    MediaUnit {
                        track: TrackKind::Audio,
                        dts,
                        cts: 0,
                        keyframe: true,
                        data,
                    },
                    out,
                );
            }
        }
        Ok(())
    }

    fn emit(&mut self, unit: MediaUnit, out: &mut Vec<Output>) {
        if self.started {
            out.push(Output::Unit(unit));
            return;
        }
        self.held.push(unit);
        if (self.video.is_some() && self.audio.is_some()) || self.held.len() >= MAX_WAIT_FRAMES {
            self.started = true;
            out.push(Output::Start(self.tracks()));
            let held = std::mem::take(&mut self.held);
            let (v, a) = (self.video.is_some(), self.audio.is_some());
            out.extend(
                held.into_iter()
                    .filter(|u| match u.track {
                        TrackKind::Video => v,
                        TrackKind::Audio => a,
                    })
                    .map(Output::Unit),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL_FLV: &[u8] = include_bytes!("../../../tests/fixtures/sample-h264-aac-small.flv");

    fn fixture() -> Vec<ferrocast_media::flv::FlvFileTag> {
        ferrocast_media::flv::read_file(&Bytes::from_static(SMALL_FLV)).unwrap()
    }

    #[test]
    fn converts_the_fixture() {
        let mut c = FlvToUnits::new();
        let mut out = Vec::new();
        for t in fixture() {
            match t.kind {
                ferrocast_media::flv::FlvTagKind::Video => {
                    c.video(t.timestamp, &t.body, &mut out).unwrap()
                }
                ferrocast_media::flv::FlvTagKind::Audio => {
                    c.audio(t.timestamp, &t.body, &mut out).unwrap()
                }
                _ => {}
            }
        }
        let Output::Start(tracks) = &out[0] else {
            panic!("{:?}", out[0])
        };
        assert_eq!(tracks.video.as_ref().unwrap().info.width, 320);
        assert!(matches!(&tracks.audio, Some(AudioConfig::Aac(a)) if a.sample_rate == 48_000));
        let units: Vec<&MediaUnit> = out
            .iter()
            .filter_map(|o| match o {
                Output::Unit(u) => Some(u),
                _ => None,
            })
            .collect();
        let video: Vec<_> = units
            .iter()
            .filter(|u| u.track == TrackKind::Video)
            .collect();
        assert_eq!(video.len(), 180);
        assert_eq!(video.iter().filter(|u| u.keyframe).count(), 6);
        let audio: Vec<_> = units
            .iter()
            .filter(|u| u.track == TrackKind::Audio)
            .collect();
        for w in audio.windows(2) {
            assert_eq!(w[1].dts - w[0].dts, 1024, "audio not gapless");
        }
    }

    #[test]
    fn audio_only_starts_after_waiting() {
        let mut c = FlvToUnits::new();
        let mut out = Vec::new();
        c.audio(0, &Bytes::from_static(&[0xaf, 0, 0x11, 0x90]), &mut out)
            .unwrap();
        for i in 0..MAX_WAIT_FRAMES as u32 {
            c.audio(
                i * 21,
                &Bytes::from_static(&[0xaf, 1, 0x21, 0x00]),
                &mut out,
            )
            .unwrap();
        }
        assert!(matches!(&out[0], Output::Start(t) if t.video.is_none() && t.audio.is_some()));
        assert_eq!(out.len(), 1 + MAX_WAIT_FRAMES);
    }

    #[test]
    fn unsupported_codec_is_an_error() {
        let mut c = FlvToUnits::new();
        assert!(c
            .video(0, &Bytes::from_static(&[0x12, 0, 0]), &mut Vec::new())
            .is_err());
        assert!(c
            .audio(0, &Bytes::from_static(&[0x2f, 0]), &mut Vec::new())
            .is_err());
    }
}
