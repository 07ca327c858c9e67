//! Reorder buffer and H.264 depacketizer tests.

use super::*;

fn pkt(seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> RtpPacket {
    RtpPacket {
        seq,
        timestamp,
        marker,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn seqs(out: &[Released]) -> Vec<Option<u16>> {
    out.iter()
        .map(|r| match r {
            Released::Packet(p) => Some(p.seq),
            Released::Lost(_) => None,
        })
        .collect()
}

#[test]
fn reorder_restores_order_across_the_wrap() {
    let mut r = Reorder::default();
    let mut out = Vec::new();
    for s in [65534u16, 0, 65535, 1, 1, 3, 2] {
        r.push(pkt(s, 0, false, &[1]), &mut out);
    }
    assert_eq!(
        seqs(&out),
        vec![Some(65534), Some(65535), Some(0), Some(1), Some(2), Some(3)]
    );
    assert!(!r.waiting());
    // an old duplicate is dropped
    r.push(pkt(65535, 0, false, &[1]), &mut out);
    assert_eq!(out.len(), 6);
}

#[test]
fn reorder_gives_up_on_a_gap_when_told_or_when_full() {
    let mut r = Reorder::default();
    let mut out = Vec::new();
    r.push(pkt(10, 0, false, &[1]), &mut out);
    r.push(pkt(13, 0, false, &[1]), &mut out);
    assert!(r.waiting());
    r.skip_gap(&mut out);
    assert_eq!(seqs(&out), vec![Some(10), None, Some(13)]);
    assert_eq!(r.lost, 2);
    out.clear();
    // 14 is missing: the buffer holds at most REORDER_CAPACITY packets behind it
    for i in 0..=REORDER_CAPACITY as u16 {
        r.push(pkt(15 + i, 0, false, &[1]), &mut out);
    }
    assert_eq!(seqs(&out)[0], None);
    assert_eq!(out.len(), REORDER_CAPACITY + 2);
    assert!(!r.waiting());
}

#[test]
fn reorder_follows_a_sender_that_restarts_its_sequence() {
    let mut r = Reorder::default();
    let mut out = Vec::new();
    r.push(pkt(100, 0, false, &[1]), &mut out);
    r.push(pkt(30_000, 0, false, &[1]), &mut out);
    r.push(pkt(30_001, 0, false, &[1]), &mut out);
    assert_eq!(
        seqs(&out),
        vec![Some(100), None, Some(30_000), Some(30_001)]
    );
}

/// A STAP-A payload aggregating `nals`.
pub(crate) fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
    let mut stap = vec![0x78];
    for n in nals {
        stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
        stap.extend_from_slice(n);
    }
    stap
}

/// An IDR frame as Chrome sends it: STAP-A with SPS and PPS, then the slice in FU-A fragments.
fn idr_frame(seq: u16, ts: u32) -> Vec<RtpPacket> {
    let stap = stap_a(&[&[0x67, 0x42, 0xc0, 0x1e, 0xaa], &[0x68, 0xce, 0x3c, 0x80]]);
    vec![
        pkt(seq, ts, false, &stap),
        pkt(seq + 1, ts, false, &[0x7c, 0x85, 0x88, 2, 3]),
        pkt(seq + 2, ts, false, &[0x7c, 0x05, 4, 5]),
        pkt(seq + 3, ts, true, &[0x7c, 0x45, 6]),
    ]
}

fn run(d: &mut H264Depacketizer, ps: &[RtpPacket]) -> Vec<Result<AccessUnit, Dropped>> {
    let mut out = Vec::new();
    for p in ps {
        d.push(p, &mut out);
    }
    out
}

#[test]
fn stap_a_and_fu_a_become_one_avcc_sample() {
    let mut d = H264Depacketizer::new();
    assert!(d.needs_keyframe());
    let out = run(&mut d, &idr_frame(1, 3000));
    let au = out[0].clone().unwrap();
    assert_eq!(out.len(), 1);
    assert!(au.keyframe);
    assert_eq!(au.timestamp, 3000);
    assert_eq!(&au.data[..], &[0, 0, 0, 7, 0x65, 0x88, 2, 3, 4, 5, 6]);
    assert_eq!(&au.sps.unwrap()[..], &[0x67, 0x42, 0xc0, 0x1e, 0xaa]);
    assert_eq!(au.pps.unwrap().len(), 4);
    assert!(!d.needs_keyframe());
    // a P frame in two single-NAL packets (two slices)
    let out = run(
        &mut d,
        &[
            pkt(5, 6000, false, &[0x41, 0x89]),
            pkt(6, 6000, true, &[0x41, 8]),
        ],
    );
    let au = out[0].clone().unwrap();
    assert!(!au.keyframe && au.sps.is_none());
    assert_eq!(&au.data[..], &[0, 0, 0, 2, 0x41, 0x89, 0, 0, 0, 2, 0x41, 8]);
}

#[test]
fn frames_before_the_first_idr_are_dropped() {
    let mut d = H264Depacketizer::new();
    let out = run(&mut d, &[pkt(1, 0, true, &[0x41, 0x81])]);
    assert_eq!(out, vec![Err(Dropped::Loss)]);
    assert!(run(&mut d, &idr_frame(2, 3000))[0].is_ok());
}

#[test]
fn a_lost_fragment_drops_frames_until_the_next_idr() {
    let mut d = H264Depacketizer::new();
    let mut f = idr_frame(1, 0);
    let out = run(&mut d, &f[..2]);
    assert!(out.is_empty());
    d.lost(); // packet 3 lost
    let out = run(&mut d, &f.split_off(3));
    assert_eq!(out, vec![Err(Dropped::Loss)]);
    assert!(d.needs_keyframe());
    // the following P frame depends on it
    assert_eq!(
        run(&mut d, &[pkt(5, 3000, true, &[0x41, 0x81])]),
        vec![Err(Dropped::Loss)]
    );
    let out = run(&mut d, &idr_frame(6, 6000));
    assert!(out[0].as_ref().unwrap().keyframe);
    assert_eq!(d.dropped, 2);
}

#[test]
fn a_frame_whose_marker_was_lost_ends_at_the_next_timestamp() {
    let mut d = H264Depacketizer::new();
    let mut f = idr_frame(1, 0);
    f[3].marker = false;
    let mut out = run(&mut d, &f);
    assert!(out.is_empty());
    d.push(&pkt(5, 3000, true, &[0x41, 0x81]), &mut out);
    assert_eq!(out.len(), 2);
    assert!(out[0].as_ref().unwrap().keyframe);
    assert!(!out[1].as_ref().unwrap().keyframe);
}

#[test]
fn padding_only_packets_are_skipped() {
    // Chrome probes bandwidth with padding-only packets carrying the last frame's timestamp
    let mut d = H264Depacketizer::new();
    let mut out = run(&mut d, &idr_frame(1, 0));
    d.push(&pkt(5, 0, false, &[]), &mut out);
    d.push(&pkt(6, 0, false, &[]), &mut out);
    d.push(&pkt(7, 3000, true, &[0x41, 0x81]), &mut out);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    assert_eq!(d.dropped, 0);
}

#[test]
fn a_frame_whose_first_slice_was_lost_is_dropped() {
    let mut d = H264Depacketizer::new();
    run(&mut d, &idr_frame(1, 0));
    // the loss fell between frames: the next frame starts mid-picture (first_mb_in_slice != 0)
    d.lost();
    let out = run(&mut d, &[pkt(9, 6000, true, &[0x65, 0x40, 1])]);
    assert_eq!(out, vec![Err(Dropped::Loss)]);
    // a stream joined mid-frame
    let mut d = H264Depacketizer::new();
    let out = run(&mut d, &[pkt(1, 0, true, &[0x7c, 0x85, 0x20, 1])]);
    assert_eq!(out, vec![Err(Dropped::Loss)]);
}

#[test]
fn reorder_follows_a_sender_that_goes_back_in_its_sequence() {
    let mut r = Reorder::default();
    let mut out = Vec::new();
    r.push(pkt(40_000, 0, false, &[1]), &mut out);
    for i in 0..RESYNC_AFTER as u16 + 3 {
        r.push(pkt(30_000 + i, 0, false, &[1]), &mut out);
    }
    // the first RESYNC_AFTER - 1 count as late; then the stream is followed again
    let s = seqs(&out);
    assert_eq!(s[0], Some(40_000));
    assert_eq!(s[1], None);
    assert_eq!(s[2], Some(30_000 + RESYNC_AFTER as u16 - 1));
    assert_eq!(s.len(), 2 + 4);
}

#[test]
fn malformed_payloads_drop_the_frame_without_panic() {
    let bad: [&[u8]; 8] = [
        &[0x78, 0],          // STAP-A with a truncated length
        &[0x78, 0, 9, 0x65], // STAP-A length past the end
        &[0x78, 0, 0],       // STAP-A zero length
        &[0x7c, 0x05, 1],    // FU-A continuation without its start
        &[0x7c],             // FU-A without its header
        &[0x79, 0, 1, 2],    // STAP-B
        &[0x7d, 0x85, 1],    // FU-B
        &[0x00, 1],          // reserved type 0
    ];
    for b in bad {
        let mut d = H264Depacketizer::new();
        run(&mut d, &idr_frame(1, 0));
        let out = run(&mut d, &[pkt(5, 3000, true, b)]);
        assert!(
            matches!(out.as_slice(), [Err(Dropped::Malformed)]),
            "{b:?}: {out:?}"
        );
        assert!(d.needs_keyframe());
    }
    // a frame that ends inside an FU-A
    let mut d = H264Depacketizer::new();
    let out = run(&mut d, &[pkt(1, 0, true, &[0x7c, 0x85, 0x81])]);
    assert_eq!(out, vec![Err(Dropped::Malformed)]);
}

#[test]
fn an_oversized_frame_is_refused() {
    let mut d = H264Depacketizer::new();
    run(&mut d, &idr_frame(1, 0));
    let chunk = vec![0u8; 60_000];
    let mut ps = vec![pkt(
        5,
        3000,
        false,
        &[&[0x7c, 0x81, 0x80][..], &chunk].concat(),
    )];
    for i in 0..80u16 {
        ps.push(pkt(
            6 + i,
            3000,
            false,
            &[&[0x7c, 0x01][..], &chunk].concat(),
        ));
    }
    ps.push(pkt(86, 3000, true, &[0x7c, 0x41, 1]));
    assert_eq!(run(&mut d, &ps), vec![Err(Dropped::TooLarge)]);
}
