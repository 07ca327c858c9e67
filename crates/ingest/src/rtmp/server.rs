//! The RTMP server: one task per connection that shuttles bytes between the socket and the
//! [`RtmpSession`], and media into the packager's store.

use super::guard::ChunkLimits;
use super::session::{RmlSession, RtmpError, RtmpEvent, RtmpSession};
use crate::bitrate::BitrateWindow;
use crate::metrics::IngestMetrics;
use crate::relay::{Relay, RelayFeed, RELAY_MARK};
use crate::to_unit::{deliver, FlvToUnits, Output};
use ferrocast_auth::admission::{Admission, Slot};
use ferrocast_auth::publish::{rtmp_credential, PublishAuth, PublishRequest};
use ferrocast_auth::AuthError;
use ferrocast_packager::store::Store;
use ferrocast_packager::stream::status::PublisherInfo;
use ferrocast_packager::stream::Stream;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// RTMP server settings.
#[derive(Debug, Clone)]
pub struct RtmpSettings {
    /// Application name publishers must use (`rtmp://host/APP/stream`).
    pub app: String,
    /// How long a stream waits for its publisher to come back before it ends.
    pub reconnect_grace: Duration,
    /// How long an ended stream stays downloadable before it is removed.
    pub linger: Duration,
    /// Handshake + connect + publish must complete within this.
    pub handshake_timeout: Duration,
    /// A publisher that sends nothing for this long is dropped.
    pub idle_timeout: Duration,
    /// Shortest interval between two reads of a publishing connection (0 = read at once).
    pub read_interval: Duration,
    /// Worker threads (each a single-threaded runtime) running connections.
    pub workers: usize,
}

/// Limits on publishers. Changed limits apply to connections accepted and publishes begun from
/// then on, and a lowered bitrate limit also to publishers already on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtmpLimits {
    /// Publishers at once (0: no limit).
    pub max_publishers: usize,
    /// Highest bitrate a publisher may send, bits/s averaged over `bitrate_window` (0: none).
    pub max_bitrate: u64,
    /// The window the bitrate is measured over.
    pub bitrate_window: Duration,
    /// RTMP connections open at once from one address (0: no limit).
    pub max_connections_per_ip: usize,
    /// Largest chunk size and message a publisher may send.
    pub chunk_limits: ChunkLimits,
}

impl Default for RtmpSettings {
    fn default() -> Self {
        Self {
            app: "live".into(),
            reconnect_grace: Duration::from_secs(10),
            linger: Duration::from_secs(40),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            read_interval: Duration::from_millis(40),
            workers: 1,
        }
    }
}

impl Default for RtmpLimits {
    fn default() -> Self {
        Self {
            max_publishers: 0,
            max_bitrate: 0,
            bitrate_window: Duration::from_secs(10),
            max_connections_per_ip: 0,
            chunk_limits: ChunkLimits::default(),
        }
    }
}

/// Shared state of the server.
#[derive(Debug)]
pub struct RtmpServer {
    pub(crate) settings: RtmpSettings,
    pub(crate) limits: arc_swap::ArcSwap<RtmpLimits>,
    pub(crate) store: Arc<Store>,
    pub(crate) metrics: IngestMetrics,
    relay: Option<Relay>,
    pub(crate) auth: PublishAuth,
    admission: Arc<Admission>,
    /// Publishers now, RTMP and WHIP (for `max_publishers`).
    publishing: AtomicUsize,
}

/// Stream names: 1–128 characters of `[A-Za-z0-9_.-]`, not starting with a dot.
pub fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl RtmpServer {
    /// Reserves a publisher place (RTMP and WHIP share `max_publishers`); false when full.
    pub(crate) fn reserve_publisher(&self) -> bool {
        let max = self.limits.load().max_publishers;
        // atomically: connections on other workers publish concurrently
        self.publishing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Frees a place taken by [`RtmpServer::reserve_publisher`].
    pub(crate) fn release_publisher(&self) {
        self.publishing.fetch_sub(1, Ordering::AcqRel);
    }

    /// A publisher of `stream` (holding `generation`) is gone: the stream waits out the
    /// reconnect grace, then ends (EXT-X-ENDLIST) unless a publisher came back, and is removed
    /// after its linger time.
    pub(crate) fn end_publish(self: &Arc<Self>, stream: Arc<Stream>, generation: u64) {
        stream.end_publish();
        info!(stream = %stream.name(), "publish ended; waiting for a reconnect");
        let server = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(server.settings.reconnect_grace).await;
            if !stream.finish(generation) {
                return; // a publisher came back
            }
            info!(stream = %stream.name(), "stream ended (EXT-X-ENDLIST)");
            server.metrics.forget_stream(stream.name());
            tokio::time::sleep(server.settings.linger).await;
            if server.store.remove_if_ended(&stream) {
                debug!(stream = %stream.name(), "stream removed");
            }
        });
    }

    /// A server publishing into `store` under `limits` (changeable: [`RtmpServer::set_limits`]),
    /// relaying streams through `relay` if given, and asking `auth` before each publish.
    pub fn new(
        settings: RtmpSettings,
        limits: RtmpLimits,
        store: Arc<Store>,
        metrics: IngestMetrics,
        relay: Option<Relay>,
        auth: PublishAuth,
    ) -> Arc<Self> {
        Arc::new(Self {
            admission: Admission::new(
                0,
                limits.max_connections_per_ip,
                Some(metrics.connections.clone()),
            ),
            limits: arc_swap::ArcSwap::from_pointee(limits),
            settings,
            store,
            metrics,
            relay,
            auth,
            publishing: AtomicUsize::new(0),
        })
    }

    /// Puts new limits in force (a config reload).
    pub fn set_limits(&self, limits: RtmpLimits) {
        self.admission.set_limits(0, limits.max_connections_per_ip);
        self.limits.store(Arc::new(limits));
    }

    /// Accepts connections until `shutdown` is cancelled. Connections run on
    /// `settings.workers` dedicated single-threaded runtimes (round robin), like an event-loop
    /// worker per core: a publisher's reads, parsing and packaging never hop threads, so there
    /// are no cross-thread wake-ups on the ingest path. Returns when the workers have let their
    /// connections finish (bounded).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let mut workers = Vec::new();
        for i in 0..self.settings.workers.max(1) {
            let (tx, rx) = tokio::sync::mpsc::channel::<Accepted>(WORKER_QUEUE);
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let this = self.clone();
            let stop = shutdown.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ferrocast-ingest-{i}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(this.worker(rx, stop)),
                        Err(e) => warn!(error = %e, "cannot start an ingest worker runtime"),
                    }
                    let _ = done_tx.send(());
                });
            match spawned {
                Ok(_) => workers.push((tx, done_rx)),
                Err(e) => warn!(error = %e, "cannot start an ingest worker thread"),
            }
        }
        if workers.is_empty() {
            warn!("no ingest worker: RTMP disabled");
            return;
        }
        let mut next_id = 0u64;
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((socket, peer)) => {
                    let slot = match self.admission.admit(peer.ip()) {
                        Ok(s) => s,
                        Err(limit) => {
                            self.metrics
                                .rejected
                                .with_label_values(&["connections_per_ip"])
                                .inc();
                            debug!(%peer, limit = limit.label(), "RTMP connection refused: limit reached");
                            continue;
                        }
                    };
                    next_id += 1;
                    let _ = socket.set_nodelay(true);
                    let socket = match socket.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            warn!(error = %e, "cannot hand a connection to a worker");
                            continue;
                        }
                    };
                    let (tx, _) = &workers[(next_id as usize) % workers.len()];
                    if tx.try_send((socket, peer, next_id, slot)).is_err() {
                        self.metrics
                            .rejected
                            .with_label_values(&["overloaded"])
                            .inc();
                        warn!(%peer, "ingest worker queue full: connection dropped");
                    }
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        for (tx, done) in workers {
            drop(tx);
            let _ = done.await;
        }
    }

    /// One worker runtime: runs the connections it is handed until the queue closes, then
    /// gives them a moment to finish (they see `shutdown` too).
    async fn worker(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::Receiver<Accepted>,
        shutdown: CancellationToken,
    ) {
        let tracker = tokio_util::task::TaskTracker::new();
        while let Some((socket, peer, id, slot)) = rx.recv().await {
            let socket = match TcpStream::from_std(socket) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot register a connection");
                    continue;
                }
            };
            let span = tracing::info_span!("rtmp", conn = id, %peer);
            let conn = self.clone().connection(socket, peer, shutdown.clone());
            tracker.spawn(
                async move {
                    let _slot = slot;
                    conn.await
                }
                .instrument(span),
            );
        }
        tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), tracker.wait()).await;
    }

    async fn connection(
        self: Arc<Self>,
        mut socket: TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let mut conn = Connection {
            server: self.clone(),
            session: Box::new(RmlSession::new(self.limits.load().chunk_limits)),
            out: Vec::new(),
            events: Vec::new(),
            queue: VecDeque::new(),
            outputs: Vec::new(),
            publish: None,
            pending: None,
            peer,
        };
        // no buffer until the first byte, a small one until the connection publishes: idle
        // and handshaking connections (thousands, if someone opens them) hold little
        let mut buf = Vec::new();
        let started = tokio::time::Instant::now();
        // One timer and one cancellation waiter for the connection's life, not one per read:
        // the deadline is checked when the timer fires and re-armed from the last read.
        let mut last_read = started;
        let deadline = |publishing: bool, last_read: tokio::time::Instant| {
            if publishing {
                last_read + self.settings.idle_timeout
            } else {
                started + self.settings.handshake_timeout
            }
        };
        let timer = tokio::time::sleep_until(deadline(false, started));
        tokio::pin!(timer);
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let result: Result<(), String> = async {
            loop {
                let size = if conn.publish.is_some() {
                    PUBLISH_READ
                } else {
                    HANDSHAKE_READ
                };
                let n = tokio::select! {
                    biased;
                    _ = kicked(conn.publish.as_ref()) => return Err(KICKED.to_string()),
                    r = read_into(&socket, &mut buf, size) => match r {
                        Err(e) => return Err(e.to_string()),
                        Ok(0) => return Ok(()),
                        Ok(n) => n,
                    },
                    _ = &mut timer => {
                        let due = deadline(conn.publish.is_some(), last_read);
                        if due <= tokio::time::Instant::now() {
                            return Err("timed out".to_string());
                        }
                        timer.as_mut().reset(due);
                        continue;
                    }
                    _ = &mut cancelled => return Ok(()),
                };
                last_read = tokio::time::Instant::now();
                // While publishing, let a small read be followed by a pause: what arrives
                // meanwhile waits in the socket buffer and comes in with the next read. Fewer,
                // larger reads (and fewer wake-ups and ACKs) are most of ingest's CPU cost.
                let pace = self.settings.read_interval;
                if !pace.is_zero() && n < PACED_READ_MAX && conn.publish.is_some() {
                    tokio::time::sleep_until(last_read + pace).await;
                }
                let mut keep = conn.input(&buf[..n]);
                // A publish waits for its authorization (a webhook may take a while; its
                // timeout bounds the wait). Nothing more is read meanwhile: what the publisher
                // sends waits in the socket, and events already parsed wait in the queue.
                while keep.is_ok() {
                    let Some(p) = conn.pending.take() else { break };
                    let decision = tokio::select! {
                        d = self.auth.check(PublishRequest {
                            protocol: "rtmp",
                            stream: &p.name,
                            credential: p.credential.as_deref(),
                            client: peer,
                        }) => d,
                        _ = &mut cancelled => return Ok(()),
                    };
                    keep = conn.authorized(p, decision);
                }
                if !conn.out.is_empty() {
                    // a publisher that stops reading blocks this write: a kick still ends it
                    tokio::select! {
                        r = socket.write_all(&conn.out) => r.map_err(|e| e.to_string())?,
                        _ = kicked(conn.publish.as_ref()) => return Err(KICKED.to_string()),
                    }
                    conn.out.clear();
                }
                keep?;
            }
        }
        .await;
        match &result {
            Ok(()) => debug!("connection closed"),
            Err(e) => info!(error = %e, "connection dropped"),
        }
        let _ = socket.shutdown().await;
        conn.finish();
    }
}

/// Reads into `buf`, sizing it to `size` only once the socket has bytes to read.
async fn read_into(socket: &TcpStream, buf: &mut Vec<u8>, size: usize) -> std::io::Result<usize> {
    loop {
        socket.readable().await?;
        if buf.len() < size {
            buf.resize(size, 0);
        }
        match socket.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// A connection accepted and on its way to a worker, with its place under the limits.
type Accepted = (std::net::TcpStream, std::net::SocketAddr, u64, Slot);

/// Connections waiting to be taken up by one worker.
const WORKER_QUEUE: usize = 1024;

/// Read buffer of a connection before it publishes (handshake, commands).
const HANDSHAKE_READ: usize = 4 * 1024;
/// Read buffer of a publishing connection.
const PUBLISH_READ: usize = 64 * 1024;

/// A read this large (half the read buffer) is followed by another at once: the publisher is
/// sending faster than the pause would let through.
const PACED_READ_MAX: usize = PUBLISH_READ / 2;

struct Publish {
    stream: Arc<Stream>,
    generation: u64,
    converter: FlvToUnits,
    /// This stream's counters, resolved once (not hashed per message).
    bytes: prometheus::IntCounter,
    frames: [prometheus::IntCounter; 2],
    /// Copies of the messages for the relay targets.
    relay: Option<RelayFeed>,
    /// Bytes received in the bitrate limit's current window.
    window: BitrateWindow,
    /// Notified when an operator ends this publish (registered with its stream; each publish
    /// has its own, so a kick meant for an ended publish cannot end the next).
    kick: Arc<tokio::sync::Notify>,
}

/// A publish request waiting for its authorization.
struct PendingPublish {
    request_id: u32,
    name: String,
    credential: Option<String>,
    relayed: bool,
}

struct Connection {
    server: Arc<RtmpServer>,
    session: Box<dyn RtmpSession>,
    out: Vec<u8>,
    /// Events the session raises (filled by calls into it).
    events: Vec<RtmpEvent>,
    /// Events waiting to be handled, in order; held while a publish is being authorized.
    queue: VecDeque<RtmpEvent>,
    outputs: Vec<Output>,
    publish: Option<Publish>,
    pending: Option<PendingPublish>,
    peer: SocketAddr,
}

/// Why a kicked publisher's connection ends.
const KICKED: &str = "kicked by the operator";

/// Resolves when an operator kicks `publish` (never without one).
async fn kicked(publish: Option<&Publish>) {
    match publish {
        Some(p) => p.kick.notified().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    /// Processes received bytes. An `Err` closes the connection (after `out` is flushed).
    fn input(&mut self, data: &[u8]) -> Result<(), String> {
        let s = &self.server;
        if let Some(p) = &mut self.publish {
            p.bytes.inc_by(data.len() as u64);
            let limits = s.limits.load();
            let (max, window) = (limits.max_bitrate, limits.bitrate_window);
            if let Err(e) = p.window.add(data.len() as u64, Instant::now(), max, window) {
                s.metrics.errors.with_label_values(&["bitrate"]).inc();
                warn!(stream = %p.stream.name(), over = %e, "publisher over the bitrate limit: dropped");
                return Err(e);
            }
        }
        let session = &mut self.session;
        let (out, events) = (&mut self.out, &mut self.events);
        // rml_rtmp is not hardened against hostile chunk streams: contain a panic to this
        // connection.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            session.handle_input(data, out, events)
        }));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let kind = match e {
                    RtmpError::Refused(_) => "refused",
                    _ => "protocol",
                };
                s.metrics.errors.with_label_values(&[kind]).inc();
                return Err(e.to_string());
            }
            Err(_) => {
                s.metrics.errors.with_label_values(&["protocol"]).inc();
                return Err("RTMP session panicked on malformed input".into());
            }
        }
        self.queue.extend(self.events.drain(..));
        self.run_queue()
    }

    /// Handles queued events in order until none are left or a publish awaits authorization.
    /// Handling an event may raise more (accepting a request): they join the queue's end.
    fn run_queue(&mut self) -> Result<(), String> {
        while self.pending.is_none() {
            let Some(ev) = self.queue.pop_front() else {
                break;
            };
            self.event(ev)?;
            self.queue.extend(self.events.drain(..));
        }
        Ok(())
    }

    fn event(&mut self, ev: RtmpEvent) -> Result<(), String> {
        let server = self.server.clone();
        match ev {
            RtmpEvent::Connect { request_id, app } => {
                if app != server.settings.app {
                    server
                        .metrics
                        .rejected
                        .with_label_values(&["bad_app"])
                        .inc();
                    let _ = self.session.reject(
                        request_id,
                        "NetConnection.Connect.Rejected",
                        &format!("unknown application '{app}'"),
                        &mut self.out,
                    );
                    return Err(format!("unknown application {app:?}"));
                }
                self.session
                    .accept(request_id, &mut self.out, &mut self.events)
                    .map_err(|e| e.to_string())
            }
            RtmpEvent::Publish {
                request_id, key, ..
            } => {
                let (name, query) = key.split_once('?').unwrap_or((key.as_str(), ""));
                let name = name.to_string();
                // a stream another origin relays to us is not relayed again (no loops)
                let relayed = query.split('&').any(|kv| kv == RELAY_MARK);
                let credential = rtmp_credential(query).map(str::to_string);
                if self.publish.is_some() {
                    let _ = self.session.reject(
                        request_id,
                        "NetStream.Publish.BadName",
                        "already publishing on this connection",
                        &mut self.out,
                    );
                    return Err("second publish on one connection".into());
                }
                if !valid_stream_name(&name) {
                    server
                        .metrics
                        .rejected
                        .with_label_values(&["bad_name"])
                        .inc();
                    let _ = self.session.reject(
                        request_id,
                        "NetStream.Publish.BadName",
                        "invalid stream name",
                        &mut self.out,
                    );
                    return Err(format!("invalid stream name {name:?}"));
                }
                self.pending = Some(PendingPublish {
                    request_id,
                    name,
                    credential,
                    relayed,
                });
                Ok(())
            }
            RtmpEvent::Play { request_id } => {
                let _ = self.session.reject(
                    request_id,
                    "NetStream.Play.Failed",
                    "this server does not serve RTMP playback; use HLS",
                    &mut self.out,
                );
                Err("play requested".into())
            }
            RtmpEvent::Video { timestamp, data } => self.media(true, timestamp, data),
            RtmpEvent::Audio { timestamp, data } => self.media(false, timestamp, data),
            RtmpEvent::PublishFinished => {
                self.finish();
                Ok(())
            }
        }
    }

    /// Goes on with a publish request once its authorization is decided, then with the
    /// events that waited for it.
    fn authorized(
        &mut self,
        p: PendingPublish,
        decision: Result<&'static str, AuthError>,
    ) -> Result<(), String> {
        let server = self.server.clone();
        if let Err(e) = decision {
            server
                .metrics
                .rejected
                .with_label_values(&["unauthorized"])
                .inc();
            // say what a legitimate publisher can act on; nothing about keys or streams
            let why = match e {
                AuthError::Expired | AuthError::NotYetValid => format!(" ({e})"),
                AuthError::Webhook(_) => " (authorization unavailable)".to_string(),
                _ => String::new(),
            };
            let _ = self.session.reject(
                p.request_id,
                "NetStream.Publish.Unauthorized",
                &format!("publish not authorized{why}"),
                &mut self.out,
            );
            return Err(format!("publish not authorized: {e}"));
        }
        self.begin(p)?;
        self.run_queue()
    }

    /// Claims the stream and accepts the publish request.
    fn begin(&mut self, p: PendingPublish) -> Result<(), String> {
        let PendingPublish {
            request_id,
            name,
            credential,
            relayed,
        } = p;
        let server = self.server.clone();
        let max = server.limits.load().max_publishers;
        if !server.reserve_publisher() {
            server
                .metrics
                .rejected
                .with_label_values(&["max_publishers"])
                .inc();
            warn!(stream = %name, max, "refused: publisher limit reached");
            let _ = self.session.reject(
                request_id,
                "NetStream.Publish.Rejected",
                "the server has reached its publisher limit",
                &mut self.out,
            );
            return Err("publisher limit reached".into());
        }
        let stream = server.store.get_or_create(&name);
        let generation = match stream.claim() {
            Ok(g) => g,
            Err(e) => {
                server.release_publisher();
                server
                    .metrics
                    .rejected
                    .with_label_values(&["already_publishing"])
                    .inc();
                warn!(stream = %name, "refused: stream is already being published");
                let _ = self.session.reject(
                    request_id,
                    "NetStream.Publish.BadName",
                    &format!("stream '{name}' is already being published"),
                    &mut self.out,
                );
                return Err(e.to_string());
            }
        };
        info!(stream = %name, "publish started");
        let kick = Arc::new(tokio::sync::Notify::new());
        stream.set_publisher(PublisherInfo {
            protocol: "rtmp",
            addr: self.peer,
            since: (
                Instant::now(),
                ferrocast_packager::stream::status::unix_ms(),
            ),
            kick: kick.clone(),
        });
        server.metrics.publishers.inc();
        let bytes = server.metrics.bytes.with_label_values(&[name.as_str()]);
        let frames = ["video", "audio"]
            .map(|t| server.metrics.frames.with_label_values(&[name.as_str(), t]));
        let relay = match &server.relay {
            Some(r) if !relayed => r.feed(&name, credential.as_deref()),
            _ => None,
        };
        self.publish = Some(Publish {
            stream,
            generation,
            converter: FlvToUnits::new(),
            bytes,
            frames,
            relay,
            window: BitrateWindow::new(Instant::now()),
            kick,
        });
        self.session
            .accept(request_id, &mut self.out, &mut self.events)
            .map_err(|e| e.to_string())?;
        self.queue.extend(self.events.drain(..));
        Ok(())
    }

    fn media(&mut self, video: bool, timestamp: u32, data: bytes::Bytes) -> Result<(), String> {
        let server = self.server.clone();
        let Some(p) = &mut self.publish else {
            return Ok(()); // media before publish: ignore
        };
        let r = if video {
            p.converter.video(timestamp, &data, &mut self.outputs)
        } else {
            p.converter.audio(timestamp, &data, &mut self.outputs)
        };
        if let Err(e) = r {
            server.metrics.errors.with_label_values(&["media"]).inc();
            warn!(stream = %p.stream.name(), error = %e, "unsupported or malformed media: dropping publisher");
            self.outputs.clear();
            return Err(e.to_string());
        }
        if let Some(r) = &mut p.relay {
            r.push(video, timestamp, &data);
        }
        let arrival = Instant::now();
        let wall_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        let frames = &p.frames;
        p.generation = deliver(
            &p.stream,
            p.generation,
            self.outputs.drain(..),
            arrival,
            wall_us,
            |u| frames[usize::from(u.track == ferrocast_media::TrackKind::Audio)].inc(),
        )
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The publisher is gone: flush, then end the stream after the grace period unless it
    /// comes back, and remove it after its window.
    fn finish(&mut self) {
        let Some(p) = self.publish.take() else { return };
        let server = self.server.clone();
        server.metrics.publishers.dec();
        server.release_publisher();
        server.end_publish(p.stream.clone(), p.generation);
    }
}
