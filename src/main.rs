//! `ferrocast`: live RTMP ingest → LL-HLS origin. `ferrocast` runs the embedded default config;
//! `ferrocast --config FILE` runs FILE (keys it omits keep their defaults).

use anyhow::{Context, Result};
use clap::Parser;
use ferrocast::config::Config;
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
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Config::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Config::default_config(),
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .context("log.level")?;
    if cfg.log.format == "json" {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = ferrocast::Server::start(cfg).await?;
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        tracing::info!("bye");
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
