//! The `webrtc` crate's side of a WHIP session: a receive-only peer connection for H.264 and
//! Opus on one UDP port, its event handler, and an interceptor that hands sender reports to
//! the session (the stack keeps inbound RTCP to itself otherwise) and notes when each RTP
//! packet came off the socket (the stack hands packets to the track without that time).

use super::rtp::RtpPacket;
use super::server::WhipError;
use ferrocast_media::TrackKind;
use rtc::interceptor::{Interceptor, NackGeneratorBuilder, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, Registry,
    SettingEngineBuilder,
};

/// Events a session's peer connection sends its task. Packets are handed over with
/// `try_send`: a session that falls behind drops packets (counted) rather than queue
/// without bound.
pub(crate) enum PeerEvent {
    /// A track started: its kind, first SSRC, and the handle to send PLIs through.
    Track(TrackKind, u32, Arc<dyn TrackRemote>),
    /// An RTP packet of a track, and when it was read off the socket.
    Rtp(TrackKind, RtpPacket, Instant),
    /// A sender report: SSRC, NTP time, RTP time.
    Report(u32, u64, u32),
}

/// How often lost packets are asked for again (NACK), and how many times each at most.
const NACK_INTERVAL: Duration = Duration::from_millis(25);
const NACKS_PER_PACKET: u16 = 5;

/// Events queued per session at most.
pub(crate) const EVENT_QUEUE: usize = 2048;

/// A built peer connection and what it reports.
pub(crate) struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    pub events: mpsc::Receiver<PeerEvent>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    /// Packets dropped because the session's queue was full.
    pub overflow: Arc<std::sync::atomic::AtomicU64>,
    gathered: Arc<Notify>,
}

struct Handler {
    events: mpsc::Sender<PeerEvent>,
    state: watch::Sender<RTCPeerConnectionState>,
    gathered: Arc<Notify>,
    overflow: Arc<std::sync::atomic::AtomicU64>,
    arrivals: Arc<Arrivals>,
}

/// Remembers when recent RTP packets were read off the socket, per SSRC, so the session can
/// time a packet from the wire rather than from when its track was polled. Bounded: a ring
/// per SSRC for at most [`ARRIVAL_SSRCS`] SSRCs; a packet not found (overwritten, or from a
/// further SSRC) is timed when it is polled.
#[derive(Default)]
pub(crate) struct Arrivals {
    rings: parking_lot::Mutex<Vec<(u32, Ring)>>,
}

/// Sequence number and socket time by `seq % ARRIVAL_RING`.
type Ring = Box<[Option<(u16, Instant)>]>;

/// Packets remembered per SSRC: far more than the stack holds between the socket and a track.
const ARRIVAL_RING: usize = 1024;
/// SSRCs remembered (a WHIP session has one video and one audio stream, RTX aside).
const ARRIVAL_SSRCS: usize = 4;

impl Arrivals {
    fn record(&self, ssrc: u32, seq: u16, at: Instant) {
        let mut rings = self.rings.lock();
        let ring = match rings.iter().position(|(s, _)| *s == ssrc) {
            Some(i) => &mut rings[i].1,
            None if rings.len() < ARRIVAL_SSRCS => {
                rings.push((ssrc, vec![None; ARRIVAL_RING].into_boxed_slice()));
                &mut rings.last_mut().expect("just pushed").1
            }
            None => return,
        };
        ring[usize::from(seq) % ARRIVAL_RING] = Some((seq, at));
    }

    /// When packet `seq` of `ssrc` was read off the socket, if it is still remembered.
    fn get(&self, ssrc: u32, seq: u16) -> Option<Instant> {
        let rings = self.rings.lock();
        let (_, ring) = rings.iter().find(|(s, _)| *s == ssrc)?;
        match ring[usize::from(seq) % ARRIVAL_RING] {
            Some((s, at)) if s == seq => Some(at),
            _ => None,
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = match track.kind().await {
            RtpCodecKind::Video => TrackKind::Video,
            RtpCodecKind::Audio => TrackKind::Audio,
            _ => return,
        };
        let Some(ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        if self
            .events
            .send(PeerEvent::Track(kind, ssrc, track.clone()))
            .await
            .is_err()
        {
            return; // the session is gone
        }
        let events = self.events.clone();
        let overflow = self.overflow.clone();
        let arrivals = self.arrivals.clone();
        // the stack's own queue to this track is small: read it at once, never blocking
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                match ev {
                    TrackRemoteEvent::OnRtpPacket(p) => {
                        let at = arrivals
                            .get(p.header.ssrc, p.header.sequence_number)
                            .unwrap_or_else(Instant::now);
                        let packet = RtpPacket {
                            seq: p.header.sequence_number,
                            timestamp: p.header.timestamp,
                            marker: p.header.marker,
                            payload: p.payload,
                        };
                        match events.try_send(PeerEvent::Rtp(kind, packet, at)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                overflow.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}

/// Passes every inbound sender report's timing to the session and notes every inbound RTP
/// packet's socket time; the packets go on unchanged.
struct ReportTap {
    events: mpsc::Sender<PeerEvent>,
    arrivals: Arc<Arrivals>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for ReportTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(p) = &msg.message.packet {
            self.arrivals
                .record(p.header.ssrc, p.header.sequence_number, msg.now);
        } else if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                    let _ =
                        self.events
                            .try_send(PeerEvent::Report(sr.ssrc, sr.ntp_time, sr.rtp_time));
                }
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for ReportTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// The H.264 profiles answered (all in packetization mode 1), and Opus.
fn media_engine() -> Result<MediaEngine, webrtc::error::Error> {
    let mut me = MediaEngine::default();
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.into(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                rtcp_feedback: vec![],
            },
            payload_type: 111,
        },
        RtpCodecKind::Audio,
    )?;
    for (pt, profile) in [
        (102u8, "42e01f"),
        (104, "42001f"),
        (106, "4d001f"),
        (108, "64001f"),
    ] {
        me.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_H264.into(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: format!(
                        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"
                    ),
                    rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
                },
                payload_type: pt,
            },
            RtpCodecKind::Video,
        )?;
    }
    Ok(me)
}

/// Builds a receive-only peer connection on `addr` (one UDP socket) for the offered kinds.
pub(crate) async fn build(
    addr: SocketAddr,
    video: bool,
    audio: bool,
    ice_timeouts: (Duration, Duration),
) -> Result<Peer, webrtc::error::Error> {
    let mut me = media_engine()?;
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let arrivals = Arc::new(Arrivals::default());
    // The stack's defaults, less the NACK responder (nothing is sent) and with NACKs asked
    // sooner than its 100 ms cycle: a lost packet is waited for `REORDER_WAIT`, so the
    // request must leave early enough for the retransmission to arrive within it.
    let registry = Registry::new().with(
        Slot::NackGenerator,
        NackGeneratorBuilder::new()
            .with_interval(NACK_INTERVAL)
            .with_max_nacks_per_packet(NACKS_PER_PACKET)
            .build(),
    );
    let registry = configure_twcc_receiver_only(registry, &mut me)?;
    let registry = configure_rtcp_reports(registry).with(
        Slot::from(14_000),
        ReportTap {
            events: tx.clone(),
            arrivals: arrivals.clone(),
            read: VecDeque::new(),
            write: VecDeque::new(),
        },
    );
    let se = SettingEngineBuilder::new()
        .with_lite(true)
        .with_ice_timeouts(
            Some(ice_timeouts.0),
            Some(ice_timeouts.1),
            Some(Duration::from_secs(2)),
        )
        .build();
    let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
    let gathered = Arc::new(Notify::new());
    let overflow = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let handler = Arc::new(Handler {
        events: tx,
        state: state_tx,
        gathered: gathered.clone(),
        overflow: overflow.clone(),
        arrivals,
    });
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .with_setting_engine(se)
        .with_handler(handler)
        .with_udp_addrs(vec![addr])
        .build()
        .await?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    for (wanted, kind) in [(audio, RtpCodecKind::Audio), (video, RtpCodecKind::Video)] {
        if wanted {
            let added = pc
                .add_transceiver_from_kind(
                    kind,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        ..Default::default()
                    }),
                )
                .await;
            if let Err(e) = added {
                let _ = pc.close().await; // frees its socket and driver
                return Err(e);
            }
        }
    }
    Ok(Peer {
        pc,
        events: rx,
        state: state_rx,
        overflow,
        gathered,
    })
}

impl Peer {
    /// Applies the offer and returns the answer with every local candidate (ICE-lite, no
    /// trickle), within `timeout`.
    pub(crate) async fn answer(
        &self,
        offer: String,
        timeout: Duration,
    ) -> Result<String, WhipError> {
        let refused = |e: webrtc::error::Error| WhipError::Failed(e.to_string());
        let internal = |e: webrtc::error::Error| WhipError::Internal(e.to_string());
        let offer =
            webrtc::peer_connection::RTCSessionDescription::offer(offer).map_err(refused)?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(refused)?;
        let answer = self.pc.create_answer(None).await.map_err(refused)?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(internal)?;
        tokio::time::timeout(timeout, self.gathered.notified())
            .await
            .map_err(|_| WhipError::Internal("ICE gathering did not complete".into()))?;
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| WhipError::Internal("no local description".into()))
    }
}

/// Rewrites the address of the host candidates (and connection lines) from `local` to
/// `public`: the address a publisher behind NAT must send to (the stack does not apply its
/// own NAT 1:1 setting).
pub fn rewrite_candidates(sdp: &str, local: std::net::IpAddr, public: std::net::IpAddr) -> String {
    let local = local.to_string();
    let public = public.to_string();
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let end = &line[body.len()..];
        if body.starts_with("a=candidate:") {
            let mut f: Vec<&str> = body.split(' ').collect();
            if f.get(4) == Some(&local.as_str()) {
                f[4] = &public;
            }
            out.push_str(&f.join(" "));
        } else if let Some(addr) = body
            .strip_prefix("c=IN IP4 ")
            .or_else(|| body.strip_prefix("c=IN IP6 "))
        {
            if addr == local {
                let v = if public.contains(':') { "IP6" } else { "IP4" };
                out.push_str(&format!("c=IN {v} {public}"));
            } else {
                out.push_str(body);
            }
        } else {
            out.push_str(body);
        }
        out.push_str(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_remember_recent_packets_per_ssrc() {
        let a = Arrivals::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        a.record(1, 65_535, t0);
        a.record(2, 65_535, t0 + ms(1));
        assert_eq!(a.get(1, 65_535), Some(t0));
        assert_eq!(a.get(2, 65_535), Some(t0 + ms(1)));
        assert_eq!(a.get(1, 0), None);
        // a ring's slot is taken by the packet ARRIVAL_RING numbers later (across the wrap)
        a.record(1, 65_535u16.wrapping_add(ARRIVAL_RING as u16), t0 + ms(2));
        assert_eq!(a.get(1, 65_535), None);
        assert_eq!(a.get(1, ARRIVAL_RING as u16 - 1), Some(t0 + ms(2)));
        // at most ARRIVAL_SSRCS streams are remembered
        for ssrc in 3..10 {
            a.record(ssrc, 7, t0);
        }
        assert_eq!(a.get(ARRIVAL_SSRCS as u32, 7), Some(t0));
        assert_eq!(a.get(ARRIVAL_SSRCS as u32 + 1, 7), None);
    }

    #[test]
    fn candidates_get_the_public_address() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.5\r\na=candidate:1 1 udp 2130706431 10.0.0.5 20000 typ host\r\na=candidate:2 1 udp 2130706431 10.0.0.6 20000 typ host\r\na=mid:0\r\n";
        let out = rewrite_candidates(
            sdp,
            "10.0.0.5".parse().unwrap(),
            "203.0.113.9".parse().unwrap(),
        );
        assert_eq!(
            out,
            "v=0\r\nc=IN IP4 203.0.113.9\r\na=candidate:1 1 udp 2130706431 203.0.113.9 20000 typ host\r\na=candidate:2 1 udp 2130706431 10.0.0.6 20000 typ host\r\na=mid:0\r\n"
        );
    }
}
