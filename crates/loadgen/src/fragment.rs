//! The decode-time span of a CMAF part (`moof` boxes: `tfdt` base time plus the `trun` or
//! `tfhd` sample durations), so a viewer can check that consecutive parts continue each other's
//! timeline — across an origin switch too.

fn boxes(mut data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 8 {
            return None;
        }
        let size = u32::from_be_bytes(data[0..4].try_into().ok()?) as usize;
        let kind: [u8; 4] = data[4..8].try_into().ok()?;
        let (body, rest) = match size {
            1 if data.len() >= 16 => {
                let big = u64::from_be_bytes(data[8..16].try_into().ok()?);
                let big = usize::try_from(big)
                    .ok()
                    .filter(|b| *b >= 16 && *b <= data.len())?;
                (&data[16..big], &data[big..])
            }
            0 => (&data[8..], &data[data.len()..]),
            s if s >= 8 && s <= data.len() => (&data[8..s], &data[s..]),
            _ => return None,
        };
        data = rest;
        Some((kind, body))
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// `(base decode time, total duration)` of the first track fragment of `part`, in the track's
/// timescale; `None` if it is not a fragment this parser understands.
pub fn span(part: &[u8]) -> Option<(u64, u64)> {
    let (_, moof) = boxes(part).find(|(k, _)| k == b"moof")?;
    let (_, traf) = boxes(moof).find(|(k, _)| k == b"traf")?;
    let (mut base, mut default_duration, mut total) = (None, 0u64, 0u64);
    for (kind, b) in boxes(traf) {
        let flags = be32(b, 0)? & 0x00ff_ffff;
        match &kind {
            b"tfdt" => {
                base = Some(if b[0] == 1 {
                    be64(b, 4)?
                } else {
                    u64::from(be32(b, 4)?)
                });
            }
            b"tfhd" => {
                // track_ID, then optional fields in flag order
                let mut at = 8;
                for (flag, len) in [(0x01, 8), (0x02, 4)] {
                    if flags & flag != 0 {
                        at += len;
                    }
                }
                if flags & 0x08 != 0 {
                    default_duration = u64::from(be32(b, at)?);
                }
            }
            b"trun" => {
                let count = be32(b, 4)? as usize;
                let mut at = 8;
                for flag in [0x01, 0x04] {
                    if flags & flag != 0 {
                        at += 4;
                    }
                }
                let per_sample = [0x100, 0x200, 0x400, 0x800]
                    .iter()
                    .filter(|f| flags & **f != 0)
                    .count()
                    * 4;
                if flags & 0x100 == 0 {
                    total += default_duration * count as u64;
                } else {
                    for i in 0..count {
                        total += u64::from(be32(b, at + i * per_sample)?);
                    }
                }
            }
            _ => {}
        }
    }
    Some((base?, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r#box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn reads_tfdt_and_trun_durations() {
        let tfhd = r#box(b"tfhd", &[0, 0, 0, 0, 0, 0, 0, 1]);
        let mut tfdt_body = vec![1, 0, 0, 0];
        tfdt_body.extend_from_slice(&90_000u64.to_be_bytes());
        let tfdt = r#box(b"tfdt", &tfdt_body);
        // flags: data offset, duration, size
        let mut trun_body = vec![0, 0, 0x03, 0x01];
        trun_body.extend_from_slice(&2u32.to_be_bytes());
        trun_body.extend_from_slice(&0u32.to_be_bytes());
        for (d, s) in [(3000u32, 10u32), (3003, 20)] {
            trun_body.extend_from_slice(&d.to_be_bytes());
            trun_body.extend_from_slice(&s.to_be_bytes());
        }
        let trun = r#box(b"trun", &trun_body);
        let traf = r#box(b"traf", &[tfhd, tfdt, trun].concat());
        let moof = r#box(b"moof", &[r#box(b"mfhd", &[0; 8]), traf].concat());
        let part = [moof, r#box(b"mdat", &[0; 30])].concat();
        assert_eq!(span(&part), Some((90_000, 6003)));
        assert_eq!(span(&part[..20]), None);
        assert_eq!(span(b"garbage"), None);
    }
}
