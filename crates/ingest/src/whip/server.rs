//! WHIP sessions (RFC 9725 §4.2): a publish request builds a peer connection on a port of
//! the configured range and answers; the session task then feeds the stream until the
//! publisher leaves (DELETE, ICE/DTLS failure, silence, or a kick), and the stream waits out
//! the reconnect grace like an RTMP stream's.

use super::convert::{Stats, WhipToUnits};
use super::peer::{self, Peer, PeerEvent};
use super::sdp::{check_offer, SdpError};
use crate::metrics::WhipMetrics;
use crate::rtmp::server::{valid_stream_name, RtmpServer};
use crate::to_unit::{deliver, Output};
use ferrocast_auth::publish::PublishRequest;
use ferrocast_auth::AuthError;
use ferrocast_media::opus::OpusConfig;
use ferrocast_media::TrackKind;
use ferrocast_packager::stream::status::PublisherInfo;
use ferrocast_packager::stream::Stream;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::RTCPeerConnectionState;

/// WHIP settings.
#[derive(Debug, Clone)]
pub struct WhipSettings {
    /// The address the sessions' UDP sockets bind to and advertise as their host candidate.
    pub ip: IpAddr,
    /// The address publishers reach `ip` at, when a NAT maps it 1:1 (advertised instead).
    pub public_ip: Option<IpAddr>,
    /// UDP ports the sessions use, one each (inclusive): at most this many sessions at once.
    pub ports: (u16, u16),
    /// A keyframe is requested at least this often (browsers send one only when asked), so
    /// segments can be cut near their target duration.
    pub keyframe_interval: Duration,
    /// ICE and DTLS must complete within this after the answer.
    pub connect_timeout: Duration,
    /// A publisher that sends no RTP for this long is dropped.
    pub idle_timeout: Duration,
}

impl Default for WhipSettings {
    fn default() -> Self {
        Self {
            ip: IpAddr::from([127, 0, 0, 1]),
            public_ip: None,
            ports: (20_000, 20_099),
            keyframe_interval: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a WHIP request was refused; [`WhipError::status`] is its HTTP status.
#[derive(Debug, Error)]
pub enum WhipError {
    /// Not a valid stream name.
    #[error("invalid stream name")]
    BadName,
    /// The offer was refused.
    #[error("{0}")]
    Offer(#[from] SdpError),
    /// Publish auth refused.
    #[error("publish not authorized: {0}")]
    Unauthorized(AuthError),
    /// `max_publishers` reached.
    #[error("the server has reached its publisher limit")]
    Full,
    /// Every port of the range is in use.
    #[error("no WebRTC port free")]
    NoPort,
    /// The stream is live already.
    #[error("stream is already being published")]
    Live,
    /// The stream has ended and not yet been removed.
    #[error("stream has just ended; publish again in a moment")]
    Ended,
    /// The WebRTC stack refused the offer.
    #[error("WebRTC negotiation failed: {0}")]
    Failed(String),
    /// The WebRTC stack failed on this side.
    #[error("WebRTC setup failed: {0}")]
    Internal(String),
    /// No such session.
    #[error("no such WHIP session")]
    NoSession,
}

impl WhipError {
    /// The HTTP status for the refusal.
    pub fn status(&self) -> u16 {
        match self {
            WhipError::BadName | WhipError::Offer(SdpError::Malformed(_)) => 400,
            WhipError::Offer(SdpError::TooLarge) => 413,
            WhipError::Offer(_) => 422,
            WhipError::Unauthorized(AuthError::Missing) => 401,
            WhipError::Unauthorized(_) => 403,
            WhipError::Full | WhipError::NoPort => 503,
            WhipError::Live | WhipError::Ended => 409,
            WhipError::Failed(_) => 400,
            WhipError::Internal(_) => 500,
            WhipError::NoSession => 404,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            WhipError::BadName | WhipError::Offer(SdpError::Malformed(_)) => "bad_request",
            WhipError::Offer(_) => "unsupported",
            WhipError::Unauthorized(_) => "unauthorized",
            WhipError::Full => "max_publishers",
            WhipError::NoPort => "no_port",
            WhipError::Live | WhipError::Ended => "already_publishing",
            WhipError::Failed(_) | WhipError::Internal(_) | WhipError::NoSession => "failed",
        }
    }
}

/// A created session: its resource id and the SDP answer.
#[derive(Debug)]
pub struct Created {
    /// The session's id (the last segment of its `Location`).
    pub id: String,
    /// The SDP answer.
    pub answer: String,
}

struct SessionEntry {
    stream: String,
    stop: CancellationToken,
    /// Cancelled once the session has released the stream and its place.
    ended: CancellationToken,
}

/// The WHIP side of the ingest: shares the RTMP server's store, publish auth, publisher
/// limit and stream lifecycle.
pub struct WhipServer {
    settings: WhipSettings,
    ingest: Arc<RtmpServer>,
    metrics: WhipMetrics,
    sessions: parking_lot::Mutex<HashMap<String, SessionEntry>>,
    next_port: AtomicU32,
    random: ring::rand::SystemRandom,
    /// The server's shutdown: every session ends.
    shutdown: CancellationToken,
}

impl std::fmt::Debug for WhipServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhipServer")
            .field("settings", &self.settings)
            .field("sessions", &self.sessions.lock().len())
            .finish()
    }
}

impl WhipServer {
    /// A WHIP server publishing through `ingest`, whose sessions end on `shutdown`.
    pub fn new(
        settings: WhipSettings,
        ingest: Arc<RtmpServer>,
        metrics: WhipMetrics,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            settings,
            ingest,
            metrics,
            sessions: parking_lot::Mutex::new(HashMap::new()),
            next_port: AtomicU32::new(0),
            random: ring::rand::SystemRandom::new(),
            shutdown,
        })
    }

    /// Sessions now.
    pub fn sessions(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Handles `POST /live/{stream}/whip`: checks the offer, the credential and the limits,
    /// claims the stream, and answers.
    pub async fn publish(
        self: &Arc<Self>,
        stream: &str,
        credential: Option<&str>,
        client: SocketAddr,
        offer: &[u8],
    ) -> Result<Created, WhipError> {
        // in a task of its own: a request cancelled midway (the client went away) still
        // completes its session, or releases what it took
        let (this, name) = (self.clone(), stream.to_string());
        let (credential, offer) = (credential.map(str::to_string), offer.to_vec());
        let r = tokio::spawn(async move {
            this.try_publish(&name, credential.as_deref(), client, &offer)
                .await
        })
        .await
        .unwrap_or_else(|e| Err(WhipError::Internal(format!("publish task: {e}"))));
        if let Err(e) = &r {
            self.metrics.rejected.with_label_values(&[e.reason()]).inc();
            warn!(stream, %client, error = %e, "WHIP publish refused");
        }
        r
    }

    async fn try_publish(
        self: &Arc<Self>,
        name: &str,
        credential: Option<&str>,
        client: SocketAddr,
        offer: &[u8],
    ) -> Result<Created, WhipError> {
        if !valid_stream_name(name) {
            return Err(WhipError::BadName);
        }
        let offered = check_offer(offer)?;
        self.ingest
            .auth
            .check(PublishRequest {
                protocol: "whip",
                stream: name,
                credential,
                client,
            })
            .await
            .map_err(WhipError::Unauthorized)?;
        if !self.ingest.reserve_publisher() {
            return Err(WhipError::Full);
        }
        let stream = self.ingest.store.get_or_create(name);
        let generation = match stream.claim() {
            Ok(g) => g,
            Err(e) => {
                self.ingest.release_publisher();
                return Err(match e {
                    ferrocast_packager::stream::PublishError::Ended => WhipError::Ended,
                    _ => WhipError::Live,
                });
            }
        };
        // from here on the place and the claim are released by `end` on every path
        let built = self.connect(offer, offered.video, offered.audio).await;
        let (peer, answer) = match built {
            Ok(x) => x,
            Err(e) => {
                self.ingest.release_publisher();
                self.ingest.end_publish(stream, generation);
                return Err(e);
            }
        };
        let id = self.session_id();
        let stop = self.shutdown.child_token();
        let ended = CancellationToken::new();
        self.sessions.lock().insert(
            id.clone(),
            SessionEntry {
                stream: name.to_string(),
                stop: stop.clone(),
                ended: ended.clone(),
            },
        );
        let kick = Arc::new(tokio::sync::Notify::new());
        stream.set_publisher(PublisherInfo {
            protocol: "whip",
            addr: client,
            since: (
                Instant::now(),
                ferrocast_packager::stream::status::unix_ms(),
            ),
            kick: kick.clone(),
        });
        self.metrics.sessions.inc();
        self.ingest.metrics.publishers.inc();
        info!(stream = name, %client, session = %id, "WHIP publish started");
        let opus = offered
            .audio
            .then(|| OpusConfig::webrtc(2).expect("2 channels are valid"));
        let session = Session {
            server: self.clone(),
            id: id.clone(),
            stream,
            generation,
            converter: WhipToUnits::new(offered.video, opus),
            reported: Stats::default(),
            video: None,
            ssrcs: HashMap::new(),
            last_pli: None,
            last_media: None,
            outputs: Vec::new(),
            ended,
            overflow: (peer.overflow.clone(), 0),
            window: crate::bitrate::BitrateWindow::new(Instant::now()),
            counters: self.metrics.session(),
        };
        tokio::spawn(
            session
                .run(peer, stop, kick)
                .instrument(tracing::info_span!("whip", stream = name, session = %id)),
        );
        Ok(Created { id, answer })
    }

    /// Builds the peer connection on a free port of the range and answers the offer.
    async fn connect(
        &self,
        offer: &[u8],
        video: bool,
        audio: bool,
    ) -> Result<(Peer, String), WhipError> {
        let (lo, hi) = self.settings.ports;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let timeouts = (
            self.settings.connect_timeout / 2,
            self.settings.connect_timeout,
        );
        let mut peer = None;
        for _ in 0..span {
            let port = lo + (self.next_port.fetch_add(1, Ordering::Relaxed) % span) as u16;
            match peer::build(
                SocketAddr::new(self.settings.ip, port),
                video,
                audio,
                timeouts,
            )
            .await
            {
                Ok(p) => {
                    peer = Some(p);
                    break;
                }
                Err(e) => debug!(port, error = %e, "WHIP port unavailable"),
            }
        }
        let peer = peer.ok_or(WhipError::NoPort)?;
        let offer = String::from_utf8_lossy(offer).into_owned();
        match peer.answer(offer, Duration::from_secs(5)).await {
            Ok(answer) => {
                let answer = match self.settings.public_ip {
                    Some(public) => peer::rewrite_candidates(&answer, self.settings.ip, public),
                    None => answer,
                };
                Ok((peer, answer))
            }
            Err(e) => {
                let _ = peer.pc.close().await;
                Err(e)
            }
        }
    }

    fn session_id(&self) -> String {
        let mut b = [0u8; 16];
        ring::rand::SecureRandom::fill(&self.random, &mut b).expect("system random");
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Handles `DELETE /live/{stream}/whip/{id}`: ends the session, and returns once the
    /// stream is free for the next publish (or after 5 s).
    pub async fn delete(&self, stream: &str, id: &str) -> Result<(), WhipError> {
        let ended = {
            let sessions = self.sessions.lock();
            match sessions.get(id) {
                Some(s) if s.stream == stream => {
                    s.stop.cancel();
                    s.ended.clone()
                }
                _ => return Err(WhipError::NoSession),
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), ended.cancelled()).await;
        Ok(())
    }

    /// Whether a session exists (for PATCH answers).
    pub fn exists(&self, stream: &str, id: &str) -> bool {
        self.sessions
            .lock()
            .get(id)
            .is_some_and(|s| s.stream == stream)
    }
}

/// The shortest interval between two keyframe requests after a loss.
const PLI_MIN_INTERVAL: Duration = Duration::from_millis(500);
/// How often the session's timers run (gaps given up, keyframe requests, timeouts, metrics).
const TICK: Duration = Duration::from_millis(50);

struct Session {
    server: Arc<WhipServer>,
    id: String,
    stream: Arc<Stream>,
    generation: u64,
    converter: WhipToUnits,
    reported: Stats,
    video: Option<(Arc<dyn TrackRemote>, u32)>,
    ssrcs: HashMap<u32, TrackKind>,
    last_pli: Option<Instant>,
    /// When media last went into the stream.
    last_media: Option<Instant>,
    outputs: Vec<Output>,
    ended: CancellationToken,
    /// Packets the peer connection dropped because this session fell behind, and how many
    /// of them are counted already.
    overflow: (Arc<std::sync::atomic::AtomicU64>, u64),
    /// RTP payload bytes in the bitrate limit's current window.
    window: crate::bitrate::BitrateWindow,
    counters: crate::metrics::WhipSessionCounters,
}

impl Session {
    async fn run(
        mut self,
        mut peer: Peer,
        stop: CancellationToken,
        kick: Arc<tokio::sync::Notify>,
    ) {
        let started = Instant::now();
        let settings = self.server.settings.clone();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut connected: Option<Instant> = None;
        let why = loop {
            tokio::select! {
                ev = peer.events.recv() => match ev {
                    Some(ev) => {
                        if let Err(e) = self.event(ev).await {
                            break e;
                        }
                    }
                    None => break "peer connection gone".to_string(),
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    self.converter.tick(now, &mut self.outputs);
                    self.count_drops();
                    if let Err(e) = self.deliver(now) {
                        break e;
                    }
                    match connected {
                        None if now - started > settings.connect_timeout => {
                            break "ICE/DTLS did not connect in time".to_string();
                        }
                        // decodable media, not just packets: a video track that never yields
                        // a keyframe does not hold the stream
                        Some(at) if self.last_media.unwrap_or(at) + settings.idle_timeout < now => {
                            break "no decodable media: timed out".to_string();
                        }
                        _ => {}
                    }
                    self.keyframe_request(now, settings.keyframe_interval).await;
                }
                r = peer.state.changed() => {
                    let state = *peer.state.borrow_and_update();
                    match (r, state) {
                        (Err(_), _) => break "peer connection gone".to_string(),
                        (_, RTCPeerConnectionState::Connected) => {
                            connected.get_or_insert_with(Instant::now);
                            debug!("WebRTC connected");
                        }
                        (_, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => {
                            break format!("WebRTC {state}");
                        }
                        (_, RTCPeerConnectionState::Disconnected) => {
                            debug!("WebRTC disconnected: waiting for it to come back or fail");
                        }
                        _ => {}
                    }
                }
                _ = stop.cancelled() => break "ended by the publisher (DELETE)".to_string(),
                _ = kick.notified() => break "kicked".to_string(),
            }
        };
        self.count_drops();
        info!(reason = %why, "WHIP publish ended");
        let _ = peer.pc.close().await;
        self.end();
    }

    async fn event(&mut self, ev: PeerEvent) -> Result<(), String> {
        match ev {
            PeerEvent::Track(kind, ssrc, track) => {
                debug!(track = kind.as_str(), ssrc, "track started");
                self.ssrcs.insert(ssrc, kind);
                if kind == TrackKind::Video {
                    self.video = Some((track, ssrc));
                    self.last_pli = None; // ask for a keyframe at once
                }
                Ok(())
            }
            PeerEvent::Report(ssrc, ntp, rtp) => {
                if let Some(kind) = self.ssrcs.get(&ssrc) {
                    self.converter.sender_report(*kind, ntp, rtp);
                }
                Ok(())
            }
            PeerEvent::Rtp(kind, p, at) => {
                let n = p.payload.len() as u64;
                let slot = usize::from(kind == TrackKind::Audio);
                self.counters.packets[slot].inc();
                self.counters.bytes[slot].inc_by(n);
                // the same limit as RTMP publishers', on RTP payload bytes
                let limits = self.server.ingest.limits.load();
                if let Err(e) = self
                    .window
                    .add(n, at, limits.max_bitrate, limits.bitrate_window)
                {
                    let ingest = &self.server.ingest.metrics;
                    ingest.errors.with_label_values(&["bitrate"]).inc();
                    return Err(format!("over the bitrate limit: {e}"));
                }
                self.converter.rtp(kind, p, at, &mut self.outputs);
                self.deliver(at)
            }
        }
    }

    /// Adds what was lost and dropped since the last call to the metrics (on each tick, not
    /// per packet).
    fn count_drops(&mut self) {
        let (s, was, c) = (self.converter.stats, self.reported, &self.counters);
        for i in 0..2 {
            c.lost[i].inc_by(s.packets_lost[i] - was.packets_lost[i]);
        }
        c.dropped[0].inc_by(s.frames_dropped_loss - was.frames_dropped_loss);
        c.dropped[1].inc_by(s.frames_dropped_malformed - was.frames_dropped_malformed);
        self.reported = s;
        let overflow = self.overflow.0.load(Ordering::Relaxed);
        c.dropped[2].inc_by(overflow - self.overflow.1);
        self.overflow.1 = overflow;
    }

    fn deliver(&mut self, arrival: Instant) -> Result<(), String> {
        if self.outputs.is_empty() {
            return Ok(());
        }
        self.last_media = Some(arrival);
        let wall_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        self.generation = deliver(
            &self.stream,
            self.generation,
            self.outputs.drain(..),
            arrival,
            wall_us,
            |_| {},
        )
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Asks for a keyframe (PLI) when the converter waits for one (at most every 500 ms) and
    /// at least every `interval`.
    async fn keyframe_request(&mut self, now: Instant, interval: Duration) {
        let Some((track, ssrc)) = &self.video else {
            return;
        };
        let since = self.last_pli.map(|t| now - t);
        let due = match since {
            None => true,
            Some(d) => d >= interval || (self.converter.needs_keyframe() && d >= PLI_MIN_INTERVAL),
        };
        if !due {
            return;
        }
        self.last_pli = Some(now);
        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: *ssrc,
        };
        match track.write_rtcp(vec![Box::new(pli)]).await {
            Ok(()) => self.server.metrics.plis.inc(),
            Err(e) => debug!(error = %e, "PLI not sent"),
        }
    }

    fn end(self) {
        let server = &self.server;
        server.sessions.lock().remove(&self.id);
        server.metrics.sessions.dec();
        server.ingest.metrics.publishers.dec();
        server.ingest.release_publisher();
        server.ingest.end_publish(self.stream, self.generation);
        self.ended.cancel();
    }
}
