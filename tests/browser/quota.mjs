// MSE with a small SourceBuffer quota, from a LAN origin in headless Chromium (playwright-core,
// Debian's /usr/bin/chromium). Started by tests/browser.rs with a running `edgecam demo
// --hostname edgebox.test`:
//   node quota.mjs <port> <one-time password> <fps> <artifact dir>
//
// Browsers on phones and TVs give a SourceBuffer little room and answer appendBuffer with
// QuotaExceededError when it is full. An init script gives every SourceBuffer a quota of
// QUOTA_S seconds of buffered media (appendBuffer throws QuotaExceededError beyond it, as the
// real one does). The player must free what lies behind the playhead and go on: frames keep
// painting at about the camera's rate, `stats.mse.quota` counts, no console errors.
// Prints `RESULT {...}`.
import { launch, pageDriver } from './chromium.mjs';
import { check, waitFor, stats, login, paintRate } from './mse-scenario.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [port, oneTime, fpsArg, outDir] = process.argv.slice(2);
if (!port || !oneTime || !fpsArg || !outDir) {
  console.error('usage: node quota.mjs <port> <one-time password> <fps> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const HOST = 'edgebox.test';
const fps = Number(fpsArg);
// Seconds of media a SourceBuffer may hold here.
const QUOTA_S = 2;

const { context, close } = await launch({ extraArgs: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`] });
await context.addInitScript((quota) => {
  for (const Ms of [window.MediaSource, window.ManagedMediaSource]) {
    const Sb = Ms && (Ms === window.MediaSource ? window.SourceBuffer : window.ManagedSourceBuffer);
    if (!Sb || Sb.prototype.quotaWrapped) continue;
    const append = Sb.prototype.appendBuffer;
    Sb.prototype.appendBuffer = function (data) {
      const b = this.buffered;
      if (b.length && b.end(b.length - 1) - b.start(0) > quota) {
        window.quotaRefusals = (window.quotaRefusals || 0) + 1;
        throw new DOMException('The SourceBuffer is full', 'QuotaExceededError');
      }
      return append.call(this, data);
    };
    Sb.prototype.quotaWrapped = true;
  }
}, QUOTA_S);

let failed = false;
try {
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  const d = pageDriver(page, errors);
  await login(d, `http://${HOST}:${port}`, oneTime);
  await waitFor(d, () => window.edgecam.stats.path === 'mse' && window.edgecam.stats.painted > 5, null, 'MSE paints');
  await waitFor(d, () => window.quotaRefusals > 0, null, 'the SourceBuffer filled up');
  const rate = await paintRate(d, 6);
  const s = await stats(d);
  const buffered = await d.eval(() => { const b = document.getElementById('mse-video').buffered; return b.length ? b.end(b.length - 1) - b.start(0) : 0; });
  const refusals = await d.eval(() => window.quotaRefusals);
  const result = { fps: Math.round(rate * 10) / 10, quota_errors: s.mse.quota, refusals, buffered_s: Math.round(buffered * 100) / 100 };
  console.log('RESULT ' + JSON.stringify(result));
  check(s.mse.quota > 0, `the player met QuotaExceededError (${s.mse.quota} times)`);
  check(rate >= fps * 0.5, `frames keep painting with a ${QUOTA_S} s quota (${rate.toFixed(1)}/s)`);
  check(buffered <= QUOTA_S + 1, `what is buffered stays near the quota (${buffered.toFixed(2)} s)`);
  check(errors.length === 0, `no console errors (${errors.join(' | ')})`);
  await page.screenshot({ path: path.join(outDir, 'quota.png') });
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e && e.stack || e));
  try { await context.pages()[0].screenshot({ path: path.join(outDir, 'quota-failure.png') }); } catch (_) { /* closed */ }
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
