//! The follower: audio parts cut on the video's part boundaries (rule 5 of the segmenter).

use super::{finish, AudioClock, ClosedPart, Event, OpenPart, Pending, MAX_FOLLOWER_QUEUE};
use ferrocast_media::time::rescale;
use ferrocast_media::{MediaUnit, TrackKind};
use std::collections::VecDeque;

#[derive(Debug)]
pub(super) struct Follower {
    track: TrackKind,
    ts: u32,
    lead_ts: u32,
    fd: i64,
    queue: VecDeque<Pending>,
    parts: VecDeque<PartRef>,
    open: Option<OpenPart>,
    end: Option<i64>,
    seg_ends: VecDeque<u64>,
    last_opened: Option<(u64, u32)>,
    dropped: u64,
    /// After the input returned from a loss: audio before this time (in `ts`) is dropped.
    resume_at: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct PartRef {
    msn: u64,
    index: u32,
    start: i64,
    /// Where the part ends if the segment goes on: `segment start + (index + 1) × part`.
    nominal_end: i64,
    /// Where the video part actually ended, once closed.
    end: Option<i64>,
}

impl Follower {
    /// Audio on `clock` following a leading track in `lead_ts`.
    pub(super) fn new(clock: AudioClock, lead_ts: u32) -> Self {
        Self {
            track: TrackKind::Audio,
            ts: clock.timescale,
            lead_ts,
            fd: i64::from(clock.frame.max(1)),
            queue: VecDeque::new(),
            parts: VecDeque::new(),
            open: None,
            end: None,
            seg_ends: VecDeque::new(),
            last_opened: None,
            dropped: 0,
            resume_at: None,
        }
    }

    /// The audio clock changed (a new session): the timeline continues in the new one.
    pub(super) fn set_clock(&mut self, clock: AudioClock) {
        let ts = clock.timescale;
        self.end = self.end.map(|e| rescale(e, self.ts, ts));
        self.queue.clear();
        self.ts = ts;
        self.fd = i64::from(clock.frame.max(1));
    }

    /// The input is lost: audio queued beyond the last video part has no part to go to.
    pub(super) fn discard_queue(&mut self) {
        self.queue.clear();
    }

    /// The input returns at `lead_time` after a loss: earlier audio is dropped.
    pub(super) fn resume_at(&mut self, lead_time: i64) {
        self.resume_at = Some(self.to_lead_inv(lead_time));
    }

    pub(super) fn to_lead(&self, ticks: i64) -> i64 {
        rescale(ticks, self.ts, self.lead_ts)
    }

    pub(super) fn enqueue(&mut self, mut u: MediaUnit) {
        if let Some(at) = self.resume_at {
            if u.dts + self.fd / 2 < at {
                return; // before the keyframe the input returned with (midpoint rule)
            }
            self.resume_at = None;
            if let Some(end) = self.end.filter(|e| (u.dts - e).abs() <= self.fd / 2) {
                // the first frame after a GAP starts where the GAP ends
                u.dts = end;
            }
        }
        if self.queue.len() >= MAX_FOLLOWER_QUEUE {
            // the leader stalled while the follower kept coming: drop the oldest (bounded)
            self.queue.pop_front();
            if (self.dropped + 1).is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "audio far ahead of video: dropping audio"
                );
            }
            self.dropped += 1;
        }
        let floor = match (self.queue.back(), &self.open, self.end) {
            (Some(b), _, _) => b.dts + 1,
            (None, Some(p), _) => p.samples.last().map_or(i64::MIN, |s| s.dts + 1),
            (None, None, Some(end)) => end,
            (None, None, None) => i64::MIN,
        };
        let d = u.dts.max(floor);
        self.queue.push_back(Pending {
            dts: d,
            cts: 0,
            keyframe: true,
            data: u.data,
        });
    }

    pub(super) fn open_part(&mut self, msn: u64, index: u32, start: i64, nominal_end: i64) {
        // every video part is announced once, even if its audio part was already closed (on
        // the nominal end) while video samples of that part are still arriving
        if self.last_opened.is_some_and(|last| last >= (msn, index)) {
            return;
        }
        self.last_opened = Some((msn, index));
        self.parts.push_back(PartRef {
            msn,
            index,
            start,
            nominal_end,
            end: None,
        });
    }

    pub(super) fn close_part(&mut self, msn: u64, index: u32, end: i64) {
        if let Some(p) = self
            .parts
            .iter_mut()
            .rev()
            .find(|p| p.msn == msn && p.index == index)
        {
            p.end = Some(end);
        }
    }

    pub(super) fn mark_segment_end(&mut self, msn: u64) {
        self.seg_ends.push_back(msn);
    }

    /// Emits SegmentEnd for every ended segment none of whose parts is still pending.
    pub(super) fn emit_segment_ends(&mut self, out: &mut Vec<Event>) {
        while let Some(&m) = self.seg_ends.front() {
            if self.parts.iter().any(|p| p.msn <= m) {
                break;
            }
            self.seg_ends.pop_front();
            out.push(Event::SegmentEnd {
                track: self.track,
                msn: m,
                forced_next: false,
            });
        }
    }

    /// Assigns queued audio to video parts and closes audio parts whose video part is closed
    /// and whose audio is complete. `lead_now` is the latest leading-track time; `flush` closes
    /// everything.
    pub(super) fn drain(&mut self, lead_now: i64, flush: bool, out: &mut Vec<Event>) {
        let lag_limit = i64::from(self.lead_ts);
        let afd_lead = self.to_lead(self.fd);
        let half = afd_lead / 2;
        while let Some(front) = self.parts.front().copied() {
            // Audio closes on the video part's actual end or, while the video part is still
            // open, on its nominal end: with a constant GOP the video part ends exactly there
            // (keyframes fall on part boundaries), so audio parts need not wait for video.
            let end = Some(front.end.unwrap_or(front.nominal_end));
            // predicted: the open audio part's last frame reaches the end of the video part
            if let (Some(e), Some(open)) = (end, &self.open) {
                if let Some(last) = open.samples.last() {
                    if self.to_lead(last.dts) + afd_lead >= e - half {
                        self.close_front(None, out);
                        continue;
                    }
                }
            }
            if let Some(a) = self.queue.front() {
                let a_lead = self.to_lead(a.dts);
                if self.end.is_none() && self.open.is_none() && a_lead < front.start - half {
                    self.queue.pop_front(); // before the first segment (midpoint rule)
                    continue;
                }
                if let Some(e) = end {
                    if a_lead >= e - half {
                        let next = a.dts;
                        self.close_front(Some(next), out);
                        continue;
                    }
                }
                let a = self.queue.pop_front().expect("front exists");
                let open = self.open.get_or_insert_with(|| OpenPart {
                    msn: front.msn,
                    index: front.index,
                    independent: true,
                    samples: Vec::new(),
                });
                open.samples.push(a);
                continue;
            }
            match front.end {
                Some(e) if flush || lead_now.saturating_sub(e) > lag_limit => {
                    self.close_front(None, out);
                }
                None if flush => {
                    self.close_front(None, out);
                }
                _ => break,
            }
        }
        self.emit_segment_ends(out);
    }

    pub(super) fn close_front(&mut self, next_dts: Option<i64>, out: &mut Vec<Event>) {
        let Some(front) = self.parts.pop_front() else {
            return;
        };
        let part = match self.open.take() {
            Some(open) if !open.samples.is_empty() => finish(self.track, open, next_dts, self.fd),
            _ => {
                let lead_end = front.end.unwrap_or(front.nominal_end);
                let start = self.end.unwrap_or_else(|| self.to_lead_inv(front.start));
                let nominal = rescale(lead_end - front.start, self.lead_ts, self.ts);
                // end where the video part ends, when the audio is within a frame of it (the
                // audio timeline catches up with the video's across a GAP)
                let aligned = self.to_lead_inv(lead_end) - start;
                let duration = if (aligned - nominal).abs() <= self.fd {
                    aligned
                } else {
                    nominal
                };
                ClosedPart {
                    track: self.track,
                    msn: front.msn,
                    index: front.index,
                    independent: true,
                    start,
                    duration: duration.max(1),
                    samples: Vec::new(),
                }
            }
        };
        self.end = Some(part.start + part.duration);
        out.push(Event::Part(part));
        self.emit_segment_ends(out);
    }

    pub(super) fn to_lead_inv(&self, lead_ticks: i64) -> i64 {
        rescale(lead_ticks, self.lead_ts, self.ts)
    }
}
