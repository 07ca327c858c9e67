#!/usr/bin/env bash
# Fuzzes every target in fuzz/ (or those named) for FUZZ_SECONDS each (default 60) with
# libFuzzer, starting from fuzz/seeds/<target> and fuzz/corpus/<target>, growing the corpus,
# then minimizes it (cargo fuzz cmin).
# A crash stops the run; its input is in fuzz/artifacts/<target>/. Once fixed, copy the input
# to fuzz/regressions/<target>/ so the stable test suite replays it.
#
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
#   scripts/fuzz.sh                      # all targets, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh rtmp_session amf0
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-60}
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: ${secs}s"
    # 1 GiB per process: a parser that needs more for one input is a finding
    # inputs as long as the parser's real ones: a publisher's stream and FLV files are long
    case "$t" in rtmp_*|flv_tags) max_len=131072 ;; *) max_len=4096 ;; esac
    log=$(mktemp)
    set +e
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=5 -max_len="$max_len" \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)" "$log" || true
    if [ $status -ne 0 ]; then
        tail -60 "$log"
        echo "$t: failed (exit $status), see fuzz/artifacts/$t/"
        exit 1
    fi
    rm -f "$log"
    cargo +nightly fuzz cmin "$t" "corpus/$t" >/dev/null 2>&1
    # the repository keeps the small inputs; long ones grow again from the seeds
    find "corpus/$t" -type f -size +16k -delete
    echo "$t: corpus $(ls "corpus/$t" | wc -l) inputs, $(du -sh "corpus/$t" | cut -f1)"
done
