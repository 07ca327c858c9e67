//! LL-HLS playlist rendering (RFC 8216bis §4.4, Appendix B.1 low-latency profile), written by
//! hand into a `String`: m3u8-rs has no LL-HLS tags (CRATES.md B.3). Rendered once per change.

use crate::model::{OpenSegment, Segment};
use std::fmt::Write;
use std::sync::Arc;

/// What a media playlist is rendered from.
#[derive(Debug)]
pub struct MediaPlaylist<'a> {
    /// File-name prefix of this rendition's objects (`video`, `audio`).
    pub prefix: &'a str,
    /// Rendition timescale.
    pub timescale: u32,
    /// EXT-X-TARGETDURATION.
    pub target_duration: u32,
    /// PART-TARGET in milliseconds.
    pub part_target_ms: u32,
    /// EXT-X-DISCONTINUITY-SEQUENCE (discontinuities before the first listed segment).
    pub discontinuity_sequence: u64,
    /// Complete segments to list, oldest first.
    pub segments: &'a [Arc<Segment>],
    /// The in-progress segment.
    pub open: Option<&'a OpenSegment>,
    /// The next part (preload hint), when the stream is live.
    pub hint: Option<(u64, u32)>,
    /// ENDLIST.
    pub ended: bool,
    /// Rendition reports for the other renditions: (playlist URI, last msn, last part).
    pub reports: &'a [(String, u64, u32)],
}

/// Formats ticks as decimal seconds with five decimals.
fn secs(ticks: i64, timescale: u32) -> String {
    let ts = i64::from(timescale.max(1));
    let micros = (i128::from(ticks) * 1_000_000 / i128::from(ts)) as i64;
    let tenth_ms = (micros + 5) / 10; // units of 10 µs
    format!("{}.{:05}", tenth_ms / 100_000, tenth_ms % 100_000)
}

fn ms_secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// ISO 8601 with milliseconds in UTC (§4.4.4.6), from Unix milliseconds.
pub fn format_pdt(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// URI of a part object.
pub fn part_uri(prefix: &str, msn: u64, index: u32) -> String {
    format!("{prefix}_{msn}.{index}.m4s")
}

/// URI of a segment object.
pub fn segment_uri(prefix: &str, msn: u64) -> String {
    format!("{prefix}_{msn}.m4s")
}

/// URI of an init segment.
pub fn init_uri(prefix: &str, generation: u32) -> String {
    format!("{prefix}_init{generation}.mp4")
}

impl MediaPlaylist<'_> {
    /// The Skip Boundary: CAN-SKIP-UNTIL = 6 × target duration (§4.4.3.8).
    pub fn skip_until_secs(&self) -> u64 {
        6 * u64::from(self.target_duration)
    }

    /// How many leading segments a delta update skips (§6.2.5.1): those that end more than
    /// the Skip Boundary before the end of the last complete segment.
    pub fn skippable(&self) -> usize {
        let ts = i64::from(self.timescale);
        let boundary = self.skip_until_secs() as i64 * ts;
        let mut from_end = 0i64;
        let mut keep = 0usize;
        for s in self.segments.iter().rev() {
            if from_end > boundary {
                break;
            }
            from_end += s.duration;
            keep += 1;
        }
        self.segments.len() - keep
    }

    /// Renders the playlist; `skip` renders a delta update (EXT-X-SKIP).
    pub fn render(&self, skip: bool) -> String {
        let mut o = String::with_capacity(4096);
        let ts = self.timescale;
        let _ = writeln!(o, "#EXTM3U");
        let _ = writeln!(o, "#EXT-X-VERSION:9");
        let _ = writeln!(o, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        let _ = writeln!(
            o,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.1},PART-HOLD-BACK={}",
            self.skip_until_secs() as f64,
            ms_secs(3 * u64::from(self.part_target_ms))
        );
        let _ = writeln!(
            o,
            "#EXT-X-PART-INF:PART-TARGET={}",
            ms_secs(u64::from(self.part_target_ms))
        );
        let first_msn = self
            .segments
            .first()
            .map(|s| s.msn)
            .or(self.open.map(|o| o.msn))
            .unwrap_or(0);
        let _ = writeln!(o, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
        let _ = writeln!(
            o,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            self.discontinuity_sequence
        );
        let skipped = if skip { self.skippable() } else { 0 };
        if skipped > 0 {
            let _ = writeln!(o, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        // Parts are listed for segments within 3 target durations of the end (§6.2.2).
        let part_horizon = 3 * i64::from(self.target_duration) * i64::from(ts);
        let mut tail = self
            .open
            .map_or(0, |o| o.parts.iter().map(|p| p.duration).sum());
        let mut with_parts = 0usize;
        for s in self.segments.iter().rev() {
            if tail >= part_horizon {
                break;
            }
            tail += s.duration;
            with_parts += 1;
        }
        let parts_from = self.segments.len() - with_parts;
        let mut current_map: Option<u32> = None;
        for (i, s) in self.segments.iter().enumerate().skip(skipped) {
            self.segment_header(
                &mut o,
                &mut current_map,
                s.init_gen,
                s.discontinuity,
                s.pdt_ms,
            );
            if i >= parts_from {
                for p in &s.parts {
                    self.part_line(&mut o, p);
                }
            }
            if s.is_gap() {
                let _ = writeln!(o, "#EXT-X-GAP");
            }
            let _ = writeln!(o, "#EXTINF:{},", secs(s.duration, ts));
            let _ = writeln!(o, "{}", segment_uri(self.prefix, s.msn));
        }
        if let Some(open) = self.open {
            if !open.parts.is_empty() {
                self.segment_header(
                    &mut o,
                    &mut current_map,
                    open.init_gen,
                    open.discontinuity,
                    open.pdt_ms,
                );
                for p in &open.parts {
                    self.part_line(&mut o, p);
                }
            }
        }
        if self.ended {
            let _ = writeln!(o, "#EXT-X-ENDLIST");
        } else if let Some((m, i)) = self.hint {
            let _ = writeln!(
                o,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                part_uri(self.prefix, m, i)
            );
        }
        for (uri, m, p) in self.reports {
            let _ = writeln!(
                o,
                "#EXT-X-RENDITION-REPORT:URI=\"{uri}\",LAST-MSN={m},LAST-PART={p}"
            );
        }
        o
    }

    fn segment_header(
        &self,
        o: &mut String,
        current_map: &mut Option<u32>,
        init_gen: u32,
        discontinuity: bool,
        pdt_ms: i64,
    ) {
        if discontinuity && current_map.is_some() {
            let _ = writeln!(o, "#EXT-X-DISCONTINUITY");
        }
        if *current_map != Some(init_gen) {
            let _ = writeln!(o, "#EXT-X-MAP:URI=\"{}\"", init_uri(self.prefix, init_gen));
            *current_map = Some(init_gen);
        }
        let _ = writeln!(o, "#EXT-X-PROGRAM-DATE-TIME:{}", format_pdt(pdt_ms));
    }

    fn part_line(&self, o: &mut String, p: &crate::model::Part) {
        let _ = write!(
            o,
            "#EXT-X-PART:DURATION={},URI=\"{}\"",
            secs(p.duration, self.timescale),
            part_uri(self.prefix, p.msn, p.index)
        );
        if p.independent && !p.gap {
            let _ = write!(o, ",INDEPENDENT=YES");
        }
        if p.gap {
            let _ = write!(o, ",GAP=YES");
        }
        let _ = writeln!(o);
    }
}

/// What the multivariant playlist is rendered from.
#[derive(Debug, Clone, PartialEq)]
pub struct Multivariant {
    /// Video: (codec, width, height, frame rate).
    pub video: Option<(String, u32, u32, f64)>,
    /// Audio: (codec, channels).
    pub audio: Option<(String, u8)>,
    /// Peak bits per second of the variant (all renditions).
    pub bandwidth: u64,
    /// Average bits per second.
    pub average_bandwidth: u64,
    /// Base URIs (ending in `/`) of the same stream on other servers: each is listed as a
    /// redundant variant stream (RFC 8216bis §6.3.3, same attributes, other URI) with its own
    /// audio group, so a player that loses one server switches to the next.
    pub backups: Vec<String>,
}

impl Multivariant {
    /// Renders `index.m3u8`: one variant (video) with audio as a separate rendition
    /// (EXT-X-MEDIA, HLS authoring spec 9.5), or an audio-only variant; then the same again
    /// for every backup server.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(512);
        let _ = writeln!(o, "#EXTM3U");
        let _ = writeln!(o, "#EXT-X-VERSION:6");
        let codecs: Vec<&str> = self
            .video
            .iter()
            .map(|v| v.0.as_str())
            .chain(self.audio.iter().map(|a| a.0.as_str()))
            .collect();
        let codecs = codecs.join(",");
        let sources = std::iter::once(("", "audio".to_string())).chain(
            self.backups
                .iter()
                .enumerate()
                .map(|(i, b)| (b.as_str(), format!("audio-backup{}", i + 1))),
        );
        for (base, group) in sources {
            match (&self.video, &self.audio) {
                (Some((_, w, h, fps)), audio) => {
                    if let Some((_, ch)) = audio {
                        let _ = writeln!(
                            o,
                            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{group}\",NAME=\"main\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"{ch}\",URI=\"{base}audio.m3u8\""
                        );
                    }
                    let _ = write!(
                        o,
                        "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{codecs}\",RESOLUTION={w}x{h},FRAME-RATE={fps:.3}",
                        self.bandwidth, self.average_bandwidth
                    );
                    if audio.is_some() {
                        let _ = write!(o, ",AUDIO=\"{group}\"");
                    }
                    let _ = writeln!(o);
                    let _ = writeln!(o, "{base}video.m3u8");
                }
                (None, Some(_)) => {
                    let _ = writeln!(
                        o,
                        "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{codecs}\"",
                        self.bandwidth, self.average_bandwidth
                    );
                    let _ = writeln!(o, "{base}audio.m3u8");
                }
                (None, None) => {}
            }
        }
        o
    }
}

#[cfg(test)]
mod tests;
