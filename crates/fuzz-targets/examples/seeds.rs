//! Writes the seed inputs of every fuzz target into `fuzz/seeds/<target>/seed-*` from the
//! test media: what a real publisher sends (the first tags of `sample-h264-aac-small.flv`
//! from an `rml_rtmp` client session, see `publisher_wire`), the codec
//! configurations in that file, and real request paths and tokens.
//!
//! `cargo run -p ferrocast-fuzz-targets --example seeds [-- path/to/file.flv]`

use bytes::Bytes;
use ferrocast_auth::signed::UrlSigner;
use ferrocast_media::flv::{self, FlvFileTag, FlvTagKind};
use rml_rtmp::rml_amf0::{self, Amf0Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Tags of the sample file in the session and FLV seeds (about 2 s: a keyframe and what
/// follows).
const TAGS: usize = 120;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let media = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/media/sample-h264-aac-small.flv"));
    let file = Bytes::from(std::fs::read(&media).expect("the test media"));
    let tags = flv::read_file(&file).expect("a valid FLV file");
    let corpus = root.join("fuzz/seeds");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("seed file");
    };

    // what a publisher sends after the handshake; the first byte picks the read size
    let media_tags: Vec<(bool, u32, Bytes)> = tags[..TAGS.min(tags.len())]
        .iter()
        .filter(|t| t.kind != FlvTagKind::Script)
        .map(|t| (t.kind == FlvTagKind::Video, t.timestamp, t.body.clone()))
        .collect();
    // after the handshake and the publish (which the target sends itself)
    let (_, wire) = ferrocast_fuzz_targets::publisher_wire(&media_tags);
    let handshake = {
        let mut h = vec![3u8];
        h.resize(1 + 1536 * 2, 0);
        h
    };
    for (name, read_size) in [("publish-4k-reads", 0x43u8), ("publish-small-reads", 0x07)] {
        let mut seed = vec![read_size];
        seed.extend_from_slice(&wire);
        write("rtmp_session", name, &seed);
    }
    let mut seed = vec![0x21];
    seed.extend_from_slice(&handshake);
    let (publish, _) = ferrocast_fuzz_targets::publisher_wire(&[]);
    seed.extend(publish.concat());
    write("rtmp_handshake", "publish", &seed);

    // AMF0: a connect command and onMetaData as publishers send them
    let mut connect = HashMap::new();
    connect.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
    connect.insert(
        "type".to_string(),
        Amf0Value::Utf8String("nonprivate".into()),
    );
    connect.insert(
        "tcUrl".to_string(),
        Amf0Value::Utf8String("rtmp://h/live".into()),
    );
    let values = vec![
        Amf0Value::Utf8String("connect".into()),
        Amf0Value::Number(1.0),
        Amf0Value::Object(connect),
    ];
    write(
        "amf0",
        "connect",
        &rml_amf0::serialize(&values).expect("AMF0"),
    );
    let mut meta = HashMap::new();
    meta.insert("width".to_string(), Amf0Value::Number(1280.0));
    meta.insert("videocodecid".to_string(), Amf0Value::Number(7.0));
    meta.insert("stereo".to_string(), Amf0Value::Boolean(true));
    let values = vec![
        Amf0Value::Utf8String("@setDataFrame".into()),
        Amf0Value::Utf8String("onMetaData".into()),
        Amf0Value::Object(meta),
        Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Number(2.0)]),
    ];
    write(
        "amf0",
        "metadata",
        &rml_amf0::serialize(&values).expect("AMF0"),
    );

    // an FLV file of the first tags
    write(
        "flv_tags",
        "sample",
        &flv_file(&tags[..TAGS.min(tags.len())]),
    );

    // codec configurations from the sequence headers
    let video = tags
        .iter()
        .find(|t| t.kind == FlvTagKind::Video)
        .expect("a video tag");
    let avcc = &video.body[5..];
    write("avc_config", "avcc", avcc);
    // the SPS inside the record: 6 bytes, a 2-byte length, then the NAL unit
    if avcc.len() > 8 {
        let len = usize::from(u16::from_be_bytes([avcc[6], avcc[7]]));
        write("avc_config", "sps", &avcc[8..(8 + len).min(avcc.len())]);
    }
    let audio = tags
        .iter()
        .find(|t| t.kind == FlvTagKind::Audio)
        .expect("an audio tag");
    write("aac_config", "asc", &audio.body[2..]);

    // request targets (the path, a '?' query, then a newline and an Authorization value)
    for (i, r) in [
        "/live/cam/index.m3u8",
        "/live/cam/video.m3u8?_HLS_msn=12&_HLS_part=3&_HLS_skip=YES\nBearer abc.def.ghi",
        "/live/cam/1800000000.L2xpdmUvY2FtLw.0.c2ln/audio_12.3.m4s",
        "/live/cam/video_init2.mp4?token=1800000000.L2xpdmUv.1.c2ln",
        "/live/cam/audio_40.m4s?_HLS_msn=41",
    ]
    .iter()
    .enumerate()
    {
        write("hls_request", &format!("target-{i}"), r.as_bytes());
    }
    let signer = UrlSigner::new(b"fuzzing-secret-fuzzing-secret-32").expect("secret");
    let token = signer.sign("/live/a/", 1_900_000_000, None);
    write(
        "playback_token",
        "signed",
        format!("{token}\n/live/a/index.m3u8").as_bytes(),
    );
    let bound = signer.sign(
        "/live/",
        1_900_000_000,
        Some("127.0.0.1".parse().expect("ip")),
    );
    write(
        "playback_token",
        "signed-bound",
        format!("{bound}\n/live/a/video_3.m4s").as_bytes(),
    );
    let claims = serde_json::json!({"stream": "a", "use": "play", "exp": 1_900_000_000u64});
    let jwt = ferrocast_auth::jwt::sign(&claims, b"fuzzing-secret-fuzzing-secret-32", false)
        .expect("JWT");
    write("playback_token", "jwt", jwt.as_bytes());
    eprintln!("seeds written under {}", corpus.display());
}

/// An FLV file (header, then tags with their back pointers) holding `tags`.
fn flv_file(tags: &[FlvFileTag]) -> Vec<u8> {
    let mut f = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    for t in tags {
        let kind = match t.kind {
            FlvTagKind::Audio => 8u8,
            FlvTagKind::Video => 9,
            FlvTagKind::Script => 18,
        };
        f.push(kind);
        f.extend_from_slice(&(t.body.len() as u32).to_be_bytes()[1..]);
        f.extend_from_slice(&t.timestamp.to_be_bytes()[1..]);
        f.push((t.timestamp >> 24) as u8);
        f.extend_from_slice(&[0, 0, 0]);
        f.extend_from_slice(&t.body);
        f.extend_from_slice(&(11 + t.body.len() as u32).to_be_bytes());
    }
    f
}
