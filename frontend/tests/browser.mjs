// Browser test of the page against a running edge (or tests/mock-server.mjs).
//
//   BASE_URL=http://127.0.0.1:8080 EXPECT_TITLES=bigbuckbunny,bikes \
//   PLAY_TITLE=bigbuckbunny SCREENSHOT=/tmp/page.png node tests/browser.mjs
//
// Env: BASE_URL (required), EXPECT_TITLES (comma-separated; default PLAY_TITLE),
//      PLAY_TITLE (bigbuckbunny), SCREENSHOT (optional PNG path),
//      CHROMIUM (/usr/bin/chromium), LIST_TIMEOUT_MS (30000),
//      PLAY_TIMEOUT_MS (30000), TOTAL_TIMEOUT_MS (90000).
// Prints "browser: N passed, M failed" last; exit 0 only if every check passed.
import { harness, Stop } from './harness.mjs';

const BASE_URL = (process.env.BASE_URL || '').replace(/\/+$/, '');
const PLAY_TITLE = process.env.PLAY_TITLE || 'bigbuckbunny';
const EXPECT_TITLES = (process.env.EXPECT_TITLES || PLAY_TITLE)
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const SCREENSHOT = process.env.SCREENSHOT || '';
const LIST_TIMEOUT_MS = Number(process.env.LIST_TIMEOUT_MS || 30000);
const PLAY_TIMEOUT_MS = Number(process.env.PLAY_TIMEOUT_MS || 30000);
const TOTAL_TIMEOUT_MS = Number(process.env.TOTAL_TIMEOUT_MS || 90000);

const h = harness(TOTAL_TIMEOUT_MS);
const { ok, fail, check, until } = h;
h.onFailure = () => shoot();

async function main() {
  if (!BASE_URL) {
    fail('config', 'BASE_URL is not set');
    return;
  }
  const page = await h.launch();
  shotPage = page;

  await check('page loads', async () => {
    const res = await page.goto(`${BASE_URL}/`, { waitUntil: 'load', timeout: 15000 });
    if (!res || !res.ok()) throw new Error(`GET / -> ${res ? res.status() : 'no response'}`);
    await page.waitForSelector('[data-testid="video-list"]', { timeout: 5000 });
    await page.waitForFunction(() => document.querySelector('[data-testid="upload-form"]'), null, {
      timeout: 5000,
    });
  });

  const items = () =>
    page.$$eval('[data-testid="video-item"]', (els) =>
      els.map((e) => ({ id: e.dataset.videoId, title: e.dataset.title, status: e.dataset.status })),
    );

  // Every expected title listed and ready.
  let listed = [];
  const listError = async () =>
    page.$eval('[data-testid="list-error"]', (e) => (e.hidden ? '' : e.textContent)).catch(() => '');
  try {
    await until(
      async () => {
        listed = await items();
        const missing = EXPECT_TITLES.filter((t) => !listed.some((v) => v.title === t && v.status === 'ready'));
        if (!missing.length) return true;
        const err = await listError();
        return { ok: false, why: `not ready: ${missing.join(', ')}${err ? `; page shows "${err}"` : ''}` };
      },
      LIST_TIMEOUT_MS,
      'expected titles to be ready',
    );
  } catch (e) {
    // Report per title, then stop.
  }
  for (const t of EXPECT_TITLES) {
    const v = listed.find((x) => x.title === t);
    if (v && v.status === 'ready') ok(`listed ready: ${t}`);
    else fail(`listed ready: ${t}`, v ? `status ${v.status}` : `not in list (${listed.map((x) => x.title).join(', ') || 'empty'})`);
  }
  if (h.failed) throw new Stop();

  const target = listed.find((v) => v.title === PLAY_TITLE);
  await check(`play title listed: ${PLAY_TITLE}`, async () => {
    if (!target) throw new Error(`no list item titled ${PLAY_TITLE}`);
    return target.id;
  });

  await check('click starts the player', async () => {
    await page.click(`[data-testid="video-item"][data-video-id="${target.id}"]`);
    await page.waitForFunction(() => window.__player, null, { timeout: 5000 });
    await page.evaluate(() => window.__player.muted(true));
  });

  await check('playback advances past 1.0 s', async () => {
    const r = await until(
      () =>
        page.evaluate(() => {
          const p = window.__player;
          const err = p.error();
          if (err) throw new Error(`player error ${err.code}: ${err.message}`);
          const t = p.currentTime();
          if (p.paused() && t === 0) p.play()?.catch(() => {});
          const banner = document.querySelector('[data-testid="player-error"]');
          const shown = banner && !banner.hidden ? `; page shows "${banner.textContent}"` : '';
          return t > 1.0 ? { t } : { ok: false, why: `currentTime ${t.toFixed(2)}, paused ${p.paused()}${shown}` };
        }),
      PLAY_TIMEOUT_MS,
      'currentTime > 1.0',
    );
    return `currentTime ${r.t.toFixed(2)}`;
  });

  await check('no player error shown', async () => {
    const shown = await page.$eval('[data-testid="player-error"]', (e) => (e.hidden ? '' : e.textContent));
    if (shown) throw new Error(shown);
  });

  const api = await page.evaluate(async (id) => {
    const r = await fetch(`/api/v1/videos/${encodeURIComponent(id)}`);
    return { status: r.status, body: await r.json().catch(() => null) };
  }, target.id);
  const expected = ['Auto', ...((api.body && api.body.renditions) || []).map((r) => r.name)];

  await check('API reports renditions', async () => {
    if (api.status !== 200) throw new Error(`GET /api/v1/videos/${target.id} -> ${api.status}`);
    if (expected.length < 2) throw new Error('no renditions in API response');
    return expected.slice(1).join(', ');
  });

  let menu = [];
  await check('quality menu lists Auto + every rendition', async () => {
    await page.waitForSelector('[data-testid="quality-button"]', { state: 'visible', timeout: 10000 });
    await page.hover('.video-js'); // show the control bar
    await page.click('[data-testid="quality-button"]');
    await until(
      async () => {
        // An item's visible label; its hidden ", selected" control text is left out.
        menu = await page.$$eval('[data-testid="quality-item"]', (els) =>
          els.map((e) => (e.querySelector('.vjs-menu-item-text') || e).textContent.trim()),
        );
        const missing = expected.filter((n) => !menu.includes(n));
        return missing.length ? { ok: false, why: `menu [${menu.join(', ')}] lacks ${missing.join(', ')}` } : true;
      },
      10000,
      'quality items',
    );
    const visible = await page.isVisible(`[data-testid="quality-item"][data-quality="${expected[1]}"]`);
    if (!visible) throw new Error('quality menu did not open');
    return menu.join(', ');
  });

  // Picking a rung enables only its level(s); Auto enables all again.
  const pick = expected[expected.length - 1];
  await check(`selecting ${pick} enables only that level`, async () => {
    await page.click(`[data-testid="quality-item"][data-quality="${pick}"]`);
    const levels = await page.evaluate(() =>
      Array.from(window.__player.qualityLevels()).map((l) => ({ h: l.height, w: l.width, on: l.enabled })),
    );
    const on = levels.filter((l) => l.on);
    if (!on.length) throw new Error('no level enabled');
    const r = api.body.renditions.find((x) => x.name === pick);
    if (on.some((l) => l.h !== r.height)) throw new Error(`enabled: ${JSON.stringify(on)}`);
    return `${on.length}/${levels.length} enabled`;
  });
  await check('selecting Auto enables all levels', async () => {
    if (!(await page.isVisible('[data-testid="quality-item"][data-quality="Auto"]'))) {
      await page.click('[data-testid="quality-button"]');
    }
    await page.click('[data-testid="quality-item"][data-quality="Auto"]');
    const off = await page.evaluate(() => Array.from(window.__player.qualityLevels()).filter((l) => !l.enabled).length);
    if (off) throw new Error(`${off} level(s) still disabled`);
  });

  await shoot(page);
}

// Screenshot to $SCREENSHOT (also after a failure, to see what went wrong).
let shotPage = null;
async function shoot(page = shotPage) {
  if (!SCREENSHOT || !page) return;
  shotPage = null;
  try {
    await page.mouse.move(10, 10);
    await page.screenshot({ path: SCREENSHOT, timeout: 5000 });
    console.log(`screenshot: ${SCREENSHOT}`);
  } catch (e) {
    console.log(`screenshot failed: ${e.message.split('\n')[0]}`);
  }
}

h.run(main);
