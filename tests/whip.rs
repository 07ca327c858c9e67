//! WHIP ingest end to end: a WebRTC publisher (the `webrtc` crate, offerer side) sends H.264
//! and Opus from `sample-h264-opus.mkv` over real UDP on loopback; the LL-HLS output is read
//! back over HTTP and checked sample by sample, and decoded by ffmpeg.

mod common;
mod whip_client;

use bytes::Bytes;
use common::*;
use std::collections::HashSet;
use std::io::Cursor;
use std::time::Duration;
use whip_client::*;

fn whip_config(ports: &str) -> String {
    format!("[whip]\nports = \"{ports}\"\nidle_timeout = \"3s\"\nconnect_timeout = \"2s\"\n")
}

/// One sample read back: its bytes, sync flag, decode time and duration.
#[derive(Debug)]
struct Sample {
    data: Vec<u8>,
    sync: bool,
    dts: u64,
    duration: u32,
}

/// The samples of each fragment of `seg` (one track).
fn samples(init: &Bytes, seg: &Bytes) -> Vec<Sample> {
    let mut all = init.to_vec();
    all.extend_from_slice(seg);
    let size = all.len() as u64;
    let r = mp4::Mp4Reader::read_header(Cursor::new(all), size).expect("mp4 parses");
    // the mdat payloads, in order
    let mut mdats = Vec::new();
    let mut pos = 0;
    while pos + 8 <= seg.len() {
        let len = u32::from_be_bytes(seg[pos..pos + 4].try_into().unwrap()) as usize;
        if &seg[pos + 4..pos + 8] == b"mdat" {
            mdats.push(seg.slice(pos + 8..pos + len));
        }
        pos += len.max(8);
    }
    assert_eq!(mdats.len(), r.moofs.len());
    let mut out = Vec::new();
    for (moof, mdat) in r.moofs.iter().zip(mdats) {
        let traf = &moof.trafs[0];
        let mut dts = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
        let trun = traf.trun.as_ref().expect("trun");
        let mut at = 0usize;
        for i in 0..trun.sample_count as usize {
            let size = trun.sample_sizes[i] as usize;
            let flags = trun.sample_flags.get(i).copied().unwrap_or(0);
            out.push(Sample {
                data: mdat[at..at + size].to_vec(),
                sync: flags & 0x0001_0000 == 0,
                dts,
                duration: trun.sample_durations[i],
            });
            dts += u64::from(trun.sample_durations[i]);
            at += size;
        }
        assert_eq!(at, mdat.len(), "mdat holds exactly the trun's samples");
    }
    out
}

/// Init and every complete segment of a rendition, after its ENDLIST.
async fn rendition(http: std::net::SocketAddr, stream: &str, track: &str) -> (Bytes, Vec<Bytes>) {
    let text = wait_for_endlist(
        http,
        &format!("/live/{stream}/{track}.m3u8"),
        Duration::from_secs(20),
    )
    .await;
    let init_uri = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.split('"').next())
        .expect("EXT-X-MAP")
        .to_string();
    let init = get(http, &format!("/live/{stream}/{init_uri}")).await;
    assert_eq!(init.status, 200);
    let mut segs = Vec::new();
    for uri in media_segment_uris(&text) {
        let r = get(http, &format!("/live/{stream}/{uri}")).await;
        assert_eq!(r.status, 200, "{uri}");
        segs.push(r.body);
    }
    (init.body, segs)
}

/// ffmpeg decodes init + segments without an error; returns the frames decoded.
fn ffmpeg_decodes(init: &Bytes, segs: &[Bytes], name: &str) -> usize {
    let path =
        std::env::temp_dir().join(format!("ferrocast-whip-{}-{name}.mp4", std::process::id()));
    let mut all = init.to_vec();
    for s in segs {
        all.extend_from_slice(s);
    }
    std::fs::write(&path, &all).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&path)
        .args(["-fps_mode", "passthrough", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg runs");
    if std::env::var_os("KEEP_WHIP_MP4").is_none() {
        let _ = std::fs::remove_file(&path);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

/// Every frame from the first published one on is in the video rendition, in order, unchanged,
/// once, with its keyframe flag, 3000 ticks apart (across the RTP timestamp and sequence
/// wraps); every segment starts on a keyframe and ffmpeg decodes them all. Returns the init
/// segment, the samples and the index of the first frame published.
async fn every_frame_arrives(
    http: std::net::SocketAddr,
    stream: &str,
    sent: &[Frame],
) -> (Bytes, Vec<Sample>, usize) {
    let (vinit, vsegs) = rendition(http, stream, "video").await;
    let vs: Vec<_> = vsegs.iter().flat_map(|s| samples(&vinit, s)).collect();
    // every frame from the first published one on is there, in order, unchanged, once, with
    // its keyframe flag, 3000 ticks apart (across the RTP timestamp and sequence wraps)
    let k0 = sent
        .iter()
        .position(|f| f.avcc() == vs[0].data)
        .expect("the first sample was sent");
    assert!(k0 < 30, "the first {k0} frames are missing");
    assert!(
        vs.len() >= sent.len() - k0 - 3,
        "{} of {} frames",
        vs.len(),
        sent.len()
    );
    for (i, s) in vs.iter().enumerate() {
        assert!(
            s.data == sent[k0 + i].avcc(),
            "sample {i} is not frame {}",
            k0 + i
        );
        assert_eq!(s.sync, sent[k0 + i].idr, "keyframe flag of sample {i}");
        assert_eq!(s.dts, vs[0].dts + 3000 * i as u64);
    }
    for s in &vsegs {
        assert!(
            samples(&vinit, s)[0].sync,
            "a segment that does not start on a keyframe"
        );
    }
    assert!(vsegs.len() >= 2);
    assert_eq!(ffmpeg_decodes(&vinit, &vsegs, stream), vs.len());
    (vinit, vs, k0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publish_comes_out_as_llhls() {
    let server = start_server(&whip_config("21000-21009")).await;
    let http = server.http_addr;
    let mut c = WhipClient::publish(http, "w1", None).await;
    let sent = c.stream(2, |_, _| false, |_| false).await;
    let plis = c.plis.load(std::sync::atomic::Ordering::Relaxed);
    // DELETE ends the session
    let r = request(http, "DELETE", &c.location, &[]).await;
    assert_eq!(r.status, 200);
    let mv = wait_for_200(http, "/live/w1/index.m3u8", Duration::from_secs(5)).await;
    let mv = mv.text();
    assert!(mv.contains("CODECS=\"avc1.42c01e,opus\""), "{mv}");
    assert!(mv.contains("RESOLUTION=640x360"), "{mv}");

    let (_, vs, k0) = every_frame_arrives(http, "w1", &sent).await;

    let (ainit, asegs) = rendition(http, "w1", "audio").await;
    let a: Vec<_> = asegs.iter().flat_map(|s| samples(&ainit, s)).collect();
    let packets = opus_packets();
    assert!(
        a.len() >= 2 * packets.len() - 60,
        "{} audio packets",
        a.len()
    );
    assert!(a.iter().all(|s| s.duration == 960));
    // audio is aligned with video: packet j was sent with video frame j × 20 ms / 33.3 ms, so
    // its media time is j × 960 ticks after the first frame's (within a packet)
    let n = packets.len();
    let j0 = (0..n)
        .find(|&j| (0..8).all(|i| packets[(j + i) % n][..] == a[i].data[..]))
        .expect("the first audio samples were sent");
    let video_ms = |dts: u64| dts as f64 / 90.0;
    let audio_ms = |dts: u64| dts as f64 / 48.0;
    let want = video_ms(vs[0].dts) - k0 as f64 * 1000.0 / 30.0 + j0 as f64 * 20.0;
    assert!(
        (audio_ms(a[0].dts) - want).abs() <= 25.0,
        "audio packet {j0} at {} ms, video says {want} ms",
        audio_ms(a[0].dts)
    );
    for (i, s) in a.iter().enumerate() {
        assert!(
            s.data[..] == packets[(j0 + i) % packets.len()][..],
            "audio sample {i}"
        );
    }
    assert_eq!(ffmpeg_decodes(&ainit, &asegs, "audio"), a.len());
    // PLIs: one at the start, then one per segment target
    assert!(plis >= 2, "{plis} PLIs");
    let admin = server.admin_addr;
    assert!(metric(admin, "ferrocast_whip_plis_sent_total", &[]).await >= 2.0);
    assert!(
        metric(
            admin,
            "ferrocast_whip_rtp_packets_total",
            &["track=\"video\""]
        )
        .await
            > 300.0
    );
    c.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_and_reordering_give_valid_output() {
    let server = start_server(&whip_config("21010-21019")).await;
    let http = server.http_addr;
    let mut c = WhipClient::publish(http, "w2", None).await;
    // every 97th video packet lost, every 13th swapped with the next, every 41st audio packet lost
    let sent = c
        .stream(
            2,
            |video, i| if video { i % 97 == 50 } else { i % 41 == 7 },
            |i| i % 13 == 5,
        )
        .await;
    request(http, "DELETE", &c.location, &[]).await;
    let (vinit, vsegs) = rendition(http, "w2", "video").await;
    let vs: Vec<_> = vsegs.iter().flat_map(|s| samples(&vinit, s)).collect();
    let sent_avcc: HashSet<Vec<u8>> = sent.iter().map(|f| f.avcc()).collect();
    for s in &vs {
        assert!(
            sent_avcc.contains(&s.data),
            "a damaged sample reached the output"
        );
    }
    assert!(vs.len() < sent.len(), "lost packets must cost frames");
    assert!(
        vs.len() > sent.len() / 4,
        "{} of {} frames",
        vs.len(),
        sent.len()
    );
    assert_eq!(ffmpeg_decodes(&vinit, &vsegs, "video-loss"), vs.len());
    let (ainit, asegs) = rendition(http, "w2", "audio").await;
    let a: usize = asegs.iter().map(|s| samples(&ainit, s).len()).sum();
    assert_eq!(ffmpeg_decodes(&ainit, &asegs, "audio-loss"), a);
    let admin = server.admin_addr;
    assert!(
        metric(
            admin,
            "ferrocast_whip_rtp_packets_lost_total",
            &["track=\"video\""]
        )
        .await
            >= 1.0
    );
    assert!(
        metric(
            admin,
            "ferrocast_whip_rtp_packets_lost_total",
            &["track=\"audio\""]
        )
        .await
            >= 1.0
    );
    assert!(
        metric(
            admin,
            "ferrocast_whip_frames_dropped_total",
            &["reason=\"loss\""]
        )
        .await
            >= 1.0
    );
    c.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear() {
    let server = start_server(&format!(
        "{}[auth.publish]\nkeys = {{ locked = \"s3cret-key\" }}\n",
        whip_config("21020-21029")
    ))
    .await;
    let http = server.http_addr;
    let (_c, sdp) = offer(true, true).await;
    // wrong content type
    let (s, _, _) = post(http, "/live/w3/whip", "text/plain", None, &sdp).await;
    assert_eq!(s, 415);
    // malformed SDP
    let (s, _, b) = post(http, "/live/w3/whip", "application/sdp", None, "hello").await;
    assert_eq!(s, 400, "{b}");
    // no supported codec
    let vp8 = sdp.replace("H264", "VP8");
    let (s, _, b) = post(http, "/live/w3/whip", "application/sdp", None, &vp8).await;
    assert_eq!(s, 422, "{b}");
    assert!(b.contains("H.264"), "{b}");
    // auth: none, wrong, right
    let (s, h, _) = post(http, "/live/locked/whip", "application/sdp", None, &sdp).await;
    assert_eq!(s, 401);
    assert_eq!(h["www-authenticate"], "Bearer");
    let (s, _, _) = post(
        http,
        "/live/locked/whip",
        "application/sdp",
        Some("nope"),
        &sdp,
    )
    .await;
    assert_eq!(s, 403);
    let c = WhipClient::publish(http, "locked", Some("s3cret-key")).await;
    // the stream is live: a second publisher is refused
    let (_c2, sdp2) = offer(true, true).await;
    let (s, _, b) = post(
        http,
        "/live/locked/whip",
        "application/sdp",
        Some("s3cret-key"),
        &sdp2,
    )
    .await;
    assert_eq!(s, 409, "{b}");
    // an RTMP publisher too
    assert!(
        try_publish(server.rtmp_addr.unwrap(), "locked?key=s3cret-key")
            .await
            .is_err()
    );
    // PATCH: no trickle; unknown session: 404; CORS preflight
    let r = request(http, "PATCH", &c.location, &[]).await;
    assert_eq!(r.status, 405);
    let r = request(http, "DELETE", "/live/locked/whip/00ff", &[]).await;
    assert_eq!(r.status, 404);
    let r = request(
        http,
        "OPTIONS",
        "/live/locked/whip",
        &[("origin", "http://page.example")],
    )
    .await;
    assert_eq!(r.status, 204);
    let allow = r.headers["access-control-allow-methods"].to_str().unwrap();
    assert!(allow.contains("POST"), "{allow}");
    assert!(r.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Authorization"));
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    let r = request(http, "GET", "/live/locked/whip", &[]).await;
    assert_eq!(r.status, 405);
    c.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_release_the_stream_and_the_port() {
    let server = start_server(&whip_config("21030-21031")).await;
    let (http, admin) = (server.http_addr, server.admin_addr);
    let active = || async move { metric(admin, "ferrocast_whip_publishes_active", &[]).await };
    let a = WhipClient::publish(http, "r1", None).await;
    let b = WhipClient::publish(http, "r2", None).await;
    // both ports taken: the next publisher gets 503
    let (_c, sdp) = offer(true, true).await;
    let (s, _, body) = post(http, "/live/r3/whip", "application/sdp", None, &sdp).await;
    assert_eq!(s, 503, "{body}");
    // DELETE answers once the stream is free: the same name publishes again at once
    let r = request(http, "DELETE", &a.location, &[]).await;
    assert_eq!(r.status, 200);
    a.close().await;
    let a2 = WhipClient::publish(http, "r1", None).await;
    assert_eq!(active().await, 2.0);
    // a publisher that never completes ICE is dropped after connect_timeout (2 s), and its
    // stream and port are free again
    let r = request(http, "DELETE", &b.location, &[]).await;
    assert_eq!(r.status, 200);
    b.close().await;
    let (silent, sdp) = offer(true, true).await;
    let (s, _, _) = post(http, "/live/r4/whip", "application/sdp", None, &sdp).await;
    assert_eq!(s, 201);
    eventually(
        "the silent session ends",
        Duration::from_secs(6),
        || async { active().await == 1.0 },
    )
    .await;
    silent.close().await;
    let r4 = WhipClient::publish(http, "r4", None).await;
    assert_eq!(active().await, 2.0);
    // the server's shutdown ends every session
    let (a2, r4) = (a2, r4);
    server.shutdown().await;
    a2.close().await;
    r4.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_over_https_h2_and_h3_and_an_admin_kick() {
    const TOKEN: &str = "admin-token-for-whip-tests-0123";
    let text = format!(
        "[rtmp]\nlisten = \"127.0.0.1:0\"\nreconnect_grace = \"1s\"\n[http]\nlisten = \"127.0.0.1:0\"\n[https]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n[log]\nlevel = \"warn\"\n{}",
        whip_config("21040-21041")
    );
    let server = ferrocast::Server::start(ferrocast::config::Config::parse(&text).unwrap())
        .await
        .unwrap();
    let (https, admin) = (server.https_addr.expect("https"), server.admin_addr);
    let cert = server.tls_cert.clone().expect("cert");
    // the offer over HTTP/2 with TLS
    let (mut c, sdp) = offer(true, true).await;
    let connector =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_tls(&cert, &[b"h2"])));
    let tcp = tokio::net::TcpStream::connect(https).await.unwrap();
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("https://localhost:{}/live/k1/whip", https.port()))
        .header("content-type", "application/sdp")
        .body(http_body_util::Full::new(Bytes::from(sdp)))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let r = HttpResponse::read(resp).await;
    assert_eq!(r.status, 201, "{}", r.text());
    c.connect(&r.headers, r.text()).await;
    let active = || async move { metric(admin, "ferrocast_whip_publishes_active", &[]).await };
    assert_eq!(active().await, 1.0);
    // and over HTTP/3
    let (mut c3, sdp) = offer(true, true).await;
    let mut h3 = common::h3client::H3::connect(server.h3_addr.expect("h3"), &cert).await;
    let r = h3
        .request(
            "POST",
            "/live/k2/whip",
            &[("content-type", "application/sdp")],
            Bytes::from(sdp),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    c3.connect(&r.headers, r.text()).await;
    assert_eq!(active().await, 2.0);
    let r = h3.request("DELETE", &c3.location, &[], Bytes::new()).await;
    assert_eq!(r.status, 200);
    c3.close().await;
    assert_eq!(active().await, 1.0);
    // the admin API kicks a WHIP publisher like an RTMP one
    let auth = format!("Bearer {TOKEN}");
    let r = request(
        admin,
        "POST",
        "/api/v1/streams/k1/kick",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(
        "the kicked session ends",
        Duration::from_secs(5),
        || async { active().await == 0.0 },
    )
    .await;
    c.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_over_the_bitrate_limit_is_dropped() {
    let server = start_server(&format!(
        "{}[limits]\nmax_publish_kbps = 300\nbitrate_window = \"1s\"\n",
        whip_config("21050-21051")
    ))
    .await;
    let (http, admin) = (server.http_addr, server.admin_addr);
    let mut c = WhipClient::publish(http, "fast", None).await;
    // the fixture is about 1 Mbit/s: over 300 kbit/s within the first second
    let sending = tokio::spawn(async move {
        c.stream(1, |_, _| false, |_| false).await;
        c
    });
    eventually(
        "the session over the limit ends",
        Duration::from_secs(5),
        || async { metric(admin, "ferrocast_whip_publishes_active", &[]).await == 0.0 },
    )
    .await;
    assert!(metric(admin, "ferrocast_ingest_errors_total", &["bitrate"]).await >= 1.0);
    sending.await.unwrap().close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_repairs_loss_on_the_wire() {
    let server = start_server(&whip_config("21060-21069")).await;
    let http = server.http_addr;
    // every 29th video packet's first transmission is lost between the stacks; the server's
    // NACKs must get every one of them resent in time
    let mut c = WhipClient::publish_with(
        http,
        "nack",
        None,
        Options {
            wire_loss: Some(29),
            ..Options::default()
        },
    )
    .await;
    let sent = c.stream(2, |_, _| false, |_| false).await;
    let wire = c.wire.clone().expect("wire loss is on");
    // the last losses are repaired after the last frame went out (the counters live in the
    // client's interceptor, with no event to wait on)
    eventually(
        "every packet lost on the wire is resent",
        Duration::from_secs(5),
        || {
            let w = wire.clone();
            async move {
                w.resent.load(std::sync::atomic::Ordering::Relaxed)
                    >= w.dropped.load(std::sync::atomic::Ordering::Relaxed)
            }
        },
    )
    .await;
    let dropped = wire.dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped >= 10, "{dropped} packets lost on the wire");
    let admin = server.admin_addr;
    // nothing is lost or dropped as far as the server can tell
    let lost = metric(
        admin,
        "ferrocast_whip_rtp_packets_lost_total",
        &["track=\"video\""],
    )
    .await;
    let frames_lost = metric(
        admin,
        "ferrocast_whip_frames_dropped_total",
        &["reason=\"loss\""],
    )
    .await;
    assert_eq!((lost, frames_lost), (0.0, 0.0), "{wire:?}");
    request(http, "DELETE", &c.location, &[]).await;
    let (_, vs, k0) = every_frame_arrives(http, "nack", &sent).await;
    assert!(k0 < 30, "the first {k0} frames are missing");
    assert!(vs.len() >= sent.len() - k0 - 3);
    c.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_profile_publish_comes_out_intact() {
    let server = start_server(&whip_config("21070-21079")).await;
    let http = server.http_addr;
    let mut c = WhipClient::publish_with(
        http,
        "high",
        None,
        Options {
            h264: H264_HIGH,
            profile: "64001f",
            ..Options::default()
        },
    )
    .await;
    let sent = c.stream(1, |_, _| false, |_| false).await;
    request(http, "DELETE", &c.location, &[]).await;
    let mv = get(http, "/live/high/index.m3u8").await.text();
    assert!(mv.contains("CODECS=\"avc1.64001e,opus\""), "{mv}");
    let (vinit, _, _) = every_frame_arrives(http, "high", &sent).await;
    // the avcC carries the High profile's chroma format and bit depths (4:2:0, 8 bits)
    let at = vinit
        .windows(4)
        .position(|w| w == b"avcC")
        .expect("an avcC box");
    let size = u32::from_be_bytes(vinit[at - 4..at].try_into().unwrap()) as usize;
    assert!(
        vinit[at - 4..at - 4 + size].ends_with(&[0xfd, 0xf8, 0xf8, 0]),
        "{:02x?}",
        &vinit[at - 4..at - 4 + size]
    );
    c.close().await;
    server.shutdown().await;
}
