// Plays an (LL-)HLS URL with hls.js (`new Hls({ lowLatencyMode: true })`, nothing else tuned)
// in Debian's headless Chromium, driven by playwright-core, and prints ONE JSON line on stdout:
//   {frames, framesAdvancing, stalls, fatalErrors, errors:[...], latency:{median,p90,max,samples},
//    startupMs, levels, audioTracks, ...extra diagnostics}
// Progress lines go to stderr. Exit 0 only if no fatal hls.js error occurred, playback started,
// decoded frames were still advancing at the end, and at least 20 fps × (seconds − 5) frames
// were decoded; exit 1 otherwise (a screenshot is saved to tests/interop/out/), 2 on bad usage.
//
// Usage: node hlsjs-play.mjs <m3u8 url> <seconds>
// Env:   CHROMIUM          browser binary (default /usr/bin/chromium)
//        INTEROP_OUT       screenshot directory (default: out/ beside this script)
//        HLSJS_PLAY_DEBUG  non-empty: include every 500 ms sample in the JSON (samplesAll)
//
// The page and hls.min.js are served by this script on an ephemeral 127.0.0.1 port, so the
// stream is fetched cross-origin: the HLS server must send CORS headers (as a real deployment
// must). Chromium gets a fresh temporary profile from playwright (removed on close/exit).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [url, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
if (!url || !/^https?:\/\//.test(url) || !Number.isFinite(seconds) || seconds <= 0) {
  console.error('usage: node hlsjs-play.mjs <m3u8 url> <seconds>');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = process.env.INTEROP_OUT || path.join(here, 'out');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const hlsJsPath = path.join(here, 'node_modules/hls.js/dist/hls.min.js');
if (!fs.existsSync(hlsJsPath)) {
  console.error(`hlsjs-play: ${hlsJsPath} missing: run \`npm ci\` in ${here}`);
  process.exit(2);
}
const hlsJs = fs.readFileSync(hlsJsPath);

const STALL_MS = 300; // currentTime not advancing for longer than this while not paused = stall
const MIN_FPS = 20;
const minFrames = Math.max(1, Math.floor(MIN_FPS * (seconds - 5)));
const log = (msg) => console.error(`hlsjs-play: ${msg}`);

// ---------------------------------------------------------------------------------------------
// The test page. Everything it learns goes into window.R, which node reads with evaluate().
const pageHtml = `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>ferrocast interop: hls.js</title></head>
<body style="margin:0;background:#222">
<video id="v" muted autoplay playsinline style="width:1280px;height:720px;display:block"></video>
<script src="/hls.min.js"></script>
<script>
(() => {
  const url = ${JSON.stringify(url)};
  const video = document.getElementById('v');
  video.muted = true;
  const R = (window.R = {
    hlsVersion: window.Hls ? Hls.version : null,
    mseSupported: window.Hls ? Hls.isSupported() : false,
    t0: performance.now(),
    started: null,          // ms after loadSource() at which playback first advanced
    samples: [],            // every 500 ms
    errors: [], errorCount: 0, errorsByDetails: {}, fatal: [],
    stalls: 0, stallMs: 0, stallEvents: [], inStall: false,
    waitingEvents: 0,
    levels: 0, audioTracks: 0, audioTrackSelected: null,
    video: null, audio: null,   // last loaded playlist details per rendition
    fragsLoaded: { main: 0, audio: 0 }, partsLoaded: { main: 0, audio: 0 },
    appended: {},
  });
  if (!window.Hls || !Hls.isSupported()) {
    R.fatal.push({ type: 'page', details: 'hls.js missing or MSE unsupported', fatal: true, at: 0 });
    return;
  }
  const now = () => Math.round(performance.now() - R.t0);
  const hls = new Hls({ lowLatencyMode: true });
  window.hls = hls;
  hls.on(Hls.Events.ERROR, (_, d) => {
    const e = { type: d.type, details: d.details, fatal: !!d.fatal, at: now() };
    const u = (d.context && d.context.url) || (d.frag && d.frag.url) || d.url;
    if (u) e.url = u;
    if (d.part) e.part = d.part.index;
    if (d.response && d.response.code !== undefined) e.code = d.response.code;
    if (d.reason) e.reason = String(d.reason);
    if (d.error && d.error.message) e.message = String(d.error.message);
    if (d.buffer !== undefined) e.buffer = d.buffer;
    R.errorCount++;
    R.errorsByDetails[d.details] = (R.errorsByDetails[d.details] || 0) + 1;
    if (R.errors.length < 100) R.errors.push(e);
    if (d.fatal) R.fatal.push(e);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => {
    R.levels = d.levels.length;
    R.levelInfo = d.levels.map((l) => ({ width: l.width, height: l.height, bitrate: l.bitrate,
      videoCodec: l.videoCodec, audioCodec: l.audioCodec }));
    video.play().catch((err) => { R.playError = String(err); });
  });
  hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, (_, d) => { R.audioTracks = d.audioTracks.length; });
  hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, (_, d) => { R.audioTrackSelected = d.id; });
  const details = (d) => ({
    live: d.live, targetduration: d.targetduration, partTarget: d.partTarget || null,
    canBlockReload: !!d.canBlockReload, canSkipUntil: d.canSkipUntil || 0,
    segments: d.fragments.length, parts: d.partList ? d.partList.length : 0,
    preloadHint: !!d.preloadHint, startSN: d.startSN, endSN: d.endSN,
  });
  hls.on(Hls.Events.LEVEL_LOADED, (_, d) => { R.video = details(d.details); });
  hls.on(Hls.Events.AUDIO_TRACK_LOADED, (_, d) => { R.audio = details(d.details); });
  hls.on(Hls.Events.FRAG_LOADED, (_, d) => {
    const t = d.frag.type === 'audio' ? 'audio' : 'main';
    if (d.part) R.partsLoaded[t]++; else R.fragsLoaded[t]++;
  });
  hls.on(Hls.Events.BUFFER_APPENDED, (_, d) => { R.appended[d.type] = (R.appended[d.type] || 0) + 1; });
  video.addEventListener('waiting', () => { R.waitingEvents++; });

  // Stall detector (100 ms resolution): currentTime not changing for > ${STALL_MS} ms while not
  // paused, counted only after playback first started.
  let lastCt = video.currentTime, lastAdvance = performance.now(), stallStart = 0;
  setInterval(() => {
    const t = performance.now();
    const ct = video.currentTime;
    if (ct !== lastCt) {
      // Playback started = currentTime moving like playback (not the initial seek to the live
      // position) with decoded data present.
      if (R.started === null && !video.paused && video.readyState >= 2 && ct > lastCt && ct - lastCt < 1) {
        R.started = now();
      }
      if (R.inStall) {
        const ms = Math.round(t - lastAdvance);
        R.stallMs += ms;
        if (R.stallEvents.length < 50) R.stallEvents.push({ at: Math.round(stallStart - R.t0), ms });
        R.inStall = false;
      }
      lastCt = ct;
      lastAdvance = t;
    } else if (R.started !== null && !video.paused && !R.inStall && t - lastAdvance > ${STALL_MS}) {
      R.inStall = true;
      R.stalls++;
      stallStart = lastAdvance;
    }
    R.stallOngoingMs = R.inStall ? Math.round(t - lastAdvance) : 0;
  }, 100);

  // Sampler: every 500 ms.
  setInterval(() => {
    const q = video.getVideoPlaybackQuality();
    let ahead = 0;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= video.currentTime + 0.1 && video.buffered.end(i) > video.currentTime) {
        ahead = video.buffered.end(i) - video.currentTime;
      }
    }
    const lat = hls.latency;
    R.samples.push({
      t: now(), ct: Number(video.currentTime.toFixed(3)), paused: video.paused,
      frames: q.totalVideoFrames, dropped: q.droppedVideoFrames,
      latency: Number.isFinite(lat) ? Number(lat.toFixed(3)) : null,
      targetLatency: Number.isFinite(hls.targetLatency) ? Number(hls.targetLatency.toFixed(3)) : null,
      ahead: Number(ahead.toFixed(3)), rate: video.playbackRate, readyState: video.readyState,
      audioBytes: video.webkitAudioDecodedByteCount || 0, videoBytes: video.webkitVideoDecodedByteCount || 0,
      started: R.started !== null,
    });
  }, 500);

  hls.attachMedia(video);
  R.t0 = performance.now();
  hls.loadSource(url);
})();
</script></body></html>`;

// ---------------------------------------------------------------------------------------------
const server = http.createServer((req, res) => {
  const p = new URL(req.url, 'http://x').pathname;
  if (p === '/hls.min.js') {
    res.writeHead(200, { 'content-type': 'application/javascript', 'cache-control': 'no-store' });
    res.end(hlsJs);
  } else if (p === '/' || p === '/index.html') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(pageHtml);
  } else {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

let browser = null;
let tab = null;
let lastReport = null;
const pageErrors = [];
const consoleErrors = [];
const http4xx = { responses: 0, non2xx: 0, non2xxSamples: [], failed: 0, failedSamples: [] };

function quantile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}
const r3 = (x) => (x === null || x === undefined ? null : Number(x.toFixed(3)));

function summarize(R, extra = {}) {
  R = R || { samples: [], errors: [], fatal: [], errorCount: 0, stalls: 0, stallMs: 0 };
  const s = R.samples || [];
  const last = s.length ? s[s.length - 1] : null;
  const frames = last ? last.frames : 0;
  // "advancing": more frames decoded at the end than ~5 s before the end, and than at the start.
  const endT = last ? last.t : 0;
  const ref = [...s].reverse().find((x) => x.t <= endT - 5000) || s[0];
  const framesAdvancing = !!(last && ref && last !== ref && last.frames > ref.frames && frames > 0);
  const lat = s.filter((x) => x.started && x.latency !== null && x.latency > 0).map((x) => x.latency)
    .sort((a, b) => a - b);
  let median = null;
  if (lat.length) {
    const m = lat.length >> 1;
    median = lat.length % 2 ? lat[m] : (lat[m - 1] + lat[m]) / 2;
  }
  const allErrors = [...(R.errors || []), ...pageErrors];
  return {
    frames,
    framesAdvancing,
    stalls: R.stalls || 0,
    fatalErrors: (R.fatal || []).length,
    errors: allErrors.slice(0, 30),
    latency: { median: r3(median), p90: r3(quantile(lat, 0.9)), max: r3(lat.length ? lat[lat.length - 1] : null), samples: lat.length },
    startupMs: R.started ?? null,
    levels: R.levels || 0,
    audioTracks: R.audioTracks || 0,
    // ---- diagnostics (not part of the pass/fail rule) ----
    seconds,
    minFrames,
    errorCount: (R.errorCount || 0) + pageErrors.length,
    pageErrors: pageErrors.length,
    errorsByDetails: R.errorsByDetails || {},
    stallMs: (R.stallMs || 0) + (R.stallOngoingMs || 0),
    stallEvents: R.stallEvents || [],
    waitingEvents: R.waitingEvents || 0,
    droppedFrames: last ? last.dropped : 0,
    currentTime: last ? last.ct : 0,
    audioDecodedBytes: last ? last.audioBytes : 0,
    videoDecodedBytes: last ? last.videoBytes : 0,
    targetLatency: last ? last.targetLatency : null,
    fragsLoaded: R.fragsLoaded || {},
    partsLoaded: R.partsLoaded || {},
    appended: R.appended || {},
    playlists: { video: R.video || null, audio: R.audio || null },
    levelInfo: R.levelInfo || [],
    playError: R.playError || null,
    http: http4xx,
    consoleErrors: consoleErrors.slice(0, 10),
    hlsVersion: R.hlsVersion || null,
    ...(process.env.HLSJS_PLAY_DEBUG ? { samplesAll: s } : {}),
    ...extra,
  };
}

function verdict(sum) {
  const reasons = [];
  if (sum.fatalErrors > 0) reasons.push(`${sum.fatalErrors} fatal error(s)`);
  if (sum.startupMs === null) reasons.push('playback never started');
  if (!sum.framesAdvancing) reasons.push('decoded frames not advancing at the end');
  if (sum.frames < minFrames) reasons.push(`${sum.frames} frames decoded < ${minFrames} (${MIN_FPS} fps × (${seconds} − 5) s)`);
  const maxStalls = Number(process.env.MAX_STALLS ?? 2);
  if (sum.stalls > maxStalls) reasons.push(`${sum.stalls} stalls > ${maxStalls} (MAX_STALLS)`);
  return reasons;
}

async function screenshot() {
  if (!tab) return;
  try {
    fs.mkdirSync(outDir, { recursive: true });
    const file = path.join(outDir, 'hlsjs-failure.png');
    await tab.screenshot({ path: file, timeout: 10000 });
    log(`screenshot saved to ${file}`);
  } catch (e) {
    log(`screenshot failed: ${e.message}`);
  }
}

// Hard bound on the whole script: launch (≤ 60 s) + playback + teardown.
const hardMs = (seconds + 100) * 1000;
const hard = setTimeout(() => {
  log(`hard timeout after ${hardMs / 1000} s`);
  console.log(JSON.stringify(summarize(lastReport, { hardTimeout: true })));
  // playwright's process 'exit' handler kills Chromium and removes its temporary profile.
  process.exit(1);
}, hardMs);
hard.unref();

let code = 1;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 60000,
    args: [
      '--no-sandbox',
      '--autoplay-policy=no-user-gesture-required',
      '--mute-audio',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  tab = await context.newPage();
  tab.on('pageerror', (e) => {
    pageErrors.push({ type: 'page', details: 'uncaught exception', fatal: false, message: String(e.message || e) });
  });
  tab.on('console', (m) => {
    if (m.type() === 'error' && consoleErrors.length < 50) consoleErrors.push(m.text().slice(0, 300));
  });
  tab.on('response', (resp) => {
    if (resp.url().startsWith(pageUrl)) return;
    http4xx.responses++;
    if (resp.status() < 200 || resp.status() > 299) {
      http4xx.non2xx++;
      if (http4xx.non2xxSamples.length < 10) http4xx.non2xxSamples.push(`${resp.status()} ${resp.url()}`);
    }
  });
  tab.on('requestfailed', (req) => {
    if (req.url().startsWith(pageUrl)) return;
    http4xx.failed++;
    if (http4xx.failedSamples.length < 10) http4xx.failedSamples.push(`${req.failure()?.errorText} ${req.url()}`);
  });
  log(`chromium ${browser.version()}, playing ${url} for ${seconds} s`);
  await tab.goto(pageUrl, { timeout: 20000 });

  const until = Date.now() + seconds * 1000;
  let nextProgress = Date.now() + 5000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, until - Date.now()))));
    lastReport = await tab.evaluate(() => window.R);
    if (lastReport.fatal.length) {
      log(`fatal error, stopping early: ${JSON.stringify(lastReport.fatal[0])}`);
      break;
    }
    if (Date.now() >= nextProgress) {
      nextProgress += 5000;
      const s = lastReport.samples[lastReport.samples.length - 1];
      if (s) {
        log(`t=${(s.t / 1000).toFixed(1)}s currentTime=${s.ct} frames=${s.frames} latency=${s.latency} ` +
          `ahead=${s.ahead} rate=${s.rate} stalls=${lastReport.stalls} errors=${lastReport.errorCount}`);
      }
    }
  }
  lastReport = await tab.evaluate(() => window.R);
  const sum = summarize(lastReport);
  const reasons = verdict(sum);
  console.log(JSON.stringify(sum));
  if (reasons.length) {
    log(`FAILED: ${reasons.join('; ')}`);
    await screenshot();
    code = 1;
  } else {
    code = 0;
  }
} catch (e) {
  log(`error: ${e && e.stack ? e.stack : e}`);
  console.log(JSON.stringify(summarize(lastReport, { harnessError: String(e && e.message ? e.message : e) })));
  await screenshot();
  code = 1;
} finally {
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 10000))]);
  server.close();
  clearTimeout(hard);
}
process.exit(code);
