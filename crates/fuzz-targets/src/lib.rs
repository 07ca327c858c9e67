//! The fuzz targets: one function per parser of untrusted bytes, each driving the same code a
//! connection or request drives. `fuzz/` runs them under libFuzzer (`scripts/fuzz.sh`);
//! `tests/corpus.rs` replays their corpora on stable Rust in every test run.
//!
//! A panic is a finding, except inside `rml_rtmp`, which the RTMP server runs under
//! `catch_unwind` (it drops the connection): those are [`contained`] here too, so the fuzzer
//! looks for what containment cannot catch (aborts, stack overflows, hangs, unbounded memory)
//! and for panics in our own code.

use bytes::Bytes;
use ferrocast_auth::jwt::{Jwt, JwtConfig, Purpose};
use ferrocast_auth::playback::{bearer_token, query_token, split_path_token};
use ferrocast_auth::signed::UrlSigner;
use ferrocast_ingest::rtmp::guard::{amf0_depth, ChunkGuard, ChunkLimits, MAX_AMF_DEPTH};
use ferrocast_ingest::rtmp::session::{RmlSession, RtmpEvent, RtmpSession};
use ferrocast_ingest::to_unit::{deliver, FlvToUnits, Output};
use ferrocast_media::aac::AacConfig;
use ferrocast_media::avc::{contains_idr, nal_units, parse_sps, AvcConfig};
use ferrocast_media::{flv, TrackKind};
use ferrocast_packager::blocking::Directives;
use ferrocast_packager::metrics::PackagerMetrics;
use ferrocast_packager::stream::{Stream, StreamSettings};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus directory and fuzz binary have.
pub const TARGETS: &[(&str, Target)] = &[
    ("rtmp_handshake", rtmp_handshake),
    ("rtmp_session", rtmp_session),
    ("amf0", amf0),
    ("flv_tags", flv_tags),
    ("avc_config", avc_config),
    ("aac_config", aac_config),
    ("hls_request", hls_request),
    ("playback_token", playback_token),
    ("whip_sdp", whip_sdp),
    ("whip_rtp", whip_rtp),
];

/// Limits small enough for the fuzzer to reach them.
const LIMITS: ChunkLimits = ChunkLimits {
    max_chunk_size: 65536,
    max_message_size: 1 << 20,
};

thread_local! {
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` the way the server runs `rml_rtmp`: a panic is caught (and not reported).
pub fn contained<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    CONTAINED.with(|c| c.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(false));
    r.ok()
}

/// Splits `data` into reads: the first byte picks their size, so the fuzzer explores every
/// boundary.
fn reads(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (size, rest) = match data.split_first() {
        Some((&b, rest)) => (1 + usize::from(b) * 61 % 4096, rest),
        None => (1, data),
    };
    rest.chunks(size)
}

/// A publisher's bytes from the first handshake byte: the guard (uncontained: a panic there is
/// ours), then the session.
pub fn rtmp_handshake(data: &[u8]) {
    let mut guard = ChunkGuard::new(LIMITS);
    let mut session = RmlSession::new(LIMITS);
    let (mut out, mut events) = (Vec::new(), Vec::new());
    for read in reads(data) {
        if guard.check(read).is_err() {
            return;
        }
        match contained(|| session.handle_input(read, &mut out, &mut events)) {
            Some(Ok(())) => {}
            _ => return,
        }
        out.clear();
        events.clear();
    }
}

/// A complete handshake (`rml_rtmp` does not check C2 against S1): C0, C1, C2.
fn handshake() -> Vec<u8> {
    let mut h = vec![3u8];
    h.resize(1 + 1536 * 2, 0);
    h
}

/// A publisher's chunk stream after the handshake, connect and publish (accepted), through
/// the whole ingest path: the guard, the session, FLV tags to media units, and the packager
/// (segmenter, CMAF, playlists) with a clock that advances with the input.
pub fn rtmp_session(data: &[u8]) {
    rtmp_session_units(data);
}

/// [`rtmp_session`], returning how many media units reached the packager (to check that the
/// seeds reach it).
pub fn rtmp_session_units(data: &[u8]) -> usize {
    let mut guard = ChunkGuard::new(LIMITS);
    let mut session = RmlSession::new(LIMITS);
    let (mut out, mut events) = (Vec::new(), Vec::new());
    let hs = handshake();
    if guard.check(&hs).is_err()
        || !matches!(
            contained(|| session.handle_input(&hs, &mut out, &mut events)),
            Some(Ok(()))
        )
    {
        panic!("the handshake every publisher starts with was refused");
    }
    // connect and publish, accepted: the fuzz input is the chunk stream that follows
    static PUBLISH: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let rounds = PUBLISH.get_or_init(|| publisher_wire(&[]).0);
    let mut publish = Publish::new();
    for read in rounds.iter().map(|r| &r[..]).chain(reads(data)) {
        if guard.check(read).is_err() {
            break;
        }
        if !matches!(
            contained(|| session.handle_input(read, &mut out, &mut events)),
            Some(Ok(()))
        ) {
            break;
        }
        let mut pending: Vec<RtmpEvent> = std::mem::take(&mut events);
        let mut alive = true;
        while alive && !pending.is_empty() {
            for ev in std::mem::take(&mut pending) {
                match ev {
                    RtmpEvent::Connect { request_id, .. }
                    | RtmpEvent::Publish { request_id, .. } => {
                        alive = matches!(
                            contained(|| session.accept(request_id, &mut out, &mut pending)),
                            Some(Ok(()))
                        );
                    }
                    RtmpEvent::Video { timestamp, data } => {
                        alive = publish.media(true, timestamp, &data)
                    }
                    RtmpEvent::Audio { timestamp, data } => {
                        alive = publish.media(false, timestamp, &data)
                    }
                    RtmpEvent::PublishFinished | RtmpEvent::Play { .. } => alive = false,
                }
                if !alive {
                    break;
                }
            }
        }
        if !alive {
            break;
        }
        out.clear();
    }
    publish.finish()
}

/// The packager side of a publish, driven as the RTMP server drives it ([`deliver`]).
struct Publish {
    converter: FlvToUnits,
    stream: Stream,
    generation: u64,
    outputs: Vec<Output>,
    start: Instant,
    now: Instant,
    units: usize,
}

impl Publish {
    fn new() -> Self {
        let stream = Stream::new(
            "fuzz",
            StreamSettings::default(),
            PackagerMetrics::unregistered(),
        );
        let generation = stream.claim().expect("a new stream is free");
        let now = Instant::now();
        Self {
            converter: FlvToUnits::new(),
            stream,
            generation,
            outputs: Vec::new(),
            start: now,
            now,
            units: 0,
        }
    }

    /// One media message; false ends the publish (as the server drops the publisher).
    fn media(&mut self, video: bool, timestamp: u32, data: &Bytes) -> bool {
        let r = if video {
            self.converter.video(timestamp, data, &mut self.outputs)
        } else {
            self.converter.audio(timestamp, data, &mut self.outputs)
        };
        if r.is_err() {
            return false;
        }
        // the clock follows the publisher's timestamps (a publisher in real time)
        let media_time = self.start + Duration::from_millis(u64::from(timestamp));
        self.now = self.now.max(media_time);
        let wall_us = 1_700_000_000_000_000 + i64::from(timestamp) * 1000;
        let units = &mut self.units;
        match deliver(
            &self.stream,
            self.generation,
            self.outputs.drain(..),
            self.now,
            wall_us,
            |_| *units += 1,
        ) {
            Ok(g) => self.generation = g,
            Err(_) => return false,
        }
        self.stream.tick(self.now);
        true
    }

    /// The publisher leaves: flush, then read what a viewer would. Returns the units pushed.
    fn finish(self) -> usize {
        self.stream.end_publish();
        self.stream.tick(self.now + Duration::from_secs(60));
        for kind in [TrackKind::Video, TrackKind::Audio] {
            if let Some(view) = self.stream.rendition(kind).borrow().as_ref() {
                let _ = view.playlist();
            }
        }
        let _ = self.stream.multivariant();
        self.units
    }
}

/// AMF0 command and data payloads: the guard's depth scan, then `rml_amf0` on what it lets
/// through (which must not overflow the stack).
pub fn amf0(data: &[u8]) {
    if amf0_depth(data, MAX_AMF_DEPTH).is_some() {
        let mut cursor = std::io::Cursor::new(data);
        let _ = contained(|| rml_rtmp::rml_amf0::deserialize(&mut cursor));
    }
}

/// An FLV file's tags (legacy and Enhanced RTMP video headers, AAC audio) through the tag
/// parsers and the converter the RTMP server uses.
pub fn flv_tags(data: &[u8]) {
    let file = Bytes::copy_from_slice(data);
    let Ok(tags) = flv::read_file(&file) else {
        return;
    };
    let mut converter = FlvToUnits::new();
    let mut out = Vec::new();
    for tag in tags {
        let r = match tag.kind {
            flv::FlvTagKind::Video => {
                let _ = flv::parse_video(&tag.body);
                converter.video(tag.timestamp, &tag.body, &mut out)
            }
            flv::FlvTagKind::Audio => {
                let _ = flv::parse_audio(&tag.body);
                converter.audio(tag.timestamp, &tag.body, &mut out)
            }
            _ => Ok(()),
        };
        if r.is_err() {
            return;
        }
        out.clear();
    }
}

/// An AVC decoder configuration record, an SPS, and a length-prefixed sample.
pub fn avc_config(data: &[u8]) {
    if let Ok(c) = AvcConfig::parse(Bytes::copy_from_slice(data)) {
        let _ = c.codec_string();
    }
    let _ = parse_sps(data);
    for size in [1, 2, 4] {
        let _ = nal_units(data, size).count();
        let _ = contains_idr(data, size);
    }
}

/// An AAC AudioSpecificConfig.
pub fn aac_config(data: &[u8]) {
    if let Ok(c) = AacConfig::parse(Bytes::copy_from_slice(data)) {
        let _ = c.codec_string();
    }
}

/// A request target (path and query) and an `Authorization` value, as every HTTP listener
/// reads them: the token split off the path, the route, the LL-HLS directives.
pub fn hls_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (target, authorization) = text.split_once('\n').unwrap_or((&text, ""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, _token) = split_path_token(path);
    let _ = ferrocast_edge::route::parse(&path);
    let _ = Directives::parse(query);
    let _ = query_token(query);
    let _ = bearer_token(authorization);
}

/// A playback token and the path it is presented for: signed URL tokens and JWTs.
pub fn playback_token(data: &[u8]) {
    static KEYS: OnceLock<(UrlSigner, Jwt)> = OnceLock::new();
    let (signer, jwt) = KEYS.get_or_init(|| {
        let secret = b"fuzzing-secret-fuzzing-secret-32".to_vec();
        let signer = UrlSigner::new(&secret).expect("a 32-byte secret");
        let jwt = Jwt::new(&JwtConfig {
            hs256_secret: secret,
            rs256_public_key_pem: Vec::new(),
            audience: String::new(),
            leeway: Duration::from_secs(5),
        })
        .expect("an HS256 secret");
        (signer, jwt)
    });
    let text = String::from_utf8_lossy(data);
    let (token, path) = text
        .split_once('\n')
        .unwrap_or((&text, "/live/a/index.m3u8"));
    let ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let _ = signer.verify(token, path, 1_800_000_000, ip);
    let _ = signer.verify(token, path, 1_800_000_000, None);
    let _ = jwt.verify(token, "a", Purpose::Play);
    let _ = jwt.verify(token, "a", Purpose::Publish);
}

/// What an `rml_rtmp` client sends after the handshake to publish stream `cam`, answered by
/// our server session in memory: the bytes up to the publish being accepted, in the rounds
/// the client sends them (each waits for the server's answer to the one before), and then the
/// media messages `tags` (video?, timestamp, FLV tag body).
pub fn publisher_wire(tags: &[(bool, u32, Bytes)]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut server = RmlSession::default();
    let (mut out, mut events) = (Vec::new(), Vec::new());
    let mut hs = vec![3u8];
    hs.resize(1 + 1536 * 2, 0);
    server
        .handle_input(&hs, &mut out, &mut events)
        .expect("handshake");
    // S0, S1, S2 go to a client that has done its handshake; what follows is the session's
    out.drain(..1 + 1536 * 2);
    let (mut client, initial) =
        ClientSession::new(ClientSessionConfig::new()).expect("client session");
    let mut rounds = Vec::new();
    let mut to_server = Vec::new();
    let take = |results: Vec<ClientSessionResult>, to_server: &mut Vec<u8>| {
        let mut raised = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => to_server.extend_from_slice(&p.bytes),
                ClientSessionResult::RaisedEvent(e) => raised.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        raised
    };
    take(initial, &mut to_server);
    let r = client
        .request_connection("live".into())
        .expect("connect request");
    take(vec![r], &mut to_server);
    let mut published = false;
    for _ in 0..20 {
        rounds.push(to_server.clone());
        server
            .handle_input(&std::mem::take(&mut to_server), &mut out, &mut events)
            .expect("server input");
        while let Some(ev) = events.pop() {
            if let RtmpEvent::Connect { request_id, .. } | RtmpEvent::Publish { request_id, .. } =
                ev
            {
                server
                    .accept(request_id, &mut out, &mut events)
                    .expect("accept");
            }
        }
        let results = client
            .handle_input(&std::mem::take(&mut out))
            .expect("client input");
        for e in take(results, &mut to_server) {
            match e {
                ClientSessionEvent::ConnectionRequestAccepted => {
                    let r = client
                        .request_publishing("cam".into(), PublishRequestType::Live)
                        .expect("publish request");
                    take(vec![r], &mut to_server);
                }
                ClientSessionEvent::PublishRequestAccepted => published = true,
                _ => {}
            }
        }
        if published {
            break;
        }
    }
    assert!(published, "the in-memory publish was not accepted");
    let metadata = StreamMetadata::new();
    let r = client.publish_metadata(&metadata).expect("metadata");
    take(vec![r], &mut to_server);
    for (video, timestamp, body) in tags {
        let ts = RtmpTimestamp::new(*timestamp);
        let r = if *video {
            client.publish_video_data(body.clone(), ts, false)
        } else {
            client.publish_audio_data(body.clone(), ts, false)
        }
        .expect("media message");
        take(vec![r], &mut to_server);
    }
    (rounds, to_server)
}

/// A WHIP offer body: the checks before a peer connection is built, and the candidate rewrite
/// an answer goes through.
pub fn whip_sdp(data: &[u8]) {
    let _ = ferrocast_ingest::whip::sdp::check_offer(data);
    let text = String::from_utf8_lossy(data);
    let _ = ferrocast_ingest::whip::peer::rewrite_candidates(
        &text,
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from([203, 0, 113, 9]),
    );
}

/// What a WHIP publisher's RTP and RTCP can make of the conversion: records of
/// `[flags][seq u16][timestamp u32][length u16][payload]` (flags: bit 0 video, bit 1 marker,
/// bit 2 a sender report for that track instead of a packet (NTP time = the next 8 bytes),
/// bit 3: 100 ms pass first), all big-endian, into one converter for H.264 + Opus.
pub fn whip_rtp(data: &[u8]) {
    use ferrocast_ingest::whip::convert::WhipToUnits;
    use ferrocast_ingest::whip::rtp::RtpPacket;
    use ferrocast_media::TrackKind;
    let mut c = WhipToUnits::new(
        true,
        Some(ferrocast_media::opus::OpusConfig::webrtc(2).expect("2 channels")),
    );
    let t0 = std::time::Instant::now();
    let mut now = t0;
    let mut out = Vec::new();
    let mut pos = 0;
    let data = Bytes::copy_from_slice(data);
    while pos + 9 <= data.len() {
        let flags = data[pos];
        let seq = u16::from_be_bytes([data[pos + 1], data[pos + 2]]);
        let ts = u32::from_be_bytes([data[pos + 3], data[pos + 4], data[pos + 5], data[pos + 6]]);
        let len = usize::from(u16::from_be_bytes([data[pos + 7], data[pos + 8]]));
        pos += 9;
        let end = (pos + len).min(data.len());
        let payload = data.slice(pos..end);
        pos = end;
        let kind = if flags & 1 != 0 {
            TrackKind::Video
        } else {
            TrackKind::Audio
        };
        if flags & 8 != 0 {
            now += std::time::Duration::from_millis(100);
            c.tick(now, &mut out);
        }
        if flags & 4 != 0 {
            let ntp = payload
                .get(..8)
                .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
            c.sender_report(kind, ntp, ts);
            continue;
        }
        let packet = RtpPacket {
            seq,
            timestamp: ts,
            marker: flags & 2 != 0,
            payload,
        };
        c.rtp(kind, packet, now, &mut out);
        out.clear();
    }
    c.tick(now + std::time::Duration::from_secs(10), &mut out);
}
