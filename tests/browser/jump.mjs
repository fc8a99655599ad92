// The WebCodecs path's jump to the live edge, in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium). Started by tests/browser.rs with a running `edgecam demo` (test
// patterns, 25 fps, a keyframe every 2 s):
//   node jump.mjs <base url (a secure context: http://127.0.0.1:PORT)> <one-time password> <artifact dir>
//
// A guard's PC or phone that decodes slower than the camera sends falls further behind with
// every frame. Here the page's VideoDecoder is made slow (an init script wraps it so that it
// hands out at most 10 pictures a second, and drops what it holds on reset(), as a real
// decoder does). The page must notice the backlog at a live keyframe, drop it and go on from
// there: `stats.jumps` counts, and the picture stays within a few seconds of live instead of
// falling 1.5 s further behind every second. Prints `RESULT {...}`.
import { launch, pageDriver } from './chromium.mjs';
import { check, waitFor, stats, login } from './mse-scenario.mjs';
import path from 'node:path';
import fs from 'node:fs';

const [base, oneTime, outDir] = process.argv.slice(2);
if (!base || !oneTime || !outDir) {
  console.error('usage: node jump.mjs <base url> <one-time password> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Pictures a second the slowed decoder hands out (the camera sends 25).
const SLOW_FPS = 10;

const { context, close } = await launch();
await context.addInitScript((fps) => {
  const Real = window.VideoDecoder;
  if (!Real) return;
  window.VideoDecoder = class SlowDecoder extends Real {
    constructor(init) {
      const state = { gen: 0, queue: [], busy: false };
      const pump = () => {
        if (state.busy || !state.queue.length) return;
        state.busy = true;
        const gen = state.gen;
        setTimeout(() => {
          state.busy = false;
          const f = state.queue.shift();
          if (f && gen === state.gen) init.output(f); else if (f) f.close();
          pump();
        }, 1000 / fps);
      };
      super({ ...init, output: (f) => { state.queue.push(f); pump(); } });
      this.slow = state;
    }
    reset() {
      this.slow.gen++;
      for (const f of this.slow.queue.splice(0)) f.close();
      super.reset();
    }
  };
}, SLOW_FPS);

let failed = false;
try {
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  const d = pageDriver(page, errors);
  await login(d, base, oneTime);
  check(await d.eval(() => window.isSecureContext && window.VideoDecoder.name === 'SlowDecoder'), 'a secure context with the slowed VideoDecoder');
  await waitFor(d, () => window.edgecam.stats.path === 'h264' && window.edgecam.stats.painted > 5, null, 'WebCodecs paints');
  // Behind from the start: the backlog of the connect's GOP, then 15 frames a second more.
  await sleep(4000);
  const mid = await stats(d);
  await sleep(6000);
  const end = await stats(d);
  const recent = end.latencies.slice(-30);
  const worst = Math.max(...recent);
  const result = { jumps: end.jumps, painted: end.painted - mid.painted, worst_recent_latency_ms: Math.round(worst) };
  console.log('RESULT ' + JSON.stringify(result));
  check(end.jumps >= 2, `the page jumped to live keyframes (${end.jumps} jumps)`);
  check(end.painted > mid.painted, `the picture keeps painting (${end.painted - mid.painted} in 6 s)`);
  // Without the jump the lag grows 1.5 s a second: about 15 s after 10 s. With it, a
  // picture is at most about a GOP (2 s) and the backlog bound behind.
  check(worst < 6000, `the picture stays near live (worst of the last 30 pictures ${Math.round(worst)} ms behind)`);
  check(errors.length === 0, `no console errors (${errors.join(' | ')})`);
  await page.screenshot({ path: path.join(outDir, 'jump.png') });
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e && e.stack || e));
  try { await context.pages()[0].screenshot({ path: path.join(outDir, 'jump-failure.png') }); } catch (_) { /* closed */ }
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
