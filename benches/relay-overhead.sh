#!/usr/bin/env bash
# Relay overhead: N ffmpeg publishers of the shared 720p sample (2.67 Mbit/s, real time,
# looped) into origin A, once with A relaying every stream to origin B and once without.
# Reports A's CPU (utime+stime from /proc over the measured window) and RSS each time, and the
# ratio; B's CPU is reported too (it packages the relayed streams).
# Usage: bash benches/relay-overhead.sh [N=20] [SECONDS=30]
# Needs: ffmpeg, a release build (cargo build --release).
set -euo pipefail
N=${1:-20}; SECS=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FERROCAST_BIN:-$root/target/release/ferrocast}
sample=${SAMPLE:-$root/../shared/media/sample-h264-aac.flv}
work=$(mktemp -d /dev/shm/relaybench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
tck=$(getconf CLK_TCK)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_mib() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
node() { # name rtmp-port extra-config
  cat >"$work/$1.toml" <<CFG
[log]
level = "warn"
[rtmp]
listen = "127.0.0.1:$2"
[http]
listen = "127.0.0.1:0"
[https]
enabled = false
[admin]
listen = "127.0.0.1:0"
$3
CFG
  "$bin" --config "$work/$1.toml" & pids+=($!)
}

run() { # label relay-config
  local a_port b_port; a_port=$(port); b_port=$(port)
  node b "$b_port" ""; local b=$!
  node a "$a_port" "${2//RELAYPORT/$b_port}"; local a=$!
  sleep 0.5
  local pubs=()
  for i in $(seq 1 "$N"); do
    ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$sample" -c copy -f flv "rtmp://127.0.0.1:$a_port/live/s$i" >/dev/null 2>&1 &
    pubs+=($!); pids+=($!)
  done
  sleep 5 # every publisher (and relay connection) up and past its first GOP
  local a0 b0 a1 b1; a0=$(ticks "$a"); b0=$(ticks "$b")
  sleep "$SECS"
  a1=$(ticks "$a"); b1=$(ticks "$b")
  echo "$1 $(( a1 - a0 )) $(( b1 - b0 )) $(rss_mib "$a")"
  kill "${pubs[@]}" "$a" "$b" 2>/dev/null || true; wait "${pubs[@]}" "$a" "$b" 2>/dev/null || true
}

off=$(run off "")
# the relay target is origin B of the same run (RELAYPORT is replaced by its RTMP port)
on=$(run on "[relay]
targets = [\"rtmp://127.0.0.1:RELAYPORT/live\"]")
awk -v n="$N" -v s="$SECS" -v t="$tck" -v off="$off" -v on="$on" 'BEGIN {
  split(off, f, " "); split(on, o, " ");
  fa = f[2] / t / s * 100; oa = o[2] / t / s * 100; ob = o[3] / t / s * 100;
  printf "relay off: origin A %.1f%% of a core (%.3f%% per stream), RSS %s MiB\n", fa, fa / n, f[4];
  printf "relay on:  origin A %.1f%% of a core (%.3f%% per stream), RSS %s MiB; origin B (relay target) %.1f%%\n", oa, oa / n, o[4], ob;
  printf "relay overhead on A: %.2fx\n", oa / fa }'
