//! The admin API and operations: bearer token, stream listing and details (codecs, resolution,
//! bitrate, viewers, uptime, publisher address), kicking a publisher, config reload through the
//! API and on SIGHUP without dropping publishers or viewers, the OpenAPI description, per-stream
//! Prometheus metrics, and the Grafana dashboard's queries.

mod common;

use bytes::Bytes;
use common::*;
use ferrocast::config::Config;
use ferrocast::Server;
use ferrocast_media::flv::FlvTagKind;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "admin-token-for-tests-0123456789";
const KEY: &str = "studio-key-0123";

fn config(admin_extra: &str, rest: &str) -> String {
    format!(
        "[rtmp]\nlisten = \"127.0.0.1:0\"\nreconnect_grace = \"5s\"\n[http]\nlisten = \"127.0.0.1:0\"\n[https]\nenabled = false\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin_extra}\n[log]\nlevel = \"warn\"\n{rest}"
    )
}

async fn api(admin: SocketAddr, method: &str, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let r = request(admin, method, path, &[("authorization", &auth)]).await;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

/// Sends `tags` paced in real time; ends with the first write error (the server closed the
/// connection), or after the last tag.
fn spawn_paced(
    mut p: Publisher,
    tags: Vec<(FlvTagKind, Bytes, u32)>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        let start = Instant::now();
        for (kind, body, ts) in tags {
            tokio::time::sleep_until((start + Duration::from_millis(ts.into())).into()).await;
            p.send_tag(kind, body, ts).await?;
        }
        p.close().await;
        Ok(())
    })
}

async fn stream_status(admin: SocketAddr, name: &str) -> Value {
    let (status, v) = api(admin, "GET", &format!("/api/v1/streams/{name}")).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// The newest part of a stream, as the API reports it.
async fn last_part(admin: SocketAddr, name: &str) -> (u64, u64) {
    let v = stream_status(admin, name).await;
    let p = &v["last_part"];
    (
        p["msn"].as_u64().unwrap_or(0),
        p["part"].as_u64().unwrap_or(0),
    )
}

async fn wait_for_segments(admin: SocketAddr, name: &str, msn: u64) {
    eventually("segments", Duration::from_secs(15), || async move {
        last_part(admin, name).await.0 >= msn
    })
    .await;
}

#[tokio::test]
async fn api_requires_the_token_and_describes_itself() {
    // without a configured token the API is off; the description and metrics stay readable
    let off = Server::start(Config::parse(&config("", "")).unwrap())
        .await
        .unwrap();
    let (status, v) = api(off.admin_addr, "GET", "/api/v1/streams").await;
    assert_eq!(status, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("admin.token"));
    assert_eq!(get(off.admin_addr, "/metrics").await.status, 200);
    off.shutdown().await;

    let server =
        Server::start(Config::parse(&config(&format!("token = \"{TOKEN}\""), "")).unwrap())
            .await
            .unwrap();
    let admin = server.admin_addr;
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", "Bearer admin-token-for-tests-0123456780")],
        vec![("authorization", "Basic YWRtaW46YWRtaW4=")],
        vec![("authorization", TOKEN)],
    ] {
        let r = request(admin, "GET", "/api/v1/streams", &headers).await;
        assert_eq!(r.status, 401, "{headers:?}");
        assert!(r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert!(!r.text().contains("cam"));
    }
    assert_eq!(api(admin, "GET", "/api/v1/streams").await.0, 200);
    assert_eq!(api(admin, "GET", "/api/v1/nothing").await.0, 404);
    let (status, _) = api(admin, "GET", "/api/v1/reload").await;
    assert_eq!(status, 405);
    // the embedded default config has no file to reload
    let (status, v) = api(admin, "POST", "/api/v1/reload").await;
    assert_eq!(status, 409, "{v}");

    // the OpenAPI description lists exactly the routes the API serves
    let r = get(admin, "/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let spec: Value = serde_json::from_slice(&r.body).expect("OpenAPI JSON");
    assert_eq!(spec["openapi"], "3.1.0");
    let mut described: Vec<(String, String)> = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                described.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut served: Vec<(String, String)> = ferrocast::admin::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    described.sort();
    served.sort();
    assert_eq!(described, served);
    // every $ref resolves
    let text = String::from_utf8_lossy(&r.body);
    for part in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(
            spec["components"]["schemas"].get(name).is_some(),
            "unresolved $ref {name}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn streams_viewers_metrics_and_kick() {
    let server =
        Server::start(Config::parse(&config(&format!("token = \"{TOKEN}\""), "")).unwrap())
            .await
            .unwrap();
    let (admin, http, rtmp) = (
        server.admin_addr,
        server.http_addr,
        server.rtmp_addr.expect("rtmp"),
    );
    let p = Publisher::accepted(rtmp, "cam").await;
    let publisher_addr = p.local_addr();
    let sender = spawn_paced(p, looped_tags(SMALL, 4, 6_000));
    wait_for_segments(admin, "cam", 3).await;

    // three viewers (two share an address but not a player); one fetches both renditions
    for ua in ["hls.js", "Safari", "ffplay"] {
        let r = get_with(http, "/live/cam/video.m3u8", &[("user-agent", ua)]).await;
        assert_eq!(r.status, 200);
    }
    get_with(http, "/live/cam/audio.m3u8", &[("user-agent", "hls.js")]).await;
    // not viewers: a stream that does not exist, and a client of the multivariant only
    get_with(http, "/live/nope/video.m3u8", &[("user-agent", "x")]).await;
    get_with(http, "/live/cam/index.m3u8", &[("user-agent", "curl")]).await;

    let (status, list) = api(admin, "GET", "/api/v1/streams").await;
    assert_eq!(status, 200);
    let streams = list["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{list}");
    let s = &streams[0];
    assert_eq!(s["name"], "cam");
    assert_eq!(s["state"], "live");
    assert_eq!(s["viewers"], 3);
    assert_eq!(s["publisher"]["protocol"], "rtmp");
    assert_eq!(s["publisher"]["address"], publisher_addr.to_string());
    let v = &s["video"];
    assert!(v["codec"].as_str().unwrap().starts_with("avc1.42"), "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert!(
        (v["frame_rate"].as_f64().unwrap() - 30.0).abs() < 0.5,
        "{v}"
    );
    let a = &s["audio"];
    assert_eq!(a["codec"], "mp4a.40.2");
    assert_eq!(a["sample_rate"], 48_000);
    assert_eq!(a["channels"], 2);
    // the fixture is 395 kbit/s with its container: media bitrate somewhat below
    let total = s["bitrate"].as_u64().unwrap();
    assert!((200_000..600_000).contains(&total), "bitrate {total}");
    assert_eq!(
        total,
        v["bitrate"].as_u64().unwrap() + a["bitrate"].as_u64().unwrap()
    );
    assert!((16_000..400_000).contains(&a["bitrate"].as_u64().unwrap()));
    let uptime = s["uptime_seconds"].as_f64().unwrap();
    assert!((1.0..60.0).contains(&uptime), "{uptime}");
    assert_eq!(s["target_duration"], 2);
    assert_eq!(s["playlist"], "/live/cam/index.m3u8");
    // details of one stream: the same view
    let one = stream_status(admin, "cam").await;
    assert_eq!(one["publisher"]["address"], s["publisher"]["address"]);
    assert_eq!(
        one["publisher"]["since_unix_ms"],
        s["publisher"]["since_unix_ms"]
    );
    assert_eq!(api(admin, "GET", "/api/v1/streams/nope").await.0, 404);
    let (_, srv) = api(admin, "GET", "/api/v1/server").await;
    assert_eq!(
        (srv["role"].as_str(), srv["streams"].as_u64()),
        (Some("all"), Some(1))
    );
    assert_eq!(srv["viewers"], 3, "only real viewers of real streams count");

    // the same as Prometheus gauges
    assert_eq!(
        metric(admin, "ferrocast_stream_viewers", &["stream=\"cam\""]).await,
        3.0
    );
    assert_eq!(
        metric(admin, "ferrocast_stream_live", &["stream=\"cam\""]).await,
        1.0
    );
    let vb = metric(
        admin,
        "ferrocast_stream_bitrate_bits_per_second",
        &["stream=\"cam\"", "track=\"video\""],
    )
    .await;
    assert!(vb > 100_000.0, "{vb}");

    // kick: the publisher's connection is closed, the stream waits for it to come back
    let r = request(
        admin,
        "GET",
        "/api/v1/streams/cam/kick",
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
    let (status, v) = api(admin, "POST", "/api/v1/streams/cam/kick").await;
    assert_eq!((status, &v["kicked"]), (200, &Value::Bool(true)));
    let ended = tokio::time::timeout(Duration::from_secs(5), sender)
        .await
        .expect("the kicked publisher is disconnected")
        .unwrap();
    assert!(
        ended.is_err(),
        "the server closed the publisher's connection"
    );
    eventually(
        "state reconnecting",
        Duration::from_secs(5),
        || async move {
            let s = stream_status(admin, "cam").await;
            s["state"] == "reconnecting" && s["publisher"].is_null()
        },
    )
    .await;
    assert_eq!(metric(admin, "ferrocast_ingest_publishers", &[]).await, 0.0);
    assert_eq!(
        metric(admin, "ferrocast_stream_live", &["stream=\"cam\""]).await,
        0.0
    );
    assert_eq!(api(admin, "POST", "/api/v1/streams/cam/kick").await.0, 409);
    assert_eq!(api(admin, "POST", "/api/v1/streams/nope/kick").await.0, 404);
    // the publisher may come back (kicking is not banning: change its key for that)
    let p = Publisher::accepted(rtmp, "cam").await;
    eventually("live again", Duration::from_secs(5), || async move {
        stream_status(admin, "cam").await["state"] == "live"
    })
    .await;
    p.close().await;
    server.shutdown().await;
}

/// Follows a media playlist with blocking reloads on one keep-alive connection, as an LL-HLS
/// player does, until `stop`; returns every part seen, in order.
fn spawn_viewer(
    http: SocketAddr,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u64, u32)>> {
    tokio::spawn(async move {
        let mut conn = Conn::open(http).await;
        let mut seen: Vec<(u64, u32)> = Vec::new();
        let mut path = "/live/cam/video.m3u8".to_string();
        while !stop.load(Ordering::Relaxed) {
            let r = conn.get(&path).await;
            assert_eq!(r.status, 200, "viewer refused mid-stream");
            let text = decoded(&r);
            let (parts, _) = playlist_parts(&text);
            for (m, i, _) in parts {
                if seen.last().is_none_or(|l| (m, i) > *l) {
                    seen.push((m, i));
                }
            }
            // the preload hint names the next part: block for it
            let hint = text
                .lines()
                .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
                .and_then(|l| l.split("video_").nth(1))
                .and_then(|u| u.strip_suffix(".m4s\""))
                .and_then(|u| u.split_once('.'))
                .expect("preload hint");
            path = format!(
                "/live/cam/video.m3u8?_HLS_msn={}&_HLS_part={}",
                hint.0, hint.1
            );
        }
        seen
    })
}

fn rewrite(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).expect("write config");
}

#[tokio::test]
async fn reload_applies_auth_and_limits_without_dropping_anyone() {
    let dir = std::env::temp_dir().join(format!("ferrocast-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    let admin_keys = format!("token = \"{TOKEN}\"");
    rewrite(&file, &config(&admin_keys, ""));
    let server = Server::start(Config::read(&file).unwrap()).await.unwrap();
    let (admin, http, rtmp) = (
        server.admin_addr,
        server.http_addr,
        server.rtmp_addr.expect("rtmp"),
    );
    let p = Publisher::accepted(rtmp, "cam").await;
    let publisher_addr = p.local_addr().to_string();
    let sender = spawn_paced(p, looped_tags(SMALL, 4, 6_000));
    wait_for_segments(admin, "cam", 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let viewer = spawn_viewer(http, stop.clone());

    // publish keys, a publisher limit of one, another log level; and a listener that cannot
    // move while running
    let locked = config(
        &admin_keys,
        &format!("[auth.publish]\nkeys = {{ \"*\" = \"{KEY}\" }}\n[limits]\nmax_publishers = 1\n"),
    )
    .replace("level = \"warn\"", "level = \"error\"")
    .replace(
        "[http]\nlisten = \"127.0.0.1:0\"",
        "[http]\nlisten = \"127.0.0.1:1\"",
    );
    rewrite(&file, &locked);
    let (status, report) = api(admin, "POST", "/api/v1/reload").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["applied"],
        serde_json::json!(["auth.publish.keys", "limits.max_publishers"])
    );
    // no log filter to change in a test process (the binary's is: see the SIGHUP test)
    assert_eq!(report["ignored"], serde_json::json!(["log.level"]));
    assert_eq!(
        report["restart_required"],
        serde_json::json!(["http.listen"])
    );
    let at_reload = last_part(admin, "cam").await;

    // new publishers meet the new rules at once
    let why = try_publish(rtmp, "other").await.expect_err("refused");
    assert!(why.contains("not authorized"), "{why}");
    let why = try_publish(rtmp, &format!("other?key={KEY}"))
        .await
        .expect_err("refused");
    assert!(why.contains("publisher limit"), "{why}");

    // a file that does not validate changes nothing
    rewrite(
        &file,
        &locked.replace("max_publishers = 1", "max_publishers = \"one\""),
    );
    let (status, v) = api(admin, "POST", "/api/v1/reload").await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("max_publishers"),
        "{v}"
    );
    assert!(try_publish(rtmp, &format!("other?key={KEY}"))
        .await
        .is_err());

    // lifting the limit lets the keyed publisher in
    rewrite(
        &file,
        &locked.replace("max_publishers = 1", "max_publishers = 10"),
    );
    let (status, report) = api(admin, "POST", "/api/v1/reload").await;
    assert_eq!(status, 200);
    assert_eq!(
        report["applied"],
        serde_json::json!(["limits.max_publishers"])
    );
    let other = try_publish(rtmp, &format!("other?key={KEY}"))
        .await
        .expect("keyed publisher accepted under the new limit");
    other.close().await;

    // meanwhile the first publisher and the viewer went on as if nothing happened
    wait_for_segments(admin, "cam", at_reload.0 + 2).await;
    let s = stream_status(admin, "cam").await;
    assert_eq!(s["state"], "live");
    assert_eq!(s["publisher"]["address"], publisher_addr);
    assert!(!sender.is_finished(), "the publisher is still sending");
    stop.store(true, Ordering::Relaxed);
    let seen = tokio::time::timeout(Duration::from_secs(10), viewer)
        .await
        .expect("viewer stops")
        .expect("viewer never refused or disconnected");
    let after = seen.iter().filter(|p| p.0 > at_reload.0).count();
    assert!(after >= 5, "the viewer kept receiving parts: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    sender.abort();
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sighup_reloads_the_config_file() {
    let (rtmp, http, admin) = (free_addr(), free_addr(), free_addr());
    let text = |auth: &str| {
        format!(
            "[rtmp]\nlisten = \"{rtmp}\"\n[http]\nlisten = \"{http}\"\n[https]\nenabled = false\n[admin]\nlisten = \"{admin}\"\ntoken = \"{TOKEN}\"\n[log]\nlevel = \"info\"\n{auth}"
        )
    };
    let process = Process::start(&text(""), rtmp, http, admin).await;
    let p = Publisher::accepted(rtmp, "cam").await;
    let sender = spawn_paced(p, looped_tags(SMALL, 3, 6_000));
    wait_for_segments(admin, "cam", 1).await;
    assert!(try_publish(rtmp, "open").await.is_ok(), "no auth yet");

    // no debug lines before the reload
    assert_eq!(get(http, "/live/nope/video.m3u8").await.status, 404);
    std::fs::write(
        process.config_path(),
        text(&format!("[auth.publish]\nkeys = {{ \"*\" = \"{KEY}\" }}\n"))
            .replace("level = \"info\"", "level = \"debug\""),
    )
    .unwrap();
    process.signal("HUP");
    eventually("the reload is logged", Duration::from_secs(5), || {
        let log = process.log();
        async move { log.contains("config reloaded") }
    })
    .await;
    let why = try_publish(rtmp, "other")
        .await
        .expect_err("key now required");
    assert!(why.contains("not authorized"), "{why}");
    assert!(try_publish(rtmp, &format!("other2?key={KEY}"))
        .await
        .is_ok());
    // the publisher that was on stays on; SIGHUP did not stop the server
    let at = last_part(admin, "cam").await;
    wait_for_segments(admin, "cam", at.0 + 1).await;
    assert_eq!(stream_status(admin, "cam").await["state"], "live");
    assert!(!sender.is_finished());
    sender.abort();
}

#[tokio::test]
async fn grafana_dashboard_queries_parse_and_name_exported_metrics() {
    let secret = "playback-secret-0123456789abcdef";
    let auth = format!("[auth.playback]\nsecret = \"{secret}\"\n");
    let (origin, edge) = Node::origin_and_edge(&auth);
    let rtmp = origin.rtmp.expect("rtmp");
    let p = Publisher::accepted(rtmp, "cam").await;
    let sender = spawn_paced(p, looped_tags(SMALL, 2, 6_000));
    eventually("segments", Duration::from_secs(15), || async move {
        metric(origin.admin, "ferrocast_segments_total", &[]).await >= 4.0
    })
    .await;
    // a viewer with a token, through the edge: counted at the edge
    let cfg = Config::parse(&auth).unwrap();
    let signer =
        ferrocast_auth::signed::UrlSigner::new(cfg.auth.playback.secret.as_bytes()).unwrap();
    let token = signer.sign("/live/cam/", ferrocast_auth::unix_now() + 600, None);
    let r = get_with(
        edge.http,
        &format!("/live/cam/{token}/video.m3u8"),
        &[("user-agent", "hls.js")],
    )
    .await;
    assert_eq!(r.status, 200);
    let uri = media_segment_uris(&r.text())
        .first()
        .cloned()
        .expect("a segment");
    assert_eq!(
        get(edge.http, &format!("/live/cam/{token}/{uri}"))
            .await
            .status,
        200
    );
    assert_eq!(
        metric(edge.admin, "ferrocast_stream_viewers", &["stream=\"cam\""]).await,
        1.0
    );

    let mut exported = std::collections::HashSet::new();
    for node in [origin.admin, edge.admin] {
        for line in get(node, "/metrics").await.text().lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                exported.insert(rest.split(' ').next().unwrap().to_string());
            }
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/grafana/ferrocast.json"
        ))
        .unwrap(),
    )
    .expect("dashboard JSON");
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            // Grafana substitutes its variables before Prometheus parses the query
            let q = expr.replace("$instance", ".*").replace("$stream", ".*");
            promql_parser::parser::parse(&q)
                .unwrap_or_else(|e| panic!("{:?}: {expr}: {e}", panel["title"]));
            for name in q
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("ferrocast_"))
            {
                let family = name.strip_suffix("_bucket").unwrap_or(name);
                assert!(
                    exported.contains(family),
                    "panel {:?} queries {name}, which neither node exports",
                    panel["title"]
                );
            }
            queries += 1;
        }
    }
    assert!(queries >= 25, "{queries}");
    sender.abort();
    edge.stop();
    origin.stop();
}
