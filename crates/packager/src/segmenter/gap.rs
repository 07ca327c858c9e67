//! Input loss (rule 6 of the segmenter): GAP parts keep the timeline moving while the leading
//! track is missing, and the input that returns starts a new segment after a discontinuity.

use super::{ClosedPart, Event, Running, Seg};
use ferrocast_media::TrackKind;

/// Frame-rate check of a resumed session.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spacing {
    first: Option<i64>,
    frames: u32,
}

impl Spacing {
    pub(super) fn new() -> Self {
        Self {
            first: None,
            frames: 1,
        }
    }
}

/// The leading track is missing. GAP parts cover the timeline up to `Running::end`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gap {
    /// The furthest time the input was reported missing until.
    until: i64,
}

impl Running {
    /// Closes the open part and segment where the media ends and enters the gap state.
    /// False when there is no timeline to continue yet (nothing published).
    pub(super) fn enter_gap(&mut self, lead: TrackKind, out: &mut Vec<Event>) -> bool {
        if self.gap.is_some() {
            return true;
        }
        if self.spacing_check.is_some() {
            // a resumed session's frame-rate check starts over with the returning media
            self.spacing_check = Some(Spacing::new());
        }
        self.close_lead(lead, None, out);
        let Some(end) = self.end else { return false };
        if let Some(seg) = self.seg.take() {
            self.end_segment(lead, seg.msn, false, out);
        }
        self.gap = Some(Gap { until: end });
        self.flush_follower(out);
        if let Some(f) = &mut self.follower {
            f.discard_queue();
        }
        self.held.clear();
        true
    }

    /// The input has been missing until `until`: a GAP part for every part that ends by then.
    pub(super) fn fill(&mut self, lead: TrackKind, until: i64, out: &mut Vec<Event>) {
        if !self.enter_gap(lead, out) {
            return;
        }
        if let Some(g) = &mut self.gap {
            g.until = g.until.max(until);
        }
        self.gap_parts(lead, until, out);
        self.flush_follower(out);
    }

    /// The leading track is back with `u`. Returns the decode time its keyframe gets, or
    /// `None` to drop it (nothing decodes before the next keyframe).
    pub(super) fn end_gap(
        &mut self,
        lead: TrackKind,
        u: &ferrocast_media::MediaUnit,
        out: &mut Vec<Event>,
    ) -> Option<i64> {
        let gap = self.gap?;
        if !u.keyframe {
            return None;
        }
        let gap_end = self.gap_end();
        let t = self.t;
        let snap = |x: i64| {
            x.saturating_add(t.half_fd)
                .div_euclid(t.fd)
                .saturating_mul(t.fd)
        };
        let mut d = snap(u.dts.saturating_add(self.shift));
        if d < gap_end || d > gap.until.max(gap_end).saturating_add(t.bucket) {
            // the publisher's clock went back (a restarted encoder, media held up in the
            // network) or jumped far ahead: continue the published timeline where it ends,
            // by whole frames (the frame grid stays where it was)
            let frames = gap_end
                .saturating_sub(d)
                .saturating_add(t.fd - 1)
                .div_euclid(t.fd);
            let shift = frames.saturating_mul(t.fd);
            tracing::info!(
                shift,
                "input returned on another timeline: timestamps shifted to continue the stream"
            );
            self.shift = self.shift.saturating_add(shift);
            d = d.saturating_add(shift);
        }
        self.gap_parts(lead, d, out);
        let covered = self.gap_end();
        if covered < d {
            // the last GAP part reaches exactly to the keyframe
            let seg = self.gap_segment(covered);
            self.gap_part(lead, seg, covered, d, out);
        }
        if let Some(seg) = self.seg.take().filter(|s| s.next_index > 0) {
            self.end_segment(lead, seg.msn, false, out);
        }
        self.flush_follower(out);
        self.gap = None;
        self.end = Some(d);
        self.last_dts = self.last_dts.max(d);
        out.push(Event::Discontinuity);
        self.start_segment(self.next_msn, d);
        if let Some(f) = &mut self.follower {
            f.resume_at(d);
            for mut a in self.held.drain(..) {
                a.dts += f.to_lead_inv(self.shift);
                f.enqueue(a);
            }
        }
        Some(d)
    }

    /// A resumed session's first GOP (decode times kept as sent, not snapped): once its
    /// next keyframe (or a bucket of media) shows the frame rate, decode times snap to the
    /// frame grid again — the stream's, or the new one if the rate changed. Returns whether
    /// `dts` is still in that GOP.
    pub(super) fn check_spacing(&mut self, dts: i64, keyframe: bool) -> bool {
        let Some(check) = &mut self.spacing_check else {
            return false;
        };
        let Some(first) = check.first else {
            check.first = Some(dts);
            return true;
        };
        if !(keyframe || dts - first >= self.t.bucket) {
            check.frames += 1;
            return true;
        }
        let (span, frames) = (dts - first, i64::from(check.frames));
        self.spacing_check = None;
        if span <= 0 {
            return false;
        }
        let rate = super::nominal_frame_rate(f64::from(self.t.ts) * frames as f64 / span as f64);
        let fd = (f64::from(self.t.ts) / rate).round() as i64;
        if fd > 0 && (fd - self.t.fd).abs() * 100 > self.t.fd {
            tracing::warn!(
                was = self.t.fd,
                now = fd,
                "frame rate changed across a reconnect: parts follow the new one"
            );
            // whole frames, never longer than the advertised part target allows
            let per_part = (self.t.part / fd).max(1);
            self.t.fd = fd;
            self.t.half_fd = fd / 2;
            self.t.part = per_part * fd;
        }
        false
    }

    /// Every whole GAP part that ends by `until`.
    fn gap_parts(&mut self, lead: TrackKind, until: i64, out: &mut Vec<Event>) {
        let t = self.t;
        while self.gap.is_some() {
            let covered = self.gap_end();
            let seg = self.gap_segment(covered);
            let seg_end = ((seg.start + t.half_fd).div_euclid(t.bucket) + 1) * t.bucket;
            let part_end = (seg.start + i64::from(seg.next_index + 1) * t.part).min(seg_end);
            if part_end > until {
                break;
            }
            self.gap_part(lead, seg, covered, part_end, out);
            if part_end == seg_end {
                self.seg = None;
                self.end_segment(lead, seg.msn, false, out);
            }
        }
    }

    /// Where the published timeline ends (in the gap state, always known: entering it
    /// requires a published part).
    fn gap_end(&self) -> i64 {
        self.end.unwrap_or_default()
    }

    /// The open gap segment, or the one that a GAP part at `start` would open.
    fn gap_segment(&self, start: i64) -> Seg {
        self.seg.unwrap_or(Seg {
            msn: self.next_msn,
            start,
            next_index: 0,
        })
    }

    fn gap_part(&mut self, lead: TrackKind, seg: Seg, start: i64, end: i64, out: &mut Vec<Event>) {
        if self.seg.is_none() {
            self.start_segment(seg.msn, seg.start);
        }
        if let Some(s) = &mut self.seg {
            s.next_index += 1;
        }
        out.push(Event::Part(ClosedPart {
            track: lead,
            msn: seg.msn,
            index: seg.next_index,
            independent: false,
            start,
            duration: end - start,
            samples: Vec::new(),
        }));
        self.end = Some(end);
        if let Some(f) = &mut self.follower {
            f.open_part(seg.msn, seg.next_index, start, end);
            f.close_part(seg.msn, seg.next_index, end);
        }
    }

    /// Closes every audio part whose video part is closed (the input is missing: no more
    /// audio will come for them).
    fn flush_follower(&mut self, out: &mut Vec<Event>) {
        if let Some(f) = &mut self.follower {
            f.drain(i64::MAX, true, out);
        }
    }
}
