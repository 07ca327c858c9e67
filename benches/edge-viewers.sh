#!/usr/bin/env bash
# Viewers per edge: origin A and an edge from the demo configs (configs/origin-a.toml,
# configs/edge.toml), one looped RTMP publisher (ffmpeg, real time), and ferrocast-loadgen's
# hls.js-like viewers against the edge, for each HTTP version and viewer count given.
# Everything shares this machine's cores. Prints one JSON line per run with the loadgen's
# figures; the edge's RSS and CPU (% of one core) in the steady state (after the ramp and
# warm-up), the generator's CPU over its whole run, and the coalescing factor (viewer requests /
# upstream requests, from the edge's metrics) over the whole run (each viewer's tune-in
# playlists are `no-cache`, so they all reach the origin) and in the steady state.
# Usage: bash benches/edge-viewers.sh "1.1 2 3" "500 1000" [SECONDS=20] [SAMPLE=tests/fixtures/sample-h264-aac-small.flv]
# Needs: ffmpeg, curl, GNU time (/usr/bin/time), a release build (cargo build --release).
set -euo pipefail
VERSIONS=${1:-"1.1 2 3"}; COUNTS=${2:-"250 500 1000"}; SECS=${3:-20}
RAMP=5; WARMUP=3   # seconds; the generator measures after both
root=$(cd "$(dirname "$0")/.." && pwd)
SAMPLE=${4:-$root/tests/fixtures/sample-h264-aac-small.flv}
bin=${FERROCAST_BIN_DIR:-$root/target/release}   # another build, for an A/B run
work=$(mktemp -d)
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"
ticks() { cpu_ticks "$1"; }
counter() { metric 127.0.0.1:9093 "$1"; } # on the edge's admin listener
playable() { curl -sf -o /dev/null --max-time 2 http://127.0.0.1:8080/live/bench/video.m3u8; }
"$bin/ferrocast" --config "$root/configs/origin-a.toml" >"$work/origin.log" 2>&1 & pids+=($!)
"$bin/ferrocast" --config "$root/configs/edge.toml" >"$work/edge.log" 2>&1 & edge=$!; pids+=($edge)
wait_until "origin ready" 20 ready 127.0.0.1:9091
wait_until "edge ready" 20 ready 127.0.0.1:9093
ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$SAMPLE" -c copy -f flv rtmp://127.0.0.1:1936/live/bench >/dev/null 2>&1 & pids+=($!)
wait_until "stream playable through the edge" 30 playable
cert=$(ls /tmp/ferrocast-selfsigned-8443.pem)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", a/(b>0?b:1)}'; }
for v in $VERSIONS; do
  for n in $COUNTS; do
    if [ "$v" = 1.1 ]; then url=http://127.0.0.1:8080/live/bench/index.m3u8; else url=https://127.0.0.1:8443/live/bench/index.m3u8; fi
    r0=$(counter ferrocast_http_requests_total); u0=$(counter ferrocast_edge_upstream_requests_total)
    /usr/bin/time -o "$work/lg-time" -f '%U %S %e' "$bin/ferrocast-loadgen" "$url" --cafile "$cert" --viewers "$n" --http "$v" --duration "$SECS" --ramp "$RAMP" --warmup "$WARMUP" --json >"$work/lg-out" & lg=$!
    # the steady state: from the end of the ramp and warm-up to the end of the run
    sleep $((RAMP + WARMUP))
    rm=$(counter ferrocast_http_requests_total); um=$(counter ferrocast_edge_upstream_requests_total); cm=$(ticks $edge); tm=$(date +%s.%N)
    rss=$(awk '/VmRSS/{print $2}' /proc/$edge/status)
    wait $lg
    r1=$(counter ferrocast_http_requests_total); u1=$(counter ferrocast_edge_upstream_requests_total); c1=$(ticks $edge); t1=$(date +%s.%N)
    lg_cpu=$(awk '{printf "%.0f", ($1 + $2) * 100 / $3}' "$work/lg-time")
    edge_cpu=$(awk -v c=$((c1 - cm)) -v t="$tck" -v a="$tm" -v b="$t1" 'BEGIN{printf "%.0f", c * 100 / t / (b - a)}')
    sed "s/}\$/,\"edge_rss_mib\":$((rss / 1024)),\"edge_cpu_pct\":$edge_cpu,\"loadgen_cpu_pct\":$lg_cpu,\"coalescing\":$(ratio $((r1 - r0)) $((u1 - u0))),\"coalescing_steady\":$(ratio $((r1 - rm)) $((u1 - um)))}/" "$work/lg-out"
  done
done
