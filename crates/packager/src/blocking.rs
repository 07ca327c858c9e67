//! Blocking playlist reload (RFC 8216bis §6.2.5.2) and blocking preload-hinted part requests
//! (§6.2.6) as pure decisions over a playlist position. The HTTP layer only waits.

/// The `_HLS_*` directives of a playlist request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Directives {
    /// `_HLS_msn`.
    pub msn: Option<u64>,
    /// `_HLS_part`.
    pub part: Option<u32>,
    /// `_HLS_skip=YES` (or `v2`).
    pub skip: bool,
}

/// Errors in the query string of a playlist request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectiveError {
    /// A directive's value is not a valid number.
    #[error("invalid {0} value")]
    Invalid(&'static str),
    /// `_HLS_part` without `_HLS_msn` (§6.2.5.2: MUST be 400).
    #[error("_HLS_part requires _HLS_msn")]
    PartWithoutMsn,
}

impl Directives {
    /// Parses the query string of a playlist request. Unknown parameters are ignored.
    pub fn parse(query: &str) -> Result<Self, DirectiveError> {
        let mut d = Directives::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "_HLS_msn" => {
                    d.msn = Some(v.parse().map_err(|_| DirectiveError::Invalid("_HLS_msn"))?)
                }
                "_HLS_part" => {
                    d.part = Some(
                        v.parse()
                            .map_err(|_| DirectiveError::Invalid("_HLS_part"))?,
                    )
                }
                "_HLS_skip" => match v {
                    "YES" | "v2" => d.skip = true,
                    _ => return Err(DirectiveError::Invalid("_HLS_skip")),
                },
                _ => {}
            }
        }
        if d.part.is_some() && d.msn.is_none() {
            return Err(DirectiveError::PartWithoutMsn);
        }
        Ok(d)
    }
}

/// Where a rendition's playlist is: what a blocking request is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// MSN of the last complete segment.
    pub last_segment: Option<u64>,
    /// The last part in the playlist (msn, index).
    pub last_part: Option<(u64, u32)>,
    /// ENDLIST is present.
    pub ended: bool,
}

/// What to do with a playlist request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Answer now with the current playlist.
    Ready,
    /// Hold the request until the position changes (bounded by 3 × target duration, then 503).
    Wait,
    /// 400 Bad Request, with the reason.
    BadRequest(&'static str),
}

/// The decision table of RFC 8216bis §6.2.5.2. `advance_part_limit` is 3 / PART-TARGET (in
/// seconds) when PART-TARGET < 1 s, else 3.
pub fn decide(d: &Directives, pos: &Position, advance_part_limit: u32) -> Decision {
    // 1. ENDLIST: ignore the directives.
    if pos.ended {
        return Decision::Ready;
    }
    let Some(m) = d.msn else {
        return Decision::Ready;
    };
    // 3. msn more than two beyond the last complete segment.
    // (before the first segment completes, the open segment's msn − 1 stands in for it)
    let last_seg = match (pos.last_segment, pos.last_part) {
        (Some(s), _) => s as i64,
        (None, Some((m, _))) => m as i64 - 1,
        (None, None) => -1,
    };
    if m as i64 > last_seg + 2 {
        return Decision::BadRequest("_HLS_msn is more than two segments ahead");
    }
    match d.part {
        None => {
            // 4. hold until segment M is complete
            if pos.last_segment.is_some_and(|s| s >= m) {
                Decision::Ready
            } else {
                Decision::Wait
            }
        }
        Some(n) => {
            // 5. hold until part N of M (or later) exists; N beyond M's last part means part 0
            //    of M+1, which lexicographic order gives us.
            match pos.last_part {
                Some(lp) if lp >= (m, n) => Decision::Ready,
                Some((lm, li)) if lm == m && n > li + advance_part_limit => {
                    Decision::BadRequest("_HLS_part is too far ahead")
                }
                None if n > advance_part_limit => {
                    Decision::BadRequest("_HLS_part is too far ahead")
                }
                _ => Decision::Wait,
            }
        }
    }
}

/// Advance Part Limit for a PART-TARGET in milliseconds (§6.2.5.2).
pub fn advance_part_limit(part_target_ms: u32) -> u32 {
    if part_target_ms < 1000 {
        3000 / part_target_ms.max(1)
    } else {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(seg: Option<u64>, part: Option<(u64, u32)>) -> Position {
        Position {
            last_segment: seg,
            last_part: part,
            ended: false,
        }
    }

    #[test]
    fn parse() {
        assert_eq!(
            Directives::parse("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES").unwrap(),
            Directives {
                msn: Some(5),
                part: Some(2),
                skip: true
            }
        );
        assert_eq!(Directives::parse("").unwrap(), Directives::default());
        assert_eq!(
            Directives::parse("_HLS_part=1"),
            Err(DirectiveError::PartWithoutMsn)
        );
        assert!(Directives::parse("_HLS_msn=x").is_err());
        assert!(Directives::parse("_HLS_msn=-1").is_err());
        assert!(Directives::parse("_HLS_skip=NO").is_err());
        assert_eq!(
            Directives::parse("token=abc&_HLS_msn=1").unwrap().msn,
            Some(1)
        );
    }

    #[test]
    fn decision_table() {
        let lim = advance_part_limit(214); // 14
        assert_eq!(lim, 14);
        let p = pos(Some(10), Some((11, 3)));
        let q = |msn, part| Directives {
            msn: Some(msn),
            part,
            skip: false,
        };
        // no directives
        assert_eq!(decide(&Directives::default(), &p, lim), Decision::Ready);
        // msn only
        assert_eq!(decide(&q(10, None), &p, lim), Decision::Ready);
        assert_eq!(decide(&q(3, None), &p, lim), Decision::Ready); // old: answer at once
        assert_eq!(decide(&q(11, None), &p, lim), Decision::Wait);
        assert_eq!(decide(&q(12, None), &p, lim), Decision::Wait);
        assert!(matches!(
            decide(&q(13, None), &p, lim),
            Decision::BadRequest(_)
        ));
        // msn + part
        assert_eq!(decide(&q(11, Some(3)), &p, lim), Decision::Ready);
        assert_eq!(decide(&q(11, Some(2)), &p, lim), Decision::Ready);
        assert_eq!(decide(&q(10, Some(40)), &p, lim), Decision::Ready); // beyond M's parts → (11,0)
        assert_eq!(decide(&q(11, Some(4)), &p, lim), Decision::Wait);
        assert_eq!(decide(&q(12, Some(0)), &p, lim), Decision::Wait);
        assert!(matches!(
            decide(&q(11, Some(18)), &p, lim),
            Decision::BadRequest(_)
        ));
        assert_eq!(decide(&q(11, Some(17)), &p, lim), Decision::Wait);
        assert!(matches!(
            decide(&q(13, Some(0)), &p, lim),
            Decision::BadRequest(_)
        ));
        // ended: directives ignored
        let e = Position { ended: true, ..p };
        assert_eq!(decide(&q(12, Some(5)), &e, lim), Decision::Ready);
        // nothing yet
        let empty = pos(None, None);
        assert_eq!(decide(&q(0, None), &empty, lim), Decision::Wait);
        assert_eq!(decide(&q(1, None), &empty, lim), Decision::Wait);
        assert!(matches!(
            decide(&q(2, None), &empty, lim),
            Decision::BadRequest(_)
        ));
    }
}
