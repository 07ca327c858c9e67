//! RTP in, access units out (sans-IO): a small reorder buffer per track, and the H.264
//! depacketizer of RFC 6184 (packetization mode 1: single NAL units, STAP-A, FU-A). Opus
//! needs no depacketizing (one packet per RTP packet, RFC 7587).
//!
//! Loss is explicit: the reorder buffer says when it gave up waiting for a sequence number,
//! and a frame that misses any of its packets is dropped, never emitted damaged. After a lost
//! video packet every frame is dropped until the next complete IDR (the caller asks the
//! sender for one with a PLI).
//!
//! Media bytes are copied once here: RTP splits NAL units across packets and the samples must
//! be contiguous, length-prefixed NAL units (AVCC).

use bytes::{BufMut, Bytes, BytesMut};
use ferrocast_media::avc::{NAL_IDR, NAL_PPS, NAL_SPS};
use std::collections::BTreeMap;

/// One received RTP packet, as far as the depacketizer cares.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit (the last packet of a video frame).
    pub marker: bool,
    /// The payload (after header and extensions, padding removed).
    pub payload: Bytes,
}

/// Packets a reorder buffer holds at most while waiting for a missing one.
pub const REORDER_CAPACITY: usize = 512;

/// Restores sequence order. Packets are released in order; a missing packet is waited for
/// until `REORDER_CAPACITY` packets queue behind it or the caller declares it lost
/// ([`Reorder::skip_gap`], on a timer). Duplicates and packets older than what was released
/// are dropped.
#[derive(Debug, Default)]
pub struct Reorder {
    /// Next extended sequence number to release.
    next: Option<u64>,
    /// The highest extended sequence number seen.
    highest: u64,
    held: BTreeMap<u64, RtpPacket>,
    /// Packets in a row that came "late" (before what was released).
    late_run: u32,
    /// Packets declared lost so far.
    pub lost: u64,
}

/// Late packets in a row after which the sender is taken to have restarted its sequence
/// numbers backwards.
pub const RESYNC_AFTER: u32 = 64;

/// What the reorder buffer released.
#[derive(Debug)]
pub enum Released {
    /// The next packet in order.
    Packet(RtpPacket),
    /// Packets before the next one were lost.
    Lost(u64),
}

impl Reorder {
    /// Extends a 16-bit sequence number to 64 bits near the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        if self.next.is_none() {
            // far from 0, so a wrap backwards from the first packet is representable
            return u64::from(seq) + (1 << 32);
        }
        let h = self.highest;
        let cand = (h & !0xffff) | u64::from(seq);
        // the candidate nearest to the highest seen, across a wrap either way
        [cand - (1 << 16), cand, cand + (1 << 16)]
            .into_iter()
            .min_by_key(|c| c.abs_diff(h))
            .unwrap_or(cand)
    }

    /// Takes one packet; released packets (and losses) are appended to `out` in order.
    pub fn push(&mut self, p: RtpPacket, out: &mut Vec<Released>) {
        let mut ext = self.extend(p.seq);
        let next = *self.next.get_or_insert(ext);
        if ext < next {
            self.late_run += 1;
            if self.late_run < RESYNC_AFTER || !self.held.is_empty() {
                return; // a late duplicate, or a retransmission after its gap was given up
            }
            // the sender went back in its sequence numbers: follow it
            ext = ((next + (1 << 17)) & !0xffff) | u64::from(p.seq);
        }
        self.late_run = 0;
        if ext > next + 4 * REORDER_CAPACITY as u64 {
            if ext > next && self.held.is_empty() && ext - next > 4 * REORDER_CAPACITY as u64 {
                // a jump far ahead (the sender restarted its sequence): start again there
                out.push(Released::Lost(0));
                self.next = Some(ext);
                self.highest = ext;
                self.push_in_order(ext, p, out);
            }
            return; // nonsense far ahead while packets are held
        }
        self.highest = self.highest.max(ext);
        self.push_in_order(ext, p, out);
        while self.held.len() > REORDER_CAPACITY {
            self.skip_gap(out);
        }
    }

    fn push_in_order(&mut self, ext: u64, p: RtpPacket, out: &mut Vec<Released>) {
        self.held.entry(ext).or_insert(p);
        self.release(out);
    }

    fn release(&mut self, out: &mut Vec<Released>) {
        let Some(mut next) = self.next else { return };
        while let Some(p) = self.held.remove(&next) {
            out.push(Released::Packet(p));
            next += 1;
        }
        self.next = Some(next);
    }

    /// True while a packet is missing and later ones wait for it.
    pub fn waiting(&self) -> bool {
        !self.held.is_empty()
    }

    /// Gives up on the missing packets before the first held one.
    pub fn skip_gap(&mut self, out: &mut Vec<Released>) {
        let (Some(next), Some((&first, _))) = (self.next, self.held.first_key_value()) else {
            return;
        };
        let n = first - next;
        self.lost += n;
        out.push(Released::Lost(n));
        self.next = Some(first);
        self.release(out);
    }
}

/// A complete H.264 access unit: length-prefixed (4-byte) NAL units, without parameter sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// RTP timestamp (90 kHz).
    pub timestamp: u32,
    /// AVCC sample data.
    pub data: Bytes,
    /// Contains an IDR slice.
    pub keyframe: bool,
    /// The SPS and PPS that came with it (in band), if any.
    pub sps: Option<Bytes>,
    /// See `sps`.
    pub pps: Option<Bytes>,
}

/// Frames this large are refused (a hostile sender could otherwise grow one without bound).
pub const MAX_ACCESS_UNIT: usize = 4 << 20;

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A packet of it (or of an earlier frame it depends on) was lost.
    Loss,
    /// Malformed payload (bad STAP-A lengths, an FU-A without its start, reserved types).
    Malformed,
    /// Larger than [`MAX_ACCESS_UNIT`].
    TooLarge,
}

/// The H.264 depacketizer: in-order packets in, whole access units out.
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    /// The frame being assembled: its timestamp and data so far.
    cur: Option<u32>,
    data: BytesMut,
    keyframe: bool,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    /// The FU-A NAL unit being reassembled (its length prefix is at `fu_at`).
    fu_at: Option<usize>,
    /// The current frame is damaged: drop it when it ends.
    damaged: Option<Dropped>,
    /// Since a loss: drop frames until an IDR.
    need_idr: bool,
    /// The current frame's first slice was seen.
    sliced: bool,
    /// Frames dropped, by cause.
    pub dropped: u64,
}

impl H264Depacketizer {
    /// A depacketizer that waits for the first IDR.
    pub fn new() -> Self {
        Self {
            need_idr: true,
            ..Self::default()
        }
    }

    /// True when frames are being dropped until an IDR arrives (ask the sender for one).
    pub fn needs_keyframe(&self) -> bool {
        self.need_idr
    }

    /// Packets before the next one were lost: the frame in progress is damaged.
    pub fn lost(&mut self) {
        if self.cur.is_some() {
            self.damaged = Some(Dropped::Loss);
        }
        self.fu_at = None;
        self.need_idr = true;
    }

    /// Takes the next packet in order. A finished frame goes to `out` (`Ok`), or its drop is
    /// reported (`Err`).
    pub fn push(&mut self, p: &RtpPacket, out: &mut Vec<Result<AccessUnit, Dropped>>) {
        if p.payload.is_empty() {
            // padding only: senders probe bandwidth with these (Chrome does, on the media
            // SSRC, with the last frame's timestamp); no media, nothing damaged
            return;
        }
        if self.cur.is_some_and(|t| t != p.timestamp) {
            // a new timestamp without the previous frame's marker: that frame is complete
            // as far as it goes (its marker packet may have been the one lost)
            self.finish(out);
        }
        self.cur = Some(p.timestamp);
        if self.damaged.is_none() {
            if let Err(d) = self.payload(&p.payload) {
                self.damaged = Some(d);
                self.fu_at = None;
            }
        }
        if p.marker {
            self.finish(out);
        }
    }

    fn payload(&mut self, b: &Bytes) -> Result<(), Dropped> {
        let Some(&h) = b.first() else {
            return Err(Dropped::Malformed);
        };
        match h & 0x1f {
            1..=23 => {
                if self.fu_at.is_some() {
                    return Err(Dropped::Malformed); // an FU-A never ended
                }
                self.nal(b.clone())
            }
            24 => {
                if self.fu_at.is_some() {
                    return Err(Dropped::Malformed);
                }
                let mut pos = 1;
                while pos < b.len() {
                    if pos + 2 > b.len() {
                        return Err(Dropped::Malformed);
                    }
                    let len = usize::from(u16::from_be_bytes([b[pos], b[pos + 1]]));
                    pos += 2;
                    if len == 0 || pos + len > b.len() {
                        return Err(Dropped::Malformed);
                    }
                    self.nal(b.slice(pos..pos + len))?;
                    pos += len;
                }
                Ok(())
            }
            28 => {
                if b.len() < 3 {
                    return Err(Dropped::Malformed);
                }
                let fu = b[1];
                let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
                if start {
                    if self.fu_at.is_some() {
                        return Err(Dropped::Malformed);
                    }
                    let header = (h & 0xe0) | (fu & 0x1f);
                    self.first_slice(header, b[2])?;
                    self.check_room(5 + b.len())?;
                    self.fu_at = Some(self.data.len());
                    self.data.put_u32(0);
                    self.data.put_u8(header);
                    self.mark(header);
                } else if self.fu_at.is_none() {
                    return Err(Dropped::Malformed); // its start was not seen
                }
                self.check_room(b.len())?;
                self.data.put_slice(&b[2..]);
                if end {
                    let at = self.fu_at.take().unwrap_or(0);
                    let len = (self.data.len() - at - 4) as u32;
                    self.data[at..at + 4].copy_from_slice(&len.to_be_bytes());
                    self.parameter_set_in_data(at)?;
                }
                Ok(())
            }
            _ => Err(Dropped::Malformed), // STAP-B, MTAP, FU-B: not in mode 1; 0, 30, 31 reserved
        }
    }

    /// The first slice of a frame must begin at its first macroblock (`first_mb_in_slice`, the
    /// slice header's first field, is ue(v) 0: a single 1 bit); otherwise the frame's start was
    /// lost (the loss fell between two frames, or the stream was joined mid-frame).
    fn first_slice(&mut self, header: u8, first_byte: u8) -> Result<(), Dropped> {
        if !matches!(header & 0x1f, 1 | NAL_IDR) || self.sliced {
            return Ok(());
        }
        self.sliced = true;
        if first_byte & 0x80 == 0 {
            return Err(Dropped::Loss);
        }
        Ok(())
    }

    fn check_room(&self, more: usize) -> Result<(), Dropped> {
        if self.data.len() + more > MAX_ACCESS_UNIT {
            Err(Dropped::TooLarge)
        } else {
            Ok(())
        }
    }

    fn mark(&mut self, header: u8) {
        if header & 0x1f == NAL_IDR {
            self.keyframe = true;
        }
    }

    /// A whole NAL unit: parameter sets are kept aside, access unit delimiters dropped, the
    /// rest appended length-prefixed.
    fn nal(&mut self, n: Bytes) -> Result<(), Dropped> {
        match n[0] & 0x1f {
            NAL_SPS => self.sps = Some(n),
            NAL_PPS => self.pps = Some(n),
            9 => {} // access unit delimiter
            t => {
                if t == NAL_IDR {
                    self.keyframe = true;
                }
                self.first_slice(n[0], n.get(1).copied().unwrap_or(0))?;
                self.check_room(4 + n.len())?;
                self.data.put_u32(n.len() as u32);
                self.data.put_slice(&n);
            }
        }
        Ok(())
    }

    /// A parameter set that arrived fragmented: move it out of the sample data.
    fn parameter_set_in_data(&mut self, at: usize) -> Result<(), Dropped> {
        let t = self.data[at + 4] & 0x1f;
        if t == NAL_SPS || t == NAL_PPS || t == 9 {
            let nal = self.data.split_off(at).freeze().slice(4..);
            match t {
                NAL_SPS => self.sps = Some(nal),
                NAL_PPS => self.pps = Some(nal),
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Result<AccessUnit, Dropped>>) {
        let Some(timestamp) = self.cur.take() else {
            return;
        };
        let data = std::mem::take(&mut self.data).freeze();
        let keyframe = std::mem::take(&mut self.keyframe);
        self.sliced = false;
        let ended_inside_fu = self.fu_at.take().is_some();
        let damaged = self
            .damaged
            .take()
            .or(ended_inside_fu.then_some(Dropped::Malformed));
        if damaged.is_none() && data.is_empty() {
            return; // parameter sets only: they stay for the frame that follows
        }
        let (sps, pps) = (self.sps.take(), self.pps.take());
        let r = match damaged {
            Some(d) => Err(d),
            None if self.need_idr && !keyframe => Err(Dropped::Loss),
            None => Ok(AccessUnit {
                timestamp,
                data,
                keyframe,
                sps,
                pps,
            }),
        };
        // a dropped frame leaves later ones without their reference: wait for an IDR
        self.need_idr = r.is_err();
        if r.is_err() {
            self.dropped += 1;
        }
        out.push(r);
    }
}

#[cfg(test)]
#[path = "rtp_tests.rs"]
pub(crate) mod tests;
