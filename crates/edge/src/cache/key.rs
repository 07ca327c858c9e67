//! What an edge request maps to in the cache, decided without IO: the cache key (which is also
//! the upstream request target) and the object's class.
//!
//! The key is the path plus, for media playlists only, the `_HLS_*` directives in canonical
//! order (`_HLS_msn`, `_HLS_part`, `_HLS_skip`, the UTF-8 order clients must send, §6.3.2).
//! Every other query parameter is dropped: it cannot change the object, and keeping it would let
//! one viewer split the cache (and the coalescing) at will.

use crate::route::{self, Route};
use ferrocast_packager::blocking::{DirectiveError, Directives};
use std::borrow::Cow;
use std::fmt::Write;

/// What kind of object a key names; decides lifetimes and eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `index.m3u8`.
    Multivariant,
    /// A media playlist; `blocking` when it carries `_HLS_msn`.
    Playlist {
        /// Has `_HLS_msn`.
        blocking: bool,
    },
    /// Init segment, part or segment: immutable once it exists.
    Media {
        /// A part, which may be preload-hinted: the origin holds the request until it exists.
        blocking: bool,
    },
}

impl Class {
    /// The origin may hold the request (blocking playlist reload, preload-hinted part).
    pub fn blocking(self) -> bool {
        match self {
            Class::Playlist { blocking } | Class::Media { blocking } => blocking,
            Class::Multivariant => false,
        }
    }
}

/// A request resolved to a cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// Cache key and upstream path-and-query (the path itself unless directives are added).
    pub key: Cow<'a, str>,
    /// Object class.
    pub class: Class,
    /// The route label (metrics).
    pub route: &'static str,
}

/// Why a request has no cache target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a path of the URL scheme.
    #[error("not found")]
    NotFound,
    /// Malformed `_HLS_*` directives (answered 400 without asking an origin).
    #[error(transparent)]
    Directives(#[from] DirectiveError),
}

/// Resolves a request path and query.
pub fn target<'a>(path: &'a str, query: &str) -> Result<Target<'a>, KeyError> {
    let r = route::parse(path).ok_or(KeyError::NotFound)?;
    let route = r.label();
    Ok(match r {
        Route::Multivariant { .. } => Target {
            key: Cow::Borrowed(path),
            class: Class::Multivariant,
            route,
        },
        Route::Media { .. } => {
            let d = Directives::parse(query)?;
            let mut key = String::with_capacity(path.len() + 48);
            key.push_str(path);
            let mut sep = '?';
            if let Some(m) = d.msn {
                let _ = write!(key, "{sep}_HLS_msn={m}");
                sep = '&';
            }
            if let Some(p) = d.part {
                let _ = write!(key, "{sep}_HLS_part={p}");
                sep = '&';
            }
            if d.skip {
                let _ = write!(key, "{sep}_HLS_skip=YES");
            }
            Target {
                key: if key.len() == path.len() {
                    Cow::Borrowed(path)
                } else {
                    Cow::Owned(key)
                },
                class: Class::Playlist {
                    blocking: d.msn.is_some(),
                },
                route,
            }
        }
        Route::Init { .. } | Route::Segment { .. } | Route::Part { .. } => Target {
            key: Cow::Borrowed(path),
            class: Class::Media {
                blocking: matches!(r, Route::Part { .. }),
            },
            route,
        },
    })
}

/// The key of the part a media playlist's `EXT-X-PRELOAD-HINT` names, if it is a part of the
/// URL scheme next to the playlist. `playlist_key` is the playlist's key.
///
/// None while the newest part is a `GAP`: the origin's input has stalled and fills the
/// timeline with gap parts, which it answers 404, so fetching their hints ahead of time only
/// costs upstream requests (one per part per edge for as long as the stall lasts).
pub fn hinted_part(playlist_key: &str, text: &str) -> Option<String> {
    let mut tail = text.lines().rev().take(16);
    let line = tail
        .by_ref()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:TYPE=PART,"))?;
    let newest = tail.find(|l| l.starts_with("#EXT-X-PART:"));
    if newest.is_some_and(|l| l.contains(",GAP=YES")) {
        return None;
    }
    let uri = line.split("URI=\"").nth(1)?.split('"').next()?;
    if uri.contains('/') || uri.contains('?') {
        return None;
    }
    let path = playlist_key.split('?').next()?;
    let dir = &path[..=path.rfind('/')?];
    let key = format!("{dir}{uri}");
    matches!(route::parse(&key), Some(Route::Part { .. })).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_keys() {
        let t = target(
            "/live/a/video.m3u8",
            "_HLS_skip=YES&x=1&_HLS_part=2&_HLS_msn=7",
        )
        .unwrap();
        assert_eq!(
            t.key,
            "/live/a/video.m3u8?_HLS_msn=7&_HLS_part=2&_HLS_skip=YES"
        );
        assert_eq!(t.class, Class::Playlist { blocking: true });
        let t = target("/live/a/video.m3u8", "token=abc").unwrap();
        assert_eq!(t.key, "/live/a/video.m3u8");
        assert_eq!(t.class, Class::Playlist { blocking: false });
        let t = target("/live/a/video.m3u8", "_HLS_skip=v2").unwrap();
        assert_eq!(t.key, "/live/a/video.m3u8?_HLS_skip=YES");
        let t = target("/live/a/video_3.1.m4s", "cachebuster=1").unwrap();
        assert_eq!(t.key, "/live/a/video_3.1.m4s");
        assert_eq!(t.class, Class::Media { blocking: true });
        let t = target("/live/a/video_3.m4s", "").unwrap();
        assert_eq!(t.class, Class::Media { blocking: false });
        assert!(!t.class.blocking());
        assert_eq!(
            target("/live/a/index.m3u8", "").unwrap().class,
            Class::Multivariant
        );
    }

    #[test]
    fn hints() {
        let text = "#EXTM3U\n#EXT-X-PART:DURATION=0.2,URI=\"video_3.1.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"video_3.2.m4s\"\n";
        assert_eq!(
            hinted_part("/live/a/video.m3u8?_HLS_msn=3&_HLS_part=1", text).as_deref(),
            Some("/live/a/video_3.2.m4s")
        );
        let evil = "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"../../etc/passwd\"\n";
        assert_eq!(hinted_part("/live/a/video.m3u8", evil), None);
        let map = "#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"video_init1.mp4\"\n";
        assert_eq!(hinted_part("/live/a/video.m3u8", map), None);
        // a stalled input: the newest part is a gap, and so, most likely, is the hinted one
        let stalled = "#EXTM3U\n#EXT-X-PART:DURATION=0.2,URI=\"video_3.1.m4s\",GAP=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"video_3.2.m4s\"\n#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\",LAST-MSN=3,LAST-PART=1\n";
        assert_eq!(hinted_part("/live/a/video.m3u8", stalled), None);
        let resumed = stalled.replacen(",GAP=YES", "", 1);
        assert_eq!(
            hinted_part("/live/a/video.m3u8", &resumed).as_deref(),
            Some("/live/a/video_3.2.m4s")
        );
    }

    #[test]
    fn rejects() {
        assert_eq!(target("/etc/passwd", ""), Err(KeyError::NotFound));
        assert_eq!(
            target("/live/a/video.m3u8", "_HLS_part=1"),
            Err(KeyError::Directives(DirectiveError::PartWithoutMsn))
        );
        assert!(target("/live/a/video.m3u8", "_HLS_msn=x").is_err());
    }
}
