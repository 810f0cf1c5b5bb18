// Low-latency live player: hls.js in lowLatencyMode (LL-HLS parts, blocking
// playlist reload, preload hints), started at PART-HOLD-BACK behind the live
// edge. Shows the latency hls.js measures (s behind the live edge), the
// buffer ahead and the rendition; "Go live" jumps back to the live edge
// after DVR seeking. ?id=<channel id>.
import Hls from 'hls.js';
import './style.css';

const $ = (id) => document.getElementById(id);
const id = new URLSearchParams(location.search).get('id') || '';
const video = $('video');
const samples = []; // latency samples, s (after the first 2 s of playback)
const WARMUP_MS = 2000; // hls.js seeks to its live sync point meanwhile
let playingSince = 0;

function showError(msg) {
  $('error').textContent = msg || '';
  $('error').hidden = !msg;
}

async function title() {
  try {
    const res = await fetch(`/api/v1/videos/${encodeURIComponent(id)}`);
    if (!res.ok) return;
    const v = await res.json();
    $('title').textContent = v.title || id;
    $('live-badge').hidden = v.status !== 'live';
  } catch {
    /* the title is cosmetic */
  }
}

function start() {
  if (!/^[0-9A-Z]{26}$/.test(id)) {
    showError('No channel: open this page as live.html?id=<channel id>.');
    return;
  }
  const src = `/hls/${id}/master.m3u8`;
  if (!Hls.isSupported()) {
    // Safari plays LL-HLS natively.
    video.src = src;
    video.play().catch(() => {});
    return;
  }
  // Catch up to the target latency (PART-HOLD-BACK) by playing up to 1.5×;
  // each rebuffer raises the target by a quarter second (about a part),
  // not hls.js's default full second, which alone would put a stream with
  // 0.2 s parts at over 1.6 s behind live after one startup stall.
  const hls = new Hls({
    lowLatencyMode: true,
    backBufferLength: 90,
    maxLiveSyncPlaybackRate: 1.5,
    liveSyncOnStallIncrease: 0.25,
  });
  window.__hls = hls;
  window.__latency = samples;
  hls.on(Hls.Events.ERROR, (_, data) => {
    console.warn(`hls.js ${data.fatal ? 'fatal' : 'recoverable'} error: ${data.type} ${data.details}`);
    if (data.fatal) showError(`Playback error: ${data.type} ${data.details}`);
  });
  hls.on(Hls.Events.FRAG_BUFFERED, (_, data) => {
    window.__buffered = (window.__buffered || 0) + 1;
    if (window.__buffered === 1) console.log(`first fragment buffered: ${data.frag.url}`);
  });
  hls.loadSource(src);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
  video.addEventListener('playing', () => {
    if (!playingSince) playingSince = performance.now();
  });
  // Rebuffers after the start (hls.js raises its target latency by
  // liveSyncOnStallIncrease at each).
  window.__stalls = 0;
  video.addEventListener('waiting', () => {
    if (playingSince) window.__stalls += 1;
  });
  setInterval(() => {
    const latency = hls.latency;
    const level = hls.levels[hls.currentLevel];
    const ahead = video.buffered.length ? video.buffered.end(video.buffered.length - 1) - video.currentTime : 0;
    const warm = playingSince && performance.now() - playingSince > WARMUP_MS;
    if (warm && Number.isFinite(latency) && latency > 0 && !video.paused) samples.push(latency);
    window.__targetLatency = hls.targetLatency;
    $('stats').textContent = [
      Number.isFinite(latency) ? `latency ${latency.toFixed(2)} s` : 'latency –',
      Number.isFinite(hls.targetLatency) ? `target ${hls.targetLatency.toFixed(2)} s` : '',
      `buffer ${ahead.toFixed(2)} s`,
      level ? `${level.height}p` : '',
    ]
      .filter(Boolean)
      .join(' · ');
  }, 500);
  $('go-live').addEventListener('click', () => {
    if (Number.isFinite(hls.liveSyncPosition)) video.currentTime = hls.liveSyncPosition;
    video.play().catch(() => {});
  });
}

title();
start();
