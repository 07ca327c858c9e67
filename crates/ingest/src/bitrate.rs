//! The publish bitrate limit shared by RTMP and WHIP (sans-IO: the caller passes the time).

use std::time::{Duration, Instant};

/// Bytes received in the current window. Each window has a budget of `max × window` bits;
/// spending it early is enough to be dropped (a burst cannot hide in an average).
#[derive(Debug, Clone, Copy)]
pub struct BitrateWindow {
    start: Instant,
    bytes: u64,
}

impl BitrateWindow {
    /// A window starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            start: now,
            bytes: 0,
        }
    }

    /// Counts `n` bytes received at `now` against `max` bit/s over `window` (0: no limit).
    /// `Err` says by how much the publisher went over.
    pub fn add(&mut self, n: u64, now: Instant, max: u64, window: Duration) -> Result<(), String> {
        if max == 0 {
            return Ok(());
        }
        if now.saturating_duration_since(self.start) >= window {
            self.start = now;
            self.bytes = 0;
        }
        self.bytes += n;
        let budget = (max as f64 * window.as_secs_f64() / 8.0) as u64;
        if self.bytes > budget {
            return Err(format!(
                "more than {max} bit/s over {window:?} ({} bytes)",
                self.bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_has_a_budget() {
        let t0 = Instant::now();
        let mut w = BitrateWindow::new(t0);
        let s = Duration::from_secs(1);
        // 8,000 bit/s over 1 s: 1,000 bytes per window
        assert!(w.add(600, t0, 8_000, s).is_ok());
        assert!(w.add(400, t0 + s / 2, 8_000, s).is_ok());
        assert!(w.add(1, t0 + s / 2, 8_000, s).is_err());
        // a new window starts afresh
        let mut w = BitrateWindow::new(t0);
        assert!(w.add(900, t0, 8_000, s).is_ok());
        assert!(w.add(900, t0 + s, 8_000, s).is_ok());
        // no limit
        assert!(w.add(u64::MAX / 2, t0, 0, s).is_ok());
    }
}
