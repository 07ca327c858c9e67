//! One stream: segmenter output turned into parts, segments and rendered playlists, published
//! through `watch` channels so HTTP requests (including blocking ones) read immutable views.
//!
//! Call order for a publisher session: [`Stream::begin_publish`] (tracks known) →
//! [`Stream::push`] for every unit → [`Stream::end_publish`]; after the reconnect grace period
//! without a new publisher, [`Stream::finish`] adds EXT-X-ENDLIST. A publisher that comes back
//! before `finish` continues the same playlists after an EXT-X-DISCONTINUITY.
//!
//! Input loss (RFC 8216bis §6.2.1: a part is added within a part target of the previous one;
//! missing media is GAP): [`Stream::tick`], called on a timer (see [`drive`]), fills the
//! timeline with GAP parts and segments once the leading track has been silent for
//! `stall_timeout`, and at once when the publisher is gone, until the input returns (after a
//! discontinuity) or the stream ends. The rule is the segmenter's (rule 6).

use crate::blocking::Position;
use crate::cmaf::{fragment_header, init_segment, AudioConfig, TrackConfig};
use crate::epoch::{Epoch, EpochAnswer};
use crate::metrics::PackagerMetrics;
use crate::model::{OpenSegment, Part, Segment};
use crate::playlist::{MediaPlaylist, Multivariant};
use crate::segmenter::{ClosedPart, Event, Segmenter, SegmenterConfig, Timing};
use bytes::Bytes;
use ferrocast_media::avc::AvcConfig;
use ferrocast_media::time::{rescale, VIDEO_TIMESCALE};
use ferrocast_media::{MediaUnit, TrackKind};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Bound on the arrival times remembered for units held by the segmenter's probe.
const MAX_PROBE_ARRIVALS: usize = 4096;

/// Per-stream settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Segmenter settings.
    pub segmenter: SegmenterConfig,
    /// Complete segments listed in a media playlist.
    pub window_segments: usize,
    /// Peer origins exist: the PDT epoch is agreed with them ([`crate::epoch`]) rather than
    /// taken from this origin's clock alone.
    pub agree_epoch: bool,
    /// Where other servers deliver the same streams (`{url}/{stream}/` holds a stream's
    /// playlists): each is listed in the multivariant playlist as a redundant copy of the
    /// variant, for players that fail over by themselves.
    pub redundant_urls: Arc<[String]>,
    /// The leading track (video, else audio) is taken as lost after this long without a unit:
    /// GAP parts keep the playlists moving until it returns.
    pub stall_timeout: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            segmenter: SegmenterConfig::default(),
            window_segments: 10,
            agree_epoch: false,
            redundant_urls: Arc::from(Vec::new()),
            stall_timeout: Duration::from_secs(1),
        }
    }
}

/// The tracks a publisher sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracks {
    /// H.264 configuration.
    pub video: Option<AvcConfig>,
    /// AAC or Opus configuration.
    pub audio: Option<AudioConfig>,
}

/// A rendered text body; its gzip form is made on first use (most versions of a playlist are
/// never requested when nobody watches) and then shared by every request.
#[derive(Debug)]
pub struct Rendered {
    /// Identity body.
    pub plain: Bytes,
    gzip: std::sync::OnceLock<Bytes>,
}

impl Rendered {
    /// Wraps rendered text.
    pub fn new(text: String) -> Self {
        Self {
            plain: Bytes::from(text),
            gzip: std::sync::OnceLock::new(),
        }
    }

    /// The `Content-Encoding: gzip` body.
    pub fn gzip(&self) -> &Bytes {
        self.gzip.get_or_init(|| crate::gzip::gzip(&self.plain))
    }
}

/// An immutable snapshot of one rendition: what HTTP serves. Its playlist text is rendered on
/// first request (at most once per version; never for versions nobody asks for).
#[derive(Debug)]
pub struct RenditionView {
    /// Video or audio.
    pub kind: TrackKind,
    timescale: u32,
    listed_from: usize,
    discontinuity_sequence: u64,
    reports: Vec<(String, u64, u32)>,
    playlist: std::sync::OnceLock<Rendered>,
    delta: std::sync::OnceLock<Option<Rendered>>,
    /// Position for blocking decisions.
    pub position: Position,
    /// The preload-hinted next part.
    pub hint: Option<(u64, u32)>,
    /// EXT-X-TARGETDURATION.
    pub target_duration: u32,
    /// PART-TARGET in milliseconds.
    pub part_target_ms: u32,
    /// Every downloadable complete segment (listed, and removed ones still available).
    pub segments: Vec<Arc<Segment>>,
    /// The in-progress segment.
    pub open: Option<OpenSegment>,
    /// Init segments by generation.
    pub inits: Vec<(u32, Bytes)>,
}

/// Result of looking up a part.
#[derive(Debug)]
pub enum PartLookup {
    /// The part exists.
    Found(Arc<Part>),
    /// Not yet: it may still be produced (preload hint); wait for a change.
    Pending,
    /// It does not exist and never will (or fell out of the window).
    Gone,
}

impl RenditionView {
    fn media_playlist(&self) -> MediaPlaylist<'_> {
        MediaPlaylist {
            prefix: self.kind.as_str(),
            timescale: self.timescale,
            target_duration: self.target_duration,
            part_target_ms: self.part_target_ms,
            discontinuity_sequence: self.discontinuity_sequence,
            segments: &self.segments[self.listed_from..],
            open: self.open.as_ref(),
            hint: self.hint,
            ended: self.position.ended,
            reports: &self.reports,
        }
    }

    /// The full media playlist.
    pub fn playlist(&self) -> &Rendered {
        self.playlist
            .get_or_init(|| Rendered::new(self.media_playlist().render(false)))
    }

    /// The delta update (`_HLS_skip=YES`, §6.2.5.1), when it would skip anything.
    pub fn delta(&self) -> Option<&Rendered> {
        self.delta
            .get_or_init(|| {
                let pl = self.media_playlist();
                (pl.skippable() > 0).then(|| Rendered::new(pl.render(true)))
            })
            .as_ref()
    }

    /// Finds a complete segment.
    pub fn segment(&self, msn: u64) -> Option<&Arc<Segment>> {
        self.segments
            .binary_search_by_key(&msn, |s| s.msn)
            .ok()
            .map(|i| &self.segments[i])
    }

    /// Finds a part, or says whether waiting can help (RFC 8216bis §6.2.6).
    pub fn part(&self, msn: u64, index: u32) -> PartLookup {
        if let Some(s) = self.segment(msn) {
            return match s.parts.get(index as usize) {
                Some(p) => PartLookup::Found(p.clone()),
                None => PartLookup::Gone,
            };
        }
        if let Some(o) = self.open.as_ref().filter(|o| o.msn == msn) {
            if let Some(p) = o.parts.get(index as usize) {
                return PartLookup::Found(p.clone());
            }
        }
        if self.position.ended {
            return PartLookup::Gone;
        }
        // Only the hinted part and the few after it may be waited for.
        match self.hint {
            Some(h) if (msn, index) >= h && msn <= h.0 + 1 => PartLookup::Pending,
            _ => PartLookup::Gone,
        }
    }

    /// The init segment of a generation.
    pub fn init(&self, generation: u32) -> Option<&Bytes> {
        self.inits
            .iter()
            .find(|(g, _)| *g == generation)
            .map(|(_, b)| b)
    }
}

/// A published stream.
#[derive(Debug)]
pub struct Stream {
    name: String,
    inner: Mutex<Inner>,
    video: watch::Sender<Option<Arc<RenditionView>>>,
    audio: watch::Sender<Option<Arc<RenditionView>>>,
    multivariant: watch::Sender<Option<Arc<Rendered>>>,
    /// Bumped when a session proposes an epoch that peers must agree on.
    epoch_proposed: watch::Sender<u64>,
    /// Wakes [`drive`] early (the publisher left: GAP parts are due at once).
    wake: Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
struct Inner {
    settings: StreamSettings,
    metrics: PackagerMetrics,
    timing: Option<Timing>,
    segmenter: Option<Segmenter>,
    publishing: bool,
    generation: u64,
    ended: bool,
    renditions: Vec<Rendition>,
    epoch: Epoch,
    /// Wall clock of the latest unit (Unix µs): when its parts became servable.
    wall_us: i64,
    /// Arrival of the latest unit of the leading track.
    lead_arrival: Option<Instant>,
    /// The publisher is gone (waiting for a reconnect): the input is lost already.
    input_gone: bool,
    init_gen: u32,
    /// The init generation a resumed session's media uses, from its discontinuity on.
    pending_init_gen: Option<u32>,
    next_msn: u64,
    last_arrival: [Option<Instant>; 2],
    probe_arrivals: std::collections::HashMap<usize, Instant>,
    multivariant: Option<Multivariant>,
    events: Vec<Event>,
    /// The publisher now (operators' view; see [`status`]).
    publisher: Option<status::PublisherInfo>,
    /// When the stream was created.
    created: (Instant, i64),
}

#[derive(Debug)]
struct Rendition {
    kind: TrackKind,
    config: TrackConfig,
    timescale: u32,
    inits: Vec<(u32, Bytes)>,
    segments: VecDeque<Arc<Segment>>,
    removed_discontinuities: u64,
    open: Option<OpenSegment>,
    discontinuity_pending: bool,
    last_segment: Option<u64>,
    last_part: Option<(u64, u32)>,
    bytes_in_window: VecDeque<(u64, i64, usize)>,
}

/// The publisher's tracks disagree with what is already being published (issue a clear error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Another publisher is live on this stream.
    #[error("stream is already being published")]
    AlreadyPublishing,
    /// The stream has ended (EXT-X-ENDLIST); a new publish gets a new stream.
    #[error("stream has ended")]
    Ended,
    /// Neither video nor audio.
    #[error("publisher sent no supported track")]
    NoTracks,
}

impl Stream {
    /// An empty stream; nothing is served until a publisher's first part.
    pub fn new(name: &str, settings: StreamSettings, metrics: PackagerMetrics) -> Self {
        Self {
            name: name.to_string(),
            inner: Mutex::new(Inner {
                settings,
                metrics,
                timing: None,
                segmenter: None,
                publishing: false,
                generation: 0,
                ended: false,
                renditions: Vec::new(),
                epoch: Epoch::default(),
                wall_us: 0,
                lead_arrival: None,
                input_gone: false,
                init_gen: 0,
                pending_init_gen: None,
                next_msn: 0,
                last_arrival: [None, None],
                probe_arrivals: std::collections::HashMap::new(),
                multivariant: None,
                events: Vec::new(),
                publisher: None,
                created: (Instant::now(), status::unix_ms()),
            }),
            video: watch::channel(None).0,
            audio: watch::channel(None).0,
            multivariant: watch::channel(None).0,
            epoch_proposed: watch::channel(0).0,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Makes this (new, unpublished) stream number its segments and init segments after those
    /// of `previous`, an ended stream of the same name.
    pub fn continue_after(&self, previous: &Stream) {
        let (next_msn, init_gen) = {
            let p = previous.inner.lock();
            let last = p
                .renditions
                .iter()
                .filter_map(|r| r.last_part.map(|(m, _)| m + 1))
                .max();
            (p.next_msn.max(last.unwrap_or(0)), p.init_gen + 1)
        };
        let mut g = self.inner.lock();
        g.next_msn = g.next_msn.max(next_msn);
        g.init_gen = g.init_gen.max(init_gen);
    }

    /// The stream name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Claims the stream for a publisher; returns the publish generation (for
    /// [`Stream::finish`]). Fails while another publisher is live.
    pub fn claim(&self) -> Result<u64, PublishError> {
        let mut g = self.inner.lock();
        if g.publishing {
            return Err(PublishError::AlreadyPublishing);
        }
        if g.ended {
            return Err(PublishError::Ended);
        }
        g.publishing = true;
        g.generation += 1;
        Ok(g.generation)
    }

    /// True while a publisher holds the stream.
    pub fn is_publishing(&self) -> bool {
        self.inner.lock().publishing
    }

    /// True once the stream has ENDLIST.
    pub fn is_ended(&self) -> bool {
        self.inner.lock().ended
    }

    /// Starts (or, after a disconnect within the grace period, resumes) publishing with these
    /// tracks. The stream must have been [`Stream::claim`]ed.
    pub fn begin_publish(&self, tracks: Tracks) -> Result<(), PublishError> {
        if tracks.video.is_none() && tracks.audio.is_none() {
            return Err(PublishError::NoTracks);
        }
        let mut g = self.inner.lock();
        let g = &mut *g;
        let resume = !g.renditions.is_empty();
        let gen = if resume {
            // the new init segments apply from the discontinuity the segmenter signals when
            // the new session's first keyframe arrives (GAP parts may come before it)
            let gen = g.pending_init_gen.unwrap_or(g.init_gen) + 1;
            g.pending_init_gen = Some(gen);
            gen
        } else {
            g.init_gen
        };
        let configs = [
            tracks.video.clone().map(TrackConfig::Avc),
            tracks.audio.clone().map(TrackConfig::from),
        ];
        for config in configs.into_iter().flatten() {
            let init = init_segment(&config);
            match g.renditions.iter_mut().find(|r| r.kind == config.kind()) {
                Some(r) => {
                    r.timescale = config.timescale();
                    r.config = config;
                    r.inits.push((gen, init));
                }
                None if !resume => g.renditions.push(Rendition {
                    kind: config.kind(),
                    timescale: config.timescale(),
                    config,
                    inits: vec![(gen, init)],
                    segments: VecDeque::new(),
                    removed_discontinuities: 0,
                    open: None,
                    discontinuity_pending: false,
                    last_segment: None,
                    last_part: None,
                    bytes_in_window: VecDeque::new(),
                }),
                None => {
                    tracing::warn!(stream = %self.name, track = config.kind().as_str(),
                        "track not present in the first session: ignored after reconnect");
                }
            }
        }
        let audio_clock = g
            .renditions
            .iter()
            .find(|r| r.kind == TrackKind::Audio)
            .and_then(|r| r.config.audio_clock());
        let (continued, restart) = match &g.segmenter {
            Some(_) if resume => {
                let mut continued = true;
                self.with_segmenter(g, |s, ev| continued = s.resume(audio_clock, ev));
                (continued, !continued)
            }
            _ => (false, false),
        };
        if restart {
            // nothing was published: the new session starts the stream afresh, as a first
            // session would (its own init, timing and PDT epoch)
            g.init_gen = gen;
            g.pending_init_gen = None;
            g.timing = None;
            g.epoch = Epoch::default();
            g.lead_arrival = None;
        }
        if !continued {
            let mut cfg = g.settings.segmenter;
            if let Some(t) = g.timing {
                cfg.fixed_target_duration = Some(t.target_duration);
            }
            cfg.min_msn = g.next_msn;
            cfg.align_start = !resume || restart;
            let has_video = g.renditions.iter().any(|r| r.kind == TrackKind::Video);
            g.segmenter = Some(Segmenter::new(cfg, has_video, audio_clock));
        }
        g.input_gone = false;
        Ok(())
    }

    /// Feeds one unit received at `arrival` (monotonic) / `wall_us` (Unix µs).
    pub fn push(&self, unit: MediaUnit, arrival: Instant, wall_us: i64) {
        let wall_ms = wall_us.div_euclid(1000);
        let mut g = self.inner.lock();
        let g = &mut *g;
        let Some(ts) = g
            .renditions
            .iter()
            .find(|r| r.kind == unit.track)
            .map(|r| r.timescale)
        else {
            return;
        };
        if g.epoch.unproposed() && g.epoch.propose(wall_ms - rescale(unit.dts, ts, 1000)) {
            if g.settings.agree_epoch {
                self.epoch_proposed.send_modify(|n| *n += 1);
            } else {
                g.epoch.commit(&[]);
            }
        }
        g.wall_us = wall_us;
        let slot = |k: TrackKind| usize::from(k == TrackKind::Audio);
        let previous_arrival = g.last_arrival;
        g.last_arrival[slot(unit.track)] = Some(arrival);
        let ptr = unit.data.as_ptr();
        let probing = g.segmenter.as_ref().is_some_and(Segmenter::is_probing);
        if probing && g.probe_arrivals.len() < 2 * MAX_PROBE_ARRIVALS {
            // units held by the segmenter's probe: remember when each arrived (bounded)
            g.probe_arrivals.insert(ptr as usize, arrival);
        }
        let mut events = std::mem::take(&mut g.events);
        let mut probing = false;
        if let Some(s) = &mut g.segmenter {
            let is_lead = unit.track == s.lead();
            s.push(unit, &mut events);
            // the input is back only once the segmenter takes it (after a loss, frames before
            // the next keyframe are dropped and GAP parts must go on meanwhile)
            if is_lead && !s.in_gap() {
                g.lead_arrival = Some(arrival);
            }
            probing = s.is_probing();
        }
        for ev in events.drain(..) {
            // latency origin: the arrival of the part's last frame (this unit, or the previous
            // unit of the part's track)
            let from = match &ev {
                Event::Part(p) if !p.is_gap() => {
                    let last = p.samples.last().map(|s| s.data.as_ptr());
                    if last == Some(ptr) {
                        Some((p.track, arrival))
                    } else if let Some(a) = last.and_then(|l| g.probe_arrivals.get(&(l as usize))) {
                        Some((p.track, *a))
                    } else {
                        previous_arrival[slot(p.track)].map(|a| (p.track, a))
                    }
                }
                _ => None,
            };
            self.apply(g, ev);
            if let Some((track, from)) = from {
                g.metrics
                    .track(track)
                    .part_publish_latency
                    .observe(from.elapsed().as_secs_f64());
            }
        }
        g.events = events;
        if !probing && !g.probe_arrivals.is_empty() {
            g.probe_arrivals = std::collections::HashMap::new();
        }
    }

    /// The publisher went away: closes open parts and segments. Playlists stay live (no
    /// ENDLIST) until [`Stream::finish`] or a new publisher.
    pub fn end_publish(&self) {
        let mut g = self.inner.lock();
        g.publishing = false;
        g.publisher = None;
        self.lose_input(&mut g);
    }

    /// The input stops: open parts and segments close, and GAP parts follow (see `tick`).
    fn lose_input(&self, g: &mut Inner) {
        self.with_segmenter(g, Segmenter::input_lost);
        g.input_gone = true;
        self.wake.notify_one();
        for kind in [TrackKind::Video, TrackKind::Audio] {
            self.publish_view(g, kind);
        }
    }

    /// The publisher's tracks changed mid-publish (new sequence headers or parameter sets):
    /// the current input ends and the same publisher goes on with `tracks` after a
    /// discontinuity, under a new generation (returned). The stream stays claimed throughout
    /// (no other publisher can take it in between) and keeps its publisher.
    pub fn restart_publish(&self, tracks: Tracks) -> Result<u64, PublishError> {
        let generation = {
            let mut g = self.inner.lock();
            self.lose_input(&mut g);
            g.generation += 1;
            g.generation
        };
        self.begin_publish(tracks)?;
        Ok(generation)
    }

    /// Ends the stream for good: EXT-X-ENDLIST. Returns false (and does nothing) if a publisher
    /// has come back since publish generation `generation`.
    pub fn finish(&self, generation: u64) -> bool {
        let mut g = self.inner.lock();
        let g = &mut *g;
        if g.publishing || g.generation != generation {
            return false;
        }
        self.with_segmenter(g, Segmenter::flush);
        g.segmenter = None;
        g.ended = true;
        for kind in [TrackKind::Video, TrackKind::Audio] {
            self.publish_view(g, kind);
        }
        true
    }

    /// Keeps the timeline moving while the input is lost (see the module doc); returns when
    /// to call again, or `None` once the stream has ended.
    pub fn tick(&self, now: Instant) -> Option<Instant> {
        let mut g = self.inner.lock();
        let g = &mut *g;
        if g.ended {
            return None;
        }
        let timeout = g.settings.stall_timeout;
        let (Some(last), true) = (g.lead_arrival, g.segmenter.is_some()) else {
            return Some(now + timeout);
        };
        let silent = now.saturating_duration_since(last);
        if !g.input_gone && silent < timeout {
            return Some(last + timeout);
        }
        self.with_segmenter(g, |s, ev| s.fill(silent, ev));
        // the next GAP part is due within a part target: check four times per part
        let part = g.timing.map_or(200, |t| t.part_target_ms);
        Some(now + Duration::from_millis(u64::from(part / 4).max(10)))
    }

    /// Subscribes to a rendition's views.
    pub fn rendition(&self, kind: TrackKind) -> watch::Receiver<Option<Arc<RenditionView>>> {
        match kind {
            TrackKind::Video => self.video.subscribe(),
            TrackKind::Audio => self.audio.subscribe(),
        }
    }

    /// Changes whenever a publish session proposes an epoch to agree on with peers (then
    /// see [`Stream::epoch_pending`]).
    pub fn epoch_proposals(&self) -> watch::Receiver<u64> {
        self.epoch_proposed.subscribe()
    }

    /// This session's epoch proposal, while it is not committed.
    pub fn epoch_pending(&self) -> Option<i64> {
        self.inner.lock().epoch.pending()
    }

    /// Answers a peer origin asking about this stream's epoch (see [`crate::epoch`]). The
    /// epoch lasts the stream's life, through reconnects; an ended stream, and one between
    /// sessions that has published nothing yet (the next session proposes afresh), answer
    /// `Unknown`.
    pub fn epoch_answer(&self, peer_proposal: Option<i64>) -> EpochAnswer {
        let mut g = self.inner.lock();
        let published = g.renditions.iter().any(|r| r.last_part.is_some());
        if g.ended || (!g.publishing && !published) {
            return EpochAnswer::Unknown;
        }
        g.epoch.answer(peer_proposal)
    }

    /// Commits this session's epoch from the peers' answers to proposal `own`; returns it.
    /// Does nothing (returns `None`) when `own` is no longer the pending proposal: a new
    /// session began while the peers were asked, and they must be asked again.
    pub fn commit_epoch(&self, own: i64, answers: &[EpochAnswer]) -> Option<i64> {
        let mut g = self.inner.lock();
        if g.epoch.pending() != Some(own) {
            return None;
        }
        g.epoch.commit(answers)
    }

    /// The current multivariant playlist, once the stream has parts.
    pub fn multivariant(&self) -> Option<Arc<Rendered>> {
        self.multivariant.borrow().clone()
    }

    /// Runs `f` on the segmenter (if any) and applies the events it emits.
    fn with_segmenter(&self, g: &mut Inner, f: impl FnOnce(&mut Segmenter, &mut Vec<Event>)) {
        let mut events = std::mem::take(&mut g.events);
        if let Some(s) = &mut g.segmenter {
            f(s, &mut events);
        }
        for ev in events.drain(..) {
            self.apply(g, ev);
        }
        g.events = events;
    }

    fn apply(&self, g: &mut Inner, ev: Event) {
        match ev {
            Event::Discontinuity => {
                tracing::info!(stream = %self.name, "input is back: discontinuity");
                for r in &mut g.renditions {
                    r.discontinuity_pending = true;
                }
                if let Some(gen) = g.pending_init_gen.take() {
                    g.init_gen = gen;
                }
            }
            Event::Timing(t) => {
                if g.timing.is_none() {
                    g.timing = Some(t);
                    tracing::info!(stream = %self.name, target_duration = t.target_duration,
                        part_target_ms = t.part_target_ms, frame_rate = ?t.frame_rate, "stream timing decided");
                }
            }
            Event::Part(p) => {
                let kind = p.track;
                if p.is_gap() {
                    g.metrics.track(kind).gap_parts.inc();
                }
                self.add_part(g, p);
                g.metrics.track(kind).parts.inc();
                self.publish_view(g, kind);
                if g.multivariant.is_none() {
                    self.update_multivariant(g);
                }
            }
            Event::SegmentEnd {
                track,
                msn,
                forced_next,
            } => {
                self.end_segment(g, track, msn);
                g.next_msn = g.next_msn.max(msn + 1);
                g.metrics.track(track).segments.inc();
                if forced_next {
                    g.metrics.forced_cuts.with_label_values(&[&self.name]).inc();
                }
                self.publish_view(g, track);
                if track == TrackKind::Video || g.renditions.len() == 1 {
                    self.update_multivariant(g);
                }
            }
        }
    }

    fn add_part(&self, g: &mut Inner, p: ClosedPart) {
        let epoch = match g.epoch.committed() {
            Some(e) => e,
            None => {
                tracing::warn!(stream = %self.name,
                    "peers did not answer before the first part: PROGRAM-DATE-TIME from this origin's clock");
                g.epoch.commit(&[]).unwrap_or(0)
            }
        };
        let current = g.init_gen;
        let Some(r) = g.renditions.iter_mut().find(|r| r.kind == p.track) else {
            return;
        };
        let with_cts = r.kind == TrackKind::Video;
        let samples = p.fragment_samples();
        let gap = p.is_gap();
        let header = if gap {
            Bytes::new()
        } else {
            let seq = ((p.msn << 8) | u64::from(p.index & 0xff)).wrapping_add(1) as u32;
            fragment_header(seq, p.start.max(0) as u64, &samples, with_cts)
        };
        let payload: Vec<Bytes> = p.samples.into_iter().map(|s| s.data).collect();
        let size = header.len() + payload.iter().map(Bytes::len).sum::<usize>();
        let part = Arc::new(Part {
            msn: p.msn,
            index: p.index,
            duration: p.duration,
            independent: p.independent,
            gap,
            header,
            samples: payload,
            size,
            published_us: if gap { 0 } else { g.wall_us },
        });
        r.last_part = Some((p.msn, p.index));
        if r.open.as_ref().is_none_or(|o| o.msn != p.msn) {
            // the newest init of this rendition in use (a track a resumed session lacks keeps
            // its last one); looked up per segment, not per part
            let gen = r
                .inits
                .iter()
                .rev()
                .find(|(g, _)| *g <= current)
                .map_or(current, |(g, _)| *g);
            let start90 = rescale(p.start, r.timescale, VIDEO_TIMESCALE);
            r.open = Some(OpenSegment {
                msn: p.msn,
                pdt_ms: epoch + rescale(start90, VIDEO_TIMESCALE, 1000),
                discontinuity: std::mem::take(&mut r.discontinuity_pending),
                init_gen: gen,
                parts: Vec::new(),
            });
        }
        if let Some(o) = &mut r.open {
            o.parts.push(part);
        }
    }

    fn end_segment(&self, g: &mut Inner, track: TrackKind, msn: u64) {
        let window = g.settings.window_segments;
        let Some(r) = g.renditions.iter_mut().find(|r| r.kind == track) else {
            return;
        };
        let Some(open) = r.open.take_if(|o| o.msn == msn) else {
            return;
        };
        let seg = Arc::new(Segment {
            msn,
            duration: open.parts.iter().map(|p| p.duration).sum(),
            pdt_ms: open.pdt_ms,
            discontinuity: open.discontinuity,
            init_gen: open.init_gen,
            parts: open.parts,
        });
        r.bytes_in_window.push_back((msn, seg.duration, seg.size()));
        while r.bytes_in_window.len() > window {
            r.bytes_in_window.pop_front();
        }
        r.segments.push_back(seg);
        r.last_segment = Some(msn);
        // A segment removed from the playlist stays downloadable for its duration plus the
        // playlist's (§6.2.2 "Availability Duration"): two more segments than the window
        // cover that for a client that loaded the playlist just before the removal.
        while r.segments.len() > window + 2 {
            if let Some(s) = r.segments.pop_front() {
                if s.discontinuity {
                    r.removed_discontinuities += 1;
                }
            }
        }
        let keep_inits_from = r
            .segments
            .front()
            .map(|s| s.init_gen)
            .unwrap_or(gen_of(&r.open));
        if r.inits.len() > 1 {
            r.inits.retain(|(g, _)| *g >= keep_inits_from);
        }
    }

    fn publish_view(&self, g: &Inner, kind: TrackKind) {
        let Some(timing) = g.timing else { return };
        let Some(r) = g.renditions.iter().find(|r| r.kind == kind) else {
            return;
        };
        if r.last_part.is_none() {
            return;
        }
        let window = g.settings.window_segments;
        let listed_from = r.segments.len().saturating_sub(window);
        let segments: Vec<Arc<Segment>> = r.segments.iter().cloned().collect();
        let discontinuity_sequence = r.removed_discontinuities
            + segments[..listed_from]
                .iter()
                .filter(|s| s.discontinuity)
                .count() as u64;
        let reports: Vec<(String, u64, u32)> = g
            .renditions
            .iter()
            .filter(|o| o.kind != kind)
            .filter_map(|o| {
                o.last_part
                    .map(|(m, p)| (format!("{}.m3u8", o.kind.as_str()), m, p))
            })
            .collect();
        // live while a publisher is on, and while waiting for one to come back (GAP parts)
        let live = g.segmenter.is_some() && !g.ended;
        let hint = if live {
            r.last_part.map(|(m, i)| {
                if r.last_segment == Some(m) {
                    (m + 1, 0)
                } else {
                    (m, i + 1)
                }
            })
        } else {
            None
        };
        let view = RenditionView {
            kind,
            timescale: r.timescale,
            listed_from,
            discontinuity_sequence,
            reports,
            playlist: std::sync::OnceLock::new(),
            delta: std::sync::OnceLock::new(),
            position: Position {
                last_segment: r.last_segment,
                last_part: r.last_part,
                ended: g.ended,
            },
            hint,
            target_duration: timing.target_duration,
            part_target_ms: timing.part_target_ms,
            segments,
            open: r.open.clone(),
            inits: r.inits.clone(),
        };
        let tx = match kind {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        };
        tx.send_replace(Some(Arc::new(view)));
    }

    fn update_multivariant(&self, g: &mut Inner) {
        let Some(timing) = g.timing else { return };
        if g.renditions.iter().any(|r| r.last_part.is_none()) {
            return;
        }
        let mut peak = 0u64;
        let mut avg = 0u64;
        for r in &g.renditions {
            match r.bitrate(usize::MAX) {
                Some(Measured::Segments(rate)) => {
                    avg += rate;
                    peak += r.peak_segment_bitrate();
                }
                Some(Measured::Parts(estimate)) => {
                    avg += estimate;
                    peak += estimate * 3 / 2;
                }
                None => {}
            }
        }
        let video = g.renditions.iter().find_map(|r| match &r.config {
            TrackConfig::Avc(c) => Some((
                c.codec_string(),
                c.info.width,
                c.info.height,
                timing.frame_rate.unwrap_or(30.0),
            )),
            _ => None,
        });
        let audio = g.renditions.iter().find_map(|r| match &r.config {
            TrackConfig::Aac(c) => Some((c.codec_string(), c.channels)),
            TrackConfig::Opus(c) => Some((c.codec_string(), c.channels)),
            _ => None,
        });
        let backups = g
            .settings
            .redundant_urls
            .iter()
            .map(|u| format!("{}/{}/", u.trim_end_matches('/'), self.name))
            .collect();
        let mv = Multivariant {
            video,
            audio,
            backups,
            bandwidth: peak.max(avg).max(1),
            average_bandwidth: avg.max(1),
        };
        if g.multivariant.as_ref() != Some(&mv) {
            self.multivariant
                .send_replace(Some(Arc::new(Rendered::new(mv.render()))));
            g.multivariant = Some(mv);
        }
    }
}

/// Calls [`Stream::tick`] when it asks to, until the stream ends (or is dropped). One such
/// task runs per stream; a healthy stream wakes it once per `stall_timeout`.
pub async fn drive(stream: std::sync::Weak<Stream>) {
    loop {
        let (next, wake) = match stream.upgrade() {
            Some(s) => (s.tick(Instant::now()), s.wake.clone()),
            None => return,
        };
        let Some(at) = next else { return };
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = wake.notified() => {}
        }
    }
}

fn gen_of(open: &Option<OpenSegment>) -> u32 {
    open.as_ref().map_or(0, |o| o.init_gen)
}

pub mod status;
use status::Measured;
#[cfg(test)]
mod tests;
