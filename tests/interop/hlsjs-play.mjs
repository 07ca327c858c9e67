// Plays an LL-HLS URL with hls.js (lowLatencyMode) in Debian's headless Chromium and prints a
// JSON summary: decoded frames, stalls, latency (hls.latency, live edge → playhead), errors.
// Usage: node hlsjs-play.mjs <m3u8 url> <seconds> [screenshot-dir]
// Exit 0 only if playback started, frames kept advancing, and no fatal error occurred.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [url, secondsArg, outDir] = process.argv.slice(2);
if (!url) {
  console.error('usage: node hlsjs-play.mjs <m3u8 url> <seconds> [screenshot-dir]');
  process.exit(2);
}
const seconds = Number(secondsArg || 30);
const here = path.dirname(fileURLToPath(import.meta.url));
const hlsJs = fs.readFileSync(path.join(here, 'node_modules/hls.js/dist/hls.min.js'));

const page = `<!doctype html><html><body>
<video id="v" muted autoplay playsinline style="width:640px"></video>
<script src="/hls.min.js"></script>
<script>
window.report = { errors: [], fatal: [], latency: [], samples: [], started: null, levels: 0, audioTracks: 0 };
const video = document.getElementById('v');
const t0 = performance.now();
const hls = new Hls({ lowLatencyMode: true });
hls.on(Hls.Events.ERROR, (_, d) => {
  const e = { type: d.type, details: d.details, fatal: d.fatal, at: Math.round(performance.now() - t0) };
  window.report.errors.push(e);
  if (d.fatal) window.report.fatal.push(e);
});
hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => { window.report.levels = d.levels.length; });
hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, (_, d) => { window.report.audioTracks = d.audioTracks.length; });
video.addEventListener('playing', () => { if (window.report.started === null) window.report.started = Math.round(performance.now() - t0); });
hls.loadSource(${JSON.stringify(url)});
hls.attachMedia(video);
video.play().catch(() => {});
setInterval(() => {
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : { totalVideoFrames: 0 };
  window.report.samples.push({ t: Math.round(performance.now() - t0), ct: video.currentTime, frames: q.totalVideoFrames, paused: video.paused, latency: hls.latency });
  if (Number.isFinite(hls.latency) && hls.latency > 0 && window.report.started !== null) window.report.latency.push(hls.latency);
}, 500);
</script></body></html>`;

const server = http.createServer((req, res) => {
  if (req.url === '/hls.min.js') {
    res.writeHead(200, { 'content-type': 'application/javascript' });
    res.end(hlsJs);
  } else {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page);
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

const hardTimeout = setTimeout(() => {
  console.error('hlsjs-play: hard timeout');
  process.exit(3);
}, (seconds + 60) * 1000);

let browser;
let code = 1;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio', '--disable-gpu',
      '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
  });
  const tab = await browser.newPage();
  await tab.goto(pageUrl);
  await tab.waitForTimeout(seconds * 1000);
  const r = await tab.evaluate(() => window.report);
  // stalls: currentTime not advancing for > 300 ms (consecutive 500 ms samples) while playing
  let stalls = 0;
  const after = r.samples.filter((s) => r.started !== null && s.t > r.started + 1000);
  for (let i = 1; i < after.length; i++) {
    if (!after[i].paused && after[i].ct <= after[i - 1].ct) stalls++;
  }
  const frames = r.samples.length ? r.samples[r.samples.length - 1].frames : 0;
  const firstHalf = r.samples[Math.floor(r.samples.length / 2)]?.frames ?? 0;
  const lat = [...r.latency].sort((a, b) => a - b);
  const q = (p) => (lat.length ? Number(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3)) : null);
  const summary = {
    frames,
    framesAdvancing: frames > firstHalf,
    stalls,
    fatalErrors: r.fatal.length,
    errors: r.errors.slice(0, 20),
    latency: { median: q(0.5), p90: q(0.9), max: lat.length ? Number(lat[lat.length - 1].toFixed(3)) : null, samples: lat.length },
    startupMs: r.started,
    levels: r.levels,
    audioTracks: r.audioTracks,
  };
  console.log(JSON.stringify(summary));
  const minFrames = Math.max(1, Math.floor(20 * (seconds - 5)));
  const maxStalls = Number(process.env.MAX_STALLS ?? 2);
  const ok = r.fatal.length === 0 && r.started !== null && summary.framesAdvancing && frames >= minFrames && stalls <= maxStalls;
  if (!ok) {
    console.error(`hlsjs-play: FAILED (need no fatal error, playback started, >= ${minFrames} frames advancing, <= ${maxStalls} stalls)`);
    if (outDir) {
      fs.mkdirSync(outDir, { recursive: true });
      await tab.screenshot({ path: path.join(outDir, 'hlsjs-failure.png') });
    }
  }
  code = ok ? 0 : 1;
} catch (e) {
  console.error('hlsjs-play: error', e);
  code = 1;
} finally {
  clearTimeout(hardTimeout);
  if (browser) await browser.close().catch(() => {});
  server.close();
}
process.exit(code);
