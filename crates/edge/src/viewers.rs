//! Viewer counts for stateless HTTP delivery. A viewer of a stream is a client (address and
//! `User-Agent`) that fetched one of the stream's media playlists successfully within the
//! last `window`: LL-HLS players reload a playlist every part, other HLS players every target
//! duration. Viewers behind one NAT address with the same player count once; viewers of an
//! edge are counted at the edge (its origin counts the edge as one viewer).
//!
//! Memory is bounded: at most [`MAX_STREAMS`] streams and [`MAX_PER_STREAM`] viewers per
//! stream are remembered (counts saturate there), and clients not seen within the window are
//! forgotten at least once per window.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Streams whose viewers are remembered at once.
pub const MAX_STREAMS: usize = 16 * 1024;
/// Viewers remembered per stream.
pub const MAX_PER_STREAM: usize = 128 * 1024;

/// Viewers per stream (shared by every listener).
#[derive(Debug)]
pub struct Viewers {
    window: Duration,
    hasher: std::collections::hash_map::RandomState,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Stream → client key → last playlist fetch.
    streams: HashMap<Box<str>, HashMap<u64, Instant>>,
    next_sweep: Instant,
}

impl Viewers {
    /// Counts clients seen within `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            hasher: Default::default(),
            inner: Mutex::new(Inner {
                streams: HashMap::new(),
                next_sweep: Instant::now() + window,
            }),
        }
    }

    /// A client fetched a media playlist of `stream` at `now`.
    pub fn saw(&self, stream: &str, client: Option<IpAddr>, user_agent: &[u8], now: Instant) {
        let mut h = self.hasher.build_hasher();
        client.hash(&mut h);
        user_agent.hash(&mut h);
        let key = h.finish();
        let mut g = self.inner.lock();
        if now >= g.next_sweep {
            self.sweep(&mut g, now);
        }
        if g.streams.len() >= MAX_STREAMS && !g.streams.contains_key(stream) {
            return;
        }
        let seen = match g.streams.get_mut(stream) {
            Some(s) => s,
            None => g.streams.entry(stream.into()).or_default(),
        };
        if seen.len() >= MAX_PER_STREAM && !seen.contains_key(&key) {
            return;
        }
        seen.insert(key, now);
    }

    /// Viewers of `stream` at `now`.
    pub fn count(&self, stream: &str, now: Instant) -> usize {
        let g = self.inner.lock();
        g.streams.get(stream).map_or(0, |s| {
            s.values()
                .filter(|t| now.saturating_duration_since(**t) < self.window)
                .count()
        })
    }

    /// Every stream with viewers at `now`, and how many, by name.
    pub fn counts(&self, now: Instant) -> Vec<(String, usize)> {
        let mut g = self.inner.lock();
        self.sweep(&mut g, now);
        let mut v: Vec<(String, usize)> = g
            .streams
            .iter()
            .map(|(k, s)| (k.to_string(), s.len()))
            .collect();
        v.sort();
        v
    }

    fn sweep(&self, g: &mut Inner, now: Instant) {
        let window = self.window;
        g.streams.retain(|_, s| {
            s.retain(|_, t| now.saturating_duration_since(*t) < window);
            !s.is_empty()
        });
        g.next_sweep = now + window;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_clients_within_the_window() {
        let v = Viewers::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        v.saw("cam", Some(a), b"hls.js", t0);
        v.saw("cam", Some(a), b"hls.js", t0 + Duration::from_secs(1));
        v.saw("cam", Some(a), b"Safari", t0);
        v.saw("cam", Some(b), b"hls.js", t0);
        v.saw("other", Some(b), b"hls.js", t0);
        assert_eq!(v.count("cam", t0 + Duration::from_secs(2)), 3);
        assert_eq!(v.count("nobody", t0), 0);
        // a after 1 s, the others after 0 s: only a is still within the window at 10.5 s
        assert_eq!(v.count("cam", t0 + Duration::from_millis(10_500)), 1);
        assert_eq!(
            v.counts(t0 + Duration::from_millis(10_500)),
            vec![("cam".to_string(), 1)]
        );
        assert!(v.counts(t0 + Duration::from_secs(12)).is_empty());
    }

    #[test]
    fn bounded() {
        let v = Viewers::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..(MAX_PER_STREAM + 10) {
            v.saw("cam", None, &i.to_le_bytes(), t0);
        }
        assert_eq!(v.count("cam", t0), MAX_PER_STREAM);
        for i in 0..(MAX_STREAMS + 10) {
            v.saw(&format!("s{i}"), None, b"x", t0);
        }
        assert_eq!(v.counts(t0).len(), MAX_STREAMS);
    }
}
