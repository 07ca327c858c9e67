//! The URL scheme (ARCHITECTURE.md §4), parsed without IO:
//!
//! ```text
//! /live/{stream}/index.m3u8          multivariant playlist
//! /live/{stream}/{video|audio}.m3u8  media playlists (blocking: _HLS_msn, _HLS_part, _HLS_skip)
//! /live/{stream}/{r}_init{gen}.mp4   init segment of generation gen
//! /live/{stream}/{r}_{msn}.m4s       segment
//! /live/{stream}/{r}_{msn}.{i}.m4s   part
//! ```

use ferrocast_media::TrackKind;

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `index.m3u8`.
    Multivariant {
        /// Stream name.
        stream: &'a str,
    },
    /// A media playlist.
    Media {
        /// Stream name.
        stream: &'a str,
        /// Rendition.
        kind: TrackKind,
    },
    /// An init segment.
    Init {
        /// Stream name.
        stream: &'a str,
        /// Rendition.
        kind: TrackKind,
        /// Generation.
        generation: u32,
    },
    /// A complete segment.
    Segment {
        /// Stream name.
        stream: &'a str,
        /// Rendition.
        kind: TrackKind,
        /// Media sequence number.
        msn: u64,
    },
    /// A part.
    Part {
        /// Stream name.
        stream: &'a str,
        /// Rendition.
        kind: TrackKind,
        /// Media sequence number.
        msn: u64,
        /// Part index.
        index: u32,
    },
}

impl Route<'_> {
    /// Route label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Multivariant { .. } => "multivariant",
            Route::Media { .. } => "playlist",
            Route::Init { .. } => "init",
            Route::Segment { .. } => "segment",
            Route::Part { .. } => "part",
        }
    }
}

fn kind(s: &str) -> Option<TrackKind> {
    match s {
        "video" => Some(TrackKind::Video),
        "audio" => Some(TrackKind::Audio),
        _ => None,
    }
}

fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    // canonical decimal only: no sign, no leading zeros (one URL per object)
    if s.is_empty()
        || s.len() > 20
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Parses a request path (without the query). `None` means 404.
pub fn parse(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/live/")?;
    let (stream, file) = rest.split_once('/')?;
    if stream.is_empty()
        || stream.len() > 128
        || file.contains('/')
        || !stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        || stream.starts_with('.')
    {
        return None;
    }
    if file == "index.m3u8" {
        return Some(Route::Multivariant { stream });
    }
    if let Some(name) = file.strip_suffix(".m3u8") {
        return Some(Route::Media {
            stream,
            kind: kind(name)?,
        });
    }
    if let Some(name) = file.strip_suffix(".mp4") {
        let (k, gen) = name.split_once("_init")?;
        return Some(Route::Init {
            stream,
            kind: kind(k)?,
            generation: number(gen)?,
        });
    }
    let name = file.strip_suffix(".m4s")?;
    let (k, rest) = name.split_once('_')?;
    let kind = kind(k)?;
    match rest.split_once('.') {
        None => Some(Route::Segment {
            stream,
            kind,
            msn: number(rest)?,
        }),
        Some((m, i)) => Some(Route::Part {
            stream,
            kind,
            msn: number(m)?,
            index: number(i)?,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            parse("/live/a/index.m3u8"),
            Some(Route::Multivariant { stream: "a" })
        );
        assert_eq!(
            parse("/live/a/video.m3u8"),
            Some(Route::Media {
                stream: "a",
                kind: TrackKind::Video
            })
        );
        assert_eq!(
            parse("/live/a/audio_init3.mp4"),
            Some(Route::Init {
                stream: "a",
                kind: TrackKind::Audio,
                generation: 3
            })
        );
        assert_eq!(
            parse("/live/a/video_12.m4s"),
            Some(Route::Segment {
                stream: "a",
                kind: TrackKind::Video,
                msn: 12
            })
        );
        assert_eq!(
            parse("/live/a/video_12.3.m4s"),
            Some(Route::Part {
                stream: "a",
                kind: TrackKind::Video,
                msn: 12,
                index: 3
            })
        );
        for bad in [
            "/live/a/other.m3u8",
            "/live/a/video_012.m4s",
            "/live/a/video_-1.m4s",
            "/live/a/video_1.2.3.m4s",
            "/live/../index.m3u8",
            "/live/.x/index.m3u8",
            "/live//index.m3u8",
            "/live/a/b/index.m3u8",
            "/vod/a/index.m3u8",
            "/live/a/video_99999999999999999999999.m4s",
            "/live/a/video_init.mp4",
            "/live/a",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
