//! The ferrocast binary's library half: configuration, wiring of the roles, metrics registry,
//! admin listener and shutdown. `main.rs` only parses the command line and waits for signals;
//! integration tests start the same [`Server`] on ephemeral ports.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod reload;
pub mod whip;

use anyhow::{Context, Result};
use config::Config;
use ferrocast_auth::playback::SharedPlayback;
use ferrocast_edge::cache::Edge;
use ferrocast_edge::metrics::{EdgeMetrics, HttpMetrics};
use ferrocast_edge::origin::Origin;
use ferrocast_edge::service::{Handler, Service};
use ferrocast_edge::tls::Identity;
use ferrocast_edge::upstream::{OriginSpec, Upstream, UpstreamConfig};
use ferrocast_edge::viewers::Viewers;
use ferrocast_ingest::metrics::{IngestMetrics, WhipMetrics};
use ferrocast_ingest::relay::{Relay, RelaySettings, RelayTarget};
use ferrocast_ingest::rtmp::server::{RtmpServer, RtmpSettings};
use ferrocast_ingest::whip::server::{WhipServer, WhipSettings};
use ferrocast_packager::metrics::PackagerMetrics;
use ferrocast_packager::segmenter::SegmenterConfig;
use ferrocast_packager::store::Store;
use ferrocast_packager::stream::StreamSettings;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A viewer is a client that fetched a media playlist within this long (LL-HLS players reload
/// every part; others every target duration, at most `packager.max_target_duration`).
pub const VIEWER_WINDOW: Duration = Duration::from_secs(15);

/// A running server.
pub struct Server {
    /// Bound RTMP address (`None` for an edge).
    pub rtmp_addr: Option<SocketAddr>,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    /// Bound HTTPS address (TCP), when enabled.
    pub https_addr: Option<SocketAddr>,
    /// Bound HTTP/3 address (UDP), when enabled.
    pub h3_addr: Option<SocketAddr>,
    /// The TLS certificate in use (PEM file), when HTTPS is enabled.
    pub tls_cert: Option<std::path::PathBuf>,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// The stream store (`None` for an edge; tests inspect it).
    pub store: Option<Arc<Store>>,
    /// The edge handler (`None` unless role = "edge"; tests inspect its cache).
    pub edge: Option<Edge>,
    /// What a config reload changes ([`reload::Live::reload`]; SIGHUP and the admin API).
    pub live: Arc<reload::Live>,
    shutdown: CancellationToken,
    ready: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Binds every listener and starts serving.
    pub async fn start(cfg: Config) -> Result<Server> {
        let registry = prometheus::Registry::new();
        let hm = HttpMetrics::new(&registry)?;
        let am = ferrocast_auth::AuthMetrics::new(&registry)?;
        let (publish_auth, playback_auth) = cfg.auth.build(&am)?;
        let playback_auth = SharedPlayback::new(playback_auth);
        let viewers = Arc::new(Viewers::new(VIEWER_WINDOW));
        let http = TcpListener::bind(cfg.http.listen)
            .await
            .with_context(|| format!("http.listen: cannot bind {}", cfg.http.listen))?;
        let admin = TcpListener::bind(cfg.admin.listen)
            .await
            .with_context(|| format!("admin.listen: cannot bind {}", cfg.admin.listen))?;
        let (http_addr, admin_addr) = (http.local_addr()?, admin.local_addr()?);
        let shutdown = CancellationToken::new();
        let l = &cfg.limits;
        let policy = ferrocast_edge::server::ConnPolicy {
            admission: ferrocast_auth::admission::Admission::new(
                l.max_connections,
                l.max_connections_per_ip,
                Some(hm.connections.clone()),
            ),
            idle_timeout: l.http_idle_timeout.0,
            header_timeout: l.http_header_timeout.0,
            handshake_timeout: Duration::from_secs(10),
        };
        let ready = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        let (handler, rtmp_addr, store, edge, rtmp_server, ingest) = if cfg.role == "edge" {
            let em = EdgeMetrics::new(&registry)?;
            let e = &cfg.edge;
            let origins = e
                .origins
                .iter()
                .map(|o| -> Result<OriginSpec> {
                    let base: http::Uri = o.url.parse()?;
                    let name = o.name.clone().unwrap_or_else(|| {
                        base.authority().map(|a| a.to_string()).unwrap_or_default()
                    });
                    Ok(OriginSpec {
                        name,
                        base,
                        health: o.health.parse()?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let upstream = Upstream::new(
                UpstreamConfig {
                    origins,
                    connect_timeout: e.connect_timeout.0,
                    response_timeout: e.response_timeout.0,
                    blocking_timeout: e.blocking_timeout.0,
                    health_interval: e.health_interval.0,
                    health_timeout: e.health_timeout.0,
                    fall: e.health_fall,
                    max_object_bytes: 64 << 20,
                    auth: playback_auth.clone(),
                },
                em.clone(),
            );
            tasks.spawn(upstream.clone().health_checks(shutdown.clone()));
            let edge = Edge::new(upstream, e.cache_size.0, e.max_wait.0, em);
            tasks.spawn(
                edge.clone()
                    .sweeper(Duration::from_secs(1), shutdown.clone()),
            );
            (
                Handler::Edge(edge.clone()),
                None,
                None,
                Some(edge),
                None,
                None,
            )
        } else {
            let pm = PackagerMetrics::new(&registry)?;
            let im = IngestMetrics::new(&registry)?;
            let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
            let settings = StreamSettings {
                segmenter: SegmenterConfig {
                    part_target_ms: ms(cfg.packager.part_target.0),
                    segment_target_ms: ms(cfg.packager.segment_target.0),
                    max_target_duration_ms: ms(cfg.packager.max_target_duration.0),
                    ..SegmenterConfig::default()
                },
                window_segments: cfg.packager.window_segments,
                agree_epoch: !cfg.cluster.peers.is_empty(),
                redundant_urls: cfg.packager.redundant_urls.clone().into(),
                stall_timeout: cfg.packager.stall_timeout.0,
            };
            let store = Arc::new(Store::new(settings, pm));
            if !cfg.cluster.peers.is_empty() {
                let peers = cluster::Peers::new(&cfg.cluster.peers, cfg.cluster.timeout.0);
                tasks.spawn(peers.run(store.clone(), shutdown.clone()));
            }
            let rtmp = TcpListener::bind(cfg.rtmp.listen)
                .await
                .with_context(|| format!("rtmp.listen: cannot bind {}", cfg.rtmp.listen))?;
            let rtmp_addr = rtmp.local_addr()?;
            // an ended stream stays downloadable for twice its window of segments
            let linger = cfg.packager.segment_target.0 * (2 * cfg.packager.window_segments as u32);
            let rtmp_server = RtmpServer::new(
                RtmpSettings {
                    app: cfg.rtmp.app.clone(),
                    reconnect_grace: cfg.rtmp.reconnect_grace.0,
                    linger,
                    handshake_timeout: cfg.rtmp.handshake_timeout.0,
                    idle_timeout: cfg.rtmp.idle_timeout.0,
                    read_interval: cfg.rtmp.read_interval.0,
                    workers: cfg.rtmp.workers,
                },
                reload::rtmp_limits(&cfg),
                store.clone(),
                im.clone(),
                relay(&cfg, im)?,
                publish_auth.clone(),
            );
            tasks.spawn(rtmp_server.clone().serve(rtmp, shutdown.clone()));
            let ingest: Option<Arc<dyn ferrocast_edge::ingest::BodyRoutes>> = if cfg.whip.enabled {
                let w = WhipServer::new(
                    WhipSettings {
                        ip: cfg.whip.ip,
                        public_ip: cfg.whip.public_ip()?,
                        ports: cfg.whip.port_range()?,
                        keyframe_interval: cfg.packager.segment_target.0,
                        connect_timeout: cfg.whip.connect_timeout.0,
                        idle_timeout: cfg.whip.idle_timeout.0,
                    },
                    rtmp_server.clone(),
                    WhipMetrics::new(&registry)?,
                    shutdown.clone(),
                );
                Some(Arc::new(whip::WhipRoutes::new(w)))
            } else {
                None
            };
            let origin = Origin::new(store.clone(), hm.clone());
            (
                Handler::Origin(origin),
                Some(rtmp_addr),
                Some(store),
                None,
                Some(rtmp_server),
                ingest,
            )
        };
        let shared = Shared {
            playback_auth: playback_auth.clone(),
            viewers: viewers.clone(),
            ingest,
        };
        let service = shared.service(handler.clone(), hm.clone(), None);
        let live = Arc::new(reload::Live::new(
            &cfg,
            publish_auth,
            playback_auth.clone(),
            am,
            rtmp_server,
            policy.admission.clone(),
        )?);
        admin::streams::StreamMetrics::register(&registry, store.clone(), viewers.clone())?;
        tasks.spawn(ferrocast_edge::server::serve(
            http,
            service,
            None,
            policy.clone(),
            shutdown.clone(),
            Duration::from_secs(3),
        ));
        let (https_addr, h3_addr, tls_cert) = if cfg.https.enabled {
            let (https_addr, h3_addr, cert) =
                start_https(&cfg, handler, hm, &shared, policy, &shutdown, &mut tasks).await?;
            (Some(https_addr), h3_addr, Some(cert))
        } else {
            (None, None, None)
        };
        tasks.spawn(admin::serve(
            admin,
            admin::AdminState {
                registry,
                ready: ready.clone(),
                store: store.clone(),
                viewers,
                live: live.clone(),
                role: cfg.role.clone(),
                started: std::time::Instant::now(),
            },
            shutdown.clone(),
        ));
        ready.store(true, Ordering::Relaxed);
        tracing::info!(rtmp = ?rtmp_addr, http = %http_addr, https = ?https_addr, h3 = ?h3_addr, admin = %admin_addr, role = %cfg.role, "ferrocast listening");
        Ok(Server {
            rtmp_addr,
            http_addr,
            admin_addr,
            https_addr,
            h3_addr,
            tls_cert,
            store,
            edge,
            live,
            shutdown,
            ready,
            tasks,
        })
    }

    /// Stops accepting, lets connections finish briefly, and waits for every listener task.
    pub async fn shutdown(mut self) {
        self.ready.store(false, Ordering::Relaxed);
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The relay of `[relay]`, when it has targets.
fn relay(cfg: &Config, metrics: IngestMetrics) -> Result<Option<Relay>> {
    let r = &cfg.relay;
    if r.targets.is_empty() {
        return Ok(None);
    }
    let targets = r
        .targets
        .iter()
        .map(|t| RelayTarget::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Relay::new(
        RelaySettings {
            targets,
            streams: r.streams.clone(),
            queue: r.queue,
            backoff_min: r.backoff_min.0,
            backoff_max: r.backoff_max.0,
            connect_timeout: r.connect_timeout.0,
        },
        metrics,
    )))
}

/// What every listener's router shares.
struct Shared {
    playback_auth: SharedPlayback,
    viewers: Arc<Viewers>,
    /// The WHIP routes, when this node ingests.
    ingest: Option<Arc<dyn ferrocast_edge::ingest::BodyRoutes>>,
}

impl Shared {
    fn service(&self, handler: Handler, hm: HttpMetrics, h3_port: Option<u16>) -> Arc<Service> {
        let s = Service::new(handler, hm, h3_port)
            .with_playback_auth(self.playback_auth.clone())
            .with_viewers(self.viewers.clone());
        Arc::new(match &self.ingest {
            Some(i) => s.with_ingest(i.clone()),
            None => s,
        })
    }
}

/// Binds HTTPS (TCP) and HTTP/3 (UDP, same port) and starts serving them.
async fn start_https(
    cfg: &Config,
    handler: Handler,
    hm: HttpMetrics,
    shared: &Shared,
    policy: ferrocast_edge::server::ConnPolicy,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<(SocketAddr, Option<SocketAddr>, std::path::PathBuf)> {
    let h = &cfg.https;
    let tcp = TcpListener::bind(h.listen)
        .await
        .with_context(|| format!("https.listen: cannot bind {}", h.listen))?;
    let https_addr = tcp.local_addr()?;
    let identity = if h.cert.is_empty() {
        let path = if h.self_signed_cert.is_empty() {
            std::env::temp_dir().join(format!("ferrocast-selfsigned-{}.pem", https_addr.port()))
        } else {
            std::path::PathBuf::from(&h.self_signed_cert)
        };
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.extend(h.self_signed_names.iter().cloned());
        let id = Identity::self_signed(&names, &path).context("https: self-signed certificate")?;
        tracing::info!(
            cert = %path.display(),
            sha256 = %id.fingerprint(),
            spki_sha256 = id.spki_sha256.as_deref().unwrap_or(""),
            "generated a self-signed certificate (set https.cert and https.key for a real one)"
        );
        id
    } else {
        Identity::load(h.cert.as_ref(), h.key.as_ref()).context("https.cert / https.key")?
    };
    let h3_addr = if h.http3 {
        let addr = ferrocast_edge::h3::same_port(https_addr, h.listen);
        match ferrocast_edge::h3::bind(addr, identity.quic_config()?, policy.idle_timeout) {
            Ok(endpoint) => {
                let bound = endpoint.local_addr()?;
                let service = shared.service(handler.clone(), hm.clone(), None);
                tasks.spawn(ferrocast_edge::h3::serve(
                    endpoint,
                    service,
                    policy.admission.clone(),
                    shutdown.clone(),
                    Duration::from_secs(3),
                ));
                Some(bound)
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "HTTP/3 listener unavailable; HTTPS continues without it");
                None
            }
        }
    } else {
        None
    };
    let service = shared.service(handler, hm, h3_addr.map(|a| a.port()));
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.tcp_config()?);
    tasks.spawn(ferrocast_edge::server::serve(
        tcp,
        service,
        Some(acceptor),
        policy,
        shutdown.clone(),
        Duration::from_secs(3),
    ));
    Ok((https_addr, h3_addr, identity.cert_path))
}
