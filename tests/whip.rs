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
    format!("[whip]\nports = \"{ports}\"\nidle_timeout = \"3s\"\n")
}

/// The samples of each fragment of `seg` (one track), with their sync flags and durations.
fn samples(init: &Bytes, seg: &Bytes) -> Vec<(Vec<u8>, bool, u32)> {
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
        let trun = moof.trafs[0].trun.as_ref().expect("trun");
        let mut at = 0usize;
        for i in 0..trun.sample_count as usize {
            let size = trun.sample_sizes[i] as usize;
            let flags = trun.sample_flags.get(i).copied().unwrap_or(0);
            out.push((
                mdat[at..at + size].to_vec(),
                flags & 0x0001_0000 == 0,
                trun.sample_durations[i],
            ));
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

    let (vinit, vsegs) = rendition(http, "w1", "video").await;
    let vs: Vec<_> = vsegs.iter().flat_map(|s| samples(&vinit, s)).collect();
    let sent_avcc: HashSet<Vec<u8>> = sent.iter().map(|f| f.avcc()).collect();
    // every frame sent is there, unchanged, once (the first is an IDR, so none is dropped)
    assert!(
        vs.len() >= sent.len() - 30,
        "{} of {} frames",
        vs.len(),
        sent.len()
    );
    for (data, _, d) in &vs {
        assert!(sent_avcc.contains(data), "a sample that was never sent");
        assert_eq!(*d, 3000);
    }
    for s in &vsegs {
        assert!(
            samples(&vinit, s)[0].1,
            "a segment that does not start on a keyframe"
        );
    }
    let keys = vs.iter().filter(|s| s.1).count();
    assert_eq!(
        keys,
        vs.iter().zip(sent.iter()).filter(|(_, f)| f.idr).count()
    );
    assert!(vsegs.len() >= 2);
    assert_eq!(ffmpeg_decodes(&vinit, &vsegs, "video"), vs.len());

    let (ainit, asegs) = rendition(http, "w1", "audio").await;
    let a: Vec<_> = asegs.iter().flat_map(|s| samples(&ainit, s)).collect();
    let packets = opus_packets();
    assert!(
        a.len() >= 2 * packets.len() - 60,
        "{} audio packets",
        a.len()
    );
    assert!(a
        .iter()
        .all(|(d, _, dur)| *dur == 960 && packets.iter().any(|p| p[..] == d[..])));
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
    for (data, _, _) in &vs {
        assert!(
            sent_avcc.contains(data),
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
