// Tiny loopback static file server with CORS, used only by selftest.sh to serve ffmpeg's own
// HLS output to hlsjs-play.mjs (a stream no ferrocast code touched).
// Usage: node static-server.mjs <dir> <port-file>   (listens on 127.0.0.1:<ephemeral>, writes the
// port to <port-file>, serves until killed).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const [dir, portFile] = process.argv.slice(2);
if (!dir || !portFile) {
  console.error('usage: node static-server.mjs <dir> <port-file>');
  process.exit(2);
}
const root = path.resolve(dir);
const types = { '.m3u8': 'application/vnd.apple.mpegurl', '.m4s': 'video/iso.segment', '.mp4': 'video/mp4', '.ts': 'video/mp2t' };
const server = http.createServer((req, res) => {
  const cors = { 'access-control-allow-origin': '*', 'cache-control': 'no-cache' };
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { ...cors, 'access-control-allow-headers': '*', 'access-control-allow-methods': 'GET, HEAD' });
    return res.end();
  }
  const file = path.join(root, path.normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)));
  if (!file.startsWith(root + path.sep)) {
    res.writeHead(403, cors);
    return res.end();
  }
  fs.readFile(file, (err, data) => {
    if (err) {
      res.writeHead(404, cors);
      return res.end();
    }
    res.writeHead(200, { ...cors, 'content-type': types[path.extname(file)] || 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
});
server.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(server.address().port)));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
