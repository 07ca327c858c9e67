// Publishes to a WHIP endpoint from Debian's headless Chromium: getUserMedia on Chromium's fake
// camera and microphone (a test pattern and a beep), one RTCPeerConnection with send-only H.264
// and Opus, the offer POSTed with fetch() once ICE gathering completes (no trickle), the answer
// applied. The WebRTC stack is the browser's own. Prints progress on stderr and one JSON line on
// stdout at the end: {connected, state, codecs, framesSent, packetsSent, location, deleted}.
// Exit 0 if the connection reached "connected", H.264 was negotiated and frames went out.
//
// Usage: node whip-publish.mjs <whip url> <seconds> [bearer token]
// Env:   CHROMIUM   browser binary (default /usr/bin/chromium)
import http from 'node:http';
import { chromium } from 'playwright-core';

const [whipUrl, secondsArg, token] = process.argv.slice(2);
const seconds = Number(secondsArg);
if (!whipUrl || !/^https?:\/\//.test(whipUrl) || !Number.isFinite(seconds) || seconds <= 0) {
  console.error('usage: node whip-publish.mjs <whip url> <seconds> [token]');
  process.exit(2);
}
const log = (msg) => console.error(`whip-publish: ${msg}`);

// The page is served from another origin than the WHIP endpoint: CORS must work.
const pageHtml = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body><video id="v" muted autoplay playsinline></video><script>
window.R = { state: 'new', codecs: [], framesSent: 0, packetsSent: 0, error: null, location: null };
window.publish = async (url, token) => {
  const R = window.R;
  try {
    const media = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 360, frameRate: 30 }, audio: true });
    document.getElementById('v').srcObject = media;
    const pc = new RTCPeerConnection();
    window.pc = pc;
    pc.onconnectionstatechange = () => { R.state = pc.connectionState; };
    for (const track of media.getTracks()) {
      const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
      if (track.kind === 'video') {
        const h264 = RTCRtpSender.getCapabilities('video').codecs
          .filter((c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
        if (!h264.length) throw new Error('this browser has no H.264 encoder');
        t.setCodecPreferences(h264);
      }
    }
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
    });
    const headers = { 'content-type': 'application/sdp' };
    if (token) headers.authorization = 'Bearer ' + token;
    const resp = await fetch(url, { method: 'POST', headers, body: pc.localDescription.sdp });
    if (resp.status !== 201) throw new Error('WHIP POST answered ' + resp.status + ': ' + await resp.text());
    R.location = new URL(resp.headers.get('location'), url).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
    setInterval(async () => {
      const stats = await pc.getStats();
      const codecs = [];
      stats.forEach((s) => {
        if (s.type === 'codec') codecs.push(s.mimeType);
        if (s.type === 'outbound-rtp' && s.kind === 'video') {
          R.framesSent = s.framesSent || 0;
          R.packetsSent = s.packetsSent || 0;
          R.keyFramesEncoded = s.keyFramesEncoded || 0;
          R.pliCount = s.pliCount || 0;
        }
      });
      R.codecs = [...new Set(codecs)];
    }, 500);
  } catch (e) {
    R.error = String(e);
  }
};
window.unpublish = async () => {
  if (!window.R.location) return 0;
  const r = await fetch(window.R.location, { method: 'DELETE' });
  window.pc.close();
  return r.status;
};
</script></body></html>`;

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(pageHtml);
});
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});

let browser = null;
let result = { connected: false };
let code = 1;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection',
      '--no-sandbox',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const tab = await browser.newPage();
  tab.on('console', (m) => m.type() === 'error' && log(`console: ${m.text()}`));
  await tab.goto(`http://127.0.0.1:${server.address().port}/`);
  await tab.evaluate(([u, t]) => window.publish(u, t), [whipUrl, token || '']);
  const t0 = Date.now();
  let connected = false;
  while (Date.now() - t0 < seconds * 1000) {
    const R = await tab.evaluate(() => window.R);
    if (R.error) throw new Error(R.error);
    if (R.state === 'connected' && !connected) {
      connected = true;
      log(`connected after ${Date.now() - t0} ms`);
    }
    if (R.state === 'failed' || R.state === 'closed') throw new Error(`connection ${R.state}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  const R = await tab.evaluate(() => window.R);
  const deleted = await tab.evaluate(() => window.unpublish());
  result = { ...R, connected, deleted };
  code = connected && R.framesSent > 0 && R.codecs.includes('video/H264') ? 0 : 1;
} catch (e) {
  result.error = String(e);
  log(`error: ${e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  server.close();
}
console.log(JSON.stringify(result));
process.exit(code);
