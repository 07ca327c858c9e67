//! WHIP load figures, ignored by default (they take a minute and print rather than judge
//! speed): N WebRTC publishers (default 10) at about 1.5 Mbit/s each publish into the server
//! binary running in its own process; the server's CPU time comes from /proc, the
//! glass-to-playlist latency (UDP read of a part's last frame → part servable) from its
//! `ferrocast_part_publish_latency_seconds` histogram. The publishers share the machine's
//! cores with the server.
//!
//! `cargo test --release --test whip_load -- --ignored --nocapture`
//! Env: WHIP_LOAD_PUBLISHERS (default 10), WHIP_LOAD_SECONDS (default 30).

mod common;
mod whip_client;

use common::*;
use std::time::{Duration, Instant};
use whip_client::*;

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // fields after the command name (which is in parentheses and may hold spaces)
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    ticks / hz
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The video rendition's latency histogram: (upper bound, cumulative count) per bucket.
async fn latency_buckets(admin: std::net::SocketAddr) -> Vec<(f64, f64)> {
    let text = get(admin, "/metrics").await.text();
    text.lines()
        .filter(|l| {
            l.starts_with("ferrocast_part_publish_latency_seconds_bucket")
                && l.contains("rendition=\"video\"")
        })
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The bucket bound under which a fraction `q` of the observations (between two scrapes) fall.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let b = before.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1);
            (*le, n - b)
        })
        .collect();
    let total = delta.last().map_or(0.0, |x| x.1);
    delta
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map_or(f64::NAN, |x| x.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn whip_publishers_cpu_and_latency() {
    let n: usize = std::env::var("WHIP_LOAD_PUBLISHERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .clamp(1, 50);
    let secs: u64 = std::env::var("WHIP_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .clamp(10, 300);
    let (rtmp, http, admin) = (free_addr(), free_addr(), free_addr());
    let config = format!(
        "[rtmp]\nlisten = \"{rtmp}\"\n[http]\nlisten = \"{http}\"\n[https]\nenabled = false\n[admin]\nlisten = \"{admin}\"\n[log]\nlevel = \"warn\"\n[whip]\nports = \"23000-23099\"\n"
    );
    let server = Process::start(&config, rtmp, http, admin).await;
    let rss0 = rss_mib(server.pid());
    // 1.5 Mbit/s per publisher: the fixture's frames plus filler, with Opus at ~96 kbit/s
    let frames = h264_frames();
    let avg = frames.iter().map(|f| f.avcc().len()).sum::<usize>() / frames.len();
    let pad = (1_404_000 / 8 / 30usize).saturating_sub(avg);
    let mut clients = Vec::new();
    for i in 0..n {
        let mut c = WhipClient::publish(http, &format!("load{i}"), None).await;
        c.pad = pad;
        clients.push(c);
    }
    // every publisher streams for `secs` (the fixture loops)
    let loops = (secs as u32).div_ceil(3) + 1;
    let mut tasks = Vec::new();
    for mut c in clients {
        tasks.push(tokio::spawn(async move {
            c.stream(loops, |_, _| false, |_| false).await;
            c
        }));
    }
    // measure after a warm-up of 5 s (all sessions aligned and segmenting)
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (cpu0, t0) = (cpu_seconds(server.pid()), Instant::now());
    let lat0 = latency_buckets(admin).await;
    let bytes = || async {
        metric(
            admin,
            "ferrocast_whip_rtp_bytes_total",
            &["track=\"video\""],
        )
        .await
            + metric(
                admin,
                "ferrocast_whip_rtp_bytes_total",
                &["track=\"audio\""],
            )
            .await
    };
    let b0 = bytes().await;
    tokio::time::sleep(Duration::from_secs(secs - 5)).await;
    let (cpu1, wall) = (cpu_seconds(server.pid()), t0.elapsed().as_secs_f64());
    let rss1 = rss_mib(server.pid());
    let lat1 = latency_buckets(admin).await;
    let b1 = bytes().await;
    let lost = metric(
        admin,
        "ferrocast_whip_rtp_packets_lost_total",
        &["track=\"video\""],
    )
    .await;
    let dropped = metric(
        admin,
        "ferrocast_whip_frames_dropped_total",
        &["reason=\"loss\""],
    )
    .await;
    let mbps = (b1 - b0) * 8.0 / wall / n as f64 / 1e6;
    let cpu = (cpu1 - cpu0) / wall;
    println!(
        "WHIP load: {n} publishers, {mbps:.2} Mbit/s RTP payload each, {wall:.0} s measured: server CPU {:.1} % of one core in total, {:.2} % per publisher; glass-to-playlist (UDP read of the last frame's last packet → part servable, bucket bounds) p50 ≤ {} ms, p99 ≤ {} ms; video packets lost {lost}, frames dropped for loss {dropped}; RSS {rss0:.0} → {rss1:.0} MiB ({:.1} MiB per publisher, its stream's window of segments included)",
        cpu * 100.0,
        cpu * 100.0 / n as f64,
        quantile(&lat0, &lat1, 0.5) * 1000.0,
        quantile(&lat0, &lat1, 0.99) * 1000.0,
        (rss1 - rss0) / n as f64,
    );
    // every stream is live with parts
    for i in 0..n {
        let r = get(http, &format!("/live/load{i}/video.m3u8")).await;
        assert_eq!(r.status, 200, "load{i}");
        assert!(r.text().contains("#EXT-X-PART:"), "load{i} has no parts");
    }
    assert!(
        mbps > 1.2,
        "publishers sent {mbps:.2} Mbit/s, not about 1.5"
    );
    for t in tasks {
        t.await.unwrap().close().await;
    }
    drop(server);
}

/// Sessions come and go without leaving memory behind: 60 publishes (connect, then DELETE) of
/// one stream name; the server's RSS after the first 20 and after all 60.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn whip_sessions_release_their_memory() {
    let (rtmp, http, admin) = (free_addr(), free_addr(), free_addr());
    let config = format!(
        "[rtmp]\nlisten = \"{rtmp}\"\n[http]\nlisten = \"{http}\"\n[https]\nenabled = false\n[admin]\nlisten = \"{admin}\"\n[log]\nlevel = \"warn\"\n[whip]\nports = \"23100-23109\"\n"
    );
    let server = Process::start(&config, rtmp, http, admin).await;
    let mut rss = Vec::new();
    for i in 0..60 {
        let c = WhipClient::publish(http, "cycle", None).await;
        let r = request(http, "DELETE", &c.location, &[]).await;
        assert_eq!(r.status, 200);
        c.close().await;
        if i == 19 || i == 59 {
            rss.push(rss_mib(server.pid()));
        }
    }
    let per_session_kib = (rss[1] - rss[0]) * 1024.0 / 40.0;
    println!(
        "WHIP sessions: RSS {:.1} MiB after 20 publish/DELETE cycles, {:.1} MiB after 60: {per_session_kib:.0} KiB per session",
        rss[0], rss[1]
    );
    assert_eq!(
        metric(admin, "ferrocast_whip_publishes_active", &[]).await,
        0.0
    );
}
