// A camera whose picture size halves mid-session, watched over MSE from a LAN origin in
// headless Chromium (playwright-core, Debian's /usr/bin/chromium). Started by
// tests/browser.rs with a running `edgecam demo --hostname edgebox.test` and the test RTSP
// server's /resize mount:
//   node resize.mjs <port> <one-time password> <camera url> <full width> <artifact dir>
//
// The page is not a secure context, so it plays MSE. The camera is added through the config
// API and selected; the <video> plays it at the full size, then, after the change, at half
// of it, in the same WebSocket session (a new init segment, no reconnect), and keeps
// painting. No console errors.
import { launch, pageDriver } from './chromium.mjs';
import { check, waitFor, stats, login, paintRate } from './mse-scenario.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [port, oneTime, cameraUrl, widthArg, outDir] = process.argv.slice(2);
if (!port || !oneTime || !cameraUrl || !widthArg || !outDir) {
  console.error('usage: node resize.mjs <port> <one-time password> <camera url> <full width> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const HOST = 'edgebox.test';
const full = Number(widthArg);

const { context, close } = await launch({ extraArgs: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`] });
const errors = [];
let failed = false;
try {
  const page = context.pages()[0] || await context.newPage();
  const d = pageDriver(page, errors);
  await login(d, `http://${HOST}:${port}`, oneTime);
  check(await d.eval(() => window.isSecureContext) === false, 'the LAN origin is not a secure context');

  const put = await d.eval(async (url) => {
    const cfg = await fetch('/api/config').then((r) => r.json());
    cfg.streams.push({ id: 'zoo', name: 'Resizing camera', kind: 'rtsp', url });
    const r = await fetch('/api/config', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(cfg) });
    return r.status === 200 ? 200 : `${r.status} ${await r.text()}`;
  }, cameraUrl);
  check(put === 200, `the camera is added (PUT /api/config: ${put})`);
  const sel = await d.eval(() => fetch('/api/active', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"stream": "zoo"}' }).then((r) => r.status));
  check(sel === 200, `the camera is selected (${sel})`);

  const width = () => d.eval(() => document.getElementById('mse-video').videoWidth);
  await waitFor(d, () => window.edgecam.stats.stream === 'zoo' && window.edgecam.stats.path === 'mse', null, 'the camera painted over MSE');
  const connects = (await stats(d)).connectMs;
  const w0 = await waitFor(d, (w) => document.getElementById('mse-video').videoWidth === w && w, full, `the <video> at ${full} px wide`);
  check(w0 === full, `MSE plays the full size (${w0} px wide)`);
  const before = (await stats(d)).painted;

  await waitFor(d, (w) => document.getElementById('mse-video').videoWidth === w, full / 2, `the <video> at ${full / 2} px after the change`);
  check(true, `after the change MSE plays the new size (${await width()} px wide)`);
  const s = await stats(d);
  check(s.connectMs === connects, 'in the same WebSocket session (no reconnect)');
  check(s.painted > before, `frames painted across the change (${s.painted - before})`);
  const rate = await paintRate(d, 2);
  check(rate > 2, `frames keep painting at the new size (${rate.toFixed(1)}/s)`);
  await page.screenshot({ path: path.join(outDir, 'resize-after.png') });
  check(errors.length === 0, `no console errors (${errors.join(' | ')})`);
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e && e.stack || e));
  try { await context.pages()[0].screenshot({ path: path.join(outDir, 'resize-failure.png') }); } catch (_) { /* closed */ }
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
