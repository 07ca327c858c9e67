//! Viewer counts for stateless HTTP delivery. A viewer of a stream is a client (address and
//! `User-Agent`) that fetched one of the stream's media playlists successfully within the
//! last `window`: LL-HLS players reload a playlist every part, other HLS players every target
//! duration. Viewers behind one NAT address with the same player count once; viewers of an
//! edge are counted at the edge (its origin counts the edge as one viewer).
//!
//! A client cannot inflate the count by changing its `User-Agent`: an address counts as at most
//! [`AGENTS_PER_ADDRESS`] viewers of a stream. Memory is bounded: at most [`MAX_STREAMS`]
//! streams and [`MAX_VIEWERS`] viewers in all are remembered (counts saturate there; a viewer
//! is 32 bytes of key and value in a hash map), and clients not seen within the window are
//! forgotten at least once per window.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Streams whose viewers are remembered at once.
pub const MAX_STREAMS: usize = 16 * 1024;
/// Viewers remembered, all streams together.
pub const MAX_VIEWERS: usize = 1024 * 1024;
/// Viewers one client address can be, with as many different players (User-Agents).
pub const AGENTS_PER_ADDRESS: u8 = 8;

/// Viewers per stream (shared by every listener).
#[derive(Debug)]
pub struct Viewers {
    window: Duration,
    hasher: std::collections::hash_map::RandomState,
    inner: Mutex<Inner>,
}

/// One stream's viewers.
#[derive(Debug, Default)]
struct Seen {
    /// Client (address and User-Agent) → (last playlist fetch, address key).
    clients: HashMap<u64, (Instant, u64)>,
    /// Address key → clients of that address.
    per_address: HashMap<u64, u8>,
}

#[derive(Debug)]
struct Inner {
    /// Stream → its viewers.
    streams: HashMap<Box<str>, Seen>,
    /// Viewers remembered (all streams).
    total: usize,
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
                total: 0,
                next_sweep: Instant::now() + window,
            }),
        }
    }

    /// A client fetched a media playlist of `stream` at `now`.
    pub fn saw(&self, stream: &str, client: Option<IpAddr>, user_agent: &[u8], now: Instant) {
        let address = self.hasher.hash_one(client);
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
        if !g.streams.contains_key(stream) {
            g.streams.insert(stream.into(), Seen::default());
        }
        let Inner { streams, total, .. } = &mut *g;
        let Some(seen) = streams.get_mut(stream) else {
            return;
        };
        if let Some(c) = seen.clients.get_mut(&key) {
            c.0 = now;
            return;
        }
        let n = seen.per_address.entry(address).or_insert(0);
        if *total >= MAX_VIEWERS || *n >= AGENTS_PER_ADDRESS {
            return;
        }
        *n += 1;
        seen.clients.insert(key, (now, address));
        *total += 1;
    }

    /// Viewers of `stream` at `now`.
    pub fn count(&self, stream: &str, now: Instant) -> usize {
        let g = self.inner.lock();
        g.streams.get(stream).map_or(0, |s| {
            s.clients
                .values()
                .filter(|(t, _)| now.saturating_duration_since(*t) < self.window)
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
            .map(|(k, s)| (k.to_string(), s.clients.len()))
            .collect();
        v.sort();
        v
    }

    fn sweep(&self, g: &mut Inner, now: Instant) {
        let window = self.window;
        let mut total = 0;
        g.streams.retain(|_, s| {
            s.clients
                .retain(|_, (t, _)| now.saturating_duration_since(*t) < window);
            s.per_address.clear();
            for (_, a) in s.clients.values() {
                *s.per_address.entry(*a).or_insert(0) += 1;
            }
            total += s.clients.len();
            !s.clients.is_empty()
        });
        g.total = total;
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
        // one address rotating its User-Agent is a few viewers, not thousands
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..1000u32 {
            v.saw("cam", Some(a), &i.to_le_bytes(), t0);
        }
        let n = v.count("cam", t0);
        assert_eq!(n, usize::from(AGENTS_PER_ADDRESS));
        // many addresses: saturates at the global bound
        for i in 0..(MAX_VIEWERS as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            v.saw("many", Some(ip), b"x", t0);
        }
        assert_eq!(v.count("many", t0) + n, MAX_VIEWERS);
        assert!(v.counts(t0 + Duration::from_secs(11)).is_empty());
        // many streams: saturates at the bound on streams
        let v = Viewers::new(Duration::from_secs(10));
        for i in 0..(MAX_STREAMS + 10) {
            v.saw(&format!("s{i}"), Some(a), b"x", t0);
        }
        assert_eq!(v.counts(t0).len(), MAX_STREAMS);
        // forgotten after the window
        assert!(v.counts(t0 + Duration::from_secs(11)).is_empty());
    }
}
