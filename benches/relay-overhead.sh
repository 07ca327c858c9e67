#!/usr/bin/env bash
# Relay overhead: N ffmpeg publishers of the shared 720p sample (2.67 Mbit/s, real time,
# looped) into origin A, once with A relaying every stream to origin B and once without.
# Measures only once every publisher (and, relay on, every relay connection) is up. Reports A's
# CPU (utime+stime from /proc over the measured window) and RSS each time, and the ratio; B's
# CPU is reported too (it packages the relayed streams).
# Usage: bash benches/relay-overhead.sh [N=20] [SECONDS=30]
# Needs: ffmpeg, curl, a release build (cargo build --release).
set -euo pipefail
N=${1:-20}; SECS=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FERROCAST_BIN:-$root/target/release/ferrocast}
sample=${SAMPLE:-$root/../shared/media/sample-h264-aac.flv}
work=$(mktemp -d /dev/shm/relaybench.XXXX)
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"

run() { # label relay(0|1); sets `result` (run in this shell so the exit trap stops its processes)
  local a_rtmp b_rtmp a_adm b_adm extra=""
  a_rtmp=$(free_port); b_rtmp=$(free_port); a_adm=127.0.0.1:$(free_port); b_adm=127.0.0.1:$(free_port)
  [ "$2" = 1 ] && extra=$(printf '[relay]\ntargets = ["rtmp://127.0.0.1:%s/live"]' "$b_rtmp")
  ferrocast_config "$b_rtmp" "${b_adm#*:}" >"$work/b.toml"
  ferrocast_config "$a_rtmp" "${a_adm#*:}" "$extra" >"$work/a.toml"
  "$bin" --config "$work/b.toml" 2>"$work/b.log" & local b=$!; pids+=($b)
  "$bin" --config "$work/a.toml" 2>"$work/a.log" & local a=$!; pids+=($a)
  wait_until "origins ready" 20 ready "$a_adm"
  wait_until "origins ready" 20 ready "$b_adm"
  local pubs=()
  for i in $(seq 1 "$N"); do
    ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$sample" -c copy -f flv "rtmp://127.0.0.1:$a_rtmp/live/s$i" >/dev/null 2>&1 &
    pubs+=($!); pids+=($!)
  done
  wait_until "$N publishers on A" 30 metric_is "$a_adm" ferrocast_ingest_publishers "$N"
  if [ "$2" = 1 ]; then
    wait_until "$N relay connections" 30 metric_is "$a_adm" ferrocast_relay_connected "$N"
    wait_until "$N relayed streams on B" 30 metric_is "$b_adm" ferrocast_ingest_publishers "$N"
  fi
  sleep 5 # warm-up: every stream past its first GOP
  local a0 b0 a1 b1; a0=$(cpu_ticks "$a"); b0=$(cpu_ticks "$b")
  sleep "$SECS"
  a1=$(cpu_ticks "$a"); b1=$(cpu_ticks "$b")
  # nobody dropped out while measuring
  metric_is "$a_adm" ferrocast_ingest_publishers "$N" || { echo "bench aborted: a publisher dropped out" >&2; exit 1; }
  result="$1 $((a1 - a0)) $((b1 - b0)) $(($(rss_kb "$a") / 1024))"
  kill "${pubs[@]}" "$a" "$b" 2>/dev/null || true; wait "${pubs[@]}" "$a" "$b" 2>/dev/null || true
}

run off 0; off=$result
run on 1; on=$result
awk -v n="$N" -v s="$SECS" -v t="$tck" -v off="$off" -v on="$on" 'BEGIN {
  split(off, f, " "); split(on, o, " ");
  fa = f[2] / t / s * 100; oa = o[2] / t / s * 100; ob = o[3] / t / s * 100;
  printf "relay off: origin A %.1f%% of a core (%.3f%% per stream), RSS %s MiB\n", fa, fa / n, f[4];
  printf "relay on:  origin A %.1f%% of a core (%.3f%% per stream), RSS %s MiB; origin B (relay target) %.1f%%\n", oa, oa / n, o[4], ob;
  printf "relay overhead on A: %.2fx\n", oa / fa }'
