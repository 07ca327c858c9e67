//! Configuration: TOML with an embedded default (`configs/default.toml`), validated once into
//! typed values. Every error names the key.

pub mod auth;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../configs/default.toml");

/// A duration written as "200ms", "2s" or "1m".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses "250ms", "2s", "1.5s", "1m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => return Err(format!("duration {s:?} needs a unit (ms, s, m)")),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?}"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?} in {s:?} (use ms, s, m)"
            ))
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

/// A size written as "512KiB", "256MiB", "2GiB" (or a plain number of bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_size(&s)
            .map(ByteSize)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses "512KiB", "256MiB", "2GiB", "1TiB" or "1000".
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        u => {
            return Err(format!(
                "unknown size unit {u:?} in {s:?} (use KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// "all" or "origin".
    pub role: String,
    /// Logging.
    pub log: LogConfig,
    /// RTMP ingest.
    pub rtmp: RtmpConfig,
    /// WebRTC ingest over WHIP.
    pub whip: WhipConfig,
    /// Segmenting and playlists.
    pub packager: PackagerConfig,
    /// HTTP delivery.
    pub http: HttpConfig,
    /// HTTPS and HTTP/3 listeners.
    pub https: HttpsConfig,
    /// Admin listener.
    pub admin: AdminConfig,
    /// Edge role: origins, cache, upstream timeouts.
    pub edge: EdgeConfig,
    /// Origins fed the same streams (redundant pairs).
    pub cluster: ClusterConfig,
    /// Pushing published streams on to other origins.
    pub relay: RelayConfig,
    /// Publish and playback authorization.
    pub auth: auth::AuthConfig,
    /// Limits and timeouts.
    pub limits: LimitsConfig,
    /// The file this configuration was read from (`None`: the embedded default), which a
    /// reload reads again.
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
    /// Every key with its value (defaults filled in), to tell what a reload changes.
    #[serde(skip)]
    pub table: toml::Table,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Publishers at once (0: no limit).
    pub max_publishers: usize,
    /// Highest publish bitrate, kbit/s (0: no limit).
    pub max_publish_kbps: u64,
    /// Window the publish bitrate is averaged over.
    pub bitrate_window: HumanDuration,
    /// RTMP connections per client address (0: no limit).
    pub rtmp_connections_per_ip: usize,
    /// Largest RTMP chunk size a publisher may set, bytes.
    pub rtmp_max_chunk_size: u32,
    /// Largest RTMP message a publisher may send, bytes.
    pub rtmp_max_message_size: u32,
    /// HTTP client connections, all listeners (0: no limit).
    pub max_connections: usize,
    /// HTTP client connections per client address (0: no limit).
    pub max_connections_per_ip: usize,
    /// Close HTTP connections on which nothing moves for this long.
    pub http_idle_timeout: HumanDuration,
    /// HTTP/1.1 request headers must arrive within this.
    pub http_header_timeout: HumanDuration,
}

/// `[relay]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// `rtmp://host:port/app` of each origin to push to.
    pub targets: Vec<String>,
    /// Streams to relay (empty: all).
    pub streams: Vec<String>,
    /// Messages queued per target before dropping to the next keyframe.
    pub queue: usize,
    /// First reconnect delay (doubles).
    pub backoff_min: HumanDuration,
    /// Longest reconnect delay.
    pub backoff_max: HumanDuration,
    /// Connect, handshake and publish timeout.
    pub connect_timeout: HumanDuration,
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Admin base URLs of the other origins fed the same streams.
    pub peers: Vec<String>,
    /// How long a peer may take to answer an epoch question.
    pub timeout: HumanDuration,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// EnvFilter directives.
    pub level: String,
    /// "text" or "json".
    pub format: String,
}

/// `[whip]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhipConfig {
    /// Accept WHIP publishes.
    pub enabled: bool,
    /// The address WebRTC media is received on and advertised at.
    pub ip: std::net::IpAddr,
    /// The address publishers reach `ip` at through a 1:1 NAT ("" for none).
    pub public_ip: String,
    /// UDP ports, one per session: "FIRST-LAST".
    pub ports: String,
    /// ICE and DTLS must connect within this.
    pub connect_timeout: HumanDuration,
    /// A publisher that sends no media for this long is dropped.
    pub idle_timeout: HumanDuration,
}

impl WhipConfig {
    /// The port range.
    pub fn port_range(&self) -> Result<(u16, u16)> {
        let (a, b) = self
            .ports
            .split_once('-')
            .map_or((self.ports.as_str(), self.ports.as_str()), |(a, b)| (a, b));
        let parse = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p != 0);
        match (parse(a), parse(b)) {
            (Some(a), Some(b)) if a <= b => Ok((a, b)),
            _ => bail!(
                "whip.ports: must be \"FIRST-LAST\" (1-65535), not {:?}",
                self.ports
            ),
        }
    }

    /// The NAT address, if set.
    pub fn public_ip(&self) -> Result<Option<std::net::IpAddr>> {
        if self.public_ip.is_empty() {
            return Ok(None);
        }
        self.public_ip
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("whip.public_ip: not an IP address"))
    }
}

/// `[rtmp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtmpConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Application name.
    pub app: String,
    /// Reconnect grace period.
    pub reconnect_grace: HumanDuration,
    /// Handshake timeout.
    pub handshake_timeout: HumanDuration,
    /// Idle timeout.
    pub idle_timeout: HumanDuration,
    /// Shortest interval between reads of a publisher's socket.
    pub read_interval: HumanDuration,
    /// Ingest worker threads.
    pub workers: usize,
}

/// `[packager]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagerConfig {
    /// Part target.
    pub part_target: HumanDuration,
    /// Segment target.
    pub segment_target: HumanDuration,
    /// Maximum TARGETDURATION.
    pub max_target_duration: HumanDuration,
    /// Listed segments.
    pub window_segments: usize,
    /// Input silence after which GAP parts keep the timeline moving.
    pub stall_timeout: HumanDuration,
    /// Other servers delivering the same streams (`{url}/{stream}/index.m3u8`), listed as
    /// redundant variant streams.
    pub redundant_urls: Vec<String>,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address.
    pub listen: SocketAddr,
}

/// `[https]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsConfig {
    /// Serve HTTPS (and HTTP/3).
    pub enabled: bool,
    /// Listen address (TCP for HTTPS, UDP for HTTP/3).
    pub listen: SocketAddr,
    /// Serve HTTP/3 on UDP.
    pub http3: bool,
    /// PEM certificate chain ("" = generate a self-signed one).
    pub cert: String,
    /// PEM private key.
    pub key: String,
    /// Extra names for a generated certificate.
    pub self_signed_names: Vec<String>,
    /// Where a generated certificate is written ("" = the temp dir).
    pub self_signed_cert: String,
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Bearer token of the admin API (`/api/v1/`); empty: the API is off.
    pub token: String,
}

/// `[edge]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Origins in order of preference.
    pub origins: Vec<OriginConfig>,
    /// Cache budget.
    pub cache_size: ByteSize,
    /// Upstream connect timeout.
    pub connect_timeout: HumanDuration,
    /// Upstream timeout of non-blocking requests.
    pub response_timeout: HumanDuration,
    /// Upstream timeout of blocking requests.
    pub blocking_timeout: HumanDuration,
    /// Longest a viewer waits for a fill.
    pub max_wait: HumanDuration,
    /// Health check interval.
    pub health_interval: HumanDuration,
    /// Health check timeout.
    pub health_timeout: HumanDuration,
    /// Failed checks that mark an origin down.
    pub health_fall: u32,
}

/// One entry of `edge.origins`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// Base URL of the origin's HTTP listener.
    pub url: String,
    /// Health URL (the origin's admin `/readyz`).
    pub health: String,
    /// Name in metrics and logs (default: the URL's host:port).
    #[serde(default)]
    pub name: Option<String>,
}

impl Config {
    /// Parses and validates a configuration. Keys missing from `text` take the embedded
    /// default's values.
    pub fn parse(text: &str) -> Result<Self> {
        let mut base: toml::Table = DEFAULT_TOML.parse().context("embedded default config")?;
        let user: toml::Table = text.parse().context("config is not valid TOML")?;
        merge(&mut base, user);
        Self::from_table(base)
    }

    /// A configuration from a complete table (every key present), validated.
    pub fn from_table(table: toml::Table) -> Result<Self> {
        let mut cfg: Config = toml::Value::Table(table.clone())
            .try_into()
            .context("invalid config")?;
        cfg.table = table;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a configuration file (its path is kept in [`Config::source`]).
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut cfg = Config::parse(&text).with_context(|| format!("in {}", path.display()))?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// The embedded default.
    pub fn default_config() -> Self {
        Self::parse("").expect("the embedded default config is valid")
    }

    fn validate(&self) -> Result<()> {
        if !["all", "origin", "edge"].contains(&self.role.as_str()) {
            bail!(
                "role: {:?} is not supported (use \"all\", \"origin\" or \"edge\")",
                self.role
            );
        }
        self.validate_edge()?;
        let t = &self.admin.token;
        if !t.is_empty() && (t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic())) {
            bail!("admin.token: must be at least 16 printable characters without spaces (or empty: no admin API)");
        }
        self.auth.validate(&self.role)?;
        self.validate_limits()?;
        for (i, url) in self.cluster.peers.iter().enumerate() {
            let u: http::Uri = url
                .parse()
                .with_context(|| format!("cluster.peers[{i}]: {url:?} is not a URL"))?;
            if u.scheme_str() != Some("http")
                || u.authority().is_none()
                || !matches!(u.path(), "" | "/")
            {
                bail!("cluster.peers[{i}]: {url:?} must be an http://host:port URL (a peer's admin listener)");
            }
        }
        for (i, t) in self.relay.targets.iter().enumerate() {
            ferrocast_ingest::relay::RelayTarget::parse(t)
                .with_context(|| format!("relay.targets[{i}]"))?;
        }
        if self.relay.targets.len() > 16 {
            bail!("relay.targets: at most 16 targets");
        }
        if !(16..=65_536).contains(&self.relay.queue) {
            bail!("relay.queue: must be between 16 and 65536 messages");
        }
        let r = &self.relay;
        if r.backoff_min.0.is_zero()
            || r.backoff_max.0 < r.backoff_min.0
            || r.connect_timeout.0.is_zero()
        {
            bail!("relay.backoff_min / backoff_max / connect_timeout: must be > 0, with backoff_max ≥ backoff_min");
        }
        for (i, u) in self.packager.redundant_urls.iter().enumerate() {
            let uri: http::Uri = u
                .parse()
                .with_context(|| format!("packager.redundant_urls[{i}]: {u:?} is not a URL"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https"))
                || uri.authority().is_none()
                || uri.query().is_some()
            {
                bail!(
                    "packager.redundant_urls[{i}]: {u:?} must be an http(s)://host[:port]/path URL"
                );
            }
        }
        if self.cluster.peers.len() > 16 {
            bail!("cluster.peers: at most 16 peers");
        }
        if self.cluster.timeout.0.is_zero() || self.cluster.timeout.0 > Duration::from_secs(5) {
            bail!("cluster.timeout: must be between 1ms and 5s");
        }
        if self.https.cert.is_empty() != self.https.key.is_empty() {
            bail!("https.cert / https.key: give both or neither");
        }
        if self.log.format != "text" && self.log.format != "json" {
            bail!(
                "log.format: must be \"text\" or \"json\", not {:?}",
                self.log.format
            );
        }
        let p = &self.packager;
        let pt = p.part_target.0.as_millis();
        let st = p.segment_target.0.as_millis();
        let mt = p.max_target_duration.0.as_millis();
        if !(50..=5000).contains(&pt) {
            bail!("packager.part_target: must be between 50ms and 5s, not {pt} ms");
        }
        if !(1000..=60_000).contains(&st) || st < 3 * pt {
            bail!("packager.segment_target: must be between 1s and 60s and at least 3 × part_target, not {st} ms");
        }
        if mt < st || mt > 60_000 || mt / pt > 250 {
            bail!("packager.max_target_duration: must be ≥ segment_target, ≤ 60s and at most 250 parts long, not {mt} ms");
        }
        let stall = p.stall_timeout.0.as_millis();
        if stall < pt || stall > 60_000 {
            bail!("packager.stall_timeout: must be at least part_target and at most 60s, not {stall} ms");
        }
        if !(6..=1000).contains(&p.window_segments) {
            bail!(
                "packager.window_segments: must be between 6 and 1000, not {}",
                p.window_segments
            );
        }
        self.whip.port_range()?;
        self.whip.public_ip()?;
        if self.whip.ip.is_unspecified() {
            bail!("whip.ip: must be an address of this machine (it is advertised to publishers), not {}", self.whip.ip);
        }
        if self.whip.connect_timeout.0.is_zero() || self.whip.idle_timeout.0.is_zero() {
            bail!("whip.connect_timeout / whip.idle_timeout: must be greater than zero");
        }
        if self.rtmp.app.is_empty() || self.rtmp.app.contains('/') {
            bail!("rtmp.app: must be a non-empty name without '/'");
        }
        if !(1..=256).contains(&self.rtmp.workers) {
            bail!(
                "rtmp.workers: must be between 1 and 256, not {}",
                self.rtmp.workers
            );
        }
        if self.rtmp.read_interval.0 > Duration::from_millis(200) {
            bail!("rtmp.read_interval: at most 200ms");
        }
        if self.rtmp.handshake_timeout.0.is_zero() || self.rtmp.idle_timeout.0.is_zero() {
            bail!("rtmp.handshake_timeout / rtmp.idle_timeout: must be greater than zero");
        }
        Ok(())
    }
}

impl Config {
    fn validate_limits(&self) -> Result<()> {
        let l = &self.limits;
        let w = l.bitrate_window.0;
        if w < Duration::from_secs(1) || w > Duration::from_secs(60) {
            bail!("limits.bitrate_window: must be between 1s and 60s");
        }
        // a blocking request is held without a byte moving: the idle timeout must outlast it
        let held = (self.packager.max_target_duration.0 * 3).max(if self.role == "edge" {
            self.edge.max_wait.0
        } else {
            Duration::ZERO
        });
        if l.http_idle_timeout.0 <= held || l.http_idle_timeout.0 > Duration::from_secs(3600) {
            bail!(
                "limits.http_idle_timeout: must be longer than the longest blocking request ({} s) and at most 1h",
                held.as_secs()
            );
        }
        let h = l.http_header_timeout.0;
        if h < Duration::from_secs(1) || h > Duration::from_secs(300) {
            bail!("limits.http_header_timeout: must be between 1s and 5m");
        }
        if !(128..=0x7FFF_FFFF).contains(&l.rtmp_max_chunk_size) {
            bail!("limits.rtmp_max_chunk_size: must be between 128 and 2147483647");
        }
        // the message length field has 24 bits
        if !(64 * 1024..=0xFF_FFFF).contains(&l.rtmp_max_message_size) {
            bail!("limits.rtmp_max_message_size: must be between 65536 and 16777215");
        }
        Ok(())
    }

    fn validate_edge(&self) -> Result<()> {
        let e = &self.edge;
        if self.role == "edge" && e.origins.is_empty() {
            bail!("edge.origins: role \"edge\" needs at least one origin");
        }
        if e.origins.len() > 64 {
            bail!("edge.origins: at most 64 origins");
        }
        for (i, o) in e.origins.iter().enumerate() {
            for (what, url) in [("url", &o.url), ("health", &o.health)] {
                let u: http::Uri = url
                    .parse()
                    .with_context(|| format!("edge.origins[{i}].{what}: {url:?} is not a URL"))?;
                if u.scheme_str() != Some("http") || u.authority().is_none() {
                    bail!("edge.origins[{i}].{what}: {url:?} must be an http://host:port URL");
                }
                if what == "url" && u.path() != "/" && !u.path().is_empty() {
                    bail!("edge.origins[{i}].url: {url:?} must have no path");
                }
            }
        }
        if !(64 << 10..=1 << 40).contains(&e.cache_size.0) {
            bail!("edge.cache_size: must be between 64KiB and 1TiB");
        }
        for (k, d) in [
            ("connect_timeout", e.connect_timeout),
            ("response_timeout", e.response_timeout),
            ("blocking_timeout", e.blocking_timeout),
            ("max_wait", e.max_wait),
            ("health_interval", e.health_interval),
            ("health_timeout", e.health_timeout),
        ] {
            if d.0.is_zero() {
                bail!("edge.{k}: must be greater than zero");
            }
        }
        if e.health_fall == 0 {
            bail!("edge.health_fall: must be at least 1");
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Table, user: toml::Table) {
    for (k, v) in user {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(u)) => merge(b, u),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        let c = Config::default_config();
        assert_eq!(c.rtmp.listen.port(), 1935);
        assert_eq!(c.http.listen.port(), 8080);
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.packager.part_target.0, Duration::from_millis(200));
        assert!(c.edge.origins.is_empty());
    }

    #[test]
    fn edge_role_needs_origins() {
        let e = format!("{:#}", Config::parse("role = \"edge\"").unwrap_err());
        assert!(e.contains("edge.origins"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("role = \"edge\"\n[[edge.origins]]\nurl = \"ftp://x\"\nhealth = \"http://a:1/readyz\"")
                .unwrap_err()
        );
        assert!(e.contains("edge.origins[0].url"), "{e}");
        for name in ["edge.toml", "origin-a.toml", "origin-b.toml"] {
            let text =
                std::fs::read_to_string(format!("{}/configs/{name}", env!("CARGO_MANIFEST_DIR")))
                    .unwrap();
            Config::parse(&text).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn errors_name_the_key() {
        let e = format!(
            "{:#}",
            Config::parse("[packager]\npart_target = \"10ms\"").unwrap_err()
        );
        assert!(e.contains("packager.part_target"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[packager]\nsegment_target = \"2 parsecs\"").unwrap_err()
        );
        assert!(e.contains("segment_target"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[rtmp]\nlisten_port = 1").unwrap_err()
        );
        assert!(e.contains("listen_port"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[packager]\nwindow_segments = 3").unwrap_err()
        );
        assert!(e.contains("packager.window_segments"), "{e}");
    }

    #[test]
    fn auth_is_checked() {
        for (text, key) in [
            (
                "[auth.playback]\nsecret = \"short\"",
                "auth.playback.secret",
            ),
            ("[auth.publish]\njwt = true", "auth.publish.jwt"),
            (
                "[auth.jwt]\nhs256_secret = \"too short\"",
                "auth.jwt.hs256_secret",
            ),
            (
                "[auth.publish]\nkeys = { \"../x\" = \"long enough\" }",
                "auth.publish.keys",
            ),
            (
                "[auth.publish]\nkeys = { cam = \"short\" }",
                "auth.publish.keys.cam",
            ),
            (
                "[auth.publish]\nwebhook_timeout = \"1m\"",
                "auth.publish.webhook_timeout",
            ),
        ] {
            let e = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = format!(
            "{:#}",
            Config::parse("[auth.publish]\nwebhook = \"https://x/\"").unwrap_err()
        );
        assert!(e.contains("auth.publish.webhook"), "{e}");
        let c = Config::parse("[auth.publish]\nkeys = { cam = \"long-enough\" }").unwrap();
        let (publish, _) = c
            .auth
            .build(&ferrocast_auth::AuthMetrics::unregistered())
            .unwrap();
        assert!(publish.enabled());
        let (publish, playback) = Config::default_config()
            .auth
            .build(&ferrocast_auth::AuthMetrics::unregistered())
            .unwrap();
        assert!(!publish.enabled() && playback.is_none(), "open by default");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("1MB").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1h").is_err());
    }
}
