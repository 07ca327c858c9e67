//! Test harness: the real server on loopback ephemeral ports, a real RTMP publisher (rml_rtmp's
//! client session over a TCP socket) sending FLV fixture tags, and a small HTTP/1.1 client.
#![allow(dead_code)]

pub mod h3client;

use bytes::Bytes;
use ferrocast::config::Config;
use ferrocast::Server;
use ferrocast_media::flv::{read_file, FlvTagKind};
use http_body_util::BodyExt;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const SMALL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sample-h264-aac-small.flv"
);
pub const BFRAMES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sample-h264-aac-bframes.flv"
);

pub async fn start_server(extra: &str) -> Server {
    start_server_with_grace("1s", extra).await
}

pub async fn start_server_with_grace(grace: &str, extra: &str) -> Server {
    start_server_with_rtmp(&format!("reconnect_grace = \"{grace}\"\n"), extra).await
}

/// A server whose `[rtmp]` table has `rtmp` added (`extra` may not have its own `[rtmp]`).
pub async fn start_server_with_rtmp(rtmp: &str, extra: &str) -> Server {
    let text = format!(
        "[rtmp]\nlisten = \"127.0.0.1:0\"\n{rtmp}[http]\nlisten = \"127.0.0.1:0\"\n[https]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n{extra}"
    );
    Server::start(Config::parse(&text).expect("test config"))
        .await
        .expect("server starts")
}

/// A publisher connected and accepted on `rtmp://addr/live/{stream}`.
pub struct Publisher {
    socket: TcpStream,
    session: ClientSession,
    buf: Vec<u8>,
}

#[derive(Debug)]
pub enum PublishOutcome {
    Accepted(Box<Publisher>),
    Rejected(String),
}

async fn write_results(
    socket: &mut TcpStream,
    results: Vec<ClientSessionResult>,
    events: &mut Vec<ClientSessionEvent>,
) -> std::io::Result<()> {
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => socket.write_all(&p.bytes).await?,
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            _ => {}
        }
    }
    Ok(())
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}

impl Publisher {
    pub async fn connect(
        addr: SocketAddr,
        app: &str,
        stream: &str,
    ) -> std::io::Result<PublishOutcome> {
        let mut socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        let mut buf = vec![0u8; 65536];
        let remaining = match ferrocast_ingest::relay::client_handshake(&mut socket, &mut buf).await
        {
            Ok(r) => r,
            Err(ferrocast_ingest::relay::RelayError::Io(e)) => return Err(e),
            Err(e) => return Ok(PublishOutcome::Rejected(e.to_string())),
        };
        let mut config = ClientSessionConfig::new();
        config.chunk_size = 4096;
        let (mut session, initial) = ClientSession::new(config).expect("client session");
        let mut events = Vec::new();
        write_results(&mut socket, initial, &mut events).await?;
        if !remaining.is_empty() {
            let r = session.handle_input(&remaining).expect("input");
            write_results(&mut socket, r, &mut events).await?;
        }
        let r = session
            .request_connection(app.to_string())
            .expect("connect");
        write_results(&mut socket, vec![r], &mut events).await?;
        let mut requested_publish = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for e in events.drain(..) {
                match e {
                    ClientSessionEvent::ConnectionRequestAccepted => {
                        let r = session
                            .request_publishing(stream.to_string(), PublishRequestType::Live)
                            .expect("publish");
                        let mut ev = Vec::new();
                        write_results(&mut socket, vec![r], &mut ev).await?;
                        requested_publish = true;
                    }
                    ClientSessionEvent::PublishRequestAccepted => {
                        return Ok(PublishOutcome::Accepted(Box::new(Publisher {
                            socket,
                            session,
                            buf,
                        })));
                    }
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Ok(PublishOutcome::Rejected(description))
                    }
                    ClientSessionEvent::UnknownTransactionResultReceived {
                        additional_values,
                        ..
                    } => {
                        // the server's `_error` answer to publish (transaction 0)
                        return Ok(PublishOutcome::Rejected(format!("{additional_values:?}")));
                    }
                    other => {
                        let _ = (other, requested_publish);
                    }
                }
            }
            let n = tokio::time::timeout_at(deadline.into(), socket.read(&mut buf))
                .await
                .map_err(|_| std::io::Error::other("timeout"))??;
            if n == 0 {
                return Ok(PublishOutcome::Rejected("connection closed".into()));
            }
            match session.handle_input(&buf[..n]) {
                Ok(r) => write_results(&mut socket, r, &mut events).await?,
                Err(e) => return Ok(PublishOutcome::Rejected(format!("{e:?}"))),
            }
        }
    }

    pub async fn accepted(addr: SocketAddr, stream: &str) -> Publisher {
        match Publisher::connect(addr, "live", stream)
            .await
            .expect("connect")
        {
            PublishOutcome::Accepted(p) => *p,
            PublishOutcome::Rejected(why) => panic!("publish refused: {why}"),
        }
    }

    /// Sends every tag of an FLV file; with `pace`, tag timestamps are followed in real time
    /// (× `speed`).
    pub async fn send_flv(&mut self, path: &str, pace: Option<f64>) {
        self.send_flv_from(path, 0, pace).await
    }

    /// Like [`Publisher::send_flv`], but only the tags from `from_ms` on (and the sequence
    /// headers before them), with their original timestamps: an origin that joins a running
    /// stream late, as a relay or a restarted encoder output delivers it.
    pub async fn send_flv_from(&mut self, path: &str, from_ms: u32, pace: Option<f64>) {
        let file = Bytes::from(std::fs::read(path).expect("fixture"));
        let start = Instant::now();
        for tag in read_file(&file).expect("flv") {
            let sequence_header = tag.kind != FlvTagKind::Script && tag.body.get(1) == Some(&0);
            if tag.timestamp < from_ms && !sequence_header {
                continue;
            }
            if let Some(speed) = pace {
                let t = f64::from(tag.timestamp.saturating_sub(from_ms));
                let due = start + Duration::from_secs_f64(t / 1000.0 / speed);
                tokio::time::sleep_until(due.into()).await;
            }
            let ts = RtmpTimestamp::new(tag.timestamp);
            let r = match tag.kind {
                FlvTagKind::Video => self.session.publish_video_data(tag.body, ts, false),
                FlvTagKind::Audio => self.session.publish_audio_data(tag.body, ts, false),
                FlvTagKind::Script => continue,
            }
            .expect("publish data");
            if let ClientSessionResult::OutboundResponse(p) = r {
                self.socket.write_all(&p.bytes).await.expect("write");
            }
        }
        self.socket.flush().await.expect("flush");
    }

    /// Sends one FLV tag's body as an RTMP audio or video message.
    pub async fn send_tag(
        &mut self,
        kind: FlvTagKind,
        body: Bytes,
        ts: u32,
    ) -> std::io::Result<()> {
        let ts = RtmpTimestamp::new(ts);
        let r = match kind {
            FlvTagKind::Video => self.session.publish_video_data(body, ts, false),
            FlvTagKind::Audio => self.session.publish_audio_data(body, ts, false),
            FlvTagKind::Script => return Ok(()),
        };
        if let Ok(ClientSessionResult::OutboundResponse(p)) = r {
            self.socket.write_all(&p.bytes).await?;
        }
        Ok(())
    }

    /// Sends raw bytes as a video message (hostile input tests).
    pub async fn send_video(&mut self, body: Bytes, ts: u32) -> std::io::Result<()> {
        if let Ok(ClientSessionResult::OutboundResponse(p)) =
            self.session
                .publish_video_data(body, RtmpTimestamp::new(ts), false)
        {
            self.socket.write_all(&p.bytes).await?;
        }
        Ok(())
    }

    /// The publisher's own address (as the server sees it).
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }

    /// Writes raw bytes on the connection (hostile input tests).
    pub async fn send_raw(&mut self, data: &[u8]) {
        let _ = self.socket.write_all(data).await;
    }

    /// True once the server has closed the connection.
    pub async fn closed_by_server(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline.into(), self.socket.read(&mut self.buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.shutdown().await;
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub async fn read(resp: http::Response<hyper::body::Incoming>) -> HttpResponse {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    get_with(addr, path, &[]).await
}

pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    request(addr, "GET", path, headers).await
}

/// One request with an empty body on a fresh HTTP/1.1 connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let tcp = TcpStream::connect(addr).await.expect("connect http");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("h1 handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(http_body_util::Empty::<Bytes>::new()).unwrap())
        .await
        .expect("request");
    HttpResponse::read(resp).await
}

/// Polls (with a bounded number of tries) until `path` answers 200.
pub async fn wait_for_200(addr: SocketAddr, path: &str, within: Duration) -> HttpResponse {
    let deadline = Instant::now() + within;
    loop {
        let r = get(addr, path).await;
        if r.status == 200 {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never answered 200 (last {})",
            r.status
        );
        // blocking on the playlist is what viewers do; before it exists, retry briefly
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the media playlist to carry ENDLIST (blocking reloads, no fixed sleeps).
pub async fn wait_for_endlist(addr: SocketAddr, playlist: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let r = get(addr, playlist).await;
        let t = r.text();
        if t.contains("#EXT-X-ENDLIST") {
            return t;
        }
        assert!(Instant::now() < deadline, "no ENDLIST in {playlist}: {t}");
        let last = t
            .lines()
            .rev()
            .find(|l| l.starts_with("#EXT-X-PART:"))
            .and_then(|l| {
                let uri = l.split("URI=\"").nth(1)?.split('"').next()?;
                let (m, i) = uri
                    .split('_')
                    .nth(1)?
                    .trim_end_matches(".m4s")
                    .split_once('.')?;
                Some((m.parse::<u64>().ok()?, i.parse::<u32>().ok()?))
            });
        // block until the next part (or the 3×TD timeout answers 503)
        let q = match last {
            Some((m, i)) => format!("{playlist}?_HLS_msn={m}&_HLS_part={}", i + 1),
            None => playlist.to_string(),
        };
        let _ = get(addr, &q).await;
        if last.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// GET over HTTP/2 with prior knowledge (h2c), as a CDN or an HTTP/2 load balancer talks to
/// an origin.
pub async fn get_h2(addr: SocketAddr, path: &str) -> HttpResponse {
    let tcp = TcpStream::connect(addr).await.expect("connect http");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://{addr}{path}"))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.expect("request");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    HttpResponse::read(resp).await
}

/// A server on its own runtime and thread (as a separate node would be), stopped on drop.
pub struct Node {
    pub rtmp: Option<SocketAddr>,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub edge: Option<ferrocast_edge::cache::Edge>,
    pub https: Option<SocketAddr>,
    pub h3: Option<SocketAddr>,
    pub cert: Option<std::path::PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// Starts a node from a config text (listeners should use port 0).
    pub fn start(text: &str) -> Node {
        let cfg = Config::parse(text).expect("node config");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let s = Server::start(cfg).await.expect("node starts");
                tx.send((
                    (s.rtmp_addr, s.http_addr, s.admin_addr),
                    (s.https_addr, s.h3_addr, s.tls_cert.clone()),
                    s.edge.clone(),
                ))
                .expect("report addresses");
                let _ = stopped.await;
                s.shutdown().await;
            });
        });
        let ((rtmp, http, admin), (https, h3, cert), edge) = rx.recv().expect("node started");
        Node {
            rtmp,
            http,
            admin,
            edge,
            https,
            h3,
            cert,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// An origin node on loopback ephemeral ports.
    pub fn origin() -> Node {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        Node::origin_with(any, any, &[], "")
    }

    /// An origin with its RTMP and admin listeners on these addresses (port 0: any), peer
    /// origins (their admin addresses), and extra config text (whole sections).
    pub fn origin_with(
        rtmp: SocketAddr,
        admin: SocketAddr,
        peers: &[SocketAddr],
        extra: &str,
    ) -> Node {
        let peers: Vec<String> = peers.iter().map(|p| format!("\"http://{p}\"")).collect();
        Node::start(&format!(
            "role = \"origin\"\n[rtmp]\nlisten = \"{rtmp}\"\nreconnect_grace = \"1s\"\n[http]\nlisten = \"127.0.0.1:0\"\n[https]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"{admin}\"\n[log]\nlevel = \"warn\"\n[cluster]\npeers = [{}]\n{extra}",
            peers.join(", ")
        ))
    }

    /// An origin and an edge in front of it, both with `extra` (whole sections, e.g. the
    /// playback auth they share).
    pub fn origin_and_edge(extra: &str) -> (Node, Node) {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let origin = Node::origin_with(any, any, &[], extra);
        let edge = Node::edge(&[(origin.http, origin.admin)], extra);
        (origin, edge)
    }

    /// An edge over `origins` (their HTTP and admin addresses), with extra `[edge]` keys.
    pub fn edge(origins: &[(SocketAddr, SocketAddr)], extra: &str) -> Node {
        let list: Vec<String> = origins
            .iter()
            .enumerate()
            .map(|(i, (h, a))| {
                format!(
                    "{{ url = \"http://{h}\", health = \"http://{a}/readyz\", name = \"o{i}\" }}"
                )
            })
            .collect();
        Node::start(&format!(
            "role = \"edge\"\n[http]\nlisten = \"127.0.0.1:0\"\n[https]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n[edge]\norigins = [{}]\n{extra}",
            list.join(", ")
        ))
    }

    /// Stops the node and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Sum of a Prometheus metric's samples whose labels contain every `label="value"` given.
pub async fn metric(admin: SocketAddr, name: &str, labels: &[&str]) -> f64 {
    let text = get(admin, "/metrics").await.text();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter(|l| labels.iter().all(|lv| l.contains(lv)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// HTTP connections refused at accept for `limit` (`"total"` or `"per_ip"`).
pub async fn http_refused(admin: SocketAddr, limit: &str) -> f64 {
    let label = format!("limit=\"{limit}\"");
    metric(admin, "ferrocast_http_connections_refused_total", &[&label]).await
}

/// One keep-alive HTTP/1.1 connection (a viewer's connection).
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>>,
    host: String,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        let tcp = TcpStream::connect(addr).await.expect("connect http");
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .expect("h1 handshake");
        tokio::spawn(conn);
        Conn {
            sender,
            host: addr.to_string(),
        }
    }

    pub async fn get(&mut self, path: &str) -> HttpResponse {
        self.sender.ready().await.expect("connection ready");
        let req = http::Request::builder()
            .uri(path)
            .header("host", &self.host)
            .header("accept-encoding", "gzip")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = self.sender.send_request(req).await.expect("request");
        HttpResponse::read(resp).await
    }
}

/// The body of a response, gunzipped if it was sent gzip-encoded.
pub fn decoded(r: &HttpResponse) -> String {
    use std::io::Read;
    if r.headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip")
    {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&r.body[..])
            .read_to_string(&mut s)
            .expect("gzip body");
        s
    } else {
        r.text()
    }
}

/// The media parts (not GAP) of an LL-HLS media playlist in order: (msn, part index, URI);
/// and whether it ends. (The load generator's parser: one reading of playlists for tests and
/// load runs.)
pub fn playlist_parts(text: &str) -> (Vec<(u64, u32, String)>, bool) {
    let (parts, ended) = ferrocast_loadgen::playlist::parts(text);
    (
        parts
            .into_iter()
            .filter(|p| !p.gap)
            .map(|p| (p.msn, p.index, p.uri))
            .collect(),
        ended,
    )
}

/// Connects and asks to publish `name` (which may carry `?key=`): the publisher, or the
/// server's refusal.
pub async fn try_publish(rtmp: SocketAddr, name: &str) -> Result<Publisher, String> {
    match Publisher::connect(rtmp, "live", name)
        .await
        .expect("connect")
    {
        PublishOutcome::Accepted(p) => Ok(*p),
        PublishOutcome::Rejected(why) => Err(why),
    }
}

/// Publishes `path` on `rtmp://rtmp/live/{stream}` (accepted before this returns), paced at
/// `pace` × real time, then closes; the task ends when the publisher has sent everything.
pub async fn spawn_publish(
    rtmp: SocketAddr,
    stream: &str,
    path: &'static str,
    pace: f64,
) -> tokio::task::JoinHandle<()> {
    let mut p = Publisher::accepted(rtmp, stream).await;
    tokio::spawn(async move {
        p.send_flv(path, Some(pace)).await;
        p.close().await;
    })
}

/// URIs of the segments a media playlist lists that carry media (not EXT-X-GAP).
pub fn media_segment_uris(text: &str) -> Vec<String> {
    let mut gap = false;
    let mut uris = Vec::new();
    for line in text.lines() {
        if line == "#EXT-X-GAP" {
            gap = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            if !gap {
                uris.push(line.to_string());
            }
            gap = false;
        }
    }
    uris
}

/// A loopback address nothing listens on right now (for configs that must name each other
/// before either node starts).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
}

/// The audio and video tags of `path` played `loops` times back to back as one continuous
/// stream: each loop's timestamps are shifted by `period_ms` (the fixture's video length), its
/// sequence headers are sent once, and audio frames that would overlap the next loop are left
/// out. (tag kind, body, timestamp in ms)
pub fn looped_tags(path: &str, loops: u32, period_ms: u32) -> Vec<(FlvTagKind, Bytes, u32)> {
    let file = Bytes::from(std::fs::read(path).expect("fixture"));
    let tags = read_file(&file).expect("flv");
    let mut out = Vec::new();
    for l in 0..loops {
        for t in &tags {
            let sequence_header = t.body.get(1) == Some(&0);
            let overlaps = t.kind == FlvTagKind::Audio && t.timestamp + 22 > period_ms;
            if t.kind == FlvTagKind::Script || (l > 0 && sequence_header) || overlaps {
                continue;
            }
            out.push((t.kind, t.body.clone(), t.timestamp + l * period_ms));
        }
    }
    out
}

/// A ferrocast server in its own process (the binary under test), for tests that kill it.
pub struct Process {
    child: std::process::Child,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    log: std::path::PathBuf,
}

impl Process {
    /// An origin with HTTPS off, its admin on `admin`, agreeing with `peers` (admin addresses).
    pub async fn origin(admin: SocketAddr, peers: &[SocketAddr]) -> Process {
        let (rtmp, http) = (free_addr(), free_addr());
        let peers: Vec<String> = peers.iter().map(|p| format!("\"http://{p}\"")).collect();
        let config = format!(
            "role = \"origin\"\n[rtmp]\nlisten = \"{rtmp}\"\n[http]\nlisten = \"{http}\"\n[https]\nenabled = false\n[admin]\nlisten = \"{admin}\"\n[log]\nlevel = \"info\"\n[cluster]\npeers = [{}]\n",
            peers.join(", ")
        );
        Process::start(&config, rtmp, http, admin).await
    }

    /// The binary running `config`, whose listeners are at these addresses.
    pub async fn start(
        config: &str,
        rtmp: SocketAddr,
        http: SocketAddr,
        admin: SocketAddr,
    ) -> Process {
        Process::start_with_soft_nofile(config, rtmp, http, admin, None).await
    }

    /// [`Process::start`], started (by `sh`'s `ulimit -Sn`) with this soft open-file limit.
    pub async fn start_with_soft_nofile(
        config: &str,
        rtmp: SocketAddr,
        http: SocketAddr,
        admin: SocketAddr,
        soft_nofile: Option<u64>,
    ) -> Process {
        let dir = std::env::temp_dir();
        let stem = format!("ferrocast-test-{}-{}", std::process::id(), admin.port());
        let (cfg, log) = (
            dir.join(format!("{stem}.toml")),
            dir.join(format!("{stem}.log")),
        );
        std::fs::write(&cfg, config).expect("write config");
        let bin = env!("CARGO_BIN_EXE_ferrocast");
        let mut command = match soft_nofile {
            None => std::process::Command::new(bin),
            Some(n) => {
                // `exec` keeps the process id: the child is the server itself
                let mut c = std::process::Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -Sn {n} && exec \"$0\" \"$@\""))
                    .arg(bin);
                c
            }
        };
        let child = command
            .arg("--config")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start ferrocast");
        let p = Process {
            child,
            rtmp,
            http,
            admin,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(1), async {
                let s = TcpStream::connect(admin).await?;
                let (mut tx, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
                        .await
                        .map_err(std::io::Error::other)?;
                tokio::spawn(conn);
                let req = http::Request::get("/readyz")
                    .header("host", "x")
                    .body(http_body_util::Empty::<Bytes>::new())
                    .unwrap();
                tx.send_request(req).await.map_err(std::io::Error::other)
            })
            .await
            {
                if r.status() == 200 {
                    return p;
                }
            }
            assert!(
                Instant::now() < deadline,
                "origin did not become ready:\n{}",
                p.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file the process runs.
    pub fn config_path(&self) -> std::path::PathBuf {
        self.log.with_extension("toml")
    }

    /// Sends a signal (`"HUP"`, `"TERM"`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, sockets reset by the kernel.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines the process logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(self.log.with_extension("toml"));
    }
}

/// Connects to `addr`, sends `hello`, and says whether the server closed the connection
/// without sending a byte within `within` (a connection refused at accept). A connection that
/// stays open, silent, for `within` is not closed.
pub async fn closed_unanswered(addr: SocketAddr, hello: &[u8], within: Duration) -> bool {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    let _ = c.write_all(hello).await;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, c.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// An HTTP/1.1 request line and headers, for [`closed_unanswered`].
pub const HTTP_GET: &[u8] = b"GET /live/x/index.m3u8 HTTP/1.1\r\nhost: x\r\n\r\n";

/// Polls `cond` (bounded) until it holds.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TLS client configuration trusting the PEM certificate at `cert`, offering `alpn`.
pub fn client_tls(cert: &std::path::Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).expect("cert file") {
        roots.add(c.expect("cert")).expect("trust anchor");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}
