#!/usr/bin/env bash
# Validates the interop harness itself, without ferrocast: ffmpeg's own HLS muxer writes a live
# fMP4 stream (1 s segments, separate audio rendition via EXT-X-MEDIA) from the shared 720p
# sample, a tiny CORS static server serves it on loopback, and run.sh (INTEROP_HLS_URL mode:
# playlist parsing, ffprobe/ffmpeg decode checks, ffmpeg HLS demuxer, hls.js in Chromium) runs
# against it. ffmpeg's stream has no LL-HLS parts, so the LL-only checks are skipped.
# If this fails, the harness or the machine is broken, not ferrocast.
# Usage: bash tests/interop/selftest.sh      Env: FERROCAST_MEDIA, INTEROP_PLAY_SECONDS (20)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
media=${FERROCAST_MEDIA:-$root/../shared/media}
sample=$media/sample-h264-aac.flv
[ -f "$sample" ] || { echo "selftest: missing $sample"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ferrocast-interop-selftest.XXXXXX")
pids=()
cleanup() {
  local rc=$? i p
  set +e
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[i]}
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ! -f "$here/node_modules/hls.js/dist/hls.min.js" ] || [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi

mkdir "$work/hls"
(cd "$work/hls" && exec ffmpeg -hide_banner -nostdin -loglevel error -re -stream_loop -1 -i "$sample" \
  -map 0:v -map 0:a -c copy -f hls -hls_segment_type fmp4 -hls_time 1 -hls_list_size 6 \
  -hls_flags delete_segments+independent_segments+temp_file -master_pl_name ffmpeg-master.m3u8 \
  -var_stream_map "v:0,agroup:aud a:0,agroup:aud" -hls_fmp4_init_filename init.mp4 \
  -hls_segment_filename 'seg_%v_%d.m4s' 'stream_%v.m3u8') >"$work/ffmpeg.log" 2>&1 &
pids+=($!)
# ffmpeg's own multivariant has no CODECS on the video variant (hls.js then creates no audio
# SourceBuffer); write one shaped like ferrocast's instead: 1 video variant + EXT-X-MEDIA audio.
cat >"$work/hls/index.m3u8" <<'M3U8'
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="stream_1.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2900000,RESOLUTION=1280x720,FRAME-RATE=30.000,CODECS="avc1.4d401f,mp4a.40.2",AUDIO="aud"
stream_0.m3u8
M3U8
node "$here/static-server.mjs" "$work/hls" "$work/port" >"$work/static.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 150); do
  [ -s "$work/port" ] && [ -s "$work/hls/stream_0.m3u8" ] && [ -s "$work/hls/stream_1.m3u8" ] && break
  sleep 0.2
done
if [ ! -s "$work/port" ] || [ ! -s "$work/hls/stream_1.m3u8" ]; then
  echo "selftest: ffmpeg HLS or static server did not start"
  cat "$work/ffmpeg.log" "$work/static.log"
  exit 1
fi
url="http://127.0.0.1:$(cat "$work/port")/index.m3u8"
echo "selftest: ffmpeg HLS at $url"
INTEROP_HLS_URL=$url INTEROP_PLAY_SECONDS=${INTEROP_PLAY_SECONDS:-20} bash "$here/run.sh"
