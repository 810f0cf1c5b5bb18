// Shared harness of the browser tests: Debian's Chromium through
// playwright-core (never a downloaded browser), checks that count, a
// bounded poll, and the closing "browser: N passed, M failed" line.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Stop extends Error {}

export function harness(totalTimeoutMs) {
  // onFailure: an optional async hook run before the browser closes on a
  // failed run (e.g. a screenshot).
  const h = { passed: 0, failed: 0, browser: null, logs: [], finishing: false, onFailure: null };
  h.ok = (name) => {
    if (h.finishing) return;
    h.passed++;
    console.log(`ok   ${name}`);
  };
  h.fail = (name, why) => {
    if (h.finishing) return;
    h.failed++;
    console.log(`FAIL ${name}: ${why}`);
  };
  // A check that must hold for the run to go on.
  h.check = async (name, fn) => {
    try {
      const detail = await fn();
      h.ok(detail ? `${name} (${detail})` : name);
      return detail;
    } catch (e) {
      h.fail(name, e.message.split('\n')[0]);
      throw new Stop();
    }
  };
  // Poll fn() until truthy (and not {ok:false}) or the time runs out.
  h.until = async (fn, ms, what) => {
    const end = Date.now() + ms;
    let last;
    for (;;) {
      last = await fn();
      if (last && last.ok !== false) return last;
      if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}${last && last.why ? `: ${last.why}` : ''}`);
      await sleep(250);
    }
  };
  h.launch = async () => {
    h.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--autoplay-policy=no-user-gesture-required',
        '--mute-audio',
      ],
    });
    const page = await h.browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('console', (m) => h.logs.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => h.logs.push(`[pageerror] ${e.message}`));
    return page;
  };
  h.finish = async (code) => {
    if (h.finishing) return;
    h.finishing = true;
    if (code !== 0 && h.onFailure) await h.onFailure().catch(() => {});
    if (h.browser) await h.browser.close().catch(() => {});
    if (code !== 0 && h.logs.length) {
      console.log('--- browser console (last 20) ---');
      for (const l of h.logs.slice(-20)) console.log(l);
    }
    console.log(`browser: ${h.passed} passed, ${h.failed} failed`);
    process.exit(code);
  };
  // Run main() under the overall timeout and finish.
  h.run = (main) => {
    const timer = setTimeout(() => {
      h.fail('overall', `timed out after ${totalTimeoutMs / 1000} s`);
      h.finish(1);
    }, totalTimeoutMs);
    main()
      .then(() => {
        clearTimeout(timer);
        return h.finish(h.failed ? 1 : 0);
      })
      .catch((e) => {
        clearTimeout(timer);
        if (!(e instanceof Stop)) h.fail('unexpected error', e.message.split('\n')[0]);
        return h.finish(1);
      });
  };
  return h;
}
