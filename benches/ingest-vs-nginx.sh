#!/usr/bin/env bash
# Ingest cost per stream: N concurrent RTMP publishers of the shared 720p sample (2.67 Mbit/s,
# real time, looped) into ferrocast (LL-HLS, 200 ms parts) and, in turn, into nginx with
# libnginx-mod-rtmp (`hls on`, 2 s fragments, files on /dev/shm). Reports each server's CPU
# (utime+stime of all its processes over the measured window, from /proc) and RSS.
# Usage: bash benches/ingest-vs-nginx.sh [N=50] [SECONDS=30]
# Needs: ffmpeg, nginx-light, libnginx-mod-rtmp, a release build (cargo build --release).
set -euo pipefail
N=${1:-50}; SECS=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FERROCAST_BIN:-$root/target/release/ferrocast}
sample=${SAMPLE:-$root/../shared/media/sample-h264-aac.flv}
work=$(mktemp -d /dev/shm/ingestbench.XXXX)
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"

measure() { # name port admin(host:port, ferrocast only, "" for nginx) pids...
  local name=$1 port=$2 admin=$3; shift 3
  local srv=("$@") pubs=()
  for i in $(seq 1 "$N"); do
    ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$sample" -c copy -f flv "rtmp://127.0.0.1:$port/live/s$i" >/dev/null 2>&1 &
    pubs+=($!); pids+=($!)
  done
  # every publisher connected (ferrocast says so; nginx-rtmp has no such count), then past its
  # first GOP
  [ -z "$admin" ] || wait_until "$N publishers" 30 metric_is "$admin" ferrocast_ingest_publishers "$N"
  sleep 5
  local c0; c0=$(cpu_ticks "${srv[@]}")
  sleep "$SECS"
  local c1 rss; c1=$(cpu_ticks "${srv[@]}"); rss=$(rss_kb "${srv[@]}")
  kill "${pubs[@]}" 2>/dev/null || true; wait "${pubs[@]}" 2>/dev/null || true
  awk -v n="$N" -v s="$SECS" -v d=$((c1 - c0)) -v t="$tck" -v r="$rss" -v name="$name" 'BEGIN {
    cpu = d / t / s * 100;
    printf "%-10s streams=%d cpu=%.1f%% of one core (%.3f%% per stream)  rss=%.1f MiB (%.2f MiB per stream)\n", name, n, cpu, cpu / n, r / 1024, r / 1024 / n }'
}

# ferrocast
fport=$(free_port); fadmin=127.0.0.1:$(free_port)
ferrocast_config "$fport" "${fadmin#*:}" >"$work/f.toml"
"$bin" --config "$work/f.toml" & fpid=$!; pids+=($fpid)
wait_until "ferrocast ready" 20 ready "$fadmin"
measure ferrocast "$fport" "$fadmin" "$fpid"
kill "$fpid"; wait "$fpid" 2>/dev/null || true

# nginx-rtmp with HLS
nport=$(free_port)
mkdir -p "$work/nginx/logs" "$work/hls"
cat > "$work/nginx/nginx.conf" <<CFG
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
rtmp { server { listen 127.0.0.1:$nport; chunk_size 4096;
  application live { live on; hls on; hls_path $work/hls; hls_fragment 2s; hls_playlist_length 20s; } } }
CFG
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & npid=$!; pids+=($npid); sleep 0.5
for _ in $(seq 1 50); do nproc_pids=$(pgrep -P "$npid" | tr "\n" " "); [ -n "$nproc_pids" ] && break; sleep 0.1; done
echo "nginx processes: $npid $nproc_pids"
# shellcheck disable=SC2086
measure nginx-rtmp "$nport" "" "$npid" $nproc_pids
