//! What an operator sees of a stream: its state, publisher, tracks, bitrate and position
//! ([`Stream::status`]), and the handle to end a publisher's session ([`Stream::kick`]).

use super::{Rendition, Stream};
use crate::cmaf::TrackConfig;
use ferrocast_media::TrackKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Segments the bitrate is measured over (the most recent ones; about 10 s at 2 s segments).
const BITRATE_SEGMENTS: usize = 5;

/// Wall clock now, milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The publisher of a stream, as its ingest protocol registers it.
#[derive(Debug, Clone)]
pub struct PublisherInfo {
    /// `"rtmp"` or `"whip"`.
    pub protocol: &'static str,
    /// The publisher's address.
    pub addr: SocketAddr,
    /// When its session began (monotonic), and the same as Unix milliseconds.
    pub since: (Instant, i64),
    /// Notified to end the session ([`Stream::kick`]); the ingest session waits on it.
    pub kick: Arc<tokio::sync::Notify>,
}

/// A stream's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// A publisher is on.
    Live,
    /// The publisher is gone; the stream waits for it to come back (GAP parts meanwhile).
    Reconnecting,
    /// Ended (EXT-X-ENDLIST); still downloadable for a while.
    Ended,
}

impl StreamState {
    /// The state's name in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Live => "live",
            StreamState::Reconnecting => "reconnecting",
            StreamState::Ended => "ended",
        }
    }
}

/// One track.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackStatus {
    /// RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`).
    pub codec: String,
    /// Video: width and height in pixels.
    pub resolution: Option<(u32, u32)>,
    /// Video: frames per second, once measured.
    pub frame_rate: Option<f64>,
    /// Audio: sample rate (Hz) and channels.
    pub audio: Option<(u32, u8)>,
    /// Media bitrate of the last segments (bits/s); before the first segment, of the parts
    /// so far.
    pub bitrate: u64,
}

/// A stream as operators see it.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    /// Name.
    pub name: String,
    /// Live, reconnecting or ended.
    pub state: StreamState,
    /// Protocol, address and session start of the publisher, while one is on.
    pub publisher: Option<(&'static str, SocketAddr, Duration, i64)>,
    /// Time since the stream was created (by its first publish).
    pub uptime: Duration,
    /// Unix milliseconds of the stream's creation.
    pub created_ms: i64,
    /// The video track.
    pub video: Option<TrackStatus>,
    /// The audio track.
    pub audio: Option<TrackStatus>,
    /// TARGETDURATION (s) and PART-TARGET (ms), once the first GOP is measured.
    pub timing: Option<(u32, u32)>,
    /// The newest part (media sequence number, part index) of the leading track.
    pub last_part: Option<(u64, u32)>,
    /// Init segment generation in use (bumped by each reconnect with new parameters).
    pub init_generation: u32,
}

impl StreamStatus {
    /// Video and audio bitrate together.
    pub fn bitrate(&self) -> u64 {
        [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .map(|t| t.bitrate)
            .sum()
    }
}

impl Stream {
    /// Registers the publisher of the session just [`Stream::claim`]ed (cleared by
    /// [`Stream::end_publish`]).
    pub fn set_publisher(&self, info: PublisherInfo) {
        self.inner.lock().publisher = Some(info);
    }

    /// Tells the publisher's session to end (it then ends as a disconnect does: the stream
    /// waits `reconnect_grace` for a publisher). False when no publisher is on.
    pub fn kick(&self) -> bool {
        match &self.inner.lock().publisher {
            Some(p) => {
                // a stored permit: the session sees it even if it is not waiting right now
                p.kick.notify_one();
                true
            }
            None => false,
        }
    }

    /// The stream as operators see it.
    pub fn status(&self) -> StreamStatus {
        let g = self.inner.lock();
        let now = Instant::now();
        let state = if g.ended {
            StreamState::Ended
        } else if g.publishing {
            StreamState::Live
        } else {
            StreamState::Reconnecting
        };
        let track = |kind: TrackKind| {
            let r = g.renditions.iter().find(|r| r.kind == kind)?;
            let (codec, resolution, audio) = match &r.config {
                TrackConfig::Avc(c) => {
                    (c.codec_string(), Some((c.info.width, c.info.height)), None)
                }
                TrackConfig::Aac(c) => (c.codec_string(), None, Some((c.sample_rate, c.channels))),
                TrackConfig::Opus(c) => (c.codec_string(), None, Some((48_000, c.channels))),
            };
            Some(TrackStatus {
                codec,
                resolution,
                frame_rate: (kind == TrackKind::Video)
                    .then(|| g.timing.and_then(|t| t.frame_rate))
                    .flatten(),
                audio,
                bitrate: r
                    .bitrate(BITRATE_SEGMENTS)
                    .map_or(0, Measured::bits_per_second),
            })
        };
        let lead = g
            .renditions
            .iter()
            .find(|r| r.kind == TrackKind::Video)
            .or_else(|| g.renditions.first());
        StreamStatus {
            name: self.name.clone(),
            state,
            publisher: g.publisher.as_ref().map(|p| {
                (
                    p.protocol,
                    p.addr,
                    now.saturating_duration_since(p.since.0),
                    p.since.1,
                )
            }),
            uptime: now.saturating_duration_since(g.created.0),
            created_ms: g.created.1,
            video: track(TrackKind::Video),
            audio: track(TrackKind::Audio),
            timing: g.timing.map(|t| (t.target_duration, t.part_target_ms)),
            last_part: lead.and_then(|r| r.last_part),
            init_generation: g.init_gen,
        }
    }
}

/// A rendition's media bitrate, and what it was measured over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Measured {
    /// Complete segments.
    Segments(u64),
    /// The parts of the first segment so far (no segment is complete yet).
    Parts(u64),
}

impl Measured {
    fn bits_per_second(self) -> u64 {
        match self {
            Measured::Segments(r) | Measured::Parts(r) => r,
        }
    }
}

impl Rendition {
    /// Bits per second of `bytes` lasting `duration` ticks.
    fn rate(&self, bytes: u64, duration: i64) -> u64 {
        bytes * 8 * u64::from(self.timescale) / duration.max(1) as u64
    }

    /// Media bitrate over the last `segments` complete segments (of those the window keeps),
    /// or before the first one completes, over the parts so far; `None` without media.
    pub(super) fn bitrate(&self, segments: usize) -> Option<Measured> {
        let recent = self.bytes_in_window.iter().rev().take(segments);
        let (bytes, dur) = recent.fold((0u64, 0i64), |(b, d), (_, dur, size)| {
            (b + *size as u64, d + dur)
        });
        if dur > 0 {
            return Some(Measured::Segments(self.rate(bytes, dur)));
        }
        let o = self.open.as_ref()?;
        let bytes: usize = o.parts.iter().map(|p| p.size).sum();
        let dur: i64 = o.parts.iter().map(|p| p.duration).sum();
        (dur > 0).then(|| Measured::Parts(self.rate(bytes as u64, dur)))
    }

    /// The highest bitrate of one segment the window keeps.
    pub(super) fn peak_segment_bitrate(&self) -> u64 {
        self.bytes_in_window
            .iter()
            .map(|(_, d, s)| self.rate(*s as u64, *d))
            .max()
            .unwrap_or(0)
    }
}
