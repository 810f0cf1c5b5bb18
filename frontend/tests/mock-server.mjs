// Dev-only mock of the edge (+ a tiny ingest) for testing the page without the
// Rust services. No dependencies beyond Node.
//
//   tests/make-fixture.sh            # HLS ladder into /tmp/stream-fixture/hls
//   npm run build && node tests/mock-server.mjs
//
// Env: PORT (8080), INGEST_PORT (8081), HOST (127.0.0.1), PROC_MS (7000),
//      HLS_DIR (/tmp/stream-fixture/hls), DIST_DIR (../dist next to tests/).
// Every ready/processing fixture video serves the same HLS ladder. "bikes"
// starts out processing and is published progressively: its media playlists
// are EVENT playlists without ENDLIST, growing until it turns ready (~8 s).
import http from 'node:http';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 8080);
const INGEST_PORT = Number(process.env.INGEST_PORT || 8081);
const HLS_DIR = process.env.HLS_DIR || '/tmp/stream-fixture/hls';
const DIST_DIR = process.env.DIST_DIR || path.join(here, '..', 'dist');

if (!existsSync(path.join(HLS_DIR, 'master.m3u8'))) {
  console.error(`mock: no HLS fixture at ${HLS_DIR}; run tests/make-fixture.sh first`);
  process.exit(2);
}
if (!existsSync(path.join(DIST_DIR, 'index.html'))) {
  console.error(`mock: no ${DIST_DIR}/index.html; run npm run build first`);
  process.exit(2);
}

const RENDITIONS = [
  { name: '720p', width: 1280, height: 720, bandwidth_bps: 3440800 },
  { name: '480p', width: 854, height: 480, bandwidth_bps: 1460800 },
  { name: '360p', width: 640, height: 360, bandwidth_bps: 800800 },
];
// Clip length: the sum of the 720p playlist's segment durations.
const DURATION =
  Math.round(
    readFileSync(path.join(HLS_DIR, '720p', 'index.m3u8'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('#EXTINF:'))
      .reduce((a, l) => a + parseFloat(l.slice(8)), 0) * 100,
  ) / 100;
const PROC_MS = Number(process.env.PROC_MS || 7000); // how long "bikes" transcodes
const t0 = Date.now();
let seq = 0;
const newId = () => `01JMOCK${String(Date.now()).slice(-8)}${String(seq++).padStart(11, '0')}`;

// Each video: fixed fields, plus a timeline: queued until startAt, processing
// for procMs, then ready (or failed if failWith is set).
const videos = [];
function addVideo({ title, startAt = 0, procMs = 0, failWith = null, id = newId() }) {
  videos.unshift({ id, title, startAt, procMs, failWith, created: new Date().toISOString() });
  return id;
}
addVideo({ title: 'carphone_pristine', id: '01JMOCKCARPHONE000000000000' });
addVideo({ title: 'broken_upload', id: '01JMOCKBROKEN00000000000000', failWith: 'ffprobe: no video stream found' });
addVideo({ title: 'bikes', id: '01JMOCKBIKES000000000000000', startAt: t0 + 1000, procMs: PROC_MS });
addVideo({ title: 'bigbuckbunny', id: '01JMOCKBIGBUCKBUNNY00000000' });

function progressOf(v, now = Date.now()) {
  if (v.failWith) return { status: 'failed', p: 0 };
  if (now < v.startAt) return { status: 'queued', p: 0 };
  if (now >= v.startAt + v.procMs) return { status: 'ready', p: 100 };
  return { status: 'processing', p: (100 * (now - v.startAt)) / v.procMs };
}

function view(v) {
  const { status, p } = progressOf(v);
  const out = {
    id: v.id,
    title: v.title,
    status,
    progress_percent: Math.round(p * 10) / 10,
    duration_s: status === 'queued' || status === 'failed' ? 0 : DURATION,
    renditions: RENDITIONS.map((r) => ({ ...r, ready: status === 'ready' })),
    created_at: v.created,
  };
  // Playable once the first segments exist (progressive publish).
  if (status === 'ready' || (status === 'processing' && p >= 20)) out.playback_url = `/hls/${v.id}/master.m3u8`;
  if (status === 'failed') {
    out.error = v.failWith;
    out.renditions = [];
  }
  return out;
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.m4s': 'video/iso.segment',
  '.mp4': 'video/mp4',
};

function json(res, code, body, extra = {}) {
  res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra });
  res.end(JSON.stringify(body));
}

function sendFile(res, file, method) {
  let st;
  try {
    st = statSync(file);
    if (!st.isFile()) throw new Error('not a file');
  } catch {
    return json(res, 404, { error: 'not found' });
  }
  res.writeHead(200, {
    'content-type': MIME[path.extname(file)] || 'application/octet-stream',
    'content-length': st.size,
    'cache-control': file.endsWith('.m3u8') ? 'no-cache' : 'public, max-age=60',
  });
  if (method === 'HEAD') return res.end();
  createReadStream(file).pipe(res);
}

// A media playlist of a processing video: EVENT, only the segments "done" so
// far, no ENDLIST.
function eventPlaylist(text, p) {
  const lines = text.split('\n');
  const total = lines.filter((l) => l.startsWith('#EXTINF')).length;
  const keep = Math.max(1, Math.floor((p / 100) * total));
  const out = [];
  let n = 0;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.startsWith('#EXT-X-PLAYLIST-TYPE')) out.push('#EXT-X-PLAYLIST-TYPE:EVENT');
    else if (l.startsWith('#EXT-X-ENDLIST')) continue;
    else if (l.startsWith('#EXTINF')) {
      if (n++ >= keep) break;
      out.push(l, lines[++i]);
    } else out.push(l);
  }
  return out.join('\n') + '\n';
}

function serveHls(req, res, id, rest) {
  const v = videos.find((x) => x.id === id);
  const vv = v && view(v);
  if (!vv || !vv.playback_url) return json(res, 404, { error: 'not found' });
  const file = path.join(HLS_DIR, path.normalize('/' + rest));
  const { status, p } = progressOf(v);
  if (status === 'processing' && file.endsWith('.m3u8') && !file.endsWith('master.m3u8')) {
    let text;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return json(res, 404, { error: 'not found' });
    }
    res.writeHead(200, { 'content-type': MIME['.m3u8'], 'cache-control': 'no-cache' });
    return res.end(eventPlaylist(text, p));
  }
  sendFile(res, file, req.method);
}

const edge = http.createServer((req, res) => {
  const url = new URL(req.url, `http://${req.headers.host || 'localhost'}`);
  const p = url.pathname;
  let m;
  if (p === '/api/v1/config') {
    return json(res, 200, { ingest_url: `http://${HOST}:${INGEST_PORT}` });
  }
  if (p === '/api/v1/videos') {
    const size = Math.max(1, Math.min(100, Number(url.searchParams.get('page_size')) || 20));
    const start = Number(url.searchParams.get('page_token') || 0) || 0;
    const page = videos.slice(start, start + size).map(view);
    const next = start + size < videos.length ? String(start + size) : '';
    return json(res, 200, { videos: page, next_page_token: next });
  }
  if ((m = p.match(/^\/api\/v1\/videos\/([^/]+)$/))) {
    const v = videos.find((x) => x.id === decodeURIComponent(m[1]));
    return v ? json(res, 200, view(v)) : json(res, 404, { error: `video ${m[1]} not found` });
  }
  if (p.startsWith('/api/')) return json(res, 404, { error: 'no such endpoint' });
  if ((m = p.match(/^\/hls\/([^/]+)\/(.+)$/))) return serveHls(req, res, m[1], m[2]);
  const rel = p === '/' ? 'index.html' : p.slice(1);
  sendFile(res, path.join(DIST_DIR, path.normalize('/' + rel)), req.method);
});

// Ingest: POST /v1/videos (multipart with `file` and optional `title`, or JSON
// {url, title}); CORS for any origin. The upload is drained and discarded; the
// new video goes queued -> processing -> ready over a few seconds.
const ingest = http.createServer((req, res) => {
  const cors = {
    'access-control-allow-origin': req.headers.origin || '*',
    'access-control-allow-methods': 'POST, OPTIONS',
    'access-control-allow-headers': 'content-type',
    vary: 'origin',
  };
  if (req.method === 'OPTIONS') {
    res.writeHead(204, cors);
    return res.end();
  }
  if (req.method !== 'POST' || new URL(req.url, 'http://x').pathname !== '/v1/videos') {
    return json(res, 404, { error: 'not found' }, cors);
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size < 1 << 20) chunks.push(c); // keep the head only; enough for the title field
  });
  req.on('end', () => {
    const head = Buffer.concat(chunks).toString('latin1');
    let title = '';
    if ((req.headers['content-type'] || '').startsWith('application/json')) {
      try {
        const b = JSON.parse(head);
        if (!b.url) return json(res, 400, { error: 'url is required' }, cors);
        title = b.title || path.basename(new URL(b.url).pathname);
      } catch {
        return json(res, 400, { error: 'invalid JSON' }, cors);
      }
    } else {
      if (!/name="file"/.test(head)) return json(res, 400, { error: 'missing file field' }, cors);
      const t = head.match(/name="title"\r\n\r\n([^\r]*)\r\n/);
      const f = head.match(/name="file"; filename="([^"]*)"/);
      title = (t && t[1]) || (f && f[1].replace(/\.[^.]*$/, '')) || 'upload';
    }
    const id = addVideo({ title, startAt: Date.now() + 1500, procMs: 6000 });
    json(res, 202, { id, status: 'queued' }, cors);
  });
});

edge.listen(PORT, HOST, () => console.log(`mock edge:   http://${HOST}:${PORT}/`));
ingest.listen(INGEST_PORT, HOST, () => console.log(`mock ingest: http://${HOST}:${INGEST_PORT}/v1/videos`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
