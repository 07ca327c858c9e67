#!/usr/bin/env bash
# Cached object delivery: the edge serving a ~300 KB segment and a playlist from its cache,
# side by side with nginx serving the same bytes from tmpfs, same client, same connection
# counts. HTTP/1.1 with wrk, HTTP/2 (cleartext, prior knowledge, on both servers) with h2load.
# The segment is fetched once through the edge first (then it is a cache hit for its 60 s
# lifetime); the playlist is a blocking-reload URL (immutable once answered, 12 s lifetime),
# so runs are kept short and the object is re-warmed before each.
# Prints requests/s per server and the ratio edge / nginx.
# Usage: bash benches/cached-delivery.sh [CONNS="256 1000"] [SECONDS=8]
# Needs: ffmpeg, curl, wrk, h2load (nghttp2-client), nginx-light, a release build.
set -euo pipefail
CONNS=${1:-"256 1000"}; SECS=${2:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FERROCAST_BIN_DIR:-$root/target/release}   # another build, for an A/B run
work=$(mktemp -d /dev/shm/cachedbench.XXXX)
chmod 755 "$work"   # nginx workers run as another user
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true; rm -rf "$work"
}
trap cleanup EXIT
# a 1.2 Mbit/s 720p stream: 2 s segments of ~300 KB
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=1000:sample_rate=48000 -t 12 -c:v libx264 -preset veryfast \
  -b:v 1150k -maxrate 1150k -bufsize 1150k -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
  -c:a aac -b:a 64k -ac 2 -f flv "$work/in.flv"
"$bin/ferrocast" --config "$root/configs/origin-a.toml" >"$work/origin.log" 2>&1 & pids+=($!)
"$bin/ferrocast" --config "$root/configs/edge.toml" >"$work/edge.log" 2>&1 & edge=$!; pids+=($edge)
sleep 0.5
ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$work/in.flv" -c copy -f flv \
  rtmp://127.0.0.1:1936/live/cb >/dev/null 2>&1 & pids+=($!)
base=http://127.0.0.1:8080/live/cb
for _ in $(seq 150); do
  n=$(curl -sf "$base/video.m3u8" 2>/dev/null | grep -c '^video_[0-9]*\.m4s$' || true)
  [ "${n:-0}" -ge 2 ] && break; sleep 0.2
done
# picks a complete segment and an answered blocking playlist URL, and puts their bytes (as the
# edge serves them) where nginx serves them from
pick() {
  local pl last m i
  pl=$(curl -sf "$base/video.m3u8")
  seg=$(grep '^video_[0-9]*\.m4s$' <<<"$pl" | tail -n1)
  last=$(grep '^#EXT-X-PART:' <<<"$pl" | tail -n1 | sed -n 's/.*URI="video_\([0-9]*\)\.\([0-9]*\)\.m4s".*/\1 \2/p')
  read -r m i <<<"$last"
  playlist="video.m3u8?_HLS_msn=$m&_HLS_part=$i"
  mkdir -p "$work/www/live/cb"
  curl -sf "$base/$seg" -o "$work/www/live/cb/$seg"
  curl -sf "$base/$playlist" -o "$work/www/live/cb/playlist.m3u8"
  chmod -R a+rX "$work/www"
}
pick
echo "segment $seg: $(stat -c %s "$work/www/live/cb/$seg") bytes; playlist: $(stat -c %s "$work/www/live/cb/playlist.m3u8") bytes"
cat >"$work/nginx.conf" <<CFG
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  open_file_cache max=100 inactive=60s;
  keepalive_requests 1000000; keepalive_timeout 60s;
  types { application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; }
  server { listen 127.0.0.1:8090; root $work/www; }
  server { listen 127.0.0.1:8091 http2; root $work/www; }
}
CFG
nginx -c "$work/nginx.conf"
for u in "http://127.0.0.1:8090/live/cb/$seg" "$base/$seg"; do
  got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "$u")
  [ "$got" = "200 $(stat -c %s "$work/www/live/cb/$seg")" ] || { echo "bad answer from $u: $got"; exit 1; }
done
rate_wrk() { # fails the run on any non-2xx answer
  local out; out=$(wrk -t2 -c"$1" -d"${SECS}s" "$2")
  if grep -q 'Non-2xx' <<<"$out"; then echo "non-2xx answers from $2" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}
rate_h2() { # h2load with 1 MiB stream / connection windows (as browsers use), fails on non-2xx
  local out; out=$(h2load -t2 -c"$1" -m4 -w20 -W20 -D"$SECS" "$2" 2>/dev/null)
  if ! grep -q ' 0 3xx, 0 4xx, 0 5xx' <<<"$out"; then echo "non-2xx answers from $2: $(grep 'status codes' <<<"$out")" >&2; exit 1; fi
  awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$out"
}
for c in $CONNS; do
  pick   # fresh objects: each stays cached (and listed) longer than one round of runs
  for obj in segment playlist; do
    if [ $obj = segment ]; then e="$base/$seg"; x="/live/cb/$seg"; else e="$base/$playlist"; x=/live/cb/playlist.m3u8; fi
    curl -sf -o /dev/null "$e"   # warm (a hit from now on)
    e1=$(rate_wrk "$c" "$e"); n1=$(rate_wrk "$c" "http://127.0.0.1:8090$x")
    curl -sf -o /dev/null "$e"
    e2=$(rate_h2 "$c" "$e"); n2=$(rate_h2 "$c" "http://127.0.0.1:8091$x")
    awk -v c="$c" -v o="$obj" -v e1="$e1" -v n1="$n1" -v e2="$e2" -v n2="$n2" 'BEGIN {
      printf "%-8s conns %-5s HTTP/1.1 (wrk): edge %9.0f req/s  nginx %9.0f req/s  ratio %.2f\n", o, c, e1, n1, e1 / n1;
      printf "%-8s conns %-5s HTTP/2 (h2load): edge %9.0f req/s  nginx %9.0f req/s  ratio %.2f\n", o, c, e2, n2, e2 / n2 }'
  done
done
hits=$(curl -s http://127.0.0.1:9093/metrics | awk '/^ferrocast_edge_cache_hits_total/ {print $2}')
miss=$(curl -s http://127.0.0.1:9093/metrics | awk '/^ferrocast_edge_cache_misses_total/ {print $2}')
echo "edge cache: $hits hits, $miss misses"
