//! Replays every fuzz target's seeds (`fuzz/seeds/<target>/`, from the test media), the corpus
//! the fuzzer grew and minimized (`fuzz/corpus/<target>/`) and the inputs that once made a
//! target fail (`fuzz/regressions/<target>/`) on stable Rust: what the fuzzer found stays
//! fixed, and the corpora stay valid inputs for the targets as the code changes.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_and_replays_it() {
    for (name, target) in ferrocast_fuzz_targets::TARGETS {
        let seeds = inputs(&fuzz_dir().join("seeds").join(name));
        assert!(
            !seeds.is_empty(),
            "fuzz/seeds/{name} is empty: cargo run -p ferrocast-fuzz-targets --example seeds"
        );
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        let regressions = inputs(&fuzz_dir().join("regressions").join(name));
        for file in seeds.iter().chain(&corpus).chain(&regressions) {
            let data = std::fs::read(file).expect("readable corpus file");
            target(&data);
        }
        eprintln!(
            "{name}: {} seeds, {} corpus inputs, {} regressions",
            seeds.len(),
            corpus.len(),
            regressions.len()
        );
    }
}

#[test]
fn every_target_has_a_fuzz_binary() {
    for (name, _) in ferrocast_fuzz_targets::TARGETS {
        let bin = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&bin)
            .unwrap_or_else(|_| panic!("{} is missing", bin.display()));
        assert!(
            text.contains(&format!("ferrocast_fuzz_targets::{name}(")),
            "{} does not call its target",
            bin.display()
        );
    }
}

#[test]
fn the_session_seeds_reach_the_packager() {
    for name in ["seed-publish-4k-reads", "seed-publish-small-reads"] {
        let data = std::fs::read(fuzz_dir().join("seeds/rtmp_session").join(name))
            .expect("the seed (cargo run -p ferrocast-fuzz-targets --example seeds)");
        let units = ferrocast_fuzz_targets::rtmp_session_units(&data);
        // 120 tags of the sample: onMetaData and the two sequence headers make no unit
        assert_eq!(units, 117, "{name}");
    }
}
