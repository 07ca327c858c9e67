//! Config reload (admin API `POST /api/v1/reload`, and SIGHUP): the file the server started
//! from is read again, validated as a whole, and what can change without a restart is put in
//! force at once — publish and playback auth, limits, the log level, the admin token.
//! Publishers and viewers stay connected. Other keys (listen addresses, the role, the packager,
//! edge origins, ...) keep their running values; a reload names them as needing a restart.
//! A file that does not parse or validate changes nothing.

use crate::config::Config;
use anyhow::{Context, Result};
use ferrocast_auth::admission::Admission;
use ferrocast_auth::playback::SharedPlayback;
use ferrocast_auth::publish::PublishAuth;
use ferrocast_auth::secret::SecretTag;
use ferrocast_auth::AuthMetrics;
use ferrocast_ingest::rtmp::guard::ChunkLimits;
use ferrocast_ingest::rtmp::server::{RtmpLimits, RtmpServer};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Keys (dotted, or a section prefix ending in `.`) a reload puts in force.
const RELOADABLE: &[&str] = &[
    "auth.",
    "limits.max_publishers",
    "limits.max_publish_kbps",
    "limits.bitrate_window",
    "limits.rtmp_connections_per_ip",
    "limits.rtmp_max_chunk_size",
    "limits.rtmp_max_message_size",
    "limits.max_connections",
    "limits.max_connections_per_ip",
    "log.level",
    "admin.token",
];

fn reloadable(key: &str) -> bool {
    RELOADABLE
        .iter()
        .any(|r| key == *r || (r.ends_with('.') && key.starts_with(r)))
}

/// Sets the log filter (given by the binary, which owns the subscriber); `Ok(false)` when the
/// filter stays as it is (`RUST_LOG` overrides `log.level`).
pub type LogReloader = Box<dyn Fn(&str) -> Result<bool> + Send + Sync>;

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// Keys whose new values are in force.
    pub applied: Vec<String>,
    /// Changed keys that have no effect here (RTMP limits and publish auth on an edge,
    /// `log.level` while `RUST_LOG` is set).
    pub ignored: Vec<String>,
    /// Keys that differ from the running server's and need a restart (their running values
    /// stay).
    pub restart_required: Vec<String>,
}

/// Why a reload changed nothing.
#[derive(Debug)]
pub enum ReloadError {
    /// The server runs the embedded default config.
    NoFile,
    /// The file could not be read.
    Unreadable(String),
    /// The file (or what it names, such as a key file) is invalid; the message names the key
    /// but not its value.
    Invalid(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::NoFile => f.write_str(
                "the server runs the embedded default config: there is no file to reload",
            ),
            ReloadError::Unreadable(e) | ReloadError::Invalid(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ReloadError {}

/// The parts of a running server a reload changes, and the config in force.
pub struct Live {
    publish_auth: PublishAuth,
    playback: SharedPlayback,
    auth_metrics: AuthMetrics,
    rtmp: Option<Arc<RtmpServer>>,
    http_admission: Arc<Admission>,
    /// The admin API token (`None`: the API is off).
    admin_token: arc_swap::ArcSwapOption<SecretTag>,
    log: parking_lot::Mutex<Option<LogReloader>>,
    /// Held from reading the file to applying it: reloads happen one at a time, in order.
    reloading: tokio::sync::Mutex<()>,
    /// The config the listeners were started with, and the one in force (the started one
    /// with the reloadable keys of the last reload).
    configs: tokio::sync::Mutex<(Config, Config)>,
}

/// The RTMP limits of a config.
pub fn rtmp_limits(cfg: &Config) -> RtmpLimits {
    let l = &cfg.limits;
    RtmpLimits {
        max_publishers: l.max_publishers,
        max_bitrate: l.max_publish_kbps.saturating_mul(1000),
        bitrate_window: l.bitrate_window.0,
        max_connections_per_ip: l.rtmp_connections_per_ip,
        chunk_limits: ChunkLimits {
            max_chunk_size: l.rtmp_max_chunk_size,
            max_message_size: l.rtmp_max_message_size,
        },
    }
}

/// The admin token as compared (`None` for an empty one: the API is off).
fn admin_tag(token: &str) -> Result<Option<Arc<SecretTag>>> {
    if token.is_empty() {
        return Ok(None);
    }
    Ok(Some(Arc::new(SecretTag::new(token.as_bytes())?)))
}

/// Keys only an ingest uses (no effect on an edge).
fn ingest_only(key: &str) -> bool {
    key.starts_with("auth.publish.")
        || key.starts_with("limits.max_publish")
        || key.starts_with("limits.rtmp_")
        || key == "limits.bitrate_window"
}

impl Live {
    /// The reloadable state of a server started with `cfg`.
    pub fn new(
        cfg: &Config,
        publish_auth: PublishAuth,
        playback: SharedPlayback,
        auth_metrics: AuthMetrics,
        rtmp: Option<Arc<RtmpServer>>,
        http_admission: Arc<Admission>,
    ) -> Result<Self> {
        Ok(Self {
            publish_auth,
            playback,
            auth_metrics,
            rtmp,
            http_admission,
            admin_token: arc_swap::ArcSwapOption::new(admin_tag(&cfg.admin.token)?),
            log: parking_lot::Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            configs: tokio::sync::Mutex::new((cfg.clone(), cfg.clone())),
        })
    }

    /// Lets reloads change the log filter.
    pub fn set_log_reloader(&self, f: LogReloader) {
        *self.log.lock() = Some(f);
    }

    /// The admin API token in force (`None`: the API is off).
    pub fn admin_token(&self) -> Option<Arc<SecretTag>> {
        self.admin_token.load_full()
    }

    /// Reads the config file again and applies it.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one = self.reloading.lock().await;
        let path = self.configs.lock().await.0.source.clone();
        let path = path.ok_or(ReloadError::NoFile)?;
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| ReloadError::Unreadable(format!("cannot read {}: {e}", path.display())))?;
        let mut new = Config::parse(&text)
            .with_context(|| format!("in {}", path.display()))
            .map_err(|e| ReloadError::Invalid(redacted(&e)))?;
        new.source = Some(path);
        self.apply(new)
            .await
            .map_err(|e| ReloadError::Invalid(redacted(&e)))
    }

    /// Puts the reloadable keys of `new` (a valid config) in force. The config that results
    /// (the running one with those keys) is validated and built first: if any part fails
    /// (an unreadable RS256 key file, ...) nothing changes.
    pub async fn apply(&self, new: Config) -> Result<ReloadReport> {
        let mut configs = self.configs.lock().await;
        let (started, current) = &mut *configs;
        let mut next = Config::from_table(overlay(&started.table, &new.table))
            .context("the running config with the new values")?;
        next.source = started.source.clone();
        let mut report = ReloadReport::default();
        for key in changed(&current.table, &next.table) {
            if self.rtmp.is_none() && ingest_only(&key) {
                report.ignored.push(key);
            } else {
                report.applied.push(key);
            }
        }
        for key in changed(&started.table, &new.table) {
            if !reloadable(&key) {
                report.restart_required.push(key);
            }
        }
        // build everything first: a failure leaves the running state untouched
        let auth_changed = report.applied.iter().any(|k| k.starts_with("auth."))
            // a key file may have new contents under the same name
            || !next.auth.jwt.rs256_public_key.is_empty();
        let auth = if auth_changed {
            Some(next.auth.build(&self.auth_metrics)?)
        } else {
            None
        };
        let admin = if report.applied.iter().any(|k| k == "admin.token") {
            Some(admin_tag(&next.admin.token)?)
        } else {
            None
        };
        if let Some(i) = report.applied.iter().position(|k| k == "log.level") {
            let set = match &*self.log.lock() {
                Some(f) => f(&next.log.level).context("log.level")?,
                None => false,
            };
            if !set {
                report.ignored.push(report.applied.remove(i));
            }
        }
        if let Some((publish, playback)) = auth {
            self.publish_auth.replace(&publish);
            self.playback.set(playback);
        }
        if let Some(r) = &self.rtmp {
            r.set_limits(rtmp_limits(&next));
        }
        self.http_admission.set_limits(
            next.limits.max_connections,
            next.limits.max_connections_per_ip,
        );
        if let Some(tag) = admin {
            self.admin_token.store(tag);
        }
        tracing::info!(
            applied = ?report.applied,
            ignored = ?report.ignored,
            restart_required = ?report.restart_required,
            "config reloaded"
        );
        if !report.restart_required.is_empty() {
            tracing::warn!(keys = ?report.restart_required, "these changed keys take effect after a restart");
        }
        *current = next;
        Ok(report)
    }
}

/// `started` with the reloadable keys of `new`.
fn overlay(started: &toml::Table, new: &toml::Table) -> toml::Table {
    let mut out = started.clone();
    let mut keys = BTreeMap::new();
    flatten("", new, &mut keys);
    for (key, value) in keys.into_iter().filter(|(k, _)| reloadable(k)) {
        let mut table = &mut out;
        let mut path = key.split('.').peekable();
        while let Some(part) = path.next() {
            if path.peek().is_none() {
                table.insert(part.to_string(), value.clone());
                break;
            }
            let entry = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => table = t,
                _ => break,
            }
        }
    }
    out
}

/// An error's causes on one line, without the values of the config line it points at (a
/// TOML error quotes the line, which may hold a secret): `line 14: max_publishers = …`.
fn redacted(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let mut kept = Vec::new();
        for line in cause.to_string().lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('|') {
                continue;
            }
            let quoted = t
                .split_once(" | ")
                .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
            match quoted {
                Some((n, code)) => {
                    let key = code.split('=').next().unwrap_or("").trim();
                    kept.push(format!("(line {n}: {key} = …)"));
                }
                None => kept.push(t.to_string()),
            }
        }
        let text = kept.join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Dotted keys whose values differ between two config tables (sections recursed into;
/// anything else, arrays and inline tables of values included, compared whole).
fn changed(a: &toml::Table, b: &toml::Table) -> Vec<String> {
    let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
    flatten("", a, &mut fa);
    flatten("", b, &mut fb);
    let mut keys: Vec<String> = fa
        .keys()
        .chain(fb.keys())
        .filter(|k| fa.get(*k) != fb.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn flatten<'a>(prefix: &str, t: &'a toml::Table, out: &mut BTreeMap<String, &'a toml::Value>) {
    for (k, v) in t {
        let key = format!("{prefix}{k}");
        match v {
            // a sub-section, except maps of user values (publish keys): compared whole
            toml::Value::Table(sub) if key != "auth.publish.keys" => {
                flatten(&format!("{key}."), sub, out)
            }
            _ => {
                out.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_classified() {
        let a = Config::default_config();
        let b = Config::parse(
            r#"
            [log]
            level = "debug"
            [http]
            listen = "127.0.0.1:8081"
            [auth.publish]
            keys = { cam = "0123456789abcdef" }
            [limits]
            max_publishers = 3
            http_idle_timeout = "90s"
            "#,
        )
        .unwrap();
        let keys = changed(&a.table, &b.table);
        assert_eq!(
            keys,
            [
                "auth.publish.keys",
                "http.listen",
                "limits.http_idle_timeout",
                "limits.max_publishers",
                "log.level"
            ]
        );
        let (now, later): (Vec<_>, Vec<_>) = keys.iter().partition(|k| reloadable(k));
        assert_eq!(
            now,
            ["auth.publish.keys", "limits.max_publishers", "log.level"]
        );
        assert_eq!(later, ["http.listen", "limits.http_idle_timeout"]);
        assert!(changed(&a.table, &Config::default_config().table).is_empty());
        // what a reload runs: the started config with the new reloadable values only
        let next = Config::from_table(overlay(&a.table, &b.table)).unwrap();
        assert_eq!(next.limits.max_publishers, 3);
        assert_eq!(next.log.level, "debug");
        assert_eq!(next.auth.publish.keys.len(), 1);
        assert_eq!(next.http.listen, a.http.listen);
        assert_eq!(
            next.limits.http_idle_timeout.0,
            a.limits.http_idle_timeout.0
        );
    }

    #[test]
    fn errors_name_the_key_but_not_the_value() {
        let e = Config::parse("[auth.jwt]\nhs256_secret = \"s3cr3t-value\" x\n")
            .context("in a.toml")
            .unwrap_err();
        let r = redacted(&e);
        assert!(!r.contains("s3cr3t"), "{r}");
        assert!(r.contains("hs256_secret"), "{r}");
        assert!(r.starts_with("in a.toml: "), "{r}");
        assert!(!r.contains('\n'));
    }
}
