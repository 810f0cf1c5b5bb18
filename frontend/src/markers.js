// Timeline markers for video.js: our own small plugin (videojs-markers is
// unmaintained). Draws markers on the progress bar (with tooltips), keeps a
// list that seeks on click, receives changes live over Server-Sent Events
// (EventSource, no polling) and adds a marker at the playhead.
//
// Clocks: a marker's media_time is seconds on the video's presentation
// timeline. Its program date-time is anchor + media_time, where the anchor is
// the video id's ULID timestamp (the same instant the edge writes as
// EXT-X-PROGRAM-DATE-TIME of media time 0, see stream-clock). The player's
// time is mapped through the PDT of the segments VHS has loaded
// (segment.dateTimeObject and segment.start) — never sequence × target
// duration. Before any playlist is loaded, player time = media time (VOD).

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

// Milliseconds since the epoch encoded in a ULID's first 10 characters.
export function ulidTimeMs(id) {
  let ms = 0;
  for (const c of String(id).slice(0, 10).toUpperCase()) {
    const v = CROCKFORD.indexOf(c);
    if (v < 0) return NaN;
    ms = ms * 32 + v;
  }
  return ms;
}

// Segments of the media playlist VHS is playing, each with its player-time
// start and PDT (ms). Empty when unknown.
function timedSegments(player) {
  let media;
  try {
    const vhs = player.tech({ IWillNotUseThisInPlugins: true })?.vhs;
    media = vhs?.playlists?.media();
  } catch {
    return [];
  }
  const out = [];
  let cumulative = 0;
  for (const s of media?.segments || []) {
    const start = typeof s.start === 'number' ? s.start : cumulative;
    const pdt = s.dateTimeObject ? s.dateTimeObject.getTime() : NaN;
    if (Number.isFinite(pdt)) out.push({ start, duration: s.duration, pdt });
    cumulative = start + s.duration;
  }
  return out;
}

// Player time of a PDT (ms), through the segment that contains it.
export function playerTimeOfPdt(segments, pdt) {
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    const end = s.pdt + s.duration * 1000;
    if (pdt >= s.pdt && (pdt < end || i === segments.length - 1)) {
      return s.start + (pdt - s.pdt) / 1000;
    }
  }
  return null;
}

// PDT (ms) of a player time.
export function pdtOfPlayerTime(segments, t) {
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (t >= s.start && (t < s.start + s.duration || i === segments.length - 1)) {
      return s.pdt + (t - s.start) * 1000;
    }
  }
  return null;
}

const fmt = (s) => {
  const m = Math.floor(s / 60);
  const sec = s - m * 60;
  return `${m}:${sec.toFixed(2).padStart(5, '0')}`;
};

export function createMarkers(player, { markerUrl: urlOf, listEl, formEl, onError }) {
  // The marker service's base URL (from GET /api/v1/config), read when used.
  const url = () => (typeof urlOf === 'function' ? urlOf() : urlOf);
  const markers = new Map(); // id -> marker
  let videoId = null;
  let anchor = NaN;
  let source = null;
  const layer = document.createElement('div');
  layer.className = 'vjs-marker-layer';
  const tip = document.createElement('div');
  tip.className = 'vjs-marker-tip';
  tip.dataset.testid = 'marker-tooltip';
  tip.hidden = true;
  const seekBar = player.getChild('ControlBar')?.getChild('ProgressControl')?.getChild('SeekBar');
  (seekBar ? seekBar.el() : player.el()).append(layer, tip);

  const toPlayer = (mediaTime) => {
    const segs = timedSegments(player);
    if (!segs.length || !Number.isFinite(anchor)) return mediaTime;
    const t = playerTimeOfPdt(segs, anchor + mediaTime * 1000);
    return t == null ? mediaTime : t;
  };
  const toMedia = (playerTime) => {
    const segs = timedSegments(player);
    if (!segs.length || !Number.isFinite(anchor)) return playerTime;
    const pdt = pdtOfPlayerTime(segs, playerTime);
    return pdt == null ? playerTime : (pdt - anchor) / 1000;
  };

  function seekTo(m) {
    player.currentTime(toPlayer(m.media_time));
  }

  function sorted() {
    return [...markers.values()].sort((a, b) => a.media_time - b.media_time || (a.id < b.id ? -1 : 1));
  }

  function render() {
    const duration = player.duration();
    layer.replaceChildren();
    listEl.replaceChildren();
    for (const m of sorted()) {
      const text = `${m.label || m.kind} · ${fmt(m.media_time)}`;
      if (Number.isFinite(duration) && duration > 0) {
        const dot = document.createElement('div');
        dot.className = `vjs-marker vjs-marker-${m.kind}`;
        dot.dataset.testid = 'timeline-marker';
        dot.dataset.markerId = m.id;
        dot.dataset.label = m.label;
        dot.dataset.mediaTime = String(m.media_time);
        dot.setAttribute('aria-label', text);
        const pct = Math.max(0, Math.min(100, (toPlayer(m.media_time) / duration) * 100));
        dot.style.left = `${pct}%`;
        if (m.duration) dot.style.width = `${Math.min(100 - pct, (m.duration / duration) * 100)}%`;
        dot.addEventListener('mouseenter', () => {
          tip.textContent = text;
          tip.style.left = dot.style.left;
          tip.hidden = false;
        });
        dot.addEventListener('mouseleave', () => (tip.hidden = true));
        // The seek bar seeks on mousedown; a marker seeks to itself instead.
        for (const ev of ['mousedown', 'touchstart', 'pointerdown']) {
          dot.addEventListener(ev, (e) => e.stopPropagation());
        }
        dot.addEventListener('click', (e) => {
          e.stopPropagation();
          seekTo(m);
        });
        layer.append(dot);
      }
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = `marker-item marker-${m.kind}`;
      b.dataset.testid = 'marker-item';
      b.dataset.markerId = m.id;
      b.title = `Seek to ${fmt(m.media_time)}`;
      b.textContent = text;
      b.addEventListener('click', () => seekTo(m));
      li.append(b);
      listEl.append(li);
    }
  }

  async function load(id) {
    close();
    markers.clear();
    videoId = id;
    anchor = ulidTimeMs(id);
    render();
    const markerUrl = url();
    if (!markerUrl) return;
    const base = `${markerUrl}/v1/videos/${encodeURIComponent(id)}/markers`;
    try {
      const res = await fetch(base);
      if (!res.ok) throw new Error(`markers: HTTP ${res.status}`);
      const body = await res.json();
      if (videoId !== id) return;
      for (const m of body.markers) markers.set(m.id, m);
      render();
      // Changes after the version we loaded; EventSource reconnects by
      // itself and resumes with Last-Event-ID.
      source = new EventSource(`${base}/events?after=${encodeURIComponent(body.version)}`);
      const upsert = (e) => {
        const c = JSON.parse(e.data);
        if (c.marker) markers.set(c.marker.id, c.marker);
        render();
      };
      source.addEventListener('created', upsert);
      source.addEventListener('updated', upsert);
      source.addEventListener('deleted', (e) => {
        markers.delete(JSON.parse(e.data).id);
        render();
      });
      source.addEventListener('reset', () => load(id));
    } catch (e) {
      onError?.(e.message);
    }
  }

  function close() {
    if (source) source.close();
    source = null;
  }

  async function add(kind, label) {
    const markerUrl = url();
    if (!videoId || !markerUrl) throw new Error('no marker service configured');
    const media_time = Math.max(0, toMedia(player.currentTime()));
    const res = await fetch(`${markerUrl}/v1/videos/${encodeURIComponent(videoId)}/markers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind, label, media_time }),
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Error(body.error || `HTTP ${res.status}`);
    }
    // The SSE feed delivers it; also show it at once.
    for (const m of (await res.json()).markers) markers.set(m.id, m);
    render();
  }

  if (formEl) {
    formEl.addEventListener('submit', async (e) => {
      e.preventDefault();
      const data = new FormData(formEl);
      const status = formEl.querySelector('[data-testid="marker-status"]');
      try {
        await add(String(data.get('kind') || 'event'), String(data.get('label') || ''));
        if (status) status.textContent = '';
        formEl.reset();
      } catch (err) {
        if (status) status.textContent = `Not added: ${err.message}`;
      }
    });
  }
  player.on(['durationchange', 'loadedmetadata'], render);

  // Segments with a program date-time the mapping can use (tests check > 0).
  const pdtSegments = () => timedSegments(player).length;
  return { load, close, add, toPlayer, toMedia, pdtSegments, markers };
}
