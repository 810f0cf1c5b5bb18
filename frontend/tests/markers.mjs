// Browser test of timeline markers against a running stack (edge + marker
// service), in Debian's headless Chromium through playwright-core.
//
//   BASE_URL=http://127.0.0.1:8080 VIDEO_ID=01J... node tests/markers.mjs
//
// 1. Plays VIDEO_ID (page URL #<id>) until currentTime > 0.5.
// 2. POSTs a marker (media_time MARK_AT, default 3.0) to the marker service
//    (URL from GET /api/v1/config) while it plays: it must appear on the
//    progress bar without a reload (live over SSE; its latency is a
//    benchmark, `make bench BENCH=markers`).
// 3. Clicks it: the player must seek to within one frame (FRAME_S, 0.04) of
//    its media time mapped to player time; and the page's own mapping
//    (program date-time of the playhead) must give back the media time.
// 4. Clicks the marker list entry (seeks), adds a marker from the form at
//    the playhead and sees it listed at that media time.
// Prints "browser: N passed, M failed" last; exit 0 only if all passed.
import { harness } from './harness.mjs';

const BASE_URL = (process.env.BASE_URL || '').replace(/\/+$/, '');
const VIDEO_ID = process.env.VIDEO_ID || '';
const MARK_AT = Number(process.env.MARK_AT || 3.0);
const FRAME_S = Number(process.env.FRAME_S || 0.04);
const TOTAL_TIMEOUT_MS = Number(process.env.TOTAL_TIMEOUT_MS || 90000);
// How long a posted marker may take to show up: a behaviour check (it comes
// over SSE, without a reload); its latency is measured by `make bench
// BENCH=markers`.
const APPEAR_MS = 5000;

const h = harness(TOTAL_TIMEOUT_MS);
const { check } = h;

async function main() {
  if (!BASE_URL || !VIDEO_ID) {
    h.fail('config', 'BASE_URL and VIDEO_ID are required');
    return;
  }
  const cfg = await (await fetch(`${BASE_URL}/api/v1/config`)).json();
  const markerUrl = cfg.marker_url;
  const page = await h.launch();
  await check('video plays', async () => {
    await page.goto(`${BASE_URL}/#${VIDEO_ID}`, { waitUntil: 'load', timeout: 15000 });
    await page.waitForFunction(() => window.__player && window.__player.currentTime() > 0.5, null, {
      timeout: 30000,
    });
    // The SSE feed is open once the initial range is loaded.
    await page.waitForFunction(() => window.__markers && window.__player.duration() > 0, null, { timeout: 10000 });
  });

  const label = `live-${Date.now()}`;
  await check('a marker posted while playing appears on the timeline (SSE, no reload)', async () => {
    if (await page.evaluate(() => window.__player.paused())) throw new Error('not playing');
    const t0 = Date.now();
    const res = await fetch(`${markerUrl}/v1/videos/${VIDEO_ID}/markers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'event', label, media_time: MARK_AT }),
    });
    if (res.status !== 201) throw new Error(`POST -> ${res.status} ${await res.text()}`);
    await page.waitForSelector(`[data-testid="timeline-marker"][data-label="${label}"]`, {
      timeout: APPEAR_MS,
      state: 'attached',
    });
    return `${Date.now() - t0} ms`;
  });

  await check('clicking it seeks to within one frame of its media time', async () => {
    await page.evaluate(() => window.__player.pause());
    const withPdt = await page.evaluate(() => window.__markers.pdtSegments());
    if (!(withPdt > 0)) throw new Error('no segment with EXT-X-PROGRAM-DATE-TIME: the mapping is not PDT-based');
    const target = await page.evaluate((t) => window.__markers.toPlayer(t), MARK_AT);
    // Move away first so the seek is observable.
    await page.evaluate(() => window.__player.currentTime(0.2));
    await page.waitForFunction(() => !window.__player.seeking(), null, { timeout: 5000 });
    const seeked = page.evaluate(
      () => new Promise((r) => window.__player.one('seeked', () => r(window.__player.currentTime()))),
    );
    await page.hover('.vjs-progress-control');
    await page.click(`[data-testid="timeline-marker"][data-label="${label}"]`, { force: true });
    const now = await seeked;
    if (Math.abs(now - target) > FRAME_S) throw new Error(`currentTime ${now}, marker at ${target}`);
    const back = await page.evaluate((t) => window.__markers.toMedia(t), now);
    if (Math.abs(back - MARK_AT) > FRAME_S) throw new Error(`playhead maps to media ${back}, not ${MARK_AT}`);
    return `currentTime ${now.toFixed(3)} for media ${MARK_AT}`;
  });

  await check('the tooltip names the marker', async () => {
    await page.hover(`[data-testid="timeline-marker"][data-label="${label}"]`, { force: true });
    const text = await page.textContent('[data-testid="marker-tooltip"]');
    if (!text.includes(label)) throw new Error(`tooltip "${text}"`);
  });

  await check('the marker list seeks on click', async () => {
    await page.evaluate(() => window.__player.currentTime(0.2));
    await page.waitForFunction(() => !window.__player.seeking(), null, { timeout: 5000 });
    const seeked = page.evaluate(
      () => new Promise((r) => window.__player.one('seeked', () => r(window.__player.currentTime()))),
    );
    await page.click(`[data-testid="marker-item"]:has-text("${label}")`);
    const now = await seeked;
    if (Math.abs(now - MARK_AT) > FRAME_S) throw new Error(`currentTime ${now}`);
  });

  await check('the form adds a marker at the playhead', async () => {
    await page.evaluate(() => window.__player.currentTime(1.5));
    await page.waitForFunction(() => !window.__player.seeking(), null, { timeout: 5000 });
    await page.fill('[data-testid="marker-label"]', 'from the form');
    await page.click('[data-testid="marker-add"]');
    await page.waitForSelector('[data-testid="marker-item"]:has-text("from the form")', { timeout: 3000 });
    const res = await fetch(`${markerUrl}/v1/videos/${VIDEO_ID}/markers`);
    const body = await res.json();
    const m = body.markers.find((x) => x.label === 'from the form');
    if (!m || Math.abs(m.media_time - 1.5) > FRAME_S) throw new Error(`stored ${JSON.stringify(m)}`);
    return `media_time ${m.media_time}`;
  });
}

h.run(main);
