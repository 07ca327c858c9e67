//! `ferrocast`: live RTMP ingest → LL-HLS origin. `ferrocast` runs the embedded default config;
//! `ferrocast --config FILE` runs FILE (keys it omits keep their defaults).

use anyhow::{Context, Result};
use clap::Parser;
use ferrocast::config::Config;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Live-streaming ingest and edge media server: RTMP in, LL-HLS out"
)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded default is used.
    #[arg(long, short)]
    config: Option<std::path::PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print a playback token signed with the config's auth.playback.secret (or, with --jwt, an
    /// HS256 JWT signed with auth.jwt.hs256_secret, for publishing or playback), and exit.
    Sign {
        /// The stream the token grants.
        #[arg(long, conflicts_with = "prefix")]
        stream: Option<String>,
        /// The path prefix a signed URL token grants instead, e.g. "/live/" for every stream.
        #[arg(long)]
        prefix: Option<String>,
        /// Lifetime ("1h", "30m", "3600s").
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Bind a signed URL token to this client address.
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        /// Make a JWT instead, for publishing or for playback ("use" claim).
        #[arg(long, value_parser = ["publish", "play"])]
        jwt: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // one readable line per cause, no backtrace: these are operator errors
            eprintln!("ferrocast: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", ferrocast::config::DEFAULT_TOML);
        return Ok(());
    }
    let cfg = match &cli.config {
        Some(path) => Config::read(path)?,
        None => Config::default_config(),
    };
    if let Some(Command::Sign {
        stream,
        prefix,
        ttl,
        ip,
        jwt,
    }) = cli.command
    {
        return sign(&cfg, stream, prefix, &ttl, ip, jwt);
    }
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .context("log.level")?;
    // the filter sits behind a reload handle: a config reload may change log.level
    let (filter, log_handle) = tracing_subscriber::reload::Layer::new(filter);
    let json = cfg.log.format == "json";
    tracing_subscriber::registry()
        .with(filter)
        .with(json.then(|| tracing_subscriber::fmt::layer().json()))
        .with((!json).then(|| {
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
        }))
        .init();
    raise_open_files(cfg.limits.max_connections);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = ferrocast::Server::start(cfg).await?;
        server.live.set_log_reloader(Box::new(move |level| {
            if from_env {
                tracing::info!("RUST_LOG is set: it overrides log.level");
                return Ok(false);
            }
            log_handle.reload(EnvFilter::try_new(level)?)?;
            Ok(true)
        }));
        wait_for_signal(&server.live).await;
        tracing::info!("shutting down");
        server.shutdown().await;
        tracing::info!("bye");
        Ok(())
    })
}

/// Raises the soft open-file limit to the hard one, as a server that holds a descriptor per
/// viewer must: service managers and shells commonly start processes at a soft 1,024, which
/// an edge's viewers (and its memory files, see `ferrocast_edge::memfile`) exhaust long before
/// `limits.max_connections`. Warns when even the hard limit is below that.
#[cfg(target_os = "linux")]
fn raise_open_files(max_connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    // Linux refuses an unlimited RLIMIT_NOFILE; 2^20 is its default `fs.nr_open`
    const UNLIMITED_AS: u64 = 1 << 20;
    let before = getrlimit(Resource::Nofile);
    let hard = before.maximum.unwrap_or(UNLIMITED_AS);
    let soft = before.current.unwrap_or(UNLIMITED_AS);
    let now = if soft < hard {
        let raised = Rlimit {
            current: Some(hard),
            maximum: before.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::info!(from = soft, to = hard, "raised the open-file limit");
                hard
            }
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "could not raise the open-file limit");
                soft
            }
        }
    } else {
        soft
    };
    if max_connections > 0 && now < max_connections as u64 {
        tracing::warn!(
            open_files = now,
            max_connections,
            "the open-file limit is below limits.max_connections: accepts will fail before the \
             limit is reached (raise LimitNOFILE / ulimit -Hn)"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn raise_open_files(_max_connections: usize) {}

/// `ferrocast sign`: prints a token for the configured secrets.
fn sign(
    cfg: &Config,
    stream: Option<String>,
    prefix: Option<String>,
    ttl: &str,
    ip: Option<std::net::IpAddr>,
    jwt: Option<String>,
) -> Result<()> {
    // at most ten years: expiries stay well within what tokens may carry
    let ttl = ttl_seconds(ttl)?.min(10 * 365 * 86_400);
    let exp = ferrocast_auth::unix_now() + ttl;
    if let Some(purpose) = jwt {
        let secret = &cfg.auth.jwt.hs256_secret;
        anyhow::ensure!(
            !secret.is_empty(),
            "sign --jwt: auth.jwt.hs256_secret is not set"
        );
        anyhow::ensure!(
            prefix.is_none() && ip.is_none(),
            "sign --jwt: takes --stream only"
        );
        let stream = stream.context("sign --jwt: --stream is required (\"*\" for all)")?;
        let mut claims = serde_json::json!({ "stream": stream, "use": purpose, "exp": exp });
        if !cfg.auth.jwt.audience.is_empty() {
            claims["aud"] = cfg.auth.jwt.audience.clone().into();
        }
        println!(
            "{}",
            ferrocast_auth::jwt::sign(&claims, secret.as_bytes(), false)?
        );
        return Ok(());
    }
    let secret = &cfg.auth.playback.secret;
    anyhow::ensure!(!secret.is_empty(), "sign: auth.playback.secret is not set");
    let prefix = match (stream, prefix) {
        (Some(s), None) if s == "*" => "/live/".to_string(),
        (Some(s), None) => format!("/live/{s}/"),
        (None, Some(p)) => p,
        _ => anyhow::bail!("sign: give --stream or --prefix"),
    };
    anyhow::ensure!(prefix.starts_with('/'), "sign: --prefix must start with /");
    let signer = ferrocast_auth::signed::UrlSigner::new(secret.as_bytes())?;
    println!("{}", signer.sign(&prefix, exp, ip));
    Ok(())
}

/// A lifetime: a duration with a unit, or hours ("1h") and days ("7d").
fn ttl_seconds(s: &str) -> Result<u64> {
    let s = s.trim();
    let (n, mult) = if let Some(h) = s.strip_suffix('h') {
        (h, 3600)
    } else if let Some(d) = s.strip_suffix('d') {
        (d, 86_400)
    } else {
        let d = ferrocast::config::parse_duration(s).map_err(anyhow::Error::msg)?;
        return Ok(d.as_secs().max(1));
    };
    let n: u64 = n.parse().with_context(|| format!("--ttl {s:?}"))?;
    Ok(n.saturating_mul(mult).max(1))
}

/// Waits for SIGINT or SIGTERM; reloads the config on every SIGHUP meanwhile.
async fn wait_for_signal(live: &ferrocast::reload::Live) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    if let Err(e) = live.reload().await {
                        tracing::error!(error = %e, "config reload failed; the running config stays");
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = live;
        let _ = tokio::signal::ctrl_c().await;
    }
}
