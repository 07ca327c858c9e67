//! Hostile input against the real server (real sockets), each case while a healthy publisher
//! streams and a healthy viewer follows: the hostile connection is dropped (and counted), the
//! healthy stream keeps advancing, memory stays bounded, nothing panics.

mod common;

use bytes::Bytes;
use common::*;
use ferrocast_media::flv::FlvTagKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The fixture's length: loops of it make one continuous stream.
const PERIOD_MS: u32 = 6000;

/// Resident memory of this process (the server runs in it), bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// The last part a viewer of `stream`'s video playlist sees.
async fn latest_part(http: SocketAddr, stream: &str) -> (u64, u32) {
    let r = get(http, &format!("/live/{stream}/video.m3u8")).await;
    assert_eq!(r.status, 200, "the healthy stream's playlist");
    let (parts, _) = playlist_parts(&r.text());
    let &(msn, index, _) = parts.last().expect("parts listed");
    (msn, index)
}

/// A healthy stream: the fixture looped for `secs` in real time on `stream`.
async fn healthy_publisher(
    rtmp: SocketAddr,
    stream: &str,
    secs: u32,
) -> tokio::task::JoinHandle<()> {
    let mut p = Publisher::accepted(rtmp, stream).await;
    let tags = looped_tags(SMALL, secs.div_ceil(PERIOD_MS / 1000), PERIOD_MS);
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for (kind, body, ts) in tags {
            tokio::time::sleep_until(start + Duration::from_millis(u64::from(ts))).await;
            if p.send_tag(kind, body, ts).await.is_err() {
                return;
            }
        }
        p.close().await;
    })
}

/// The healthy viewer: the stream must have moved on since `before`.
async fn still_advancing(http: SocketAddr, stream: &str, before: (u64, u32)) -> (u64, u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let now = loop {
        let now = latest_part(http, stream).await;
        if now > before {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the healthy stream stopped at {now:?}"
        );
        // the next part is due within a part duration: ask for it with a blocking reload
        let _ = get(
            http,
            &format!(
                "/live/{stream}/video.m3u8?_HLS_msn={}&_HLS_part={}",
                now.0,
                now.1 + 1
            ),
        )
        .await;
    };
    // a blocking reload for the next part is answered too
    let (msn, index) = now;
    let r = get(
        http,
        &format!(
            "/live/{stream}/video.m3u8?_HLS_msn={msn}&_HLS_part={}",
            index + 1
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    now
}

/// A type-0 chunk header on chunk stream `csid` (2..=63), message stream 1.
fn header0(csid: u8, length: u32, type_id: u8) -> Vec<u8> {
    let mut h = vec![csid, 0, 0, 0];
    h.extend_from_slice(&length.to_be_bytes()[1..]);
    h.push(type_id);
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

/// A Set Chunk Size message.
fn set_chunk_size(size: u32) -> Vec<u8> {
    let mut v = header0(2, 4, 1);
    v.extend_from_slice(&size.to_be_bytes());
    v
}

/// An AMF0 command whose argument nests `depth` objects.
fn amf_bomb(depth: usize) -> Vec<u8> {
    let mut amf = vec![0x02, 0x00, 0x07];
    amf.extend_from_slice(b"connect");
    amf.push(0x00);
    amf.extend_from_slice(&2f64.to_be_bytes());
    amf.push(0x03);
    for _ in 1..depth {
        amf.extend_from_slice(&[0x00, 0x01, b'a', 0x03]);
    }
    amf
}

/// Publishes on `stream`, sends `bytes` raw, and expects to be dropped.
async fn dropped_after(rtmp: SocketAddr, stream: &str, bytes: &[u8]) {
    let mut p = Publisher::accepted(rtmp, stream).await;
    p.send_raw(bytes).await;
    assert!(
        p.closed_by_server(Duration::from_secs(5)).await,
        "{stream}: the hostile publisher was not dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_bombs_are_dropped_while_a_healthy_stream_plays() {
    let s =
        start_server_with_rtmp("reconnect_grace = \"1s\"\nhandshake_timeout = \"2s\"\n", "").await;
    let (rtmp, http, admin) = (s.rtmp_addr.unwrap(), s.http_addr, s.admin_addr);
    let healthy = healthy_publisher(rtmp, "healthy", 60).await;
    wait_for_200(http, "/live/healthy/video.m3u8", Duration::from_secs(10)).await;
    let mut seen = latest_part(http, "healthy").await;
    let rss_before = rss();

    // chunk size beyond the limit (1 MiB by default), and zero
    dropped_after(rtmp, "bomb-chunk-size", &set_chunk_size(0x7FFF_FFFF)).await;
    dropped_after(rtmp, "bomb-chunk-zero", &set_chunk_size(0)).await;
    // a 16 MiB message announced: dropped on its header, before any payload
    dropped_after(rtmp, "bomb-length", &header0(20, 0xFF_FFFF, 9)).await;
    // AMF0 nested 15,000 deep in 60 KB (rml_amf0 would recurse until the stack overflows and
    // the process aborts), and a 1 MiB command
    for (name, depth) in [("bomb-amf-deep", 15_000), ("bomb-amf-large", 260_000)] {
        let amf = amf_bomb(depth);
        let mut wire = set_chunk_size(1 << 20);
        wire.extend(header0(20, amf.len() as u32, 20));
        wire.extend_from_slice(&amf);
        dropped_after(rtmp, name, &wire).await;
    }
    // 100 chunk streams
    let mut wire = Vec::new();
    for i in 0..100u8 {
        wire.extend_from_slice(&[0, i]); // chunk stream 64 + i
        wire.extend_from_slice(&header0(0, 4, 3)[1..]);
        wire.extend_from_slice(&[0, 0, 0, 1]);
    }
    dropped_after(rtmp, "bomb-chunk-streams", &wire).await;
    // the chunks of two messages interleaved
    let mut wire = set_chunk_size(128);
    wire.extend(header0(20, 300, 9));
    wire.extend([0x17; 128]);
    wire.extend(header0(21, 10, 8));
    wire.extend([0xAF; 10]);
    dropped_after(rtmp, "bomb-interleaved", &wire).await;
    let refused = metric(admin, "ferrocast_ingest_errors_total", &["refused"]).await;
    assert_eq!(refused, 7.0, "each bomb refused by the chunk guard");
    seen = still_advancing(http, "healthy", seen).await;

    // truncated handshakes (C0 and part of C1; then C0 alone) are closed at the handshake
    // timeout; garbage after a valid C0 too
    for bytes in [vec![3u8; 700], vec![3u8], {
        let mut v = vec![3u8];
        v.extend((0..6000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
        v
    }] {
        let mut c = TcpStream::connect(rtmp).await.unwrap();
        c.write_all(&bytes).await.unwrap();
        let mut buf = vec![0u8; 8192];
        let closed = tokio::time::timeout(Duration::from_secs(6), async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a bad handshake was kept open");
    }
    seen = still_advancing(http, "healthy", seen).await;

    // codecs the server does not take: Sorenson H.263, VP6, an Enhanced RTMP FourCC it does
    // not know (av01), MP3 and Speex audio
    for (name, video, body) in [
        ("codec-h263", true, vec![0x12, 0, 0, 0]),
        ("codec-vp6", true, vec![0x14, 0, 0, 0, 0]),
        ("codec-av01", true, b"\x90av01\x00\x00\x00".to_vec()),
        ("codec-mp3", false, vec![0x2F, 0xFF, 0xFB]),
        ("codec-speex", false, vec![0xB2, 0, 0]),
    ] {
        let mut p = Publisher::accepted(rtmp, name).await;
        let kind = if video {
            FlvTagKind::Video
        } else {
            FlvTagKind::Audio
        };
        let _ = p.send_tag(kind, Bytes::from(body), 0).await;
        assert!(
            p.closed_by_server(Duration::from_secs(5)).await,
            "{name}: an unsupported codec was not refused"
        );
    }
    assert_eq!(
        metric(admin, "ferrocast_ingest_errors_total", &["media"]).await,
        5.0
    );
    still_advancing(http, "healthy", seen).await;
    let grown = rss().saturating_sub(rss_before);
    eprintln!("memory grown over the RTMP bombs: {} KiB", grown / 1024);
    assert!(grown < 64 << 20, "{} MiB held after the bombs", grown >> 20);
    healthy.abort();
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_that_jump_or_wrap_and_new_sequence_headers() {
    let s = start_server("").await;
    let (rtmp, http) = (s.rtmp_addr.unwrap(), s.http_addr);
    let healthy = healthy_publisher(rtmp, "healthy", 60).await;
    wait_for_200(http, "/live/healthy/video.m3u8", Duration::from_secs(10)).await;
    let seen = latest_part(http, "healthy").await;

    // one publisher: 6 s, then timestamps 5 s back, then across the 32-bit wrap, then the
    // B-frame fixture's (different) sequence headers: sent as fast as the socket takes them
    let mut p = Publisher::accepted(rtmp, "jumpy").await;
    let tags = looped_tags(SMALL, 1, PERIOD_MS);
    for (kind, body, ts) in &tags {
        p.send_tag(*kind, body.clone(), *ts).await.unwrap();
    }
    for (kind, body, ts) in tags.iter().filter(|t| t.1.get(1) != Some(&0)) {
        p.send_tag(*kind, body.clone(), ts + 1000).await.unwrap();
    }
    let wrap = u32::MAX - 3000;
    for (kind, body, ts) in tags.iter().filter(|t| t.1.get(1) != Some(&0)) {
        p.send_tag(*kind, body.clone(), ts.wrapping_add(wrap))
            .await
            .unwrap();
    }
    for (kind, body, ts) in looped_tags(BFRAMES, 1, PERIOD_MS) {
        p.send_tag(kind, body, ts.wrapping_add(wrap).wrapping_add(PERIOD_MS))
            .await
            .unwrap();
    }
    p.close().await;
    let text = wait_for_endlist(http, "/live/jumpy/video.m3u8", Duration::from_secs(30)).await;
    // the new sequence headers made a new init segment after a discontinuity
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"video_init1.mp4\""),
        "{text}"
    );
    // every listed object is served
    for uri in media_segment_uris(&text) {
        assert_eq!(
            get(http, &format!("/live/jumpy/{uri}")).await.status,
            200,
            "{uri}"
        );
    }
    still_advancing(http, "healthy", seen).await;
    healthy.abort();
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http_requests_get_clear_errors() {
    let s = start_server("").await;
    let (rtmp, http) = (s.rtmp_addr.unwrap(), s.http_addr);
    let healthy = healthy_publisher(rtmp, "healthy", 30).await;
    wait_for_200(http, "/live/healthy/video.m3u8", Duration::from_secs(10)).await;
    let seen = latest_part(http, "healthy").await;
    // path traversal, encoded or not, never reaches a file
    for path in [
        "/live/../../etc/passwd",
        "/live/healthy/../../../etc/passwd",
        "/live/%2e%2e/%2e%2e/etc/passwd",
        "/live/healthy/..%2fvideo.m3u8",
        "/live/healthy/video.m3u8/..",
        "/../Cargo.toml",
        "/live/healthy/%00video.m3u8",
        "/live/.healthy/video.m3u8",
    ] {
        let r = get(http, path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.text().contains("root:"), "{path}");
    }
    // a 5 KiB URL, a 100 KiB header, 2,000 headers
    assert_eq!(
        get(http, &format!("/live/healthy/{}.m3u8", "a".repeat(5000)))
            .await
            .status,
        414
    );
    for raw in [
        format!(
            "GET /live/healthy/video.m3u8 HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "b".repeat(100 * 1024)
        ),
        format!(
            "GET /live/healthy/video.m3u8 HTTP/1.1\r\nhost: x\r\n{}\r\n",
            (0..2000)
                .map(|i| format!("x-h{i}: v\r\n"))
                .collect::<String>()
        ),
        "BREW /live/healthy/video.m3u8 HTCPCP/1.0\r\n\r\n".to_string(),
        "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03garbage\r\n\r\n".to_string(),
    ] {
        let mut c = TcpStream::connect(http).await.unwrap();
        let _ = c.write_all(raw.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut answer)).await;
        let head = String::from_utf8_lossy(&answer[..answer.len().min(40)]).to_string();
        assert!(
            head.is_empty() || head.starts_with("HTTP/1.1 4"),
            "{}: {head}",
            &raw[..20]
        );
    }
    still_advancing(http, "healthy", seen).await;
    healthy.abort();
    s.shutdown().await;
}

/// Open file descriptors allowed to this process.
fn fd_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_connections_cost_bounded_memory() {
    const N: usize = 5000;
    assert!(
        fd_limit() >= 2 * N as u64 + 500,
        "this test needs {} open files (ulimit -n)",
        2 * N + 500
    );
    let s = start_server_with_rtmp(
        "reconnect_grace = \"1s\"\nhandshake_timeout = \"20s\"\n",
        "[limits]\nrtmp_connections_per_ip = 0\nmax_connections_per_ip = 0\nhttp_header_timeout = \"20s\"\n",
    )
    .await;
    let (rtmp, http, admin) = (s.rtmp_addr.unwrap(), s.http_addr, s.admin_addr);
    let healthy = healthy_publisher(rtmp, "healthy", 90).await;
    wait_for_200(http, "/live/healthy/video.m3u8", Duration::from_secs(10)).await;
    let mut seen = latest_part(http, "healthy").await;
    for (name, addr, gauge) in [
        ("RTMP", rtmp, "ferrocast_ingest_connections"),
        ("HTTP", http, "ferrocast_http_connections"),
    ] {
        let baseline = metric(admin, gauge, &[]).await;
        let before = rss();
        let mut idle = Vec::with_capacity(N);
        for _ in 0..N {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        eventually(
            "the server holds every idle connection",
            Duration::from_secs(20),
            || async { metric(admin, gauge, &[]).await >= baseline + N as f64 },
        )
        .await;
        let grown = rss().saturating_sub(before);
        eprintln!(
            "{N} idle {name} connections: {} KiB resident, {} bytes each (client and server sides)",
            grown / 1024,
            grown / N as u64
        );
        assert!(
            grown / (N as u64) < 12 * 1024,
            "{name}: {grown} bytes for {N} idle connections"
        );
        seen = still_advancing(http, "healthy", seen).await;
        drop(idle);
        eventually(
            "the idle connections are let go",
            Duration::from_secs(20),
            || async { metric(admin, gauge, &[]).await <= baseline },
        )
        .await;
    }
    healthy.abort();
    s.shutdown().await;
}
