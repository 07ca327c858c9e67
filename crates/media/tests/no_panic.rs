//! Parsers of untrusted bytes never panic: random and mutated inputs (a cheap stand-in until
//! the cargo-fuzz targets land).

use bytes::Bytes;
use ferrocast_media::{aac::AacConfig, avc, flv};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn all_parsers(data: Bytes) {
    let _ = flv::parse_video(&data);
    let _ = flv::parse_audio(&data);
    let _ = avc::AvcConfig::parse(data.clone());
    let _ = avc::parse_sps(&data);
    let _ = AacConfig::parse(data.clone());
    let _ = flv::read_file(&data);
    let _ = avc::contains_idr(&data, 4);
    let _ = avc::contains_idr(&data, 1);
}

#[test]
fn random_bytes() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = (rng.next() % 64) as usize;
        let v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        all_parsers(Bytes::from(v));
    }
}

#[test]
fn mutated_fixture_tags() {
    let file = Bytes::from_static(include_bytes!(
        "../../../tests/fixtures/sample-h264-aac-bframes.flv"
    ));
    let tags = flv::read_file(&file).unwrap();
    let mut rng = XorShift(42);
    for tag in tags.iter().take(400) {
        let mut v = tag.body.to_vec();
        for _ in 0..4 {
            if v.is_empty() {
                break;
            }
            let i = (rng.next() as usize) % v.len();
            v[i] = rng.next() as u8;
        }
        all_parsers(Bytes::from(v.clone()));
        // truncations at a few points
        for cut in [1usize, 5, 9, 13] {
            if cut < v.len() {
                all_parsers(Bytes::from(v[..cut].to_vec()));
            }
        }
        // the body as a decoder configuration record, as an SPS
        if v.len() > 5 {
            let _ = avc::AvcConfig::parse(Bytes::from(v[5..].to_vec()));
        }
    }
}
