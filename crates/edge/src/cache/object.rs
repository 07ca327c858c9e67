//! A cached HTTP object: the origin's status, the headers that matter downstream, and the body
//! as received from the origin (one `Bytes`, shared by every viewer's response).

use crate::body::ChunkBody;
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use std::io::Read;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Response header carrying a part's publish time at the origin (Unix µs).
pub const PUBLISHED_HEADER: &str = "ferrocast-published-us";

/// Fixed per-entry overhead counted against the cache budget (key, headers, bookkeeping).
const OVERHEAD: usize = 512;

/// Upper bound of a decompressed playlist (a gzip bomb from a confused origin stops here).
const MAX_IDENTITY: u64 = 16 << 20;

/// One object.
#[derive(Debug)]
pub struct Object {
    /// Origin status.
    pub status: StatusCode,
    /// Headers passed downstream (content type, cache control, publish time); the encoding is
    /// set per response.
    pub headers: HeaderMap,
    /// The body as received (gzip-encoded when `gzip`).
    pub body: Bytes,
    /// The origin sent the body gzip-encoded.
    pub gzip: bool,
    /// Bytes counted against the budget.
    pub size: usize,
    /// When the response arrived from the origin.
    pub received: Instant,
    /// The origin's `Age`, seconds.
    pub origin_age: u64,
    /// Freshness lifetime (`max-age` minus the origin's age).
    pub ttl: Duration,
    identity: OnceLock<Option<Bytes>>,
}

/// Headers worth keeping from an origin response.
const KEPT: [&str; 4] = ["content-type", "cache-control", "vary", PUBLISHED_HEADER];

/// `max-age` of a Cache-Control value (`None` with `no-store`/`no-cache`/`private`).
pub fn max_age(cc: &str) -> Option<u64> {
    let mut age = None;
    for d in cc.split(',').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" || lower == "private" {
            return None;
        }
        if let Some(v) = lower.strip_prefix("s-maxage=") {
            age = v.parse().ok();
            if age.is_some() {
                return age;
            }
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            age = age.or(v.parse().ok());
        }
    }
    age
}

impl Object {
    /// An object from an origin response received at `received`.
    pub fn new(status: StatusCode, headers: &HeaderMap, body: Bytes, received: Instant) -> Self {
        let mut kept = HeaderMap::new();
        for name in KEPT {
            if let Some(v) = headers.get(name) {
                let v = if name == PUBLISHED_HEADER {
                    crate::reply::volatile(v.clone())
                } else {
                    v.clone()
                };
                kept.insert(header::HeaderName::from_static(name), v);
            }
        }
        let origin_age = headers
            .get(header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0u64);
        let lifetime = headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(0);
        let gzip = headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        Self {
            status,
            headers: kept,
            size: body.len() + OVERHEAD,
            body,
            gzip,
            received,
            origin_age,
            ttl: Duration::from_secs(lifetime.saturating_sub(origin_age)),
            identity: OnceLock::new(),
        }
    }

    /// Still fresh at `now`.
    pub fn fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.received) < self.ttl
    }

    /// `Age` at `now`, seconds.
    pub fn age(&self, now: Instant) -> u64 {
        self.origin_age + now.saturating_duration_since(self.received).as_secs()
    }

    /// Worth storing: a successful answer with a freshness lifetime.
    pub fn cacheable(&self) -> bool {
        self.status == StatusCode::OK && !self.ttl.is_zero()
    }

    /// The body for a client (`gzip_ok`: it accepts gzip), and whether it is gzip-encoded.
    /// A gzipped object is decompressed once, on the first request that needs it.
    pub fn body(&self, gzip_ok: bool) -> Option<(ChunkBody, bool)> {
        if !self.gzip || gzip_ok {
            return Some((ChunkBody::full(self.body.clone()), self.gzip));
        }
        self.identity().map(|b| (ChunkBody::full(b.clone()), false))
    }

    /// The body as text, decompressed if gzipped (the edge's own reading of playlists).
    pub fn body_text(&self) -> Option<&str> {
        let plain = if self.gzip {
            self.identity()?
        } else {
            &self.body
        };
        std::str::from_utf8(plain).ok()
    }

    /// The identity body of a gzipped object, decompressed on first use and kept.
    fn identity(&self) -> Option<&Bytes> {
        self.identity
            .get_or_init(|| {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&self.body[..])
                    .take(MAX_IDENTITY)
                    .read_to_end(&mut out)
                    .ok()?;
                Some(Bytes::from(out))
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn lifetimes() {
        assert_eq!(max_age("public, max-age=12"), Some(12));
        assert_eq!(max_age("max-age=12, s-maxage=3"), Some(3));
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("public"), None);
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=6"));
        h.insert(header::AGE, HeaderValue::from_static("2"));
        let t0 = Instant::now();
        let o = Object::new(StatusCode::OK, &h, Bytes::from_static(b"x"), t0);
        assert_eq!(o.ttl, Duration::from_secs(4));
        assert!(o.fresh(t0 + Duration::from_secs(3)));
        assert!(!o.fresh(t0 + Duration::from_secs(4)));
        assert_eq!(o.age(t0 + Duration::from_secs(3)), 5);
        assert!(o.cacheable());
        let o = Object::new(StatusCode::NOT_FOUND, &h, Bytes::new(), t0);
        assert!(!o.cacheable());
    }

    #[test]
    fn gzip_is_decoded_once_for_identity_clients() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"#EXTM3U\n").unwrap();
        let gz = Bytes::from(e.finish().unwrap());
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let o = Object::new(StatusCode::OK, &h, gz.clone(), Instant::now());
        let (b, enc) = o.body(true).unwrap();
        assert!(enc);
        assert_eq!(
            http_body::Body::size_hint(&b).exact(),
            Some(gz.len() as u64)
        );
        let (b, enc) = o.body(false).unwrap();
        assert!(!enc);
        assert_eq!(http_body::Body::size_hint(&b).exact(), Some(8));
        let bad = Object::new(
            StatusCode::OK,
            &h,
            Bytes::from_static(b"nope"),
            Instant::now(),
        );
        assert!(bad.body(false).is_none());
    }
}
