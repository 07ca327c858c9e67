//! The `webrtc` crate's side of a WHIP session: a receive-only peer connection for H.264 and
//! Opus on one UDP port, its event handler, and an interceptor that hands sender reports to
//! the session (the stack keeps inbound RTCP to itself otherwise).

use super::rtp::RtpPacket;
use super::server::WhipError;
use ferrocast_media::TrackKind;
use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
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
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, Registry, SettingEngineBuilder,
};

/// Events a session's peer connection sends its task. Packets are handed over with
/// `try_send`: a session that falls behind drops packets (counted) rather than queue
/// without bound.
pub(crate) enum PeerEvent {
    /// A track started: its kind, first SSRC, and the handle to send PLIs through.
    Track(TrackKind, u32, Arc<dyn TrackRemote>),
    /// An RTP packet of a track, and when it was read.
    Rtp(TrackKind, RtpPacket, Instant),
    /// A sender report: SSRC, NTP time, RTP time.
    Report(u32, u64, u32),
}

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
        // the stack's own queue to this track is small: read it at once, never blocking
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                match ev {
                    TrackRemoteEvent::OnRtpPacket(p) => {
                        let packet = RtpPacket {
                            seq: p.header.sequence_number,
                            timestamp: p.header.timestamp,
                            marker: p.header.marker,
                            payload: p.payload,
                        };
                        match events.try_send(PeerEvent::Rtp(kind, packet, Instant::now())) {
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

/// Passes every inbound sender report's timing to the session; the packets go on unchanged.
struct ReportTap {
    events: mpsc::Sender<PeerEvent>,
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
        if let Packet::Rtcp(packets) = &msg.message.packet {
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
    let registry = register_default_interceptors(Registry::new(), &mut me)?.with(
        rtc::interceptor::Slot::from(14_000),
        ReportTap {
            events: tx.clone(),
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
