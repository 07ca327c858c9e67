//! A WHIP publisher for tests, on the `webrtc` crate (its own offerer side): H.264 and Opus
//! from the fixtures extracted from `sample-h264-opus.mkv`, packetized here (single NAL units,
//! STAP-A for the parameter sets, FU-A for large NAL units) and sent in real time, with
//! optional loss and reordering at the RTP level, or loss on the wire that the `webrtc`
//! stack's NACK responder can repair.
#![allow(dead_code)]

use bytes::Bytes;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry,
};

pub const H264: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/whip-h264.h264");
pub const OPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/whip-opus.ogg");
/// The same 3 s re-encoded in the High profile (8x8 transforms, CABAC), no B-frames.
pub const H264_HIGH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/whip-h264-high.h264"
);

/// How a test publisher is set up.
#[derive(Debug, Clone)]
pub struct Options {
    pub video: bool,
    pub audio: bool,
    /// The Annex B fixture sent as video.
    pub h264: &'static str,
    /// The `profile-level-id` offered.
    pub profile: &'static str,
    /// Every `n`-th video sequence number loses its first transmission on the wire (below the
    /// stack's NACK responder, which still holds the packet and can resend it).
    pub wire_loss: Option<u16>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            video: true,
            audio: true,
            h264: H264,
            profile: "42e01f",
            wire_loss: None,
        }
    }
}

/// What the wire loss did: first transmissions dropped, retransmissions let through.
#[derive(Debug, Default)]
pub struct WireCounts {
    pub dropped: AtomicU64,
    pub resent: AtomicU64,
}

/// An H.264 access unit of the fixture: its NAL units (without start codes).
#[derive(Debug, Clone)]
pub struct Frame {
    pub nals: Vec<Bytes>,
    pub idr: bool,
}

impl Frame {
    /// The AVCC form the server must store (4-byte lengths, no parameter sets).
    pub fn avcc(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for n in &self.nals {
            if matches!(n[0] & 0x1f, 7..=9) {
                continue;
            }
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }
}

/// The access units of the default fixture.
pub fn h264_frames() -> Vec<Frame> {
    h264_frames_of(H264)
}

/// Splits an Annex B stream into access units (one slice per picture, as x264 writes them).
pub fn h264_frames_of(path: &str) -> Vec<Frame> {
    let data = std::fs::read(path).expect("fixture");
    let mut nals = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= data.len() {
        let sc3 = data[i..].starts_with(&[0, 0, 1]);
        if sc3 {
            if let Some(s) = start {
                let mut end = i;
                while end > s && data[end - 1] == 0 {
                    end -= 1;
                }
                nals.push(Bytes::copy_from_slice(&data[s..end]));
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        nals.push(Bytes::copy_from_slice(&data[s..]));
    }
    let mut frames: Vec<Frame> = Vec::new();
    let mut cur = Frame {
        nals: Vec::new(),
        idr: false,
    };
    let mut has_slice = false;
    for n in nals {
        let t = n[0] & 0x1f;
        let slice = t == 1 || t == 5;
        if has_slice && (slice || matches!(t, 6 | 7 | 9)) {
            frames.push(std::mem::replace(
                &mut cur,
                Frame {
                    nals: Vec::new(),
                    idr: false,
                },
            ));
            has_slice = false;
        }
        cur.idr |= t == 5;
        has_slice |= slice;
        cur.nals.push(n);
    }
    if has_slice {
        frames.push(cur);
    }
    frames
}

/// The Opus packets of the Ogg fixture (after OpusHead and OpusTags).
pub fn opus_packets() -> Vec<Bytes> {
    let data = std::fs::read(OPUS).expect("fixture");
    let mut packets = Vec::new();
    let mut cur = Vec::new();
    let mut pos = 0;
    while pos + 27 <= data.len() {
        assert_eq!(&data[pos..pos + 4], b"OggS");
        let nseg = data[pos + 26] as usize;
        let table = &data[pos + 27..pos + 27 + nseg];
        let mut body = pos + 27 + nseg;
        for &lace in table {
            cur.extend_from_slice(&data[body..body + lace as usize]);
            body += lace as usize;
            if lace < 255 {
                packets.push(Bytes::from(std::mem::take(&mut cur)));
            }
        }
        pos = body;
    }
    packets.drain(..2); // OpusHead, OpusTags
    packets
}

/// RTP payloads of one frame: parameter sets in a STAP-A, other NAL units whole up to
/// 1,100 bytes, FU-A above.
pub fn packetize(f: &Frame) -> Vec<Bytes> {
    let mut out = Vec::new();
    let ps: Vec<&Bytes> = f
        .nals
        .iter()
        .filter(|n| matches!(n[0] & 0x1f, 7 | 8))
        .collect();
    if !ps.is_empty() {
        let mut stap = vec![0x78u8];
        for n in &ps {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        out.push(Bytes::from(stap));
    }
    for n in f.nals.iter().filter(|n| !matches!(n[0] & 0x1f, 7..=9)) {
        if n.len() <= 1100 {
            out.push(n.clone());
            continue;
        }
        let (h, body) = (n[0], &n[1..]);
        let chunks: Vec<&[u8]> = body.chunks(1100).collect();
        for (i, c) in chunks.iter().enumerate() {
            let mut fu = vec![(h & 0xe0) | 28, h & 0x1f];
            if i == 0 {
                fu[1] |= 0x80;
            }
            if i == chunks.len() - 1 {
                fu[1] |= 0x40;
            }
            fu.extend_from_slice(c);
            out.push(Bytes::from(fu));
        }
    }
    out
}

/// An interceptor that shows every packet to `see` (`true`: inbound) and passes on those it
/// keeps; the client counts PLIs and loses packets on the wire with it.
struct Tap<F> {
    see: F,
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
}

fn tap<F: FnMut(bool, &rtc::interceptor::TaggedPacket) -> bool>(see: F) -> Tap<F> {
    Tap {
        see,
        read: Default::default(),
        write: Default::default(),
    }
}

impl<F: FnMut(bool, &rtc::interceptor::TaggedPacket) -> bool>
    rtc::sansio::Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()>
    for Tap<F>
{
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        if (self.see)(true, &msg) {
            self.read.push_back(msg);
        }
        Ok(())
    }
    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        if (self.see)(false, &msg) {
            self.write.push_back(msg);
        }
        Ok(())
    }
    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl<F: FnMut(bool, &rtc::interceptor::TaggedPacket) -> bool + Send + Sync>
    rtc::interceptor::Interceptor for Tap<F>
{
    fn bind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
}

struct Handler {
    gathered: tokio::sync::mpsc::Sender<()>,
    state: tokio::sync::watch::Sender<RTCPeerConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }
}

/// A connected WHIP publisher.
pub struct WhipClient {
    pub pc: Arc<dyn PeerConnection>,
    pub video: Option<Arc<TrackLocalStaticRTP>>,
    pub audio: Option<Arc<TrackLocalStaticRTP>>,
    pub location: String,
    pub state: tokio::sync::watch::Receiver<RTCPeerConnectionState>,
    /// Keyframe requests (PLI) received from the server.
    pub plis: Arc<AtomicU64>,
    /// Bytes of filler data (a NAL unit of type 12, which decoders skip) added to every video
    /// frame, to send at a higher bitrate than the fixture's.
    pub pad: usize,
    /// The video fixture.
    pub h264: &'static str,
    /// What the wire loss did, when there is one.
    pub wire: Option<Arc<WireCounts>>,
    vseq: u16,
    aseq: u16,
}

const VSSRC: u32 = 0x1111_2222;
const ASSRC: u32 = 0x3333_4444;
const VPT: u8 = 102;
const APT: u8 = 111;

/// The offer the client would send, and the peer connection it came from.
pub async fn offer(video: bool, audio: bool) -> (WhipClient, String) {
    offer_with(Options {
        video,
        audio,
        ..Options::default()
    })
    .await
}

/// [`offer`] with all the options.
pub async fn offer_with(o: Options) -> (WhipClient, String) {
    let Options {
        video,
        audio,
        h264: fixture,
        profile,
        wire_loss,
    } = o;
    let mut me = MediaEngine::default();
    let h264 = RTCRtpCodec {
        mime_type: MIME_TYPE_H264.into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"
        ),
        rtcp_feedback: vec![],
    };
    let opus = RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.into(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    };
    use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: h264.clone(),
            payload_type: VPT,
        },
        RtpCodecKind::Video,
    )
    .unwrap();
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus.clone(),
            payload_type: APT,
        },
        RtpCodecKind::Audio,
    )
    .unwrap();
    let plis = Arc::new(AtomicU64::new(0));
    let registry = register_default_interceptors(Registry::new(), &mut me)
        .unwrap()
        .with(rtc::interceptor::Slot::from(14_000), {
            // counts the keyframe requests (PLI) the server sends
            let plis = plis.clone();
            tap(move |inbound, msg| {
                if let (true, rtc::interceptor::Packet::Rtcp(ps)) = (inbound, &msg.message.packet) {
                    let n = ps
                        .iter()
                        .filter(|p| p.as_any().is::<PictureLossIndication>())
                        .count();
                    plis.fetch_add(n as u64, Ordering::Relaxed);
                }
                true
            })
        });
    let wire = wire_loss.map(|_| Arc::new(WireCounts::default()));
    let registry = match (wire_loss, &wire) {
        (Some(every), Some(counts)) => registry.with(rtc::interceptor::Slot::from(500), {
            // wire-most, below the NACK responder: the first transmission of every
            // `every`-th video sequence number is lost, a retransmission of it goes out
            let counts = counts.clone();
            let mut seen = std::collections::HashSet::new();
            tap(move |inbound, msg| match &msg.message.packet {
                rtc::interceptor::Packet::Rtp(p)
                    if !inbound
                        && p.header.ssrc == VSSRC
                        && p.header.sequence_number % every == every / 2 =>
                {
                    let first = seen.insert(p.header.sequence_number);
                    let n = if first {
                        &counts.dropped
                    } else {
                        &counts.resent
                    };
                    n.fetch_add(1, Ordering::Relaxed);
                    !first
                }
                _ => true,
            })
        }),
        _ => registry,
    };
    let (gtx, mut grx) = tokio::sync::mpsc::channel(1);
    let (stx, srx) = tokio::sync::watch::channel(RTCPeerConnectionState::New);
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            gathered: gtx,
            state: stx,
        }))
        .with_udp_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
        .build()
        .await
        .expect("client peer connection");
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    let track = |kind, ssrc, codec: &RTCRtpCodec| {
        Arc::new(TrackLocalStaticRTP::new(
            rtc::media_stream::MediaStreamTrack::new(
                "ferrocast-test".into(),
                format!("{kind}"),
                format!("{kind}"),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codec.clone(),
                    ..Default::default()
                }],
            ),
        ))
    };
    let mut client = WhipClient {
        pc: pc.clone(),
        video: None,
        audio: None,
        location: String::new(),
        state: srx,
        plis: plis.clone(),
        pad: 0,
        h264: fixture,
        wire,
        // both wrap during a test
        vseq: 65_000,
        aseq: 65_400,
    };
    if audio {
        let t = track(RtpCodecKind::Audio, ASSRC, &opus);
        pc.add_track(t.clone() as Arc<dyn TrackLocal>)
            .await
            .unwrap();
        client.audio = Some(t);
    }
    if video {
        let t = track(RtpCodecKind::Video, VSSRC, &h264);
        pc.add_track(t.clone() as Arc<dyn TrackLocal>)
            .await
            .unwrap();
        client.video = Some(t);
    }
    let o = pc.create_offer(None).await.unwrap();
    pc.set_local_description(o).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), grx.recv())
        .await
        .expect("gathering completes");
    let sdp = pc.local_description().await.unwrap().sdp;
    (client, sdp)
}

/// POSTs `body` as an offer; returns (status, headers, body).
pub async fn post(
    http: SocketAddr,
    path: &str,
    content_type: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, http::HeaderMap, String) {
    let tcp = tokio::net::TcpStream::connect(http).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", http.to_string())
        .header("content-type", content_type);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = sender
        .send_request(
            req.body(http_body_util::Full::new(Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

impl WhipClient {
    /// Publishes to `/live/{stream}/whip` and waits until WebRTC is connected.
    pub async fn publish(http: SocketAddr, stream: &str, token: Option<&str>) -> WhipClient {
        Self::publish_with(http, stream, token, Options::default()).await
    }

    /// [`WhipClient::publish`] with all the options.
    pub async fn publish_with(
        http: SocketAddr,
        stream: &str,
        token: Option<&str>,
        o: Options,
    ) -> WhipClient {
        let (mut c, sdp) = offer_with(o).await;
        let (status, headers, body) = post(
            http,
            &format!("/live/{stream}/whip"),
            "application/sdp",
            token,
            &sdp,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        c.connect(&headers, body).await;
        c
    }

    /// Applies a 201 answer and waits until WebRTC is connected.
    pub async fn connect(&mut self, headers: &http::HeaderMap, answer: String) {
        assert_eq!(headers["content-type"], "application/sdp");
        self.location = headers["location"].to_str().unwrap().to_string();
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer).unwrap())
            .await
            .unwrap();
        let mut st = self.state.clone();
        tokio::time::timeout(Duration::from_secs(10), async {
            while *st.borrow_and_update() != RTCPeerConnectionState::Connected {
                st.changed().await.unwrap();
            }
        })
        .await
        .expect("WebRTC connects");
    }

    async fn send(&mut self, video: bool, ts: u32, marker: bool, payload: Bytes) {
        let (track, seq, ssrc, pt) = if video {
            (self.video.as_ref(), &mut self.vseq, VSSRC, VPT)
        } else {
            (self.audio.as_ref(), &mut self.aseq, ASSRC, APT)
        };
        let Some(track) = track else { return };
        let p = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker,
                payload_type: pt,
                sequence_number: *seq,
                timestamp: ts,
                ssrc,
                ..Default::default()
            },
            payload,
        };
        *seq = seq.wrapping_add(1);
        let _ = track.write_rtp(p).await;
    }

    /// Sends the fixtures `loops` times in real time. `lose(video, index)` says whether the
    /// index-th RTP packet of that track is dropped (its sequence number is still used);
    /// `swap(index)` whether the index-th video packet goes out after the next one.
    pub async fn stream(
        &mut self,
        loops: u32,
        lose: impl Fn(bool, u64) -> bool,
        swap: impl Fn(u64) -> bool,
    ) -> Vec<Frame> {
        let frames = h264_frames_of(self.h264);
        let packets = opus_packets();
        let start = tokio::time::Instant::now();
        let (mut vi, mut ai) = (0u64, 0u64);
        let mut sent = Vec::new();
        let base_v = 0u32.wrapping_sub(270_000); // wraps after 90 frames
        let base_a = 77_000u32;
        let (nv, na) = (frames.len() as u32, packets.len() as u32);
        let mut a_next = 0u32;
        for k in 0..loops * nv {
            let f = &frames[(k % nv) as usize];
            let due = start + Duration::from_micros(u64::from(k) * 1_000_000 / 30);
            tokio::time::sleep_until(due).await; // real-time pacing of media, not a wait
                                                 // audio up to this frame's time
            while u64::from(a_next) * 20_000 <= u64::from(k) * 1_000_000 / 30 && a_next < loops * na
            {
                let p = packets[(a_next % na) as usize].clone();
                let ts = base_a.wrapping_add(a_next * 960);
                if !lose(false, ai) {
                    self.send(false, ts, false, p).await;
                } else {
                    self.aseq = self.aseq.wrapping_add(1);
                }
                ai += 1;
                a_next += 1;
            }
            let ts = base_v.wrapping_add(k * 3000);
            let payloads = if self.pad > 0 {
                let mut padded = f.clone();
                let mut filler = vec![0x0cu8];
                filler.resize(1 + self.pad, 0xff);
                filler.push(0x80);
                padded.nals.push(Bytes::from(filler));
                packetize(&padded)
            } else {
                packetize(f)
            };
            let n = payloads.len();
            let mut held: Option<(bool, Bytes, u16)> = None;
            for (i, pl) in payloads.into_iter().enumerate() {
                let marker = i + 1 == n;
                let dropped = lose(true, vi);
                let swapped = swap(vi) && !marker && held.is_none();
                vi += 1;
                if dropped {
                    self.vseq = self.vseq.wrapping_add(1);
                    continue;
                }
                if swapped {
                    held = Some((marker, pl, self.vseq));
                    self.vseq = self.vseq.wrapping_add(1);
                    continue;
                }
                self.send(true, ts, marker, pl).await;
                if let Some((m, p, seq)) = held.take() {
                    let now = self.vseq;
                    self.vseq = seq;
                    self.send(true, ts, m, p).await;
                    self.vseq = now;
                }
            }
            sent.push(f.clone());
        }
        sent
    }

    pub async fn close(self) {
        let _ = self.pc.close().await;
    }
}
