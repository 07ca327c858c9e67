#!/usr/bin/env bash
# The interop suite: clients nobody here wrote against a running ferrocast.
#  1. ffmpeg publishes the shared 720p H.264 (B-frames) + AAC sample over RTMP, in real time.
#  2. ffprobe/ffmpeg decode the init segment + segments of both renditions without errors.
#  3. hls.js (lowLatencyMode) in headless Chromium plays the stream for 30 s: no fatal error,
#     frames advancing; its latency (live edge → playhead) is reported.
# Usage: FERROCAST_BIN=target/release/ferrocast bash tests/interop/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${FERROCAST_BIN:-$root/target/release/ferrocast}
media=${FERROCAST_MEDIA:-$root/../shared/media}
sample=$media/sample-h264-aac.flv
play_secs=${PLAY_SECONDS:-30}
[ -x "$bin" ] || { echo "interop: no server binary at $bin (cargo build --release)"; exit 1; }
[ -f "$sample" ] || { echo "interop: missing $sample"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

if [ ! -d "$here/node_modules/hls.js" ] || [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund >/dev/null)
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rtmp_port=$(free_port); http_port=$(free_port); admin_port=$(free_port)
cat > "$work/config.toml" <<CFG
[log]
level = "info"
[rtmp]
listen = "127.0.0.1:$rtmp_port"
[http]
listen = "127.0.0.1:$http_port"
[admin]
listen = "127.0.0.1:$admin_port"
CFG

"$bin" --config "$work/config.toml" > "$work/server.log" 2>&1 &
pids+=($!)
server_pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$admin_port/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "interop: server exited"; exit 1; }
  sleep 0.1
done

ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$sample" -c copy -f flv \
  "rtmp://127.0.0.1:$rtmp_port/live/interop" > "$work/ffmpeg.log" 2>&1 &
pids+=($!)

base="http://127.0.0.1:$http_port/live/interop"
for _ in $(seq 1 150); do
  curl -sf "$base/index.m3u8" >/dev/null 2>&1 && break
  sleep 0.1
done

passed=0; failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# --- 1. ffprobe / ffmpeg decode init + segments -------------------------------------------
# wait (blocking playlist reload) until each rendition lists at least 3 complete segments
for r in video audio; do
  for _ in $(seq 1 40); do
    pl=$(curl -sf "$base/$r.m3u8" || true)
    n=$(echo "$pl" | grep -c '^[a-z]*_[0-9]*\.m4s$' || true)
    [ "${n:-0}" -ge 3 ] && break
    first=$(echo "$pl" | sed -n 's/^#EXT-X-MEDIA-SEQUENCE://p')
    # block until the next segment is complete (RFC 8216bis 6.2.5.2)
    curl -sf -o /dev/null "$base/$r.m3u8?_HLS_msn=$(( ${first:-0} + ${n:-0} ))" || sleep 0.2
  done
done
check_rendition() {
  local r=$1 want=$2
  local pl="$work/$r.m3u8"
  curl -sf "$base/$r.m3u8" -o "$pl" || { fail "$r: playlist"; return; }
  local init seg
  init=$(sed -n 's/^#EXT-X-MAP:URI="\([^"]*\)".*/\1/p' "$pl" | head -1)
  curl -sf "$base/$init" -o "$work/$r.mp4" || { fail "$r: init"; return; }
  local count=0
  for seg in $(grep '^[a-z]*_[0-9]*\.m4s$' "$pl" | head -3); do
    curl -sf "$base/$seg" >> "$work/$r.mp4" || { fail "$r: $seg"; return; }
    count=$((count + 1))
  done
  [ "$count" -eq 3 ] || { fail "$r: only $count segments listed"; return; }
  local probe errs
  probe=$(ffprobe -v error -count_frames -show_entries stream=codec_name,width,height,nb_read_frames -of compact "$work/$r.mp4" 2> "$work/$r.probe.err")
  errs=$(cat "$work/$r.probe.err"; ffmpeg -v error -i "$work/$r.mp4" -f null - 2>&1)
  echo "  $r: $probe"
  if [ -n "$errs" ]; then
    fail "$r: decoder errors: $(echo "$errs" | head -5)"
  elif ! echo "$probe" | grep -q "$want"; then
    fail "$r: expected $want"
  else
    local frames
    frames=$(echo "$probe" | sed -n 's/.*nb_read_frames=\([0-9]*\).*/\1/p')
    if [ "$r" = video ] && [ "$frames" -ne 180 ]; then
      fail "video: 3 segments of 2 s at 30 fps should decode to 180 frames, got $frames"
    else
      pass "$r: ffprobe/ffmpeg decode init + 3 segments ($frames frames)"
    fi
  fi
}
check_rendition video 'codec_name=h264|width=1280|height=720'
check_rendition audio 'codec_name=aac'

# --- 2. hls.js in headless Chromium -----------------------------------------------------------
if out=$(node "$here/hlsjs-play.mjs" "$base/index.m3u8" "$play_secs" "$here/out" 2> "$work/hlsjs.err"); then
  echo "  hls.js: $out"
  pass "hls.js plays $play_secs s in Chromium (latency median $(echo "$out" | sed -n 's/.*"median":\([0-9.]*\).*/\1/p') s)"
else
  echo "  hls.js: $out"; cat "$work/hlsjs.err"
  fail "hls.js playback"
fi

kill -0 "$server_pid" 2>/dev/null || fail "server died"
if [ "$failed" -gt 0 ]; then
  echo "--- server log (tail)"; tail -30 "$work/server.log"
  echo "--- ffmpeg log"; tail -5 "$work/ffmpeg.log"
fi
echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
