//! Relay: an origin pushes the streams its publishers send to other origins over RTMP, so a
//! redundant pair can be fed by one encoder output.
//!
//! - Every relayed RTMP message is the publisher's own (same bytes, same timestamps, same
//!   order), so the target cuts the same parts and segments as this origin (see the
//!   segmenter's rule).
//! - The publisher's connection only hands each message to a bounded queue per target
//!   ([`RelayFeed::push`], never waits): a slow or dead target costs dropped relay messages,
//!   never ingest latency. After a drop the queue skips to the next video keyframe (sending the
//!   sequence headers again first), so the target never receives a frame whose references it
//!   lacks.
//! - A target that refuses or drops the connection is retried with exponential backoff; each
//!   new connection starts with the sequence headers and then the next keyframe.
//! - Relayed publishes carry `?relay=1` in their stream key; an origin never relays a stream it
//!   receives that way, so origins may list each other without loops.
//!
//! The RTMP client runs on the publisher's ingest worker (tasks spawned where
//! [`Relay::feed`] is called), next to the connection it copies.

use crate::metrics::IngestMetrics;
use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

/// The stream-key parameter that marks a relayed publish.
pub const RELAY_MARK: &str = "relay=1";

/// Relay errors.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A target is not `rtmp://host:port/app`.
    #[error("relay target {0:?} must be rtmp://host[:port]/app")]
    BadTarget(String),
    /// Network trouble.
    #[error("relay connection: {0}")]
    Io(#[from] std::io::Error),
    /// The RTMP exchange failed.
    #[error("relay RTMP session: {0}")]
    Rtmp(String),
    /// The target refused the connection or the publish.
    #[error("relay target refused: {0}")]
    Refused(String),
}

/// One origin to push to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// `host:port`.
    pub authority: String,
    /// RTMP application.
    pub app: String,
}

impl RelayTarget {
    /// Parses `rtmp://host[:port]/app`.
    pub fn parse(url: &str) -> Result<Self, RelayError> {
        let bad = || RelayError::BadTarget(url.to_string());
        let rest = url.strip_prefix("rtmp://").ok_or_else(bad)?;
        let (authority, app) = rest.split_once('/').ok_or_else(bad)?;
        let app = app.trim_end_matches('/');
        if authority.is_empty() || app.is_empty() || app.contains('/') {
            return Err(bad());
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:1935")
        };
        Ok(Self {
            authority,
            app: app.to_string(),
        })
    }

    fn label(&self) -> String {
        format!("{}/{}", self.authority, self.app)
    }
}

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Origins to push to.
    pub targets: Vec<RelayTarget>,
    /// Streams to relay (empty: all).
    pub streams: Vec<String>,
    /// Messages queued per target before the relay drops to the next keyframe.
    pub queue: usize,
    /// First reconnect delay; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Connect + handshake + publish timeout.
    pub connect_timeout: Duration,
}

/// The relay of one origin.
#[derive(Debug, Clone)]
pub struct Relay {
    settings: Arc<RelaySettings>,
    metrics: IngestMetrics,
}

/// What a relayed message is, for resynchronising (decided once per message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// AVC or AAC sequence header.
    Header,
    /// A video frame flagged as a keyframe.
    Key,
    /// Anything else.
    Other,
}

#[derive(Debug, Clone)]
struct Msg {
    video: bool,
    ts: u32,
    data: Bytes,
    kind: Kind,
}

impl Msg {
    /// Classifies the message with the same FLV tag parser the ingest uses (no copy: the
    /// parser returns slices).
    fn new(video: bool, ts: u32, data: Bytes) -> Self {
        use ferrocast_media::flv::{parse_audio, parse_video, AudioTag, VideoTag};
        let kind = if video {
            match parse_video(&data) {
                Ok(VideoTag::AvcSequenceHeader(_)) => Kind::Header,
                Ok(VideoTag::AvcFrame { keyframe: true, .. }) => Kind::Key,
                _ => Kind::Other,
            }
        } else {
            match parse_audio(&data) {
                Ok(AudioTag::AacSequenceHeader(_)) => Kind::Header,
                _ => Kind::Other,
            }
        };
        Self {
            video,
            ts,
            data,
            kind,
        }
    }
}

struct Queue {
    tx: mpsc::Sender<Msg>,
    resync: bool,
    dropped: prometheus::IntCounter,
}

/// One publisher's messages on their way to every target. Dropping it ends the relayed
/// publishes.
pub struct RelayFeed {
    queues: Vec<Queue>,
    headers: [Option<Msg>; 2],
    has_video: bool,
}

impl std::fmt::Debug for RelayFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayFeed")
            .field("targets", &self.queues.len())
            .finish()
    }
}

impl Relay {
    /// A relay (does nothing without targets).
    pub fn new(settings: RelaySettings, metrics: IngestMetrics) -> Self {
        Self {
            settings: Arc::new(settings),
            metrics,
        }
    }

    /// Starts relaying a stream that has just begun publishing (`None` when it is not to be
    /// relayed). Must be called within a tokio runtime: the relay connections run there.
    /// `credential` (the publisher's stream key or token) is passed on, so a target that
    /// checks publishers lets the relay in on the same key.
    pub fn feed(&self, stream: &str, credential: Option<&str>) -> Option<RelayFeed> {
        let s = &self.settings;
        if s.targets.is_empty() || (!s.streams.is_empty() && !s.streams.iter().any(|n| n == stream))
        {
            return None;
        }
        let queues = s
            .targets
            .iter()
            .map(|t| {
                let (tx, rx) = mpsc::channel(s.queue);
                let label = t.label();
                tokio::spawn(push(
                    self.clone(),
                    t.clone(),
                    match credential {
                        Some(c) => format!("{stream}?{RELAY_MARK}&key={c}"),
                        None => format!("{stream}?{RELAY_MARK}"),
                    },
                    rx,
                ));
                Queue {
                    tx,
                    resync: false,
                    dropped: self.metrics.relay_dropped.with_label_values(&[&label]),
                }
            })
            .collect();
        Some(RelayFeed {
            queues,
            headers: [None, None],
            has_video: false,
        })
    }
}

impl RelayFeed {
    /// Hands one of the publisher's audio or video messages to every target (never waits).
    pub fn push(&mut self, video: bool, ts: u32, data: &Bytes) {
        let m = Msg::new(video, ts, data.clone());
        self.has_video |= video;
        if m.kind == Kind::Header {
            self.headers[usize::from(!video)] = Some(m.clone());
        }
        // after a drop: wait for a keyframe (any audio frame for audio-only), then send the
        // sequence headers again before it
        let restart = m.kind == Kind::Key || (!self.has_video && m.kind == Kind::Other);
        for q in &mut self.queues {
            if q.resync {
                if !restart {
                    q.dropped.inc();
                    continue;
                }
                let again: Vec<Msg> = self.headers.iter().flatten().cloned().collect();
                if again.iter().all(|h| q.tx.try_send(h.clone()).is_ok()) {
                    q.resync = false;
                } else {
                    q.dropped.inc();
                    continue;
                }
            }
            match q.tx.try_send(m.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    q.resync = true;
                    q.dropped.inc();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

/// Keeps one target fed until the feed is dropped, reconnecting with backoff.
async fn push(relay: Relay, target: RelayTarget, key: String, mut rx: mpsc::Receiver<Msg>) {
    let s = relay.settings.clone();
    let label = target.label();
    let connected = relay.metrics.relay_connected.with_label_values(&[&label]);
    let reconnects = relay.metrics.relay_reconnects.with_label_values(&[&label]);
    let mut headers: [Option<Msg>; 2] = [None, None];
    let mut has_video = false;
    let mut backoff = s.backoff_min;
    loop {
        let attempt = tokio::time::timeout(s.connect_timeout, Client::publish(&target, &key)).await;
        match attempt {
            Ok(Ok(mut client)) => {
                info!(target = %label, stream = %key.split('?').next().unwrap_or_default(), "relay connected");
                connected.inc();
                backoff = s.backoff_min;
                let r = client.forward(&mut rx, &mut headers, &mut has_video).await;
                connected.dec();
                match r {
                    Ok(()) => {
                        client.close().await;
                        return;
                    }
                    Err(e) => {
                        warn!(target = %label, stream = %key.split('?').next().unwrap_or_default(), error = %e, "relay connection lost")
                    }
                }
            }
            Ok(Err(e)) => {
                warn!(target = %label, stream = %key.split('?').next().unwrap_or_default(), error = %e, "relay connect failed")
            }
            Err(_) => {
                warn!(target = %label, stream = %key.split('?').next().unwrap_or_default(), "relay connect timed out")
            }
        }
        // wait, keeping the queue drained (and the latest sequence headers) meanwhile
        let until = Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                m = rx.recv() => match m {
                    None => return,
                    Some(m) => note(&m, &mut headers, &mut has_video),
                },
            }
        }
        backoff = (backoff * 2).min(s.backoff_max);
        reconnects.inc();
    }
}

fn note(m: &Msg, headers: &mut [Option<Msg>; 2], has_video: &mut bool) {
    *has_video |= m.video;
    if m.kind == Kind::Header {
        headers[usize::from(!m.video)] = Some(m.clone());
    }
}

/// The client side of the RTMP handshake on a fresh connection; returns the bytes the server
/// sent after it (the start of the chunk stream). `buf` is the read buffer.
pub async fn client_handshake(
    socket: &mut TcpStream,
    buf: &mut [u8],
) -> Result<Vec<u8>, RelayError> {
    let mut hs = Handshake::new(PeerType::Client);
    let rtmp = |e: &dyn std::fmt::Debug| RelayError::Rtmp(format!("{e:?}"));
    let c0c1 = hs.generate_outbound_p0_and_p1().map_err(|e| rtmp(&e))?;
    socket.write_all(&c0c1).await?;
    loop {
        let n = socket.read(buf).await?;
        if n == 0 {
            return Err(RelayError::Refused("closed during handshake".into()));
        }
        match hs.process_bytes(&buf[..n]).map_err(|e| rtmp(&e))? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

/// An RTMP publishing client connection.
struct Client {
    socket: TcpStream,
    session: ClientSession,
    buf: Vec<u8>,
}

impl Client {
    async fn publish(target: &RelayTarget, key: &str) -> Result<Client, RelayError> {
        let mut socket = TcpStream::connect(&target.authority).await?;
        socket.set_nodelay(true)?;
        let mut buf = vec![0u8; 16 * 1024];
        let remaining = client_handshake(&mut socket, &mut buf).await?;
        let rtmp = |e: &dyn std::fmt::Debug| RelayError::Rtmp(format!("{e:?}"));
        let mut config = ClientSessionConfig::new();
        config.chunk_size = 4096;
        let (session, initial) = ClientSession::new(config).map_err(|e| rtmp(&e))?;
        let mut c = Client {
            socket,
            session,
            buf,
        };
        let mut events = c.write(initial).await?;
        if !remaining.is_empty() {
            let r = c.session.handle_input(&remaining).map_err(|e| rtmp(&e))?;
            events.extend(c.write(r).await?);
        }
        let r = c
            .session
            .request_connection(target.app.clone())
            .map_err(|e| rtmp(&e))?;
        events.extend(c.write(vec![r]).await?);
        loop {
            for e in std::mem::take(&mut events) {
                match e {
                    ClientSessionEvent::ConnectionRequestAccepted => {
                        let r = c
                            .session
                            .request_publishing(key.to_string(), PublishRequestType::Live)
                            .map_err(|e| rtmp(&e))?;
                        events.extend(c.write(vec![r]).await?);
                    }
                    ClientSessionEvent::PublishRequestAccepted => return Ok(c),
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Err(RelayError::Refused(description))
                    }
                    ClientSessionEvent::UnknownTransactionResultReceived {
                        additional_values,
                        ..
                    } => return Err(RelayError::Refused(format!("{additional_values:?}"))),
                    _ => {}
                }
            }
            events.extend(c.read().await?);
        }
    }

    /// Writes packets; returns the events they carried.
    async fn write(
        &mut self,
        results: Vec<ClientSessionResult>,
    ) -> Result<Vec<ClientSessionEvent>, RelayError> {
        let mut events = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => self.socket.write_all(&p.bytes).await?,
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    async fn read(&mut self) -> Result<Vec<ClientSessionEvent>, RelayError> {
        let n = self.socket.read(&mut self.buf).await?;
        self.answer(n).await
    }

    /// Processes `n` bytes just read into the buffer, writing what the session answers.
    async fn answer(&mut self, n: usize) -> Result<Vec<ClientSessionEvent>, RelayError> {
        if n == 0 {
            return Err(RelayError::Refused("connection closed".into()));
        }
        let r = self
            .session
            .handle_input(&self.buf[..n])
            .map_err(|e| RelayError::Rtmp(format!("{e:?}")))?;
        self.write(r).await
    }

    async fn send(&mut self, m: Msg) -> Result<(), RelayError> {
        let ts = RtmpTimestamp::new(m.ts);
        let r = if m.video {
            self.session.publish_video_data(m.data, ts, false)
        } else {
            self.session.publish_audio_data(m.data, ts, false)
        }
        .map_err(|e| RelayError::Rtmp(format!("{e:?}")))?;
        // one packet per frame: written directly (no list to allocate)
        if let ClientSessionResult::OutboundResponse(p) = r {
            self.socket.write_all(&p.bytes).await?;
        }
        Ok(())
    }

    /// Sends the sequence headers, then every message from the next keyframe on, until the
    /// feed ends (`Ok`) or the connection fails.
    async fn forward(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        headers: &mut [Option<Msg>; 2],
        has_video: &mut bool,
    ) -> Result<(), RelayError> {
        for h in headers.iter().flatten().cloned().collect::<Vec<_>>() {
            self.send(h).await?;
        }
        let mut waiting_for_key = *has_video;
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { return Ok(()) };
                    note(&m, headers, has_video);
                    if waiting_for_key && m.kind == Kind::Key {
                        waiting_for_key = false;
                    }
                    // before the first keyframe only sequence headers go through (audio
                    // too: the target's first segment starts with video anyway)
                    if waiting_for_key && m.kind != Kind::Header {
                        continue;
                    }
                    self.send(m).await?;
                }
                // only the read itself races the queue (it is cancel-safe); the answer to
                // what was read is written in full, never cut off by a message arriving
                n = self.socket.read(&mut self.buf) => { self.answer(n?).await?; }
            }
        }
    }

    async fn close(mut self) {
        let _ = self.socket.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            RelayTarget::parse("rtmp://10.0.0.2/live").unwrap(),
            RelayTarget {
                authority: "10.0.0.2:1935".into(),
                app: "live".into()
            }
        );
        assert_eq!(
            RelayTarget::parse("rtmp://b.example:1937/live/")
                .unwrap()
                .authority,
            "b.example:1937"
        );
        for bad in ["http://x/live", "rtmp://x", "rtmp:///live", "rtmp://x/a/b"] {
            assert!(RelayTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn message_kinds() {
        let m = |video, b: &'static [u8]| Msg::new(video, 0, Bytes::from_static(b)).kind;
        // AVC sequence header (record bytes need not be valid to be classified)
        assert_eq!(m(true, &[0x17, 0, 0, 0, 0, 1, 0x42]), Kind::Header);
        assert_eq!(m(true, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]), Kind::Key);
        assert_eq!(m(true, &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]), Kind::Other);
        assert_eq!(m(false, &[0xaf, 0, 0x11, 0x90]), Kind::Header);
        assert_eq!(m(false, &[0xaf, 1, 0x21]), Kind::Other);
        assert_eq!(m(true, &[]), Kind::Other);
    }

    /// A target that cannot keep up costs dropped relay messages, never a blocked publisher,
    /// and the queue restarts at a keyframe with the sequence headers in front.
    #[tokio::test]
    async fn a_full_queue_drops_to_the_next_keyframe() {
        let (tx, mut rx) = mpsc::channel(16);
        let metrics = IngestMetrics::unregistered();
        let mut feed = RelayFeed {
            queues: vec![Queue {
                tx,
                resync: false,
                dropped: metrics.relay_dropped.with_label_values(&["t"]),
            }],
            headers: [None, None],
            has_video: false,
        };
        let v = |b0: u8, b1: u8| Bytes::from(vec![b0, b1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
        feed.push(true, 0, &v(0x17, 0));
        feed.push(false, 0, &Bytes::from_static(&[0xaf, 0, 0x11, 0x90]));
        for ts in 0..40 {
            feed.push(true, ts, &v(if ts == 0 { 0x17 } else { 0x27 }, 1));
        }
        assert!(feed.queues[0].resync);
        let queued: Vec<Msg> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(queued.len(), 16);
        feed.push(true, 50, &v(0x27, 1)); // still waiting for a keyframe
        feed.push(true, 60, &v(0x17, 1));
        let resumed: Vec<Msg> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(resumed.len(), 3, "headers then the keyframe");
        assert_eq!(resumed[0].kind, Kind::Header);
        assert_eq!(resumed[1].kind, Kind::Header);
        assert_eq!((resumed[2].kind, resumed[2].ts), (Kind::Key, 60));
        assert_eq!(
            metrics.relay_dropped.with_label_values(&["t"]).get(),
            42 - 16 + 1
        );
    }
}
