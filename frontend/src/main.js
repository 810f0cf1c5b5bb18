// stream web front end: video list (polled while transcoding), video.js
// player with a quality menu, and an upload form posting to the ingest service.
import videojs from 'video.js';
import 'video.js/dist/video-js.css';
// videojs-contrib-quality-levels: video.js 8 bundles and registers it (the
// exact version pinned in package.json); player.qualityLevels() comes from it.
import { addQualityMenu } from './quality-menu.js';
import { createMarkers } from './markers.js';
import './style.css';

const POLL_MS = 1500; // while anything is queued/processing
const RETRY_MS = 5000; // after an API error
const PAGE_SIZE = 100;
const MAX_PAGES = 50;
const STALL_MS = 12000; // playing but no progress this long: tell the user

const state = {
  videos: [],
  byId: new Map(),
  items: new Map(), // id -> <li>
  selectedId: null, // chosen in the list
  loadedId: null, // source currently in the player
  ingestUrl: null,
  markerUrl: null,
  markers: null, // the markers plugin, once the player exists
  pending: new Set(), // uploaded ids not yet seen in the list
  pollTimer: null,
  refreshing: false,
  refreshAgain: false,
};

const $ = (id) => document.getElementById(id);
const el = (tag, className, text) => {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = text;
  return e;
};

// ---------- API ----------

async function api(path, init) {
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new Error(`${path}: network error (${e.message})`);
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    throw new Error(`${path}: ${(body && body.error) || `HTTP ${res.status} ${res.statusText}`}`);
  }
  if (body === null || typeof body !== 'object') throw new Error(`${path}: invalid JSON response`);
  return body;
}

async function listAllVideos() {
  const all = [];
  let token = '';
  for (let page = 0; page < MAX_PAGES; page++) {
    const q = new URLSearchParams({ page_size: String(PAGE_SIZE) });
    if (token) q.set('page_token', token);
    const body = await api(`/api/v1/videos?${q}`);
    all.push(...(body.videos || []));
    token = body.next_page_token || '';
    if (!token) break;
  }
  return all;
}

// ---------- formatting ----------

const isBusy = (v) => v.status === 'queued' || v.status === 'processing';
const isLive = (v) => v.status === 'live';

function formatDuration(s) {
  if (!s || !Number.isFinite(s)) return '';
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

function statusText(v) {
  if (v.status === 'processing') return `processing ${Math.floor(v.progress_percent || 0)}%`;
  if (isLive(v)) return 'LIVE';
  return v.status || 'unknown';
}

function metaParts(v) {
  const parts = [];
  const d = formatDuration(v.duration_s);
  if (d) parts.push(d);
  const r = v.renditions || [];
  if (r.length) {
    const ready = r.filter((x) => x.ready).length;
    const noun = r.length === 1 ? 'rendition' : 'renditions';
    // A channel's renditions are all playing while live (ready = complete).
    parts.push(ready === r.length || isLive(v) ? `${r.length} ${noun}` : `${ready}/${r.length} ${noun}`);
  }
  return parts;
}

// ---------- list ----------

function renderItem(li, v) {
  li.dataset.status = v.status;
  li.dataset.title = v.title;
  li.className = `video-item status-${v.status}${v.id === state.selectedId ? ' selected' : ''}`;
  li.replaceChildren();

  const top = el('div', 'row');
  top.append(el('span', 'title', v.title || v.id));
  top.append(el('span', `badge badge-${v.status}`, statusText(v)));
  li.append(top);

  const meta = metaParts(v);
  if (meta.length) li.append(el('div', 'meta', meta.join(' · ')));

  if (isBusy(v)) {
    const bar = el('div', 'progress');
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-valuenow', String(Math.floor(v.progress_percent || 0)));
    const fill = el('div', 'fill');
    fill.style.width = `${Math.max(0, Math.min(100, v.progress_percent || 0))}%`;
    bar.append(fill);
    li.append(bar);
  }
  if (v.status === 'failed') li.append(el('div', 'reason', v.error || 'transcoding failed'));
}

function renderList() {
  const ul = $('video-list');
  const seen = new Set();
  state.videos.forEach((v, i) => {
    seen.add(v.id);
    let li = state.items.get(v.id);
    if (!li) {
      li = el('li');
      li.dataset.testid = 'video-item';
      li.dataset.videoId = v.id;
      li.tabIndex = 0;
      li.setAttribute('role', 'button');
      li.addEventListener('click', () => selectVideo(v.id, true));
      li.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          selectVideo(v.id, true);
        }
      });
      state.items.set(v.id, li);
    }
    renderItem(li, v);
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
  });
  for (const [id, li] of state.items) {
    if (!seen.has(id)) {
      li.remove();
      state.items.delete(id);
    }
  }
  $('video-count').textContent = state.videos.length ? String(state.videos.length) : '';
  $('list-empty').hidden = state.videos.length > 0;
}

function showError(id, message) {
  const e = $(id);
  e.textContent = message || '';
  e.hidden = !message;
}

// Fetch the list; poll again while anything is still transcoding.
async function refresh() {
  if (state.refreshing) {
    state.refreshAgain = true;
    return;
  }
  state.refreshing = true;
  clearTimeout(state.pollTimer);
  let next = null;
  try {
    const videos = await listAllVideos();
    state.videos = videos;
    state.byId = new Map(videos.map((v) => [v.id, v]));
    for (const id of state.pending) if (state.byId.has(id)) state.pending.delete(id);
    showError('list-error', '');
    renderList();
    updateSelected();
    // Poll while anything changes by itself: transcodes, and channels (a
    // channel that stops becomes a recording).
    if (videos.some((v) => isBusy(v) || isLive(v)) || state.pending.size) next = POLL_MS;
  } catch (e) {
    showError('list-error', `Could not load videos — ${e.message}`);
    next = RETRY_MS;
  } finally {
    state.refreshing = false;
  }
  if (state.refreshAgain) {
    state.refreshAgain = false;
    next = 0;
  }
  if (next !== null) state.pollTimer = setTimeout(refresh, next);
}

// ---------- player ----------

let player = null;

function ensurePlayer() {
  if (player) return player;
  $('placeholder').remove();
  const video = el('video', 'video-js vjs-big-play-centered');
  video.setAttribute('playsinline', '');
  video.dataset.testid = 'player';
  $('stage').append(video);
  player = videojs(video, {
    controls: true,
    fill: true,
    preload: 'auto',
    // Live channels: a DVR seek bar and a "live" button that jumps back to
    // the live edge (video.js liveTracker).
    liveui: true,
    html5: {
      // Use VHS (MSE) everywhere, also where the browser could play HLS natively.
      vhs: { overrideNative: true },
      nativeAudioTracks: false,
      nativeVideoTracks: false,
    },
  });
  addQualityMenu(player, { labelFor: rungName });
  player.on('error', () => {
    const err = player.error();
    if (err) showError('player-error', `Playback error${err.code ? ` (code ${err.code})` : ''}: ${err.message || 'unknown'}`);
  });
  watchStalls(player);
  state.markers = createMarkers(player, {
    markerUrl: () => state.markerUrl,
    listEl: $('marker-list'),
    formEl: $('marker-form'),
    onError: (m) => showError('player-error', `Markers unavailable: ${m}`),
  });
  window.__player = player;
  window.__markers = state.markers;
  return player;
}

// VHS retries failing playlist/segment requests without ever raising an
// error, so a broken stream would spin forever: say so after STALL_MS.
function watchStalls(p) {
  let timer = null;
  let shown = false;
  const clear = () => {
    clearTimeout(timer);
    if (shown) showError('player-error', '');
    shown = false;
  };
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (p.paused() || p.error()) return;
      const v = state.byId.get(state.loadedId);
      shown = true;
      showError(
        'player-error',
        v && isBusy(v)
          ? 'Waiting for more of this video to be transcoded…'
          : 'Playback is stuck: the stream is not loading (media requests failing?).',
      );
    }, STALL_MS);
  };
  p.on(['loadstart', 'waiting', 'play'], arm);
  p.on(['timeupdate', 'pause', 'ended', 'error'], () => {
    if (p.error()) return clearTimeout(timer);
    clear();
  });
}

// Name a quality level after the platform's rendition with its resolution.
function rungName(level) {
  const v = state.byId.get(state.loadedId);
  const rs = (v && v.renditions) || [];
  const r =
    rs.find((x) => x.width === level.width && x.height === level.height) ||
    rs.find((x) => x.height === level.height);
  return r ? r.name : null;
}

function loadSource(v) {
  const p = ensurePlayer();
  showError('player-error', '');
  p.error(null);
  state.loadedId = v.id;
  p.src({ src: v.playback_url, type: 'application/x-mpegURL' });
  state.markers.load(v.id);
  // Progressive publish: while transcoding, the media playlists are EVENT
  // playlists without ENDLIST, which VHS treats as live and joins near the
  // live edge. Start such videos from the beginning instead.
  const id = v.id;
  p.one('loadedmetadata', () => {
    // Channels start at the live edge (VHS joins there); go back with the
    // seek bar (DVR window), return with the LIVE button.
    if (state.loadedId !== id || Number.isFinite(p.duration()) || isLive(v)) return;
    const seekable = p.seekable();
    p.currentTime(seekable.length ? seekable.start(0) : 0);
  });
  const played = p.play();
  if (played && played.catch) played.catch(() => {}); // autoplay may be refused; controls remain
}

function updateSelected() {
  const v = state.byId.get(state.selectedId);
  for (const [id, li] of state.items) li.classList.toggle('selected', id === state.selectedId);
  if (!v) return;
  $('now-playing').hidden = false;
  $('np-title').textContent = v.title || v.id;
  $('np-meta').textContent = [statusText(v), ...metaParts(v)].join(' · ');
  const low = $('np-low-latency');
  low.hidden = !isLive(v);
  low.href = `./live.html?id=${encodeURIComponent(v.id)}`;
  if (v.playback_url) {
    if (state.loadedId !== v.id) loadSource(v);
    return;
  }
  // Not playable (yet): stop whatever else was playing.
  if (player && state.loadedId) {
    player.reset();
    state.loadedId = null;
  }
  if (v.status === 'failed') {
    showError('player-error', `This video failed to transcode: ${v.error || 'unknown reason'}`);
  } else {
    showError('player-error', '');
    $('np-meta').textContent += ' · waiting for the first segments…';
  }
}

function selectVideo(id, userAction) {
  state.selectedId = id;
  history.replaceState(null, '', `#${encodeURIComponent(id)}`);
  if (userAction && state.loadedId === id && player) {
    if (player.paused()) player.play()?.catch(() => {});
    return;
  }
  updateSelected();
}

// ---------- upload ----------

function setUploadStatus(text, kind) {
  const s = document.querySelector('[data-testid="upload-status"]');
  s.textContent = text;
  s.className = `upload-status ${kind || ''}`;
}

function postIngest(body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${state.ingestUrl.replace(/\/+$/, '')}/v1/videos`);
    xhr.responseType = 'text';
    if (!(body instanceof FormData)) xhr.setRequestHeader('Content-Type', 'application/json');
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress((100 * e.loaded) / e.total);
    xhr.onerror = () => reject(new Error('network error (is the ingest service up and sending CORS headers?)'));
    xhr.onload = () => {
      let json = null;
      try {
        json = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300 && json && json.id) resolve(json);
      else reject(new Error((json && json.error) || `HTTP ${xhr.status}`));
    };
    xhr.send(body instanceof FormData ? body : JSON.stringify(body));
  });
}

function setupUpload() {
  const form = $('upload-form');
  const progress = form.querySelector('.upload-progress');
  const button = form.querySelector('button[type=submit]');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!state.ingestUrl) {
      setUploadStatus('Upload unavailable: no ingest URL (GET /api/v1/config failed).', 'error');
      return;
    }
    const file = form.elements.file.files[0];
    const url = form.elements.url.value.trim();
    const title = form.elements.title.value.trim();
    let body;
    if (file) {
      body = new FormData();
      if (title) body.append('title', title);
      body.append('file', file);
    } else if (url) {
      body = { url, title: title || undefined };
    } else {
      setUploadStatus('Choose a file or enter a URL.', 'error');
      return;
    }
    button.disabled = true;
    progress.hidden = !file;
    progress.value = 0;
    setUploadStatus(file ? `Uploading ${file.name}…` : 'Requesting import…');
    try {
      const res = await postIngest(body, (pct) => (progress.value = pct));
      setUploadStatus(`Accepted: ${res.id} (${res.status || 'queued'})`, 'ok');
      form.reset();
      state.pending.add(res.id);
      refresh();
    } catch (err) {
      setUploadStatus(`Upload failed: ${err.message}`, 'error');
    } finally {
      button.disabled = false;
      progress.hidden = true;
    }
  });
}

// ---------- start ----------

async function loadConfig() {
  try {
    const cfg = await api('/api/v1/config');
    if (!cfg.ingest_url) throw new Error('no ingest_url in config');
    state.ingestUrl = cfg.ingest_url;
    state.markerUrl = cfg.marker_url || null;
  } catch (e) {
    setUploadStatus(`Upload unavailable: ${e.message}`, 'error');
  }
}

setupUpload();
const configLoaded = loadConfig();
const fromHash = decodeURIComponent(location.hash.slice(1));
if (fromHash) state.selectedId = fromHash;
// The marker service URL must be known before a video loads.
configLoaded.finally(refresh);
