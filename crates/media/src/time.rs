//! The one definition of media time in ferrocast.
//!
//! Media time is an integer count of ticks in a track's timescale (`i64` ticks + `u32`
//! timescale); seconds as floating point appear only when printing playlists. Video uses
//! [`VIDEO_TIMESCALE`] (90 kHz, so RTMP milliseconds convert exactly, ×90); audio uses its
//! sample rate. RTMP timestamps are 32-bit milliseconds that wrap after ~49.7 days
//! (RTMP §5.3.1.3), and RTP timestamps are 32-bit ticks of the track's clock that start at a
//! random value (RFC 3550 §5.1); [`Unwrap32`] unwraps either into a 64-bit running value.

/// Timescale of every video track (ticks per second).
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Milliseconds per second: the RTMP timescale.
pub const RTMP_TIMESCALE: u32 = 1_000;

/// Rescales `value` ticks from timescale `from` to timescale `to`, rounding to nearest
/// (ties away from zero). Uses 128-bit intermediates, so it never overflows for i64 inputs.
pub fn rescale(value: i64, from: u32, to: u32) -> i64 {
    if from == to || from == 0 {
        return value;
    }
    let num = i128::from(value) * i128::from(to);
    let den = i128::from(from);
    let half = den / 2;
    let q = if num >= 0 {
        (num + half) / den
    } else {
        (num - half) / den
    };
    q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Rescales `value` from `from` to `to`, rounding down (towards negative infinity).
pub fn rescale_floor(value: i64, from: u32, to: u32) -> i64 {
    if from == to || from == 0 {
        return value;
    }
    let num = i128::from(value) * i128::from(to);
    num.div_euclid(i128::from(from))
        .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Converts ticks to seconds for display (playlists). Never use the result for arithmetic.
pub fn ticks_to_secs(value: i64, timescale: u32) -> f64 {
    value as f64 / f64::from(timescale.max(1))
}

/// Unwraps 32-bit timestamps (RTMP milliseconds, RTP ticks) into a monotonic-ish 64-bit
/// timeline.
///
/// Each new timestamp is interpreted as the previous one plus the signed 32-bit difference,
/// so a wrap from `0xFFFF_FFFF` to `0` continues forward and small backwards jumps (B-frame
/// reordering between audio and video messages) stay small.
#[derive(Debug, Clone, Default)]
pub struct Unwrap32 {
    last: Option<(u32, i64)>,
}

impl Unwrap32 {
    /// A clock that has seen no timestamp yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unwraps one timestamp into the 64-bit timeline.
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let value = self.peek(ts);
        self.last = Some((ts, value));
        value
    }

    /// Where `ts` falls on the timeline, without moving the clock (a timestamp from a report
    /// about the stream rather than from the stream).
    pub fn peek(&self, ts: u32) -> i64 {
        match self.last {
            None => i64::from(ts),
            Some((raw, unwrapped)) => unwrapped + i64::from(ts.wrapping_sub(raw) as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds() {
        assert_eq!(rescale(33, 1000, 90_000), 2970);
        assert_eq!(rescale(1, 3, 2), 1); // 0.666 → 1
        assert_eq!(rescale(-1, 3, 2), -1);
        assert_eq!(rescale(i64::MAX, 1, 90_000), i64::MAX);
        assert_eq!(rescale_floor(-1, 3, 2), -1);
        assert_eq!(rescale_floor(2, 3, 2), 1);
    }

    #[test]
    fn unwrap32_wraps_forward() {
        let mut c = Unwrap32::new();
        assert_eq!(c.unwrap(u32::MAX - 10), i64::from(u32::MAX - 10));
        assert_eq!(c.unwrap(5), i64::from(u32::MAX) + 6);
        // a small step backwards stays a small step backwards
        assert_eq!(c.unwrap(3), i64::from(u32::MAX) + 4);
        // peeking does not move it
        assert_eq!(c.peek(0), i64::from(u32::MAX) + 1);
        assert_eq!(c.unwrap(4), i64::from(u32::MAX) + 5);
    }
}
