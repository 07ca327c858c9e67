use super::*;
use bytes::Bytes;
use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::time::RtmpTimestamp;

fn limits() -> ChunkLimits {
    ChunkLimits {
        max_chunk_size: 65536,
        max_message_size: 1 << 20,
    }
}

/// A guard past the handshake.
fn guard() -> ChunkGuard {
    let mut g = ChunkGuard::new(limits());
    g.check(&[3; HANDSHAKE_LEN]).unwrap();
    g
}

fn message(type_id: u8, timestamp: u32, csid_hint: u32, data: Vec<u8>) -> MessagePayload {
    MessagePayload {
        timestamp: RtmpTimestamp::new(timestamp),
        message_stream_id: csid_hint,
        type_id,
        data: Bytes::from(data),
    }
}

/// A tiny deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn follows_what_rml_serializes_split_anywhere() {
    // rml_rtmp's own serializer (what its deserializer must accept): chunk size changes,
    // compressed headers, timestamps past the extended-timestamp threshold, empty messages
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..40 {
        let mut ser = ChunkSerializer::new();
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        let mut ts = if round % 2 == 0 { 0 } else { 0xFF_FF00 };
        let mut chunk_size = 128;
        for _ in 0..60 {
            if rng.below(8) == 0 {
                chunk_size = 1 + rng.below(5000) as u32;
                let p = ser
                    .set_max_chunk_size(chunk_size, RtmpTimestamp::new(ts))
                    .unwrap();
                wire.extend_from_slice(&p.bytes);
            }
            ts += rng.below(300) as u32;
            let len = rng.below(20_000) as usize;
            let type_id = [8, 9, 9, 8, 4][rng.below(5) as usize];
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + round) as u8).collect();
            let m = message(type_id, ts, 1, data);
            let p = ser.serialize(&m, rng.below(4) == 0, false).unwrap();
            wire.extend_from_slice(&p.bytes);
            expected.push(m);
        }
        // rml_rtmp's deserializer reads it back (applying the chunk size changes)...
        let mut de = ChunkDeserializer::new();
        let mut got = Vec::new();
        let mut input = &wire[..];
        while let Some(m) = de.get_next_message(input).unwrap() {
            input = &[];
            if m.type_id == 1 {
                let size = u32::from_be_bytes(m.data[..4].try_into().unwrap());
                de.set_max_chunk_size(size as usize).unwrap();
            } else {
                got.push(m);
            }
        }
        assert_eq!(got, expected);
        // ...and the guard, fed the same bytes in random pieces, agrees on every chunk
        let mut g = guard();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(3000) as usize).min(rest.len());
            g.check(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        assert_eq!(g.chunk_size(), chunk_size);
        assert!(g.partial.is_none() && g.header_len == 0 && g.payload_left == 0);
    }
}

/// A type-0 chunk header on `csid` (< 64) with the given fields.
fn header0(csid: u8, timestamp: u32, length: u32, type_id: u8) -> Vec<u8> {
    let mut h = vec![csid];
    h.extend_from_slice(&timestamp.min(0xFF_FFFF).to_be_bytes()[1..]);
    h.extend_from_slice(&length.to_be_bytes()[1..]);
    h.push(type_id);
    h.extend_from_slice(&1u32.to_le_bytes());
    if timestamp >= 0xFF_FFFF {
        h.extend_from_slice(&timestamp.to_be_bytes());
    }
    h
}

#[test]
fn refuses_a_message_over_the_limit_before_its_payload() {
    let mut g = guard();
    let e = g.check(&header0(6, 0, (1 << 20) + 1, 9)).unwrap_err();
    assert_eq!(
        e,
        GuardError::MessageSize {
            size: (1 << 20) + 1,
            max: 1 << 20
        }
    );
    // it stays refused
    assert!(g.check(&[0]).is_err());
    // the limit itself is fine
    let mut g = guard();
    g.check(&header0(6, 0, 1 << 20, 9)).unwrap();
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    let mut v = header0(2, 0, 4, 1);
    v.extend_from_slice(&size.to_be_bytes());
    v
}

#[test]
fn refuses_chunk_sizes_out_of_range() {
    for bad in [0, 65537, 0x7FFF_FFFF, u32::MAX] {
        let mut g = guard();
        assert_eq!(
            g.check(&set_chunk_size(bad)).unwrap_err(),
            GuardError::ChunkSize {
                size: bad,
                max: 65536
            }
        );
    }
    let mut g = guard();
    g.check(&set_chunk_size(65536)).unwrap();
    assert_eq!(g.chunk_size(), 65536);
    // a larger chunk then carries a whole 60,000-byte message
    let mut m = header0(6, 0, 60_000, 9);
    m.extend(std::iter::repeat_n(0u8, 60_000));
    m.extend(header0(4, 0, 0, 8));
    g.check(&m).unwrap();
    assert!(g.partial.is_none());
}

#[test]
fn refuses_too_many_chunk_streams() {
    let mut g = guard();
    let mut wire = Vec::new();
    for i in 0..MAX_CHUNK_STREAMS as u32 {
        // two-byte basic headers: chunk stream IDs 64 + i
        wire.push(0);
        wire.push(i as u8);
        wire.extend_from_slice(&header0(0, 0, 1, 8)[1..]);
        wire.push(0xAF);
    }
    g.check(&wire).unwrap();
    let mut more = vec![1, 0xFF, 0x00];
    more.extend_from_slice(&header0(0, 0, 1, 8)[1..]);
    assert_eq!(g.check(&more).unwrap_err(), GuardError::TooManyChunkStreams);
}

#[test]
fn refuses_interleaved_and_inconsistent_chunks() {
    // 300 bytes at chunk size 128: the first chunk, then a chunk of another stream
    let mut g = guard();
    let mut wire = header0(6, 0, 300, 9);
    wire.extend([0u8; 128]);
    wire.extend(header0(4, 0, 10, 8));
    assert_eq!(
        g.check(&wire).unwrap_err(),
        GuardError::Interleaved {
            csid: 4,
            current: 6
        }
    );
    // a type-0 header for another message on the same stream before the message is complete
    let mut g = guard();
    let mut wire = header0(6, 0, 300, 9);
    wire.extend([0u8; 128]);
    wire.extend(header0(6, 0, 10, 9));
    assert!(matches!(
        g.check(&wire).unwrap_err(),
        GuardError::Inconsistent { csid: 6, .. }
    ));
    // a full header repeating the message's own (what rml_rtmp sends uncompressed) is fine
    let mut g = guard();
    let mut wire = header0(6, 0, 300, 9);
    wire.extend([0u8; 128]);
    wire.extend(header0(6, 0, 300, 9));
    wire.extend([0u8; 128]);
    g.check(&wire).unwrap();
    // the right continuation (type 3) is fine
    let mut g = guard();
    let mut wire = header0(6, 0, 300, 9);
    wire.extend([0u8; 128]);
    wire.push(0xC6);
    wire.extend([0u8; 128]);
    wire.push(0xC6);
    wire.extend([0u8; 44]);
    g.check(&wire).unwrap();
    assert!(g.partial.is_none());
    // a compressed header on a stream never opened
    let mut g = guard();
    assert_eq!(
        g.check(&[0xC5]).unwrap_err(),
        GuardError::NoPreviousHeader { csid: 5 }
    );
}

/// An AMF0 command message: `connect` with a command object nested `depth` levels.
fn nested_command(depth: usize) -> Vec<u8> {
    let mut amf = vec![0x02, 0x00, 0x07];
    amf.extend_from_slice(b"connect");
    amf.push(0x00);
    amf.extend_from_slice(&1f64.to_be_bytes());
    amf.push(0x03);
    for _ in 1..depth {
        amf.extend_from_slice(&[0x00, 0x01, b'a', 0x03]);
    }
    for _ in 0..depth {
        amf.extend_from_slice(&[0x00, 0x00, 0x09]);
    }
    amf
}

fn command_chunks(amf: &[u8]) -> Vec<u8> {
    let mut ser = ChunkSerializer::new();
    let mut wire = ser
        .set_max_chunk_size(4096, RtmpTimestamp::new(0))
        .unwrap()
        .bytes;
    wire.extend(
        ser.serialize(&message(20, 0, 0, amf.to_vec()), false, false)
            .unwrap()
            .bytes,
    );
    wire
}

#[test]
fn refuses_amf_nesting_bombs_and_accepts_real_commands() {
    assert_eq!(amf0_depth(&nested_command(3), MAX_AMF_DEPTH), Some(3));
    let mut g = guard();
    g.check(&command_chunks(&nested_command(MAX_AMF_DEPTH)))
        .unwrap();
    // deep enough to overflow rml_amf0's recursion many times over
    let bomb = nested_command(200_000);
    assert_eq!(amf0_depth(&bomb, MAX_AMF_DEPTH), None);
    let mut g = ChunkGuard::new(ChunkLimits {
        max_chunk_size: 65536,
        max_message_size: 8 << 20,
    });
    g.check(&[3; HANDSHAKE_LEN]).unwrap();
    // too large for a command before its depth is even looked at
    assert_eq!(
        g.check(&command_chunks(&bomb)).unwrap_err(),
        GuardError::CommandSize(bomb.len() as u32)
    );
    // within the size limit but too deep
    let mut g = guard();
    assert_eq!(
        g.check(&command_chunks(&nested_command(1000))).unwrap_err(),
        GuardError::AmfTooDeep
    );
    // strict arrays, ECMA arrays, in an AMF3-flagged command (type 17, leading 0)
    let mut arrays = vec![0x00];
    for _ in 0..100 {
        arrays.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        arrays.extend_from_slice(&[0x08, 0, 0, 0, 1, 0x00, 0x01, b'k']);
    }
    let mut g = guard();
    let mut ser = ChunkSerializer::new();
    let wire = ser
        .serialize(&message(17, 0, 0, arrays.clone()), false, false)
        .unwrap()
        .bytes;
    assert_eq!(g.check(&wire).unwrap_err(), GuardError::AmfTooDeep);
    // the same bytes as video are not parsed as AMF at all
    let mut g = guard();
    let wire = ser
        .serialize(&message(9, 0, 0, arrays), false, false)
        .unwrap()
        .bytes;
    g.check(&wire).unwrap();
}

#[test]
fn amf_depth_stops_where_rml_amf0_stops() {
    // an unknown marker ends the parse: nothing after it counts
    let mut v = vec![0x03, 0x00, 0x01, b'a', 0x0d];
    v.extend(nested_command(100));
    assert_eq!(amf0_depth(&v, MAX_AMF_DEPTH), Some(1));
    // an end marker at the top level ends it too
    let mut v = vec![0x09];
    v.extend(nested_command(100));
    assert_eq!(amf0_depth(&v, MAX_AMF_DEPTH), Some(0));
    // an end marker ends a strict array early; what follows is read at the outer level
    let mut v = vec![0x0a, 0, 0, 0, 5, 0x05, 0x09];
    v.extend(nested_command(40));
    assert_eq!(amf0_depth(&v, MAX_AMF_DEPTH), None);
    // truncated input of any length never panics
    let bomb = nested_command(50);
    for n in 0..bomb.len() {
        let _ = amf0_depth(&bomb[..n], MAX_AMF_DEPTH);
    }
}

#[test]
fn handshake_bytes_are_skipped_across_reads() {
    let mut g = ChunkGuard::new(limits());
    g.check(&[0xFF; 1000]).unwrap();
    g.check(&[0xFF; 2072]).unwrap();
    // the last handshake byte and then a chunk stream in the same read
    let mut wire = vec![0xFF];
    wire.extend(set_chunk_size(4096));
    g.check(&wire).unwrap();
    assert_eq!(g.chunk_size(), 4096);
}

#[test]
fn caps_create_stream_commands() {
    let mut create = vec![0x02, 0x00, 0x0c];
    create.extend_from_slice(b"createStream");
    create.push(0x00);
    create.extend_from_slice(&2f64.to_be_bytes());
    create.push(0x05);
    let mut g = guard();
    let mut ser = ChunkSerializer::new();
    for i in 0..MAX_CREATE_STREAMS {
        let wire = ser
            .serialize(&message(20, i, 0, create.clone()), false, false)
            .unwrap()
            .bytes;
        g.check(&wire).unwrap();
    }
    // other commands do not count
    let wire = ser
        .serialize(&message(20, 0, 0, nested_command(2)), false, false)
        .unwrap()
        .bytes;
    g.check(&wire).unwrap();
    let wire = ser
        .serialize(&message(20, 99, 0, create), false, false)
        .unwrap()
        .bytes;
    assert_eq!(
        g.check(&wire).unwrap_err(),
        GuardError::TooManyCreateStreams
    );
}
