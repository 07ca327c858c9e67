//! A guard in front of `rml_rtmp`'s chunk deserializer (RTMP 1.0 §5.3): it reads the chunk
//! headers of everything a publisher sends, before `rml_rtmp` sees the bytes, and refuses what
//! `rml_rtmp` does not defend against:
//!
//! - a message longer than `max_message_size` (`rml_rtmp` reserves a message's whole declared
//!   length, up to 16 MiB, when its first chunk arrives);
//! - a Set Chunk Size of 0 or above `max_chunk_size`;
//! - more than [`MAX_CHUNK_STREAMS`] chunk stream IDs (`rml_rtmp` keeps a header for each of up
//!   to 65,599);
//! - chunks of two messages interleaved, or a message's length or type changed in the middle
//!   of it (`rml_rtmp` has one payload buffer for all chunk streams: it would splice the
//!   messages together, and can underflow a length and panic);
//! - AMF0 command and data messages nested deeper than [`MAX_AMF_DEPTH`] (`rml_amf0` parses
//!   them recursively: a deep enough nesting overflows the stack and aborts the process) or
//!   larger than [`MAX_COMMAND_SIZE`];
//! - more than [`MAX_CREATE_STREAMS`] `createStream` commands (`rml_rtmp` keeps a stream for
//!   each, with no bound).
//!
//! It keeps a few bytes of state per chunk stream and copies only command payloads (bounded).
//! It follows the chunk stream exactly as `rml_rtmp` 0.8 parses it (including its reading of an
//! extended timestamp on type-3 chunks), so the two never disagree on where a chunk starts.
//! Sans-IO.

/// Chunk stream IDs one connection may use (encoders use a handful).
pub const MAX_CHUNK_STREAMS: usize = 64;
/// Deepest nesting of AMF0 objects and arrays accepted in a command or data message (real
/// commands nest two or three levels).
pub const MAX_AMF_DEPTH: usize = 16;
/// Largest AMF0 command or data message accepted.
pub const MAX_COMMAND_SIZE: usize = 64 * 1024;
/// `createStream` commands one connection may send (a publisher needs one; some retry).
pub const MAX_CREATE_STREAMS: u32 = 8;

/// Bytes of the client's handshake: C0 (1) + C1 (1536) + C2 (1536).
const HANDSHAKE_LEN: usize = 1 + 1536 + 1536;
/// A timestamp field of this value means an extended timestamp follows.
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// Chunk size until the peer sets another (§5.4.1).
const INITIAL_CHUNK_SIZE: u32 = 128;
/// Longest chunk header: 3 (basic) + 11 (type 0) + 4 (extended timestamp).
const MAX_HEADER_LEN: usize = 18;

/// Limits on the chunk stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest chunk size a peer may set.
    pub max_chunk_size: u32,
    /// Largest message a peer may send.
    pub max_message_size: u32,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        Self {
            max_chunk_size: 1 << 20,
            max_message_size: 8 << 20,
        }
    }
}

/// Why the guard refused the chunk stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Set Chunk Size out of range.
    #[error("chunk size {size} refused (1..={max})")]
    ChunkSize {
        /// Requested size.
        size: u32,
        /// Largest allowed.
        max: u32,
    },
    /// A message longer than allowed.
    #[error("message of {size} bytes refused (limit {max})")]
    MessageSize {
        /// Declared length.
        size: u32,
        /// Largest allowed.
        max: u32,
    },
    /// Too many chunk stream IDs.
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    /// A chunk of another message arrived in the middle of a message.
    #[error("chunk stream {csid} interleaved into a message on chunk stream {current}")]
    Interleaved {
        /// The chunk's stream.
        csid: u32,
        /// The stream of the unfinished message.
        current: u32,
    },
    /// A chunk header inconsistent with the message it continues.
    #[error("chunk stream {csid}: {what}")]
    Inconsistent {
        /// The chunk's stream.
        csid: u32,
        /// What is wrong.
        what: &'static str,
    },
    /// A compressed header on a chunk stream that has had no type-0 header.
    #[error("chunk stream {csid} continues a header it never sent")]
    NoPreviousHeader {
        /// The chunk's stream.
        csid: u32,
    },
    /// An AMF0 payload nested too deep.
    #[error("AMF0 payload nested deeper than {MAX_AMF_DEPTH}")]
    AmfTooDeep,
    /// An AMF0 command or data message too large.
    #[error("AMF0 message of {0} bytes refused (limit {MAX_COMMAND_SIZE})")]
    CommandSize(u32),
    /// Too many `createStream` commands.
    #[error("more than {MAX_CREATE_STREAMS} createStream commands")]
    TooManyCreateStreams,
}

/// Header state of one chunk stream (what later compressed headers inherit).
#[derive(Debug, Clone, Copy)]
struct StreamHeader {
    csid: u32,
    timestamp_field: u32,
    length: u32,
    type_id: u8,
}

/// A message whose chunks are arriving.
#[derive(Debug, Clone, Copy)]
struct Partial {
    csid: u32,
    length: u32,
    type_id: u8,
    received: u32,
}

/// The guard: feed it every byte the client sends, in order.
#[derive(Debug)]
pub struct ChunkGuard {
    limits: ChunkLimits,
    handshake_left: usize,
    chunk_size: u32,
    streams: Vec<StreamHeader>,
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current chunk not yet seen.
    payload_left: u32,
    partial: Option<Partial>,
    /// Payload of a message the guard must read (Set Chunk Size, AMF0).
    collected: Vec<u8>,
    /// `createStream` commands seen.
    create_streams: u32,
    failed: Option<GuardError>,
}

impl ChunkGuard {
    /// A guard for a connection that has not started its handshake.
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            limits,
            handshake_left: HANDSHAKE_LEN,
            chunk_size: INITIAL_CHUNK_SIZE,
            streams: Vec::new(),
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            payload_left: 0,
            partial: None,
            collected: Vec::new(),
            create_streams: 0,
            failed: None,
        }
    }

    /// The chunk size the peer has set.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Checks the next bytes from the client. Once it has failed, it fails again.
    pub fn check(&mut self, mut data: &[u8]) -> Result<(), GuardError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let skip = self.handshake_left.min(data.len());
        self.handshake_left -= skip;
        data = &data[skip..];
        while !data.is_empty() {
            let r = if self.payload_left > 0 {
                self.payload(&mut data)
            } else {
                self.header(&mut data)
            };
            if let Err(e) = r {
                self.failed = Some(e.clone());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Takes header bytes; once a header is complete, starts its chunk.
    fn header(&mut self, data: &mut &[u8]) -> Result<(), GuardError> {
        loop {
            let need = self.header_needs()?;
            if self.header_len >= need {
                break;
            }
            let Some((&b, rest)) = data.split_first() else {
                return Ok(());
            };
            self.header[self.header_len] = b;
            self.header_len += 1;
            *data = rest;
        }
        self.header_len = 0;
        self.start_chunk()
    }

    /// How long the header being read is, as far as its bytes so far tell.
    fn header_needs(&self) -> Result<usize, GuardError> {
        let h = &self.header[..self.header_len];
        let Some(&first) = h.first() else {
            return Ok(1);
        };
        let basic = match first & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        if h.len() < basic {
            return Ok(basic);
        }
        let fmt = first >> 6;
        let message_header = [11, 7, 3, 0][usize::from(fmt)];
        let timestamp_field = if fmt < 3 {
            if h.len() < basic + 3 {
                return Ok(basic + message_header);
            }
            u24(&h[basic..])
        } else {
            let csid = csid(h);
            self.stream(csid)
                .ok_or(GuardError::NoPreviousHeader { csid })?
                .timestamp_field
        };
        let extended = if timestamp_field >= EXTENDED_TIMESTAMP {
            4
        } else {
            0
        };
        Ok(basic + message_header + extended)
    }

    fn stream(&self, csid: u32) -> Option<&StreamHeader> {
        self.streams.iter().find(|s| s.csid == csid)
    }

    /// A complete header is in `self.header`: update the stream's state and start its chunk.
    fn start_chunk(&mut self) -> Result<(), GuardError> {
        let h = self.header;
        let fmt = h[0] >> 6;
        let csid = csid(&h);
        let basic = match h[0] & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let m = &h[basic..];
        let index = self.streams.iter().position(|s| s.csid == csid);
        let stream = match (fmt, index) {
            (0, None) => {
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(GuardError::TooManyChunkStreams);
                }
                self.streams.push(StreamHeader {
                    csid,
                    timestamp_field: 0,
                    length: 0,
                    type_id: 0,
                });
                self.streams.len() - 1
            }
            (_, Some(i)) => i,
            (_, None) => return Err(GuardError::NoPreviousHeader { csid }),
        };
        let s = &mut self.streams[stream];
        if fmt < 3 {
            s.timestamp_field = u24(m);
        }
        if fmt < 2 {
            s.length = u24(&m[3..]);
            s.type_id = m[6];
        }
        let (length, type_id) = (s.length, s.type_id);
        if length > self.limits.max_message_size {
            return Err(GuardError::MessageSize {
                size: length,
                max: self.limits.max_message_size,
            });
        }
        let received = match self.partial {
            Some(p) if p.received > 0 => {
                if p.csid != csid {
                    return Err(GuardError::Interleaved {
                        csid,
                        current: p.csid,
                    });
                }
                // rml_rtmp (and its serializer, when told not to compress) may repeat a full
                // header on a continuation chunk: fine if it describes the same message
                if length != p.length || type_id != p.type_id {
                    return Err(GuardError::Inconsistent {
                        csid,
                        what: "the message header changed in the middle of a message",
                    });
                }
                p.received
            }
            _ => 0,
        };
        // rml_rtmp's arithmetic: a message no longer than the chunk size is taken whole. (The
        // chunk size cannot change in the middle of a message: Set Chunk Size is a message of
        // its own, and interleaving is refused above.)
        let chunk = if length > self.chunk_size {
            (length - received).min(self.chunk_size)
        } else {
            length
        };
        debug_assert!(received + chunk <= length, "a chunk past its message's end");
        if received == 0 {
            self.collected.clear();
            if is_amf(type_id) && length as usize > MAX_COMMAND_SIZE {
                return Err(GuardError::CommandSize(length));
            }
        }
        self.partial = Some(Partial {
            csid,
            length,
            type_id,
            received: received + chunk,
        });
        self.payload_left = chunk;
        if chunk == 0 {
            self.message_done()?;
        }
        Ok(())
    }

    /// Skips (or collects) payload bytes of the current chunk.
    fn payload(&mut self, data: &mut &[u8]) -> Result<(), GuardError> {
        let n = (self.payload_left as usize).min(data.len());
        let (bytes, rest) = data.split_at(n);
        *data = rest;
        self.payload_left -= n as u32;
        if let Some(p) = self.partial {
            if is_amf(p.type_id) {
                self.collected.extend_from_slice(bytes);
            } else if p.type_id == 1 {
                // only the first 4 bytes of a Set Chunk Size are read
                let room = 4usize.saturating_sub(self.collected.len());
                self.collected
                    .extend_from_slice(&bytes[..room.min(bytes.len())]);
            }
            if self.payload_left == 0 && p.received == p.length {
                return self.message_done();
            }
        }
        Ok(())
    }

    /// The message in `partial` is complete.
    fn message_done(&mut self) -> Result<(), GuardError> {
        let Some(p) = self.partial.take() else {
            return Ok(());
        };
        match p.type_id {
            1 => {
                // rml_rtmp reads the 32-bit value (and refuses one with the top bit set)
                if let Some(b) = self.collected.get(..4) {
                    let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                    if size == 0 || size > self.limits.max_chunk_size {
                        return Err(GuardError::ChunkSize {
                            size,
                            max: self.limits.max_chunk_size,
                        });
                    }
                    self.chunk_size = size;
                }
            }
            t if is_amf(t) => {
                // type 17 (AMF3 command) is parsed as AMF0 after a leading 0, as rml_rtmp does
                let body = match self.collected.split_first() {
                    Some((0, rest)) if t == 17 => rest,
                    _ => &self.collected[..],
                };
                if amf0_depth(body, MAX_AMF_DEPTH).is_none() {
                    return Err(GuardError::AmfTooDeep);
                }
                if matches!(t, 17 | 20) && body.starts_with(CREATE_STREAM) {
                    self.create_streams += 1;
                    if self.create_streams > MAX_CREATE_STREAMS {
                        return Err(GuardError::TooManyCreateStreams);
                    }
                }
            }
            _ => {}
        }
        self.collected.clear();
        Ok(())
    }
}

/// The first AMF0 value of a `createStream` command: its name as a string.
const CREATE_STREAM: &[u8] = b"\x02\x00\x0ccreateStream";

/// Message types whose payload `rml_rtmp` parses as AMF0: 15 and 18 (data), 17 and 20
/// (commands).
fn is_amf(type_id: u8) -> bool {
    matches!(type_id, 15 | 17 | 18 | 20)
}

fn csid(h: &[u8]) -> u32 {
    match h[0] & 0x3f {
        0 => u32::from(h[1]) + 64,
        1 => u32::from(h[2]) * 256 + u32::from(h[1]) + 64,
        x => u32::from(x),
    }
}

fn u24(b: &[u8]) -> u32 {
    u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])
}

/// The deepest nesting of objects and arrays `rml_amf0` would recurse into when parsing
/// `data` as a sequence of AMF0 values, or `None` if that exceeds `max`. Iterative (it must
/// not itself recurse), and it stops where `rml_amf0` would stop with an error, since that
/// parse goes no deeper.
pub fn amf0_depth(data: &[u8], max: usize) -> Option<usize> {
    /// A container being read.
    enum Frame {
        /// An object or ECMA array: properties until an empty name and the end marker.
        Object,
        /// A strict array with this many values left.
        Array(u32),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut deepest = 0;
    let mut r = Reader(data);
    // Reads one value's marker and body; pushes a frame for a container. `None` is the end of
    // the input or a parse error (the parse ends there), `Some(false)` the end marker.
    let value = |r: &mut Reader, stack: &mut Vec<Frame>| -> Option<bool> {
        let marker = r.u8()?;
        match marker {
            0x09 => return Some(false),
            0x00 => r.skip(8)?, // number
            0x01 => r.skip(1)?, // boolean
            0x05 | 0x06 => {}   // null, undefined
            0x02 => {
                let n = r.u16()?;
                r.skip_upto(usize::from(n)); // rml_amf0 reads what there is
            }
            0x03 => stack.push(Frame::Object),
            0x08 => {
                r.skip(4)?;
                stack.push(Frame::Object);
            }
            0x0a => {
                let n = r.u32()?;
                stack.push(Frame::Array(n));
            }
            _ => return None, // rml_amf0: unknown marker
        }
        Some(true)
    };
    loop {
        deepest = deepest.max(stack.len());
        if deepest > max {
            return None;
        }
        match stack.last_mut() {
            None => match value(&mut r, &mut stack) {
                Some(true) => {}
                _ => return Some(deepest),
            },
            Some(Frame::Array(0)) => {
                stack.pop();
            }
            Some(Frame::Array(left)) => {
                *left -= 1;
                match value(&mut r, &mut stack) {
                    Some(true) => {}
                    // the end marker ends a strict array early in rml_amf0
                    Some(false) => {
                        stack.pop();
                    }
                    None => return Some(deepest),
                }
            }
            Some(Frame::Object) => {
                let Some(label) = r.u16() else {
                    return Some(deepest);
                };
                if label == 0 {
                    match r.u8() {
                        Some(0x09) => {
                            stack.pop();
                        }
                        _ => return Some(deepest),
                    }
                    continue;
                }
                r.skip_upto(usize::from(label));
                match value(&mut r, &mut stack) {
                    Some(true) => {}
                    _ => return Some(deepest),
                }
            }
        }
    }
}

/// A cursor over a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.0.get(..2)?;
        let v = u16::from_be_bytes([b[0], b[1]]);
        self.0 = &self.0[2..];
        Some(v)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.0.get(..4)?;
        let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        self.0 = &self.0[4..];
        Some(v)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }
    fn skip_upto(&mut self, n: usize) {
        self.0 = &self.0[n.min(self.0.len())..];
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
