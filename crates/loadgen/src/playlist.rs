//! The little of an LL-HLS media playlist a viewer needs: the parts in order, and ENDLIST.

/// One part: (msn, index, URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRef {
    /// Parent segment's media sequence number.
    pub msn: u64,
    /// Index within it.
    pub index: u32,
    /// URI relative to the playlist.
    pub uri: String,
    /// `GAP=YES`: listed, but there is nothing to fetch.
    pub gap: bool,
}

/// Parts listed in `text` (GAP parts included, flagged) and whether the playlist has ENDLIST.
pub fn parts(text: &str) -> (Vec<PartRef>, bool) {
    parts_after(text, None)
}

/// [`parts`], only those after `after` (msn, index).
pub fn parts_after(text: &str, after: Option<(u64, u32)>) -> (Vec<PartRef>, bool) {
    let mut msn: u64 = 0;
    let mut index = 0u32;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
            msn += v.trim().parse::<u64>().unwrap_or(0);
        } else if line.starts_with("#EXT-X-PART:") {
            if after.is_some_and(|a| (msn, index) <= a) {
                index += 1;
                continue;
            }
            let uri = line
                .split("URI=\"")
                .nth(1)
                .and_then(|r| r.split('"').next());
            if let Some(uri) = uri {
                out.push(PartRef {
                    msn,
                    index,
                    uri: uri.to_string(),
                    gap: line.contains("GAP=YES"),
                });
            }
            index += 1;
        } else if line.starts_with("#EXTINF:") {
            msn += 1;
            index = 0;
        }
    }
    (out, text.contains("#EXT-X-ENDLIST"))
}

/// The `URI` of the `EXT-X-MAP` (init segment).
pub fn init_uri(text: &str) -> Option<&str> {
    text.lines()
        .rev()
        .find(|l| l.starts_with("#EXT-X-MAP:"))?
        .split("URI=\"")
        .nth(1)?
        .split('"')
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parts() {
        let text = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-MAP:URI=\"video_init0.mp4\"\n#EXTINF:2.0,\nvideo_5.m4s\n#EXT-X-PART:DURATION=0.2,URI=\"video_6.0.m4s\"\n#EXT-X-PART:DURATION=0.2,URI=\"video_6.1.m4s\",GAP=YES\n#EXT-X-PART:DURATION=0.2,URI=\"video_6.2.m4s\"\n#EXTINF:2.0,\nvideo_6.m4s\n#EXT-X-PART:DURATION=0.2,URI=\"video_7.0.m4s\"\n";
        let (p, ended) = parts(text);
        assert!(!ended);
        let ids: Vec<_> = p.iter().map(|p| (p.msn, p.index, p.gap)).collect();
        assert_eq!(
            ids,
            vec![(6, 0, false), (6, 1, true), (6, 2, false), (7, 0, false)]
        );
        assert_eq!(p[3].uri, "video_7.0.m4s");
        let (after, _) = parts_after(text, Some((6, 1)));
        assert_eq!(after, p[2..].to_vec());
        assert_eq!(init_uri(text), Some("video_init0.mp4"));
    }
}
