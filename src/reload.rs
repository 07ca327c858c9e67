//! Config reload (admin API `POST /api/v1/reload`, and SIGHUP): the file the server started
//! from is read again, validated as a whole, and what can change without a restart is put in
//! force at once — publish and playback auth, limits, the log level, the admin token.
//! Publishers and viewers stay connected. Other keys (listen addresses, the role, the packager,
//! edge origins, ...) keep their running values; a reload names them as needing a restart.
//! A file that does not parse or validate changes nothing.

use crate::config::Config;
use anyhow::{bail, Context, Result};
use ferrocast_auth::admission::Admission;
use ferrocast_auth::playback::SharedPlayback;
use ferrocast_auth::publish::PublishAuth;
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

/// Sets the log filter (given by the binary, which owns the subscriber).
pub type LogReloader = Box<dyn Fn(&str) -> Result<()> + Send + Sync>;

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// Keys whose new values are in force.
    pub applied: Vec<String>,
    /// Keys that differ from the running server's and need a restart (their running values
    /// stay).
    pub restart_required: Vec<String>,
}

/// The parts of a running server a reload changes, and the config in force.
pub struct Live {
    publish_auth: PublishAuth,
    playback: SharedPlayback,
    auth_metrics: AuthMetrics,
    rtmp: Option<Arc<RtmpServer>>,
    http_admission: Arc<Admission>,
    admin_token: arc_swap::ArcSwap<String>,
    log: parking_lot::Mutex<Option<LogReloader>>,
    /// The config the listeners were started with, and the one in force (reloadable keys).
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

impl Live {
    /// The reloadable state of a server started with `cfg`.
    pub fn new(
        cfg: &Config,
        publish_auth: PublishAuth,
        playback: SharedPlayback,
        auth_metrics: AuthMetrics,
        rtmp: Option<Arc<RtmpServer>>,
        http_admission: Arc<Admission>,
    ) -> Self {
        Self {
            publish_auth,
            playback,
            auth_metrics,
            rtmp,
            http_admission,
            admin_token: arc_swap::ArcSwap::from_pointee(cfg.admin.token.clone()),
            log: parking_lot::Mutex::new(None),
            configs: tokio::sync::Mutex::new((cfg.clone(), cfg.clone())),
        }
    }

    /// Lets reloads change the log filter.
    pub fn set_log_reloader(&self, f: LogReloader) {
        *self.log.lock() = Some(f);
    }

    /// The admin API token in force (empty: the API is off).
    pub fn admin_token(&self) -> arc_swap::Guard<Arc<String>> {
        self.admin_token.load()
    }

    /// The file reloads read (`None`: the server runs the embedded default).
    pub async fn source(&self) -> Option<std::path::PathBuf> {
        self.configs.lock().await.1.source.clone()
    }

    /// Reads the config file again and applies it.
    pub async fn reload(&self) -> Result<ReloadReport> {
        let Some(path) = self.source().await else {
            bail!("the server runs the embedded default config: there is no file to reload");
        };
        let path2 = path.clone();
        let cfg = tokio::task::spawn_blocking(move || Config::read(&path2))
            .await
            .context("reading the config")??;
        self.apply(cfg).await
    }

    /// Puts the reloadable keys of `new` in force. Nothing changes if any part fails to
    /// build (an unreadable RS256 key file, ...).
    pub async fn apply(&self, new: Config) -> Result<ReloadReport> {
        let mut configs = self.configs.lock().await;
        let (started, current) = &mut *configs;
        let mut report = ReloadReport::default();
        for key in changed(&current.table, &new.table) {
            if reloadable(&key) {
                report.applied.push(key);
            }
        }
        for key in changed(&started.table, &new.table) {
            if !reloadable(&key) {
                report.restart_required.push(key);
            }
        }
        // build everything first: a failure leaves the running state untouched
        let (publish, playback) = new.auth.build(&self.auth_metrics)?;
        let level_changed = report.applied.iter().any(|k| k == "log.level");
        if level_changed {
            if let Some(f) = &*self.log.lock() {
                f(&new.log.level).context("log.level")?;
            }
        }
        self.publish_auth.replace(&publish);
        self.playback.set(playback);
        if let Some(r) = &self.rtmp {
            r.set_limits(rtmp_limits(&new));
        }
        self.http_admission.set_limits(
            new.limits.max_connections,
            new.limits.max_connections_per_ip,
        );
        self.admin_token.store(Arc::new(new.admin.token.clone()));
        tracing::info!(
            applied = ?report.applied,
            restart_required = ?report.restart_required,
            "config reloaded"
        );
        if !report.restart_required.is_empty() {
            tracing::warn!(keys = ?report.restart_required, "these changed keys take effect after a restart");
        }
        *current = new;
        Ok(report)
    }
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
    }
}
