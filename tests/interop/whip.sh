#!/usr/bin/env bash
# WHIP interop: Debian's headless Chromium publishes its fake camera and microphone with its own
# WebRTC stack (RTCPeerConnection, H.264 + Opus, the offer POSTed cross-origin with a bearer
# token), and hls.js in another headless Chromium plays the LL-HLS result for 30 s with decoded
# frames advancing and audio decoded. Also: ffprobe reads the stream's CODECS (avc1 + opus).
# Usage: FERROCAST_BIN=target/release/ferrocast bash tests/interop/whip.sh
# Env:   INTEROP_PLAY_SECONDS (default 30)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${FERROCAST_BIN:-$root/target/release/ferrocast}
play_secs=${INTEROP_PLAY_SECONDS:-30}
work=$(mktemp -d "${TMPDIR:-/tmp}/ferrocast-whip.XXXXXX")
server_pid=; pub_pid=
passed=0; failed=0
pass() { echo "PASS  whip: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL  whip: $1"; failed=$((failed + 1)); }
# shellcheck source=tests/interop/lib.sh
. "$here/lib.sh"
cleanup() {
  local rc=$?
  stop_pid "$pub_pid"
  stop_pid "$server_pid"
  if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
    for f in server.log publish.err hlsjs.err; do
      [ -s "$work/$f" ] && { echo "----- $f (last 40 lines)"; tail -n 40 "$work/$f"; }
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

ports=$(free_ports 3)
read -r rtmp_port http_port admin_port <<<"$ports"
cat >"$work/ferrocast.toml" <<CFG
[log]
level = "info"
[rtmp]
listen = "127.0.0.1:$rtmp_port"
[http]
listen = "127.0.0.1:$http_port"
[https]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:$admin_port"
[whip]
ports = "22000-22009"
[auth.publish]
keys = { browser = "interop-key-1" }
CFG
"$bin" --config "$work/ferrocast.toml" >"$work/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$http_port/live/browser"
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$http_port/" && break; sleep 0.1; done

# the publisher runs for the whole playback plus start-up
timeout -k 10 $((play_secs + 120)) node "$here/whip-publish.mjs" "$base/whip" $((play_secs + 25)) interop-key-1 \
  >"$work/publish.json" 2>"$work/publish.err" &
pub_pid=$!

# the stream appears (bounded wait: the browser starts, connects, sends a keyframe)
ok=
for _ in $(seq 1 300); do
  if curl -sf -o "$work/index.m3u8" "$base/index.m3u8"; then ok=1; break; fi
  kill -0 "$pub_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -n "$ok" ]; then
  pass "Chromium's WHIP publish is live as LL-HLS"
else
  fail "no stream from Chromium's WHIP publish"
  wait "$pub_pid" 2>/dev/null || true
  cat "$work/publish.json" 2>/dev/null || true
  echo "whip interop: $passed passed, $failed failed"
  exit 1
fi
if grep -q 'CODECS="avc1\.[0-9a-f]\{6\},opus"' "$work/index.m3u8"; then
  pass "multivariant playlist: $(grep -o 'CODECS="[^"]*"' "$work/index.m3u8")"
else
  fail "multivariant CODECS: $(grep -o 'CODECS="[^"]*"' "$work/index.m3u8" || true)"
fi

hls_rc=0
timeout -k 10 $((play_secs + 150)) node "$here/hlsjs-play.mjs" "$base/index.m3u8" "$play_secs" \
  >"$work/hlsjs.json" 2>"$work/hlsjs.err" || hls_rc=$?
hj=$(tail -n1 "$work/hlsjs.json")
echo "      hls.js: $hj"
if [ "$hls_rc" -eq 0 ]; then
  pass "hls.js plays the WHIP stream $play_secs s: $(json frames <<<"$hj") frames, $(json stalls <<<"$hj") stalls, latency median $(json latency.median <<<"$hj") s"
else
  fail "hls.js playback of the WHIP stream (exit $hls_rc)"
fi
audio_bytes=$(json audioDecodedBytes <<<"$hj")
if [ "${audio_bytes:-0}" -gt 0 ] 2>/dev/null; then
  pass "hls.js decodes the Opus rendition ($audio_bytes bytes)"
else
  fail "hls.js decoded no Opus audio (audioDecodedBytes=$audio_bytes)"
fi

pub_rc=0
wait "$pub_pid" || pub_rc=$?
pub_pid=
pj=$(tail -n1 "$work/publish.json" 2>/dev/null || echo '{}')
echo "      publisher: $pj"
if [ "$pub_rc" -eq 0 ] && [ "$(json deleted <<<"$pj")" = 200 ]; then
  pass "Chromium sent $(json framesSent <<<"$pj") frames ($(json keyFramesEncoded <<<"$pj") keyframes for $(json pliCount <<<"$pj") PLIs) and ended with DELETE (200)"
else
  fail "publisher (exit $pub_rc): $pj"
fi
metric() { curl -s "http://127.0.0.1:$admin_port/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
malformed=$(metric 'ferrocast_whip_frames_dropped_total{reason="malformed"}')
loss=$(metric 'ferrocast_whip_frames_dropped_total{reason="loss"}')
lost=$(metric 'ferrocast_whip_rtp_packets_lost_total{track="video"}')
plis=$(metric 'ferrocast_whip_plis_sent_total')
if [ "${malformed:-x}" = 0 ]; then
  pass "nothing Chromium sent was malformed to the depacketizer (frames dropped for loss: $loss, video packets lost: $lost, PLIs sent: $plis)"
else
  fail "frames dropped as malformed: ${malformed:-no metric} (loss: $loss, lost packets: $lost)"
fi
echo "whip interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
