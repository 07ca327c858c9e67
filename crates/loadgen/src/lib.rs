//! `ferrocast-loadgen` (the library half; `main.rs` is the command line): N simulated LL-HLS viewers that behave like hls.js in low-latency mode
//! (multivariant and media playlists once, start at the live edge, then a blocking playlist
//! reload for the next part and a GET of every new part), over HTTP/1.1, HTTP/2 or HTTP/3.
//!
//! It reports the part-delivery delay — from the part's publication at the origin (the
//! `ferrocast-published-us` response header, set by the origin and kept by edges) to the last
//! byte of the part at the viewer — as p50/p90/p99/max, plus errors, requests/s and bytes/s.
//! Clock comparison needs origin and viewers on one machine: targets must be loopback, and
//! viewer count and duration are bounded.

pub mod client;
pub mod fragment;
pub mod playlist;

use anyhow::{bail, Context, Result};
use clap::Parser;
use client::{ok, Conn, Keep, Proto, Target, TextDecoder};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MAX_VIEWERS: usize = 20_000;
const MAX_DURATION_S: u64 = 600;
/// Longest any single request may take (a blocking reload waits about one part).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Simulated LL-HLS viewers for load tests (loopback targets only).
#[derive(Parser, Debug, Clone)]
#[command(version)]
pub struct Args {
    /// Multivariant playlist URL, e.g. http://127.0.0.1:8080/live/bench/index.m3u8
    pub url: String,
    /// Concurrent viewers (at most 20000).
    #[arg(long, default_value_t = 100)]
    pub viewers: usize,
    /// HTTP version: 1.1, 2 or 3 (3 needs an https URL).
    #[arg(long, value_enum, default_value = "2")]
    pub http: Proto,
    /// Test length in seconds (at most 600).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds over which viewers join (evenly spread).
    #[arg(long, default_value_t = 5.0)]
    pub ramp: f64,
    /// Seconds after the ramp before figures are recorded.
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// PEM certificate to trust for https (e.g. the server's generated self-signed one).
    #[arg(long)]
    pub cafile: Option<PathBuf>,
    /// Follow only the video rendition (default: every rendition, as players do).
    #[arg(long)]
    pub video_only: bool,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    bytes: AtomicU64,
    parts: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    delays_us: Mutex<Vec<u32>>,
    viewers_started: AtomicU64,
    gaps: AtomicU64,
    repeats: AtomicU64,
    timeline_breaks: AtomicU64,
    timeline_checked: AtomicU64,
}

/// Where one viewer is in one rendition: the last part it took and where that part's media
/// ends, to count parts skipped or taken twice and breaks in the decode timeline.
struct Continuity {
    last: Option<(u64, u32)>,
    end: Option<u64>,
    check_timeline: bool,
}

impl Continuity {
    /// The viewer takes part `id` next (`listed`: the playlist it came from).
    fn take(&mut self, stats: &Stats, id: (u64, u32), listed: &[playlist::PartRef]) {
        if let Some(l) = self.last {
            let next_in_segment = (l.0, l.1 + 1);
            // the first part of the next segment follows only if the segment has no part after
            // the last one taken
            let segment_ended = || !listed.iter().any(|p| (p.msn, p.index) == next_in_segment);
            if id <= l {
                stats.repeats.fetch_add(1, Ordering::Relaxed);
            } else if id != next_in_segment && !(id == (l.0 + 1, 0) && segment_ended()) {
                stats.gaps.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.last = Some(id);
    }

    /// The media of the part just taken (`None` for a GAP part).
    fn media(&mut self, stats: &Stats, body: Option<&[u8]>) {
        let span = body.and_then(fragment::span);
        if let (Some((base, _)), Some(end), true) = (span, self.end, self.check_timeline) {
            stats.timeline_checked.fetch_add(1, Ordering::Relaxed);
            if base != end {
                stats.timeline_breaks.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.end = span.map(|(base, duration)| base + duration);
    }
}

impl Stats {
    fn error(&self, what: &str) {
        *self
            .errors
            .lock()
            .unwrap()
            .entry(what.to_string())
            .or_default() += 1;
    }
}

struct Run {
    target: Target,
    base: String,
    proto: Proto,
    video_only: bool,
    measure_from: Instant,
    stop_at: Instant,
    stats: Stats,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

async fn get(run: &Run, conn: &mut Conn, path: &str, keep: Keep) -> Result<client::Response> {
    let r = tokio::time::timeout(REQUEST_TIMEOUT, conn.get(&run.target, path, keep))
        .await
        .context("request timed out")??;
    if Instant::now() >= run.measure_from {
        run.stats.requests.fetch_add(1, Ordering::Relaxed);
        run.stats.bytes.fetch_add(r.len as u64, Ordering::Relaxed);
    }
    Ok(r)
}

/// How much of a part the timeline check needs: its `moof` (a few hundred bytes for a 200 ms
/// part) comes first; the media after it is counted, not kept.
const PART_HEAD: Keep = Keep::Head(4096);

/// Follows one rendition until the run ends; restarts from the plain playlist after an error.
async fn follow(
    run: Arc<Run>,
    mut conn: Conn,
    rendition: String,
    endpoint: Option<quinn::Endpoint>,
) {
    let mut delays = Vec::new();
    let mut dec = TextDecoder::default();
    // video decode times are exact multiples of the frame duration, part after part
    let mut at = Continuity {
        last: None,
        end: None,
        check_timeline: rendition == "video",
    };
    while Instant::now() < run.stop_at {
        let r = tokio::time::timeout_at(
            run.stop_at.into(),
            follow_once(&run, &mut conn, &rendition, &mut delays, &mut dec, &mut at),
        )
        .await;
        match r {
            Err(_) | Ok(Ok(())) => break,
            Ok(Err(e)) => {
                run.stats.error(&format!("{rendition}: {e:#}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                // a failed connection is replaced
                if let Ok(c) = Conn::open(run.proto, &run.target, endpoint.as_ref()).await {
                    conn = c;
                }
            }
        }
    }
    run.stats.delays_us.lock().unwrap().extend(delays);
}

async fn follow_once(
    run: &Run,
    conn: &mut Conn,
    rendition: &str,
    delays: &mut Vec<u32>,
    dec: &mut TextDecoder,
    at: &mut Continuity,
) -> Result<()> {
    let playlist = format!("{}/{rendition}.m3u8", run.base);
    let r = get(run, conn, &playlist, Keep::All).await?;
    ok(&r, "playlist")?;
    let body = dec.text(&r)?.to_string();
    if let Some(init) = playlist::init_uri(&body) {
        let r = get(run, conn, &format!("{}/{init}", run.base), Keep::Head(0)).await?;
        ok(&r, "init")?;
    }
    // hls.js asks for delta updates when the server offers them
    let skip = if body.contains("CAN-SKIP-UNTIL=") {
        "&_HLS_skip=YES"
    } else {
        ""
    };
    let (mut listed, mut ended) = playlist::parts(&body);
    // start at the newest part; after an error, go on after the last part taken (as players
    // keep their position when a request fails)
    let mut pending: Vec<playlist::PartRef> = match at.last {
        Some(l) => listed
            .iter()
            .filter(|p| (p.msn, p.index) > l)
            .cloned()
            .collect(),
        None => listed
            .iter()
            .rev()
            .find(|p| !p.gap)
            .cloned()
            .into_iter()
            .collect(),
    };
    if at.last.is_none() && pending.is_empty() {
        bail!("playlist has no parts");
    }
    loop {
        for p in std::mem::take(&mut pending) {
            at.take(&run.stats, (p.msn, p.index), &listed);
            if p.gap {
                at.media(&run.stats, None);
                continue;
            }
            let r = get(run, conn, &format!("{}/{}", run.base, p.uri), PART_HEAD).await?;
            ok(&r, "part")?;
            at.media(&run.stats, Some(&r.body));
            if Instant::now() >= run.measure_from {
                run.stats.parts.fetch_add(1, Ordering::Relaxed);
                if let Some(published) = r.published_us {
                    let d = (now_us() - published).clamp(0, i64::from(u32::MAX));
                    delays.push(d as u32);
                }
            }
        }
        if ended {
            return Ok(());
        }
        let Some(last) = at.last else {
            bail!("playlist has no parts");
        };
        let target = format!(
            "{playlist}?_HLS_msn={}&_HLS_part={}{skip}",
            last.0,
            last.1 + 1
        );
        let r = get(run, conn, &target, Keep::All).await?;
        ok(&r, "blocking reload")?;
        (listed, ended) = playlist::parts_after(dec.text(&r)?, Some(last));
        pending = listed.clone();
    }
}

async fn viewer(run: Arc<Run>, endpoint: Option<quinn::Endpoint>) {
    let mut conn = match Conn::open(run.proto, &run.target, endpoint.as_ref()).await {
        Ok(c) => c,
        Err(e) => return run.stats.error(&format!("connect: {e:#}")),
    };
    run.stats.viewers_started.fetch_add(1, Ordering::Relaxed);
    let mv = format!("{}/index.m3u8", run.base);
    let renditions: Vec<String> = match get(&run, &mut conn, &mv, Keep::All).await.and_then(|r| {
        ok(&r, "multivariant")?;
        Ok(TextDecoder::default().text(&r)?.to_string())
    }) {
        Ok(t) => {
            let mut names = vec!["video".to_string()];
            if !run.video_only && t.contains("TYPE=AUDIO") {
                names.push("audio".into());
            }
            names
        }
        Err(e) => return run.stats.error(&format!("multivariant: {e:#}")),
    };
    // the first rendition uses the viewer's connection; each other one gets its own
    // (HTTP/1.1, like a browser's several) or a handle on the multiplexed one (HTTP/2, HTTP/3)
    let mut renditions = renditions.into_iter();
    let first = renditions.next();
    let mut handles = Vec::new();
    for r in renditions {
        let c = match conn.share() {
            Some(c) => c,
            None => match Conn::open(run.proto, &run.target, endpoint.as_ref()).await {
                Ok(c) => c,
                Err(e) => {
                    run.stats.error(&format!("connect: {e:#}"));
                    continue;
                }
            },
        };
        handles.push(tokio::spawn(follow(run.clone(), c, r, endpoint.clone())));
    }
    if let Some(r) = first {
        handles.push(tokio::spawn(follow(run.clone(), conn, r, endpoint.clone())));
    }
    for h in handles {
        let _ = h.await;
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

async fn resolve(args: &Args) -> Result<(Target, String)> {
    let uri: http::Uri = args.url.parse().context("URL")?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => bail!("URL must be http:// or https://"),
    };
    let authority = uri.authority().context("URL needs a host")?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(|c| c == '[' || c == ']');
    let addrs: Vec<_> = tokio::net::lookup_host((host, port)).await?.collect();
    let Some(addr) = addrs.first().copied() else {
        bail!("{host} does not resolve");
    };
    if !addrs.iter().all(|a| a.ip().is_loopback()) {
        bail!("{host} is not a loopback address: load tests target this machine only");
    }
    let base = uri
        .path()
        .strip_suffix("/index.m3u8")
        .context("URL must end in /index.m3u8")?
        .to_string();
    let tls = if https {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(f) = &args.cafile {
            use rustls::pki_types::pem::PemObject;
            for c in rustls::pki_types::CertificateDer::pem_file_iter(f)? {
                roots.add(c?)?;
            }
        } else {
            bail!("https needs --cafile (the server's certificate)");
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Some(cfg)
    } else {
        None
    };
    Ok((Target::new(args.http, addr, authority, host, tls)?, base))
}

/// Checks the bounds of a run (viewer count, duration, ramp).
pub fn validate(args: &Args) -> Result<()> {
    if args.viewers == 0 || args.viewers > MAX_VIEWERS {
        bail!("--viewers must be between 1 and {MAX_VIEWERS}");
    }
    if args.duration == 0 || args.duration > MAX_DURATION_S {
        bail!("--duration must be between 1 and {MAX_DURATION_S} seconds");
    }
    if !(0.0..=120.0).contains(&args.ramp) || !(0.0..=120.0).contains(&args.warmup) {
        bail!("--ramp and --warmup must be between 0 and 120 seconds");
    }
    Ok(())
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Viewers asked for.
    pub viewers: usize,
    /// Viewers that connected.
    pub connected: u64,
    /// HTTP version label.
    pub http: &'static str,
    /// Seconds the figures cover.
    pub measured_s: f64,
    /// Parts received in that time.
    pub parts: u64,
    /// Part-delivery delay percentiles, ms: p50, p90, p99, max (NaN without samples).
    pub delay_ms: [f64; 4],
    /// Requests in that time.
    pub requests: u64,
    /// Body bytes in that time.
    pub bytes: u64,
    /// Errors by kind (whole run).
    pub errors: BTreeMap<String, u64>,
    /// Parts a viewer skipped: the next part it took was not the one after its last (whole
    /// run).
    pub gaps: u64,
    /// Parts a viewer took again, or out of order (whole run).
    pub repeats: u64,
    /// Video parts whose decode time does not start where the previous part's ended (whole
    /// run).
    pub timeline_breaks: u64,
    /// Video parts whose decode time was checked against the previous part's end (whole run;
    /// 0 means the timeline was not checked at all).
    pub timeline_checked: u64,
}

impl Report {
    /// Total errors.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Prints the report (human-readable, or one JSON object).
    pub fn print(&self, json: bool) {
        let secs = self.measured_s.max(1e-9);
        let [p50, p90, p99, max] = self.delay_ms;
        let (parts, requests, bytes) = (self.parts, self.requests, self.bytes);
        let (proto, started, error_total) = (self.http, self.connected, self.error_total());
        if json {
            let errs: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{:?}:{v}", k))
                .collect();
            println!(
                "{{\"viewers\":{},\"connected\":{started},\"http\":\"{proto}\",\"measured_s\":{secs:.1},\"parts\":{parts},\"delay_ms\":{{\"p50\":{p50:.1},\"p90\":{p90:.1},\"p99\":{p99:.1},\"max\":{max:.1}}},\"requests_per_s\":{:.0},\"bytes_per_s\":{:.0},\"errors\":{error_total},\"error_kinds\":{{{}}},\"gaps\":{},\"repeats\":{},\"timeline_breaks\":{}}}",
                self.viewers,
                requests as f64 / secs,
                bytes as f64 / secs,
                errs.join(","),
                self.gaps,
                self.repeats,
                self.timeline_breaks
            );
            return;
        }
        println!(
            "viewers {} ({} connected), HTTP/{proto}, figures over the last {secs:.1} s",
            self.viewers, started
        );
        println!("parts received      {parts} ({:.0}/s)", parts as f64 / secs);
        println!(
            "part delivery delay p50 {p50:.1} ms  p90 {p90:.1} ms  p99 {p99:.1} ms  max {max:.1} ms"
        );
        println!(
            "requests            {requests} ({:.0}/s), {:.1} MB/s",
            requests as f64 / secs,
            bytes as f64 / secs / 1e6
        );
        println!(
            "continuity          {} parts skipped, {} repeated, {} video timeline breaks in {} checked",
            self.gaps, self.repeats, self.timeline_breaks, self.timeline_checked
        );
        println!("errors              {error_total}");
        for (k, v) in self.errors.iter().take(10) {
            println!("  {v} × {k}");
        }
    }
}

/// Runs the viewers of `args` to the end and reports.
pub async fn run(args: &Args) -> Result<Report> {
    validate(args)?;
    let (target, base) = resolve(args).await?;
    let start = Instant::now();
    let duration = Duration::from_secs(args.duration);
    let measure_from = start + Duration::from_secs_f64(args.ramp + args.warmup);
    if measure_from >= start + duration {
        bail!("--duration must be longer than --ramp + --warmup");
    }
    let run = Arc::new(Run {
        target,
        base,
        proto: args.http,
        video_only: args.video_only,
        measure_from,
        stop_at: start + duration,
        stats: Stats::default(),
    });
    // QUIC endpoints (one UDP socket each) shared by groups of viewers
    let mut endpoints = Vec::new();
    if args.http == Proto::H3 {
        let bind: std::net::SocketAddr = if run.target.addr.is_ipv6() {
            "[::1]:0".parse()?
        } else {
            "127.0.0.1:0".parse()?
        };
        for _ in 0..args.viewers.div_ceil(64) {
            endpoints.push(quinn::Endpoint::client(bind)?);
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.viewers {
        let at = start + Duration::from_secs_f64(args.ramp * i as f64 / args.viewers as f64);
        let run = run.clone();
        let endpoint = endpoints.get(i / 64).cloned();
        tasks.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            viewer(run, endpoint).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(report(args, &run, start.elapsed().min(duration)))
}

fn report(args: &Args, run: &Run, elapsed: Duration) -> Report {
    let s = &run.stats;
    let measured = elapsed.saturating_sub(Duration::from_secs_f64(args.ramp + args.warmup));
    let mut d = s.delays_us.lock().unwrap().clone();
    d.sort_unstable();
    Report {
        viewers: args.viewers,
        connected: s.viewers_started.load(Ordering::Relaxed),
        http: match args.http {
            Proto::H1 => "1.1",
            Proto::H2 => "2",
            Proto::H3 => "3",
        },
        measured_s: measured.as_secs_f64(),
        parts: s.parts.load(Ordering::Relaxed),
        delay_ms: [
            percentile(&d, 0.5),
            percentile(&d, 0.9),
            percentile(&d, 0.99),
            percentile(&d, 1.0),
        ],
        requests: s.requests.load(Ordering::Relaxed),
        bytes: s.bytes.load(Ordering::Relaxed),
        errors: s.errors.lock().unwrap().clone(),
        gaps: s.gaps.load(Ordering::Relaxed),
        repeats: s.repeats.load(Ordering::Relaxed),
        timeline_breaks: s.timeline_breaks.load(Ordering::Relaxed),
        timeline_checked: s.timeline_checked.load(Ordering::Relaxed),
    }
}
