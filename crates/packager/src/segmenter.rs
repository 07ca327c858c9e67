//! The segmenter: a pure function of input timestamps that decides where LL-HLS parts and
//! segments begin and end (RFC 8216bis §3.2, §4.4.4.9; PROTOCOLS.md A.1.2).
//!
//! # The rule (deterministic: two origins fed the same timestamps cut the same way)
//!
//! All decisions are taken on the *leading* track (video when present, else audio), in its
//! timescale, on the publisher's own timestamps:
//!
//! 1. **Probe.** Units are held until the first GOP is known (from the first keyframe to the
//!    second, or `max_target_duration` of media): `g` = GOP duration, `fd` = frame duration
//!    = `g / frames in the GOP`. Audio-only streams have `g = fd` = one AAC frame.
//! 2. **Segments** start on a keyframe. With `T` = segment target and bucket width
//!    `W = T` if `g ≤ T` else `g`, a keyframe starts a new segment when
//!    `⌊(dts + fd/2) / W⌋` is larger than that of the current segment's start. The first
//!    segment's media sequence number is `⌊(dts + fd/2) / W⌋`; every later one is the previous
//!    plus one. With a constant GOP every bucket holds a keyframe, so a segment is at most
//!    `⌈T/g⌉·g` long. The first segment of a session (unless it resumes an earlier one) starts
//!    only on a keyframe that opens its bucket (`⌊(dts − g + fd/2) / W⌋` is smaller): that is
//!    where an origin that received the stream from its beginning cut, so an origin that joins
//!    late publishes the same segments from there on (giving up after one bucket of media, for
//!    irregular GOPs). A stream whose timestamps start at 0 loses nothing to this; one whose
//!    first keyframe falls mid-bucket starts at the next bucket.
//! 3. **TARGETDURATION** = that maximum rounded to the nearest second (≥ 1, ≤
//!    `max_target_duration`); it never changes for the life of the stream. If the encoder's GOP
//!    later grows so that the next part would push a segment past `TARGETDURATION + 0.5 s`, the
//!    segment is cut at that part boundary without a keyframe (a *forced cut*, logged and
//!    counted): TARGETDURATION is never exceeded, but the new segment's first part is not
//!    `INDEPENDENT`.
//! 4. **Parts** are `n` frames long, `n` being the divisor of the GOP's frame count closest to
//!    `part_target / fd` (within ±30 %, else `round(part_target / fd)`), measured from the
//!    segment start, so that with a constant GOP keyframes fall on part boundaries:
//!    part `i` begins at the first sample with `dts ≥ start + i·n·fd − fd/2`. A part is closed
//!    as soon as its last frame arrives (predicted by `dts + fd` reaching the next boundary), so
//!    a part is servable without waiting for the next frame; its last sample gets duration `fd`
//!    and the next sample's decode time is pinned to the end of that part when it is within
//!    `fd/2` of it (its composition offset absorbs the difference, so presentation times are
//!    exact and the decode timeline has no holes).
//! 5. **Audio with video** follows the video's part boundaries: an audio frame belongs to the
//!    part its midpoint falls in, using the video part's actual end once known and its nominal
//!    end (segment start + (i+1)·n·fd) before, so an audio part is published on its own last
//!    frame. Audio parts carry the same media sequence numbers and part indices as video parts.
//!    An audio part that stays empty for more than one second of video is published as a GAP
//!    part. (If a keyframe arrives mid-part — an irregular GOP — an audio part already closed at
//!    its nominal end makes that audio segment end up to one part after the video's.)
//!
//! 6. **Input loss.** When the leading track stops (the caller says for how long, see
//!    [`Segmenter::fill`]), the open part and segment are closed where the media ends and the
//!    timeline goes on with GAP parts on the same grid: a gap segment runs to the next bucket
//!    edge (`(⌊(start + fd/2) / W⌋ + 1)·W`), later ones are whole buckets, parts are `n·fd`
//!    long from the segment start (the last one of a bucket shorter), and the follower gets
//!    GAP parts with the same numbers. A part is added once the input has been missing past
//!    its end. When the input returns, everything up to its first keyframe is dropped; that
//!    keyframe ends the gap (a last, short GAP part reaches exactly to it) and starts a new
//!    segment after an [`Event::Discontinuity`]. If its timestamp lies before the gap's end
//!    (an encoder that restarted its clock, or media buffered in the network) or more than one
//!    bucket past the time the input was missing for, the publisher's timestamps are shifted
//!    from then on, by whole frames, so that it lands on the first frame-grid point at or
//!    after the gap's end (a last GAP part shorter than a frame may fill the rest); otherwise
//!    (an encoder whose
//!    clock kept running, as OBS's does) they are kept, and two origins that lost the same
//!    input still cut the same parts. A new session of the stream ([`Segmenter::resume`])
//!    returns the same way, keeping the stream's timing (its frame duration is re-measured
//!    from its first two frames).
//!
//! PART-TARGET is advertised as the longest part these rules can produce: `n·fd` (+1 ms for
//! millisecond timestamp jitter), or `⌈n·fd / afd⌉·afd` (+1 ms) for audio frames of duration
//! `afd`.

use bytes::Bytes;
use ferrocast_media::time::rescale;
use ferrocast_media::{MediaUnit, TrackKind};
use follower::Follower;
use gap::Gap;
use std::time::Duration;

/// The clock of an audio track: its timescale and the duration of one coded frame in it (AAC:
/// 1024 samples at the sample rate; Opus: 960 ticks of 48 kHz, the 20 ms packets WebRTC
/// senders use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioClock {
    /// Ticks per second.
    pub timescale: u32,
    /// Ticks per coded frame.
    pub frame: u32,
}

/// Longest probe buffer (units) before timing is decided with what is known.
const MAX_PROBE_UNITS: usize = 4096;
/// Bound on audio units waiting for the video to open their part.
const MAX_FOLLOWER_QUEUE: usize = 1024;

/// User settings of the segmenter, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Desired part duration.
    pub part_target_ms: u32,
    /// Desired segment duration.
    pub segment_target_ms: u32,
    /// Upper bound for TARGETDURATION.
    pub max_target_duration_ms: u32,
    /// Use this TARGETDURATION instead of deriving it (a publisher resuming a stream whose
    /// playlists already announce one).
    pub fixed_target_duration: Option<u32>,
    /// The first segment's media sequence number is at least this (resumed streams).
    pub min_msn: u64,
    /// Start the first segment only on a keyframe that opens a bucket (rule 2), so that an
    /// origin that starts receiving a stream late cuts exactly where one that saw it from the
    /// beginning does. Off for a resumed session (its timeline continues the previous one).
    pub align_start: bool,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            part_target_ms: 200,
            segment_target_ms: 2000,
            max_target_duration_ms: 10_000,
            fixed_target_duration: None,
            min_msn: 0,
            align_start: true,
        }
    }
}

/// The stream timing decided after the probe; constant for the life of the segmenter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// EXT-X-TARGETDURATION in seconds.
    pub target_duration: u32,
    /// EXT-X-PART-INF PART-TARGET in milliseconds.
    pub part_target_ms: u32,
    /// Video frame rate, when the stream has video.
    pub frame_rate: Option<f64>,
}

/// One sample of a closed part, with its final decode time and duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegSample {
    /// Decode time in the track timescale.
    pub dts: i64,
    /// Duration in the track timescale.
    pub duration: u32,
    /// Composition offset.
    pub cts: i32,
    /// Sync sample.
    pub keyframe: bool,
    /// Payload (shared, never copied).
    pub data: Bytes,
}

/// A part the segmenter has closed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedPart {
    /// Track.
    pub track: TrackKind,
    /// Media sequence number of the parent segment.
    pub msn: u64,
    /// Part index within the parent segment.
    pub index: u32,
    /// Starts with a sync sample.
    pub independent: bool,
    /// Start (decode time) in the track timescale.
    pub start: i64,
    /// Duration in the track timescale.
    pub duration: i64,
    /// Samples; empty for a GAP part.
    pub samples: Vec<SegSample>,
}

impl ClosedPart {
    /// What the fragment header needs to know about the samples.
    pub fn fragment_samples(&self) -> Vec<crate::cmaf::FragmentSample> {
        self.samples
            .iter()
            .map(|s| crate::cmaf::FragmentSample {
                duration: s.duration,
                size: u32::try_from(s.data.len()).unwrap_or(u32::MAX),
                cts: s.cts,
                sync: s.keyframe,
            })
            .collect()
    }

    /// A part with no media (EXT-X-PART GAP=YES).
    pub fn is_gap(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Output of the segmenter.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Timing is known (emitted once, before any part).
    Timing(Timing),
    /// A part is complete.
    Part(ClosedPart),
    /// The next segment of every track starts after a discontinuity (the input came back
    /// after a loss, rule 6).
    Discontinuity,
    /// Every part of segment `msn` of `track` has been emitted.
    SegmentEnd {
        /// Track.
        track: TrackKind,
        /// The completed segment.
        msn: u64,
        /// True when the segment was cut without a keyframe (GOP longer than allowed).
        forced_next: bool,
    },
}

#[derive(Debug, Clone)]
struct Pending {
    dts: i64,
    cts: i32,
    keyframe: bool,
    data: Bytes,
}

#[derive(Debug)]
struct OpenPart {
    msn: u64,
    index: u32,
    independent: bool,
    samples: Vec<Pending>,
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    msn: u64,
    start: i64,
    next_index: u32,
}

#[derive(Debug, Clone, Copy)]
struct Ticks {
    /// The leading track's timescale.
    ts: u32,
    /// GOP duration measured by the probe.
    gop: i64,
    fd: i64,
    half_fd: i64,
    part: i64,
    bucket: i64,
    /// A segment may not reach this length (TARGETDURATION + 0.5 s).
    seg_limit: i64,
}

/// The part/segment decision engine for one stream. Feed units with [`Segmenter::push`] in
/// arrival order; read decisions from the `out` vector. Pure: no clocks, no IO.
#[derive(Debug)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    lead: TrackKind,
    lead_ts: u32,
    follower_ts: Option<AudioClock>,
    probe: Option<Vec<MediaUnit>>,
    run: Option<Running>,
}

#[derive(Debug)]
struct Running {
    t: Ticks,
    seg: Option<Seg>,
    open: Option<OpenPart>,
    end: Option<i64>,
    last_dts: i64,
    /// Start on a bucket-opening keyframe (`SegmenterConfig::align_start`).
    align_start: bool,
    /// The first keyframe seen before the first segment started.
    first_key: Option<i64>,
    follower: Option<Follower>,
    /// Media sequence number of the next segment.
    next_msn: u64,
    /// The leading track is missing (rule 6).
    gap: Option<Gap>,
    /// Added to the publisher's leading-track timestamps (rule 6).
    shift: i64,
    /// Audio received while the leading track is missing, for when it returns (rule 6).
    held: std::collections::VecDeque<MediaUnit>,
    /// After a resumed session's return: its first frame's decode time once seen (rule 6).
    spacing_check: Option<gap::Spacing>,
}

impl Segmenter {
    /// A segmenter for a stream with the given tracks: `video` says whether there is a video
    /// track (it then leads), `audio` the audio track's clock if there is audio.
    pub fn new(cfg: SegmenterConfig, video: bool, audio: Option<AudioClock>) -> Self {
        let (lead, lead_ts, follower_ts) = if video {
            (
                TrackKind::Video,
                ferrocast_media::time::VIDEO_TIMESCALE,
                audio,
            )
        } else {
            (
                TrackKind::Audio,
                audio.map_or(48_000, |a| a.timescale),
                None,
            )
        };
        Self {
            cfg,
            lead,
            lead_ts,
            follower_ts,
            probe: Some(Vec::new()),
            run: None,
        }
    }

    /// Feeds one unit (audio units must be in the audio sample-rate timescale, video units in
    /// 90 kHz). Units of a track the segmenter was not created for are ignored.
    pub fn push(&mut self, unit: MediaUnit, out: &mut Vec<Event>) {
        if unit.track != self.lead && self.follower_ts.is_none() {
            return;
        }
        if let Some(buf) = &mut self.probe {
            if unit.track == self.lead && buf.iter().all(|u| u.track != self.lead) && !unit.keyframe
            {
                return; // wait for the first keyframe
            }
            if buf.len() >= MAX_PROBE_UNITS {
                // no second keyframe yet and the follower keeps coming: keep the newest
                // (bounded; the probe decides with what it has once the leader shows up)
                if let Some(i) = buf.iter().position(|u| u.track != self.lead) {
                    buf.remove(i);
                } else {
                    buf.remove(0);
                }
            }
            buf.push(unit);
            if let Some(t) = self.probe_done() {
                self.start(t, out);
            }
            return;
        }
        self.process(unit, out);
    }

    /// Ends the stream: closes every open part and segment.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        if let Some(buf) = &self.probe {
            if buf.iter().any(|u| u.track == self.lead) {
                let t = self.timing_from(None);
                self.start(t, out);
            } else {
                return;
            }
        }
        let lead = self.lead;
        let Some(run) = &mut self.run else { return };
        run.close_lead(lead, None, out);
        if let Some(seg) = run.seg.take().filter(|s| s.next_index > 0) {
            if let Some(f) = &mut run.follower {
                f.mark_segment_end(seg.msn);
            }
            out.push(Event::SegmentEnd {
                track: lead,
                msn: seg.msn,
                forced_next: false,
            });
        }
        if let Some(f) = &mut run.follower {
            f.drain(i64::MAX, true, out);
        }
    }

    /// No input on the leading track for `silent` since its last unit (it stalled, or its
    /// publisher is gone): the timeline goes on with GAP parts up to there (rule 6).
    pub fn fill(&mut self, silent: Duration, out: &mut Vec<Event>) {
        let (lead, lead_ts) = (self.lead, self.lead_ts);
        let Some(run) = &mut self.run else { return };
        let silent = i64::try_from(silent.as_micros()).unwrap_or(i64::MAX);
        let until = run
            .last_dts
            .saturating_add(rescale(silent, 1_000_000, lead_ts));
        run.fill(lead, until, out);
    }

    /// The publisher is gone: what it sent is published (a probe still running decides with
    /// what it has) and the timeline waits in the gap state for [`Segmenter::fill`] or a
    /// [`Segmenter::resume`].
    pub fn input_lost(&mut self, out: &mut Vec<Event>) {
        if let Some(buf) = &self.probe {
            if buf.iter().filter(|u| u.track == self.lead).count() < 2 {
                // too little to know the frame rate from: dropped, a reconnect starts afresh
                self.probe = Some(Vec::new());
                return;
            }
            let t = self.timing_from(None);
            self.start(t, out);
        }
        let lead = self.lead;
        if let Some(run) = &mut self.run {
            run.enter_gap(lead, out);
        }
    }

    /// A new publish session of the same stream (a reconnect, or new sequence headers): its
    /// first keyframe continues the timeline after a discontinuity (rule 6). `audio` is the
    /// new session's audio clock. Returns false when nothing was published yet: the
    /// caller then starts the stream afresh with a new segmenter (this one is left as it was),
    /// and no [`Event::Discontinuity`] will come.
    pub fn resume(&mut self, audio: Option<AudioClock>, out: &mut Vec<Event>) -> bool {
        let lead = self.lead;
        let Some(run) = &mut self.run else {
            return false;
        };
        if !run.enter_gap(lead, out) {
            return false;
        }
        run.spacing_check = Some(gap::Spacing::new());
        if let (Some(clock), Some(f)) = (audio, &mut run.follower) {
            if self.follower_ts != Some(clock) {
                f.set_clock(clock);
                self.follower_ts = Some(clock);
            }
        }
        if self.lead == TrackKind::Audio && audio.is_some_and(|a| a.timescale != self.lead_ts) {
            tracing::warn!(
                was = self.lead_ts,
                "audio sample rate changed across a reconnect of an audio-only stream: its timing is kept"
            );
        }
        true
    }

    /// The track segments are cut on (video when there is video).
    pub fn lead(&self) -> TrackKind {
        self.lead
    }

    /// True while the leading track is missing (GAP parts are being published).
    pub fn in_gap(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.gap.is_some())
    }

    /// True until the first GOP is known.
    pub fn is_probing(&self) -> bool {
        self.probe.is_some()
    }

    fn probe_done(&self) -> Option<(i64, u32)> {
        let buf = self.probe.as_ref()?;
        let mut lead = buf.iter().filter(|u| u.track == self.lead);
        let first = lead.next()?;
        let limit = rescale(
            i64::from(self.cfg.max_target_duration_ms),
            1000,
            self.lead_ts,
        );
        for (frames, u) in (1u32..).zip(lead) {
            if u.keyframe || u.dts - first.dts >= limit || buf.len() >= MAX_PROBE_UNITS {
                return Some((u.dts - first.dts, frames));
            }
        }
        None
    }

    fn timing_from(&self, gop: Option<(i64, u32)>) -> (i64, u32) {
        gop.unwrap_or_else(|| {
            let buf = self.probe.as_deref().unwrap_or_default();
            let lead: Vec<_> = buf.iter().filter(|u| u.track == self.lead).collect();
            let span = match (lead.first(), lead.last()) {
                (Some(a), Some(b)) if lead.len() > 1 => {
                    (b.dts - a.dts) * lead.len() as i64 / (lead.len() as i64 - 1)
                }
                _ => rescale(i64::from(self.cfg.segment_target_ms), 1000, self.lead_ts),
            };
            (span, lead.len().max(1) as u32)
        })
    }

    fn start(&mut self, gop: (i64, u32), out: &mut Vec<Event>) {
        let ts = self.lead_ts;
        let (g, frames) = gop;
        let g = g.max(1);
        let fd = ((g + i64::from(frames) / 2) / i64::from(frames.max(1))).max(1);
        let half_fd = fd / 2;
        let t = rescale(i64::from(self.cfg.segment_target_ms), 1000, ts).max(1);
        let (bucket, max_seg) = if g <= t + half_fd {
            let n = ((t - half_fd) + g - 1) / g;
            (t, n.max(1) * g)
        } else {
            (g, g)
        };
        let max_td = (self.cfg.max_target_duration_ms / 1000).max(1);
        let td = self.cfg.fixed_target_duration.unwrap_or_else(|| {
            (((max_seg + i64::from(ts) / 2) / i64::from(ts)) as u32).clamp(1, max_td)
        });
        let pt = rescale(i64::from(self.cfg.part_target_ms), 1000, ts);
        let n = part_frames(pt, fd, frames);
        let part = n * fd;
        let ceil_ms = |ticks: i64| (ticks * 1000 + i64::from(ts) - 1) / i64::from(ts);
        let mut part_ms = ceil_ms(part);
        if let Some(AudioClock {
            timescale: fts,
            frame,
        }) = self.follower_ts
        {
            // longest audio part: whole audio frames covering a video part (exact arithmetic
            // in the audio timescale)
            let part_audio = rescale(part, ts, fts);
            let frame = i64::from(frame.max(1));
            let audio_max = (part_audio + frame - 1) / frame * frame;
            part_ms = part_ms.max((audio_max * 1000 + i64::from(fts) - 1) / i64::from(fts));
        }
        let timing = Timing {
            target_duration: td,
            part_target_ms: part_ms as u32,
            frame_rate: (self.lead == TrackKind::Video)
                .then(|| nominal_frame_rate(f64::from(ts) * f64::from(frames) / g as f64)),
        };
        out.push(Event::Timing(timing));
        let seg_limit = i64::from(td) * i64::from(ts) + i64::from(ts) / 2;
        self.run = Some(Running {
            t: Ticks {
                ts,
                gop: g,
                fd,
                half_fd,
                part,
                bucket,
                seg_limit,
            },
            seg: None,
            open: None,
            end: None,
            last_dts: i64::MIN,
            align_start: self.cfg.align_start,
            first_key: None,
            follower: self.follower_ts.map(|clock| Follower::new(clock, ts)),
            next_msn: self.cfg.min_msn,
            gap: None,
            shift: 0,
            held: std::collections::VecDeque::new(),
            spacing_check: None,
        });
        for u in self.probe.take().unwrap_or_default() {
            self.process(u, out);
        }
    }

    fn process(&mut self, u: MediaUnit, out: &mut Vec<Event>) {
        let lead = self.lead;
        let Some(run) = &mut self.run else { return };
        if u.track == lead {
            run.push_lead(lead, u, out);
        } else if let Some(f) = &mut run.follower {
            if run.gap.is_some() {
                // the leading track is missing: audio waits (bounded) for its keyframe
                if run.held.len() >= MAX_FOLLOWER_QUEUE {
                    run.held.pop_front();
                }
                run.held.push_back(u);
                return;
            }
            let mut u = u;
            u.dts += f.to_lead_inv(run.shift);
            f.enqueue(u);
            let now = run.last_dts;
            f.drain(now, false, out);
        }
    }
}

impl Running {
    fn boundary(&self, seg: &Seg, index: u32) -> i64 {
        seg.start + i64::from(index) * self.t.part - self.t.half_fd
    }

    fn push_lead(&mut self, lead: TrackKind, u: MediaUnit, out: &mut Vec<Event>) {
        let mut forced = None;
        if self.gap.is_some() {
            match self.end_gap(lead, &u, out) {
                Some(d) => forced = Some(d),
                None => return,
            }
        }
        let dts = u.dts + self.shift;
        let unsnapped = self.check_spacing(dts, u.keyframe && forced.is_none());
        let t = self.t;
        // Decode times are snapped to the frame grid (multiples of fd on the publisher's own
        // timeline): millisecond jitter disappears, parts are exact multiples of fd, and the
        // result depends on nothing but the unit's own timestamp. PTS is kept exact through
        // the composition offset.
        let snapped = match forced {
            Some(d) => d,
            None if unsnapped => dts,
            None => (dts + t.half_fd).div_euclid(t.fd) * t.fd,
        };
        let floor = match (&self.open, self.end) {
            (Some(p), _) => p.samples.last().map_or(i64::MIN, |s| s.dts + 1),
            (None, Some(end)) => end,
            (None, None) => i64::MIN,
        };
        let d = snapped.max(floor);
        let cts =
            (i64::from(u.cts) + (dts - d)).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        self.last_dts = self.last_dts.max(d);
        let bucket = |x: i64| (x + t.half_fd).div_euclid(t.bucket);
        match self.seg {
            None => {
                if !u.keyframe {
                    return;
                }
                // the first keyframe of a bucket (the one the GOP before it does not share its
                // bucket with) is where an origin that saw the stream from its start cuts too;
                // an irregular GOP gives up waiting after one bucket of media
                let first = *self.first_key.get_or_insert(d);
                if self.align_start && bucket(d) == bucket(d - t.gop) && d - first < t.bucket {
                    return;
                }
                let msn = (bucket(d).max(0) as u64).max(self.next_msn);
                self.start_segment(msn, d);
            }
            Some(seg) if u.keyframe && bucket(d) > bucket(seg.start) => {
                self.close_lead(lead, Some(d), out);
                self.end_segment(lead, seg.msn, false, out);
                self.start_segment(seg.msn + 1, d);
            }
            Some(seg) => {
                if let Some(p) = &self.open {
                    if d >= self.boundary(&seg, p.index + 1) {
                        self.close_lead(lead, Some(d), out);
                    }
                }
                if self.open.is_none() && (d - seg.start) + t.part > t.seg_limit {
                    tracing::warn!(
                        msn = seg.msn,
                        "GOP longer than TARGETDURATION allows: cutting a segment without a keyframe"
                    );
                    self.end_segment(lead, seg.msn, true, out);
                    self.start_segment(seg.msn + 1, d);
                }
            }
        }
        let Some(seg) = &mut self.seg else { return };
        let open = self.open.get_or_insert_with(|| {
            let index = seg.next_index;
            seg.next_index += 1;
            OpenPart {
                msn: seg.msn,
                index,
                independent: u.keyframe,
                samples: Vec::new(),
            }
        });
        let index = open.index;
        open.samples.push(Pending {
            dts: d,
            cts,
            keyframe: u.keyframe,
            data: u.data,
        });
        let seg = *seg;
        if let Some(f) = &mut self.follower {
            let nominal_end = seg.start + i64::from(index + 1) * t.part;
            f.open_part(open.msn, index, d, nominal_end);
        }
        // (a resumed session whose frame rate is being checked closes parts on the next frame)
        if !unsnapped && d + t.fd >= self.boundary(&seg, index + 1) {
            self.close_lead(lead, None, out);
        }
    }

    fn start_segment(&mut self, msn: u64, start: i64) {
        self.next_msn = msn + 1;
        self.seg = Some(Seg {
            msn,
            start,
            next_index: 0,
        });
    }

    fn end_segment(&mut self, lead: TrackKind, msn: u64, forced_next: bool, out: &mut Vec<Event>) {
        if let Some(f) = &mut self.follower {
            f.mark_segment_end(msn);
        }
        out.push(Event::SegmentEnd {
            track: lead,
            msn,
            forced_next,
        });
        if let Some(f) = &mut self.follower {
            f.drain(self.last_dts, false, out);
        }
    }

    /// Closes the open lead part. `next_dts` is the decode time of the sample that follows it
    /// (exact duration), or `None` to use the nominal frame duration (predictive close).
    fn close_lead(&mut self, lead: TrackKind, next_dts: Option<i64>, out: &mut Vec<Event>) {
        let Some(p) = self.open.take() else { return };
        let part = finish(lead, p, next_dts, self.t.fd);
        let end = part.start + part.duration;
        self.end = Some(end);
        if let Some(f) = &mut self.follower {
            f.close_part(part.msn, part.index, end);
        }
        out.push(Event::Part(part));
        if let Some(f) = &mut self.follower {
            f.drain(self.last_dts, false, out);
        }
    }
}

/// The measured frame rate, snapped to a standard rate when within 0.1 % of it (millisecond
/// timestamps make a 30 fps GOP measure as 30.005 fps).
fn nominal_frame_rate(measured: f64) -> f64 {
    const STANDARD: [f64; 10] = [
        24_000.0 / 1001.0,
        24.0,
        25.0,
        30_000.0 / 1001.0,
        30.0,
        48.0,
        50.0,
        60_000.0 / 1001.0,
        60.0,
        120.0,
    ];
    STANDARD
        .iter()
        .copied()
        .find(|r| (measured - r).abs() <= r * 0.001)
        .unwrap_or(measured)
}

/// Frames per part: a divisor of the GOP's frame count closest to the part target (so that
/// keyframes fall on part boundaries and every part of a segment is whole), if one is within
/// ±30 % of the target; otherwise the nearest whole number of frames.
fn part_frames(part_target: i64, fd: i64, gop_frames: u32) -> i64 {
    let nearest = ((part_target + fd / 2) / fd).max(1);
    let best = (1..=i64::from(gop_frames))
        .filter(|d| i64::from(gop_frames) % d == 0)
        .min_by_key(|d| ((d * fd - part_target).abs(), *d));
    match best {
        Some(d) if (d * fd - part_target).abs() * 10 <= part_target * 3 => d,
        _ => nearest,
    }
}

/// Turns an open part into a closed one, computing sample durations.
fn finish(track: TrackKind, p: OpenPart, next_dts: Option<i64>, fd: i64) -> ClosedPart {
    let start = p.samples.first().map_or(0, |s| s.dts);
    let n = p.samples.len();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let s = &p.samples[i];
        let next = match p.samples.get(i + 1) {
            Some(nx) => nx.dts,
            None => next_dts.unwrap_or(s.dts + fd),
        };
        samples.push(SegSample {
            dts: s.dts,
            duration: (next - s.dts).clamp(1, i64::from(u32::MAX)) as u32,
            cts: s.cts,
            keyframe: s.keyframe,
            data: s.data.clone(),
        });
    }
    let duration = samples.iter().map(|s| i64::from(s.duration)).sum();
    ClosedPart {
        track,
        msn: p.msn,
        index: p.index,
        independent: p.independent,
        start,
        duration,
        samples,
    }
}

mod follower;
mod gap;

#[cfg(test)]
mod tests;
