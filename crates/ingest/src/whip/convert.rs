//! WebRTC tracks to media units (sans-IO): reorder, depacketize, unwrap RTP timestamps, align
//! audio with video, and decide the track set, producing the same [`Output`]s as the RTMP
//! path so [`crate::to_unit::deliver`] publishes both alike.
//!
//! **Time.** Each track keeps its RTP clock (90 kHz video and 48 kHz Opus are also the CMAF
//! timescales), unwrapped to 64 bits. The two tracks' RTP clocks start at unrelated random
//! values: RTCP sender reports (RFC 3550 §6.4.1) map each to the sender's NTP clock, and
//! the stream's zero is the NTP time of its first video frame. Until both tracks' reports
//! are in, frames wait (bounded: [`SYNC_WAIT`] or [`MAX_HELD`] frames); if a report is still
//! missing then, the tracks are aligned by the arrival of their first packets instead.
//! Later reports are not applied (no drift correction within a publish).

use super::rtp::{AccessUnit, Dropped, H264Depacketizer, Released, Reorder, RtpPacket};
use crate::to_unit::Output;
use bytes::Bytes;
use ferrocast_media::avc::AvcConfig;
use ferrocast_media::opus::{packet_duration, OpusConfig, OPUS_TIMESCALE};
use ferrocast_media::time::{rescale, Unwrap32, VIDEO_TIMESCALE};
use ferrocast_media::{MediaUnit, TrackKind};
use ferrocast_packager::cmaf::AudioConfig;
use ferrocast_packager::stream::Tracks;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long frames wait for both tracks' first sender reports.
pub const SYNC_WAIT: Duration = Duration::from_secs(3);
/// Frames held at most while waiting for them.
pub const MAX_HELD: usize = 1024;
/// How long a missing packet is waited for (a retransmission after a NACK) before it is lost.
pub const REORDER_WAIT: Duration = Duration::from_millis(150);

/// Counters of what the conversion dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// RTP packets given up on: video, audio.
    pub packets_lost: [u64; 2],
    /// Video frames dropped: damaged by loss, or waiting for an IDR after one.
    pub frames_dropped_loss: u64,
    /// Video frames or audio packets dropped as malformed or oversized.
    pub frames_dropped_malformed: u64,
}

#[derive(Debug)]
struct Input {
    reorder: Reorder,
    /// Since when a missing packet is waited for.
    gap_since: Option<Instant>,
    clock: Unwrap32,
    /// The RTP clock rate (also the track's timescale).
    rate: u32,
    /// The latest extended timestamp.
    last: Option<i64>,
    /// First packet's extended timestamp and arrival.
    first: Option<(i64, Instant)>,
    /// The latest sender report: (NTP time in seconds, extended RTP timestamp).
    report: Option<(f64, i64)>,
    /// Extended timestamp at media time 0, once decided.
    zero: Option<i64>,
}

/// A 64-bit NTP timestamp (32.32 fixed point) in seconds.
fn ntp_secs(ntp: u64) -> f64 {
    (ntp >> 32) as f64 + (ntp & 0xffff_ffff) as f64 / 4_294_967_296.0
}

impl Input {
    fn new(rate: u32) -> Self {
        Self {
            reorder: Reorder::default(),
            gap_since: None,
            clock: Unwrap32::new(),
            rate,
            last: None,
            first: None,
            report: None,
            zero: None,
        }
    }

    /// Extends a frame's RTP timestamp; the first one is the track's first.
    fn extend(&mut self, ts: u32, now: Instant) -> i64 {
        let ext = self.clock.unwrap(ts);
        self.last = Some(ext);
        self.first.get_or_insert((ext, now));
        ext
    }

    /// The extended timestamp at NTP time `t` (seconds), from the sender report.
    fn at_ntp(&self, t: f64) -> Option<i64> {
        let (secs, rtp) = self.report?;
        Some(rtp + ((t - secs) * f64::from(self.rate)).round() as i64)
    }

    /// The media time of the latest frame, once aligned.
    fn now(&self) -> Option<i64> {
        Some(self.last? - self.zero?)
    }
}

/// A frame waiting for the tracks' alignment.
#[derive(Debug)]
struct Held {
    kind: TrackKind,
    ext: i64,
    keyframe: bool,
    data: Bytes,
}

/// Converts one WHIP publish's RTP into media units.
#[derive(Debug)]
pub struct WhipToUnits {
    video: Option<(Input, H264Depacketizer)>,
    audio: Option<Input>,
    opus: Option<OpusConfig>,
    avc: Option<AvcConfig>,
    started: bool,
    aligned: bool,
    /// When the first packet arrived (the alignment deadline counts from it).
    since: Option<Instant>,
    held: VecDeque<Held>,
    released: Vec<Released>,
    frames: Vec<Result<AccessUnit, Dropped>>,
    /// What was dropped.
    pub stats: Stats,
}

impl WhipToUnits {
    /// A converter for the negotiated tracks: H.264 video if `video`, Opus audio with this
    /// configuration if `opus`.
    pub fn new(video: bool, opus: Option<OpusConfig>) -> Self {
        Self {
            video: video.then(|| (Input::new(VIDEO_TIMESCALE), H264Depacketizer::new())),
            audio: opus.is_some().then(|| Input::new(OPUS_TIMESCALE)),
            opus,
            avc: None,
            started: false,
            aligned: false,
            since: None,
            held: VecDeque::new(),
            released: Vec::new(),
            frames: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn input(&self, kind: TrackKind) -> Option<&Input> {
        match kind {
            TrackKind::Video => self.video.as_ref().map(|(i, _)| i),
            TrackKind::Audio => self.audio.as_ref(),
        }
    }

    fn input_mut(&mut self, kind: TrackKind) -> Option<&mut Input> {
        match kind {
            TrackKind::Video => self.video.as_mut().map(|(i, _)| i),
            TrackKind::Audio => self.audio.as_mut(),
        }
    }

    /// True while video frames are dropped until an IDR: ask the sender for one (PLI).
    pub fn needs_keyframe(&self) -> bool {
        self.video
            .as_ref()
            .is_some_and(|(_, d)| d.needs_keyframe() || self.avc.is_none())
    }

    /// A sender report for the track `kind`: NTP time `ntp` is RTP time `rtp`.
    pub fn sender_report(&mut self, kind: TrackKind, ntp: u64, rtp: u32) {
        if let Some(i) = self.input_mut(kind) {
            if i.first.is_some() {
                i.report = Some((ntp_secs(ntp), i.clock.peek(rtp)));
            }
        }
    }

    /// One RTP packet of track `kind`, received at `now`.
    pub fn rtp(&mut self, kind: TrackKind, p: RtpPacket, now: Instant, out: &mut Vec<Output>) {
        self.since.get_or_insert(now);
        let mut released = std::mem::take(&mut self.released);
        let Some(input) = self.input_mut(kind) else {
            return;
        };
        input.reorder.push(p, &mut released);
        input.gap_since = match (input.reorder.waiting(), input.gap_since) {
            (false, _) => None,
            (true, since) => Some(since.unwrap_or(now)),
        };
        self.take(kind, &mut released, now, out);
        self.released = released;
    }

    /// Time passes: missing packets waited for too long are given up, and alignment falls
    /// back to arrival times once [`SYNC_WAIT`] is over.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        let mut released = std::mem::take(&mut self.released);
        for kind in [TrackKind::Video, TrackKind::Audio] {
            let Some(input) = self.input_mut(kind) else {
                continue;
            };
            if input
                .gap_since
                .is_some_and(|s| now.saturating_duration_since(s) >= REORDER_WAIT)
            {
                input.reorder.skip_gap(&mut released);
                input.gap_since = input.reorder.waiting().then_some(now);
                self.take(kind, &mut released, now, out);
            }
        }
        self.released = released;
        if !self.aligned
            && self
                .since
                .is_some_and(|s| now.saturating_duration_since(s) >= SYNC_WAIT)
        {
            self.align(true, out);
        }
    }

    fn take(
        &mut self,
        kind: TrackKind,
        released: &mut Vec<Released>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        for r in released.drain(..) {
            match (kind, r) {
                (TrackKind::Video, Released::Lost(n)) => {
                    self.stats.packets_lost[0] += n;
                    if let Some((_, d)) = &mut self.video {
                        d.lost();
                    }
                }
                (TrackKind::Audio, Released::Lost(n)) => self.stats.packets_lost[1] += n,
                (TrackKind::Video, Released::Packet(p)) => {
                    let mut frames = std::mem::take(&mut self.frames);
                    if let Some((_, d)) = &mut self.video {
                        d.push(&p, &mut frames);
                    }
                    for f in frames.drain(..) {
                        match f {
                            Ok(au) => self.video_frame(au, now, out),
                            Err(Dropped::Loss) => self.stats.frames_dropped_loss += 1,
                            Err(_) => self.stats.frames_dropped_malformed += 1,
                        }
                    }
                    self.frames = frames;
                }
                (TrackKind::Audio, Released::Packet(p)) => {
                    if p.payload.is_empty() {
                        continue; // padding only
                    }
                    if packet_duration(&p.payload).is_err() {
                        self.stats.frames_dropped_malformed += 1;
                        continue;
                    }
                    let Some(a) = &mut self.audio else { continue };
                    let ext = a.extend(p.timestamp, now);
                    self.frame(TrackKind::Audio, ext, true, p.payload, out);
                }
            }
        }
    }

    fn video_frame(&mut self, au: AccessUnit, now: Instant, out: &mut Vec<Output>) {
        if let (Some(sps), Some(pps)) = (&au.sps, &au.pps) {
            let same = self
                .avc
                .as_ref()
                .is_some_and(|c| c.sps.first() == Some(sps) && c.pps.first() == Some(pps));
            if !same {
                match AvcConfig::from_parameter_sets(sps, pps) {
                    Ok(c) => {
                        let had = self.avc.replace(c).is_some();
                        if had && self.started {
                            out.push(Output::Restart(self.tracks()));
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "unusable in-band parameter sets");
                        self.stats.frames_dropped_malformed += 1;
                        // frames that follow depend on this one
                        if let Some((_, d)) = &mut self.video {
                            d.lost();
                        }
                        return;
                    }
                }
            }
        }
        let Some((input, depack)) = &mut self.video else {
            return;
        };
        if self.avc.is_none() {
            // an IDR without parameter sets: nothing can decode it yet
            depack.lost();
            self.stats.frames_dropped_loss += 1;
            return;
        }
        let ext = input.extend(au.timestamp, now);
        self.frame(TrackKind::Video, ext, au.keyframe, au.data, out);
    }

    fn frame(
        &mut self,
        kind: TrackKind,
        ext: i64,
        keyframe: bool,
        data: Bytes,
        out: &mut Vec<Output>,
    ) {
        if !self.aligned {
            if self.held.len() >= MAX_HELD {
                self.held.pop_front();
            }
            self.held.push_back(Held {
                kind,
                ext,
                keyframe,
                data,
            });
            self.align(false, out);
            return;
        }
        self.emit(kind, ext, keyframe, data, out);
    }

    fn tracks(&self) -> Tracks {
        Tracks {
            video: self.avc.clone(),
            audio: self.opus.clone().map(AudioConfig::Opus),
        }
    }

    /// Decides each track's zero once every track has a sender report (or, `late`, with
    /// arrival times for those without), then releases the held frames.
    fn align(&mut self, late: bool, out: &mut Vec<Output>) {
        let inputs = [self.video.as_ref().map(|(i, _)| i), self.audio.as_ref()];
        let all_reported = inputs.iter().flatten().all(|i| i.report.is_some());
        let all_started = inputs.iter().flatten().all(|i| i.first.is_some());
        if !(late || all_started && all_reported) {
            return;
        }
        if self.video.is_some() && self.avc.is_none() {
            return; // no decodable video yet: hold on (bounded)
        }
        // the reference: the first video frame (the first audio packet without video)
        let Some(lead) = inputs.iter().flatten().find(|i| i.first.is_some()) else {
            return;
        };
        let (lead_first, lead_arrival) = lead.first.unwrap_or((0, Instant::now()));
        // the NTP time of the reference frame
        let lead_ntp = lead
            .report
            .map(|(secs, rtp)| secs + (lead_first - rtp) as f64 / f64::from(lead.rate));
        let by_reports = lead_ntp.is_some() && all_reported && all_started;
        let mut zeros = [None, None];
        for (slot, i) in inputs.iter().enumerate() {
            let Some(i) = i else { continue };
            let Some((first, arrival)) = i.first else {
                continue;
            };
            let rate = f64::from(i.rate);
            let zero = match (by_reports, lead_ntp.and_then(|t0| i.at_ntp(t0))) {
                (true, Some(zero)) => zero,
                _ => {
                    let lag = arrival
                        .saturating_duration_since(lead_arrival)
                        .as_secs_f64()
                        - lead_arrival
                            .saturating_duration_since(arrival)
                            .as_secs_f64();
                    first - (lag * rate).round() as i64
                }
            };
            zeros[slot] = Some(zero);
        }
        tracing::debug!(by_reports, "WHIP tracks aligned");
        if let Some((i, _)) = &mut self.video {
            i.zero = zeros[0];
        }
        if let Some(i) = &mut self.audio {
            i.zero = zeros[1];
        }
        self.aligned = true;
        let held = std::mem::take(&mut self.held);
        for h in held {
            self.emit(h.kind, h.ext, h.keyframe, h.data, out);
        }
    }

    fn emit(
        &mut self,
        kind: TrackKind,
        ext: i64,
        keyframe: bool,
        data: Bytes,
        out: &mut Vec<Output>,
    ) {
        let Some(zero) = self.zero(kind, ext) else {
            return;
        };
        let dts = ext - zero;
        if dts < 0 {
            return; // before the stream's start
        }
        if !self.started {
            if kind == TrackKind::Video || self.video.is_none() {
                self.started = true;
                out.push(Output::Start(self.tracks()));
            } else {
                return; // audio before the first video frame
            }
        }
        out.push(Output::Unit(MediaUnit {
            track: kind,
            dts,
            cts: 0,
            keyframe,
            data,
        }));
    }

    /// The track's zero; a track that had sent nothing when the tracks were aligned starts
    /// now: its first frame (`ext`) lands at the other track's latest media time.
    fn zero(&mut self, kind: TrackKind, ext: i64) -> Option<i64> {
        let input = self.input(kind)?;
        if let Some(z) = input.zero {
            return Some(z);
        }
        let other = self.input(match kind {
            TrackKind::Video => TrackKind::Audio,
            TrackKind::Audio => TrackKind::Video,
        });
        let now = other
            .and_then(|o| Some(rescale(o.now()?, o.rate, input.rate)))
            .unwrap_or(0);
        let input = self.input_mut(kind)?;
        input.zero = Some(ext - now);
        input.zero
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
