#!/usr/bin/env bash
# Edge interop: a redundant pair of origins and an edge as three ferrocast processes, ffmpeg
# publishing the shared 720p sample to both origins at once (tee muxer: one input, two RTMP
# outputs), and clients nobody here wrote going through the edge:
#   - hls.js (lowLatencyMode) in headless Chromium plays through the edge while origin A is
#     SIGKILLed mid-play: no stall, frames keep advancing (the edge switches to origin B);
#   - aioquic (Python HTTP/3) fetches playlists, a blocking reload and a part over QUIC, with
#     the edge's generated certificate as trust anchor; the part is byte-identical to the origin's;
#   - curl fetches over HTTPS with HTTP/2 and sees Alt-Svc advertising h3.
# Every node checks auth: the origins want a stream key from publishers (ffmpeg without it is
# refused), and all three want a signed playback token, which the clients carry only in the
# path of the multivariant playlist URL (`ferrocast sign`); the playlists' relative URIs take
# it to every other request.
# Prints `edge interop: N passed, M failed` last; exits non-zero on any failure.
# Usage: bash tests/interop/edge.sh   (after `cargo build --release`)
# Env:   FERROCAST_BIN, FERROCAST_MEDIA, INTEROP_PLAY_SECONDS (default 30), CHROMIUM
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${FERROCAST_BIN:-$root/target/release/ferrocast}
media=${FERROCAST_MEDIA:-$root/../shared/media}
sample=$media/sample-h264-aac.flv
play_secs=${INTEROP_PLAY_SECONDS:-30}
stream=edgeinterop
work=$(mktemp -d "${TMPDIR:-/tmp}/ferrocast-edge-interop.XXXXXX")
pids=()
passed=0
failed=0

pass() { echo "PASS  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL  $1"; failed=$((failed + 1)); }
summary() { echo "edge interop: $passed passed, $failed failed"; }
cleanup() {
  local rc=$? i
  set +e
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ "$rc" -ne 0 ]; then
    for f in origin.log origin-b.log edge.log publisher.log hlsjs.err; do
      [ -s "$work/$f" ] && { echo "----- $f (last 40 lines)"; tail -n 40 "$work/$f"; }
    done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
abort() { fail "$1"; summary; exit 1; }
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

[ -x "$bin" ] || abort "no server binary at $bin (cargo build --release)"
[ -f "$sample" ] || abort "missing $sample"
if [ ! -f "$here/node_modules/hls.js/dist/hls.min.js" ]; then
  (cd "$here" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || abort "npm ci failed"
fi
venv=$here/.venv
if ! "$venv/bin/python" -c 'import aioquic' 2>/dev/null; then
  echo "edge interop: installing aioquic in tests/interop/.venv"
  python3 -m venv "$venv" || abort "python3 -m venv failed (apt-get install python3-venv)"
  timeout 300 "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt" ||
    abort "pip install aioquic failed"
fi

read -r o_rtmp o_http o_admin b_rtmp b_http b_admin e_http e_https e_admin < <(free_ports 9)
playback_secret=edge-interop-playback-secret
key=edge-interop-key
auth="[auth.publish]
keys = { \"*\" = \"$key\" }
[auth.playback]
secret = \"$playback_secret\""
cat >"$work/origin.toml" <<CFG
role = "origin"
[rtmp]
listen = "127.0.0.1:$o_rtmp"
[http]
listen = "127.0.0.1:$o_http"
[https]
enabled = false
[admin]
listen = "127.0.0.1:$o_admin"
[cluster]
peers = ["http://127.0.0.1:$b_admin"]
$auth
CFG
cat >"$work/origin-b.toml" <<CFG
role = "origin"
[rtmp]
listen = "127.0.0.1:$b_rtmp"
[http]
listen = "127.0.0.1:$b_http"
[https]
enabled = false
[admin]
listen = "127.0.0.1:$b_admin"
[cluster]
peers = ["http://127.0.0.1:$o_admin"]
$auth
CFG
cat >"$work/edge.toml" <<CFG
role = "edge"
[http]
listen = "127.0.0.1:$e_http"
[https]
listen = "127.0.0.1:$e_https"
self_signed_cert = "$work/edge-cert.pem"
[admin]
listen = "127.0.0.1:$e_admin"
[edge]
origins = [
  { url = "http://127.0.0.1:$o_http", health = "http://127.0.0.1:$o_admin/readyz", name = "a" },
  { url = "http://127.0.0.1:$b_http", health = "http://127.0.0.1:$b_admin/readyz", name = "b" },
]
[auth.playback]
secret = "$playback_secret"
CFG
"$bin" --config "$work/origin.toml" >"$work/origin.log" 2>&1 & pids+=($!)
pid_a=$!
"$bin" --config "$work/origin-b.toml" >"$work/origin-b.log" 2>&1 & pids+=($!)
"$bin" --config "$work/edge.toml" >"$work/edge.log" 2>&1 & pids+=($!)
for port in $o_admin $b_admin $e_admin; do
  t0=$SECONDS
  until curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz" 2>/dev/null; do
    [ $((SECONDS - t0)) -lt 30 ] || abort "a node did not start (admin port $port)"
    sleep 0.1
  done
done
# ---- publish auth: ffmpeg without the key is refused, with it accepted
if timeout 20 ffmpeg -hide_banner -nostdin -loglevel error -re -i "$sample" -t 2 -c copy -f flv \
  "rtmp://127.0.0.1:$o_rtmp/live/$stream" >"$work/refused.log" 2>&1; then
  fail "ffmpeg without a stream key was let in"
elif grep -q "Unauthorized\|not authorized" "$work/refused.log"; then
  pass "ffmpeg without a stream key is refused: $(grep -m1 -o 'publish not authorized[^"]*' "$work/refused.log" || head -n1 "$work/refused.log")"
else
  fail "ffmpeg without a stream key: $(tail -n 3 "$work/refused.log" | tr '\n' ' ')"
fi
ffmpeg -hide_banner -nostdin -loglevel warning -re -stream_loop -1 -i "$sample" -map 0 -c copy -f tee \
  "[f=flv:onfail=ignore]rtmp://127.0.0.1:$o_rtmp/live/$stream?key=$key|[f=flv:onfail=ignore]rtmp://127.0.0.1:$b_rtmp/live/$stream?key=$key" \
  >"$work/publisher.log" 2>&1 & pids+=($!)
token=$("$bin" --config "$work/edge.toml" sign --stream "$stream" --ttl 1h)
edge=http://127.0.0.1:$e_http/live/$stream/$token
t0=$SECONDS
until curl -fsS -o /dev/null --max-time 2 "$edge/video.m3u8" 2>/dev/null; do
  [ $((SECONDS - t0)) -lt 30 ] || abort "stream not playable through the edge within 30 s"
  sleep 0.2
done
pass "stream playable through the edge $((SECONDS - t0)) s after publishing started (ffmpeg with the stream key)"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$e_http/live/$stream/index.m3u8")
if [ "$code" = 403 ]; then
  pass "without the token the edge answers 403"
else
  fail "without the token the edge answers $code"
fi
# like run.sh, let the stream build a few segments first: a player joining a stream that is
# only a second old starts wherever the first keyframe is, which says nothing about the edge
t0=$SECONDS
until [ "$(curl -fsS --max-time 2 "$edge/video.m3u8" 2>/dev/null | grep -c '^#EXTINF')" -ge 3 ]; do
  [ $((SECONDS - t0)) -lt 30 ] || abort "fewer than 3 segments through the edge after 30 s"
  sleep 0.5
done

# ---- hls.js through the edge; origin A is SIGKILLed once hls.js has played for 10 s
rc=0
timeout -k 10 $((play_secs + 150)) node "$here/hlsjs-play.mjs" "$edge/index.m3u8" "$play_secs" \
  >"$work/hlsjs.json" 2>"$work/hlsjs.err" & hls=$!
(
  # the harness logs playback progress every 5 s
  until [ "$(grep -c 'currentTime=' "$work/hlsjs.err" 2>/dev/null || true)" -ge 2 ]; do
    kill -0 "$hls" 2>/dev/null || exit 0
    sleep 0.2
  done
  kill -KILL "$pid_a" && grep 'currentTime=' "$work/hlsjs.err" | tail -n1 >"$work/killed"
) & killer=$!
wait "$hls" || rc=$?
wait "$killer" || true
hj=$(tail -n1 "$work/hlsjs.json")
echo "      hls.js: $hj"
if [ "$rc" -eq 0 ]; then
  fields=$(node -e 'const j = JSON.parse(process.argv[1]); console.log(`${j.frames} frames, ${j.stalls} stalls, latency median ${j.latency.median} s`)' "$hj")
  pass "hls.js plays $play_secs s through the edge, the token only in the URL it was given: $fields"
else
  fail "hls.js through the edge (exit $rc)"
fi
stalls=$(node -e 'const j = JSON.parse(process.argv[1]); console.log(j.stalls + " " + j.framesAdvancing)' "$hj" 2>/dev/null || echo "? ?")
if [ -s "$work/killed" ] && [ "$stalls" = "0 true" ]; then
  pass "origin A SIGKILLed during playback ($(sed 's/.*\(t=[0-9.]*s\).*/\1/' "$work/killed")): 0 stalls, frames still advancing (edge switched to origin B)"
else
  fail "failover under hls.js: killed=$([ -s "$work/killed" ] && echo yes || echo no), stalls/advancing=$stalls"
fi

# ---- HTTPS with HTTP/2, Alt-Svc
cert=$work/edge-cert.pem
https=https://localhost:$e_https/live/$stream/$token
hdr=$(curl -sS --http2 --cacert "$cert" -D - -o /dev/null --max-time 5 "$https/index.m3u8" | tr -d '\r')
if grep -q '^HTTP/2 200' <<<"$hdr" && grep -qi "^alt-svc: h3=\":$e_https\"" <<<"$hdr"; then
  pass "curl: HTTPS over HTTP/2 with the edge's certificate, Alt-Svc advertises h3 on :$e_https"
else
  fail "curl HTTPS/2: $(echo "$hdr" | head -n 12 | tr '\n' ' ')"
fi

# ---- aioquic over HTTP/3: playlists, a blocking reload for the next part, that part
curl -fsS --max-time 5 "$edge/video.m3u8" >"$work/video.m3u8"
last=$(grep '^#EXT-X-PART:' "$work/video.m3u8" | tail -n1 | sed -n 's/.*URI="video_\([0-9]*\)\.\([0-9]*\)\.m4s".*/\1 \2/p')
read -r m i <<<"$last"
[ -n "$m" ] || abort "no parts in the edge's video playlist"
next="$https/video.m3u8?_HLS_msn=$m&_HLS_part=$((i + 1))"
if "$venv/bin/python" "$here/h3get.py" --cafile "$cert" "$https/index.m3u8" "$https/video.m3u8" "$next" \
  >"$work/h3.jsonl" 2>"$work/h3.err"; then
  pass "aioquic HTTP/3: index.m3u8, video.m3u8 and a blocking reload (msn $m part $((i + 1))) answered 200"
else
  fail "aioquic HTTP/3: $(cat "$work/h3.jsonl" "$work/h3.err" | tail -n 5 | tr '\n' ' ')"
fi
curl -fsS --max-time 10 "$edge/video.m3u8?_HLS_msn=$m&_HLS_part=$((i + 1))" >"$work/next.m3u8"
uri=$(grep '^#EXT-X-PART:' "$work/next.m3u8" | tail -n1 | sed -n 's/.*URI="\([^"]*\)".*/\1/p')
if out=$("$venv/bin/python" "$here/h3get.py" --cafile "$cert" "$https/$uri" 2>"$work/h3.err"); then
  want=$(curl -fsS --max-time 5 "http://127.0.0.1:$b_http/live/$stream/$token/$uri" | sha256sum | cut -d' ' -f1)
  got=$(sed -n 's/.*"sha256": "\([0-9a-f]*\)".*/\1/p' <<<"$out")
  if [ "$got" = "$want" ]; then
    pass "aioquic HTTP/3: part $uri is byte-identical to the origin's ($(sed -n 's/.*"length": \([0-9]*\).*/\1/p' <<<"$out") bytes)"
  else
    fail "aioquic HTTP/3: part $uri sha256 $got, origin has $want"
  fi
else
  fail "aioquic HTTP/3 part $uri: $(cat "$work/h3.err" | tail -n 3 | tr '\n' ' ')"
fi

# ---- the edge's own account
metrics=$(curl -fsS --max-time 5 "http://127.0.0.1:$e_admin/metrics")
h3=$(awk '/^ferrocast_http_requests_total\{.*version="3"/ {s += $2} END {print s + 0}' <<<"$metrics")
viewer=$(awk '/^ferrocast_http_requests_total\{/ {s += $2} END {print s + 0}' <<<"$metrics")
upstream=$(awk '/^ferrocast_edge_upstream_requests_total\{/ {s += $2} END {print s + 0}' <<<"$metrics")
a_up=$(awk '/^ferrocast_edge_origin_up\{origin="a"\}/ {print $2}' <<<"$metrics")
from_b=$(awk '/^ferrocast_edge_upstream_requests_total\{origin="b"/ {s += $2} END {print s + 0}' <<<"$metrics")
if [ "$h3" -ge 4 ] && [ "$upstream" -gt 0 ] && [ "$a_up" = "0" ] && [ "$from_b" -gt 0 ]; then
  pass "edge metrics: $viewer viewer requests ($h3 over HTTP/3), $upstream upstream requests ($from_b to origin B), origin A down"
else
  fail "edge metrics: $h3 HTTP/3 requests, $upstream upstream requests, $from_b to B, origin_up{a}=$a_up"
fi
summary
[ "$failed" -eq 0 ]
