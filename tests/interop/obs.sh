#!/usr/bin/env bash
# OBS Studio (the real broadcaster client) publishes to ferrocast with its *default* output
# settings (Simple mode, x264, keyframe interval auto ≈ 8.3 s GOPs at 30 fps), headless under
# Xvfb, from a throw-away profile whose stream service is rtmp://127.0.0.1:PORT/live, key "obs".
# Checks: the stream appears, TARGETDURATION covers OBS's GOP, init + first segment decode with
# ffmpeg. Usage: FERROCAST_BIN=target/release/ferrocast bash tests/interop/obs.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${FERROCAST_BIN:-$root/target/release/ferrocast}
command -v obs >/dev/null && command -v xvfb-run >/dev/null || { echo "obs: obs-studio and xvfb are not installed"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ferrocast-obs.XXXXXX")
server_pid=; obs_pgid=
passed=0; failed=0
pass() { echo "PASS  obs: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL  obs: $1"; failed=$((failed + 1)); }
cleanup() {
  [ -n "$obs_pgid" ] && kill -- "-$obs_pgid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    { [ -z "$obs_pgid" ] || ! kill -0 -- "-$obs_pgid" 2>/dev/null; } && { [ -z "$server_pid" ] || ! kill -0 "$server_pid" 2>/dev/null; } && break
    sleep 0.1
  done
  [ -n "$obs_pgid" ] && kill -9 -- "-$obs_pgid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/interop/lib.sh
. "$(dirname "$0")/lib.sh"

ports=$(free_ports 2)
read -r rtmp_port http_port <<<"$ports"
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
listen = "127.0.0.1:0"
CFG
"$bin" --config "$work/ferrocast.toml" >"$work/server.log" 2>&1 &
server_pid=$!

# OBS profile in a private HOME: simple output mode, default encoder settings, custom server
cfg="$work/home/.config/obs-studio"
mkdir -p "$cfg/basic/profiles/ferro" "$cfg/basic/scenes"
cat >"$cfg/global.ini" <<'INI'
[General]
FirstRun=true
EnableAutoUpdates=false
[Basic]
Profile=ferro
ProfileDir=ferro
SceneCollection=ferro
SceneCollectionFile=ferro
INI
cat >"$cfg/basic/profiles/ferro/basic.ini" <<'INI'
[General]
Name=ferro
[Output]
Mode=Simple
[SimpleOutput]
VBitrate=800
ABitrate=96
[Video]
BaseCX=640
BaseCY=360
OutputCX=640
OutputCY=360
FPSType=0
FPSCommon=30
[Audio]
SampleRate=48000
ChannelSetup=Stereo
INI
cat >"$cfg/basic/profiles/ferro/service.json" <<JSON
{"settings":{"server":"rtmp://127.0.0.1:$rtmp_port/live","key":"obs","use_auth":false},"type":"rtmp_custom"}
JSON
cat >"$cfg/basic/scenes/ferro.json" <<'JSON'
{"current_scene":"Scene","current_program_scene":"Scene","name":"ferro","scene_order":[{"name":"Scene"}],
 "sources":[
  {"id":"color_source","versioned_id":"color_source_v3","name":"Color","settings":{"color":4278190335,"width":640,"height":360}},
  {"id":"scene","versioned_id":"scene","name":"Scene","settings":{"id_counter":1,"items":[{"name":"Color","id":1,"visible":true}]}}]}
JSON
HOME="$work/home" setsid timeout 120 xvfb-run -a obs --startstreaming --disable-updater \
  --disable-shutdown-check --profile ferro --collection ferro >"$work/obs.log" 2>&1 &
obs_pgid=$!

base="http://127.0.0.1:$http_port/live/obs"
ok=
for _ in $(seq 1 600); do # ≤ 60 s: OBS start-up + one 8.3 s GOP probe + one segment
  if curl -sf "$base/video.m3u8" 2>/dev/null | grep -q '^video_[0-9]*\.m4s$'; then ok=1; break; fi
  sleep 0.1
done
if [ -z "$ok" ]; then
  fail "no complete segment within 60 s"
  tail -20 "$work/server.log"; tail -20 "$work/obs.log"
else
  pass "OBS published; a segment is listed"
  pl=$(curl -sf "$base/video.m3u8")
  td=$(sed -n 's/^#EXT-X-TARGETDURATION://p' <<<"$pl")
  ext=$(grep -m1 '^#EXTINF:' <<<"$pl" | sed 's/#EXTINF:\([0-9.]*\),/\1/')
  if awk -v e="$ext" -v t="$td" 'BEGIN { exit !(int(e + 0.5) <= t) }'; then
    pass "TARGETDURATION $td covers OBS's segments (first EXTINF $ext s)"
  else
    fail "EXTINF $ext exceeds TARGETDURATION $td"
  fi
  seg=$(grep -m1 '^video_[0-9]*\.m4s$' <<<"$pl")
  curl -sf "$base/video_init0.mp4" -o "$work/v.mp4" && curl -sf "$base/$seg" >>"$work/v.mp4"
  probe=$(ffprobe -v error -count_frames -show_entries stream=codec_name,width,height,nb_read_frames -of compact "$work/v.mp4" 2>&1)
  errs=$(ffmpeg -v error -i "$work/v.mp4" -f null - 2>&1 || true)
  frames=$(sed -n 's/.*nb_read_frames=\([0-9]*\).*/\1/p' <<<"$probe")
  if [ -z "$errs" ] && grep -q 'codec_name=h264|width=640|height=360' <<<"$probe" && [ "${frames:-0}" -ge 200 ]; then
    pass "init + $seg decode cleanly ($probe)"
  else
    fail "decode: $probe $errs"
  fi
fi
echo "obs: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
