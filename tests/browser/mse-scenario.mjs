// The MSE scenario, shared by the Chromium (lan.mjs, playwright-core) and Firefox
// (firefox.mjs, puppeteer-core over WebDriver BiDi) tests: the page loaded from a LAN-style
// plain-HTTP origin, as a guard's browser on the LAN opens the box, is not a secure context,
// so it has no WebCodecs and chooses the MSE path by itself; the picture paints changing
// frames at about the camera's frame rate; a click on another camera and an alarm switch the
// picture, and frames keep coming.
//
// A driver `d` hides the two libraries' differences: goto(url), eval(fn, arg), click(sel),
// fill(sel, text), screenshot(file). Everything else is read from the page with eval.
import path from 'node:path';

export const TIMEOUT = 30000;
const NEW_PASSWORD = 'browser-test-password';

export function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `fn(arg)` in the page until it is truthy; returns its value.
export async function waitFor(d, fn, arg, what, timeout = TIMEOUT) {
  const until = Date.now() + timeout;
  for (;;) {
    const v = await d.eval(fn, arg).catch(() => null);
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeout} ms: ${what}`);
    await sleep(100);
  }
}

export const stats = (d) => d.eval(() => JSON.parse(JSON.stringify(window.edgecam.stats)));

export function summary(lat) {
  const v = [...lat].sort((x, y) => x - y);
  const q = (p) => (v.length ? Math.round(v[Math.min(v.length - 1, Math.floor(p * v.length))] * 10) / 10 : null);
  return { n: v.length, p50: q(0.5), p95: q(0.95), max: q(1) };
}

// Logs in with the one-time password and sets a new one.
export async function login(d, base, oneTime) {
  await d.goto(base + '/');
  await waitFor(d, () => !document.getElementById('auth').hidden, null, 'the login form');
  await d.fill('#auth-password', oneTime);
  await d.click('#auth-submit');
  await waitFor(d, () => document.getElementById('auth-title').textContent.includes('new admin password'), null, 'the forced password change');
  await d.fill('#auth-password', NEW_PASSWORD);
  await d.fill('#auth-repeat', NEW_PASSWORD);
  await d.click('#auth-submit');
  await waitFor(d, () => !document.getElementById('tab-live').hidden, null, 'the live tab');
  check(true, 'logged in, new password set');
}

// The picture shows something (not one flat colour) that changes over time.
export async function checkPixels(d, label) {
  await waitFor(d, () => window.edgecam.stats.painted >= 5, null, `${label}: 5 frames painted`);
  const a = await d.eval(() => window.edgecam.sample());
  check(new Set(a).size > 3, `${label}: the picture's pixels are not uniform`);
  await sleep(600);
  const b = await d.eval(() => window.edgecam.sample());
  check(a.some((v, i) => v !== b[i]), `${label}: the picture's pixels change`);
}

// Frames painted a second over `secs` seconds.
export async function paintRate(d, secs) {
  const p0 = await d.eval(() => window.edgecam.stats.painted);
  const t0 = Date.now();
  await sleep(secs * 1000);
  const p1 = await d.eval(() => window.edgecam.stats.painted);
  return (p1 - p0) / ((Date.now() - t0) / 1000);
}

const nowShowing = (d) => d.eval(() => document.getElementById('now-showing').textContent);

async function waitMark(d, label) {
  await waitFor(d, (l) => window.edgecam.stats.marks.some((m) => m.label === l), label, `the ${label} mark`);
  return (await stats(d)).marks.filter((m) => m.label === label).pop().ms;
}

// The view shows `stream` (its name on the line above the picture) and paints it.
async function showsAndPaints(d, stream, name, what, fps) {
  await waitFor(d, (n) => document.getElementById('now-showing').textContent.includes(n), name, `${what}: the name line says ${name}`);
  await waitFor(d, (s) => window.edgecam.stats.stream === s, stream, `${what}: ${stream} painted`);
  const rate = await paintRate(d, 2);
  check(rate >= fps * 0.5, `${what}: frames keep painting (${rate.toFixed(1)}/s, name line "${(await nowShowing(d)).trim()}")`);
}

// The whole MSE scenario on `base` (http://<LAN name>:PORT); `fps` is the test pattern's
// frame rate. Returns what it measured.
export async function mseScenario(d, { base, oneTime, fps, outDir, prefix, expectInsecure = true }) {
  await login(d, base, oneTime);
  const secure = await d.eval(() => window.isSecureContext);
  if (expectInsecure) check(secure === false, 'the LAN origin is not a secure context');
  await waitFor(d, () => window.edgecam.stats.choice, null, 'the page chose a path');
  let s = await stats(d);
  check(s.choice === 'mse', `the page chose the MSE path by itself (choice ${s.choice}, why: ${s.why})`);
  await waitFor(d, () => window.edgecam.stats.path, null, 'the first init with video');
  s = await stats(d);
  check(s.path === 'mse', `the server sends fragmented MP4 (path ${s.path}, ManagedMediaSource: ${s.mse && s.mse.managed})`);
  await checkPixels(d, 'mse');
  const overlay = await d.eval(() => document.getElementById('overlay').textContent);
  check(overlay.startsWith('MSE'), `the overlay names the path (${overlay})`);
  const why = await d.eval(() => { const b = document.getElementById('https-offer'); return b.hidden ? '' : b.textContent; });
  check(why.startsWith('MSE: ') && (!expectInsecure || why.includes('secure context')), `one line says why not WebCodecs (${why.trim().slice(0, 100)}…)`);

  // Full rate: rates are behaviour here, but the bound is loose (the machine is shared).
  const rate = await paintRate(d, 4);
  check(rate >= fps * 0.6, `full rate: ${rate.toFixed(1)} frames painted a second (camera ${fps} fps, bound ${(fps * 0.6).toFixed(0)})`);
  await d.screenshot(path.join(outDir, `${prefix}-mse.png`));

  // A click on another camera.
  const from = (await nowShowing(d)).trim();
  await d.eval(() => { window.edgecam.stats.marks = []; });
  // (A boolean: a DOM node does not serialize over WebDriver BiDi.)
  await waitFor(d, () => !!document.querySelector('.thumb[data-stream="cam2"]'), null, 'the strip has cam2');
  await d.eval(() => window.edgecam.expect('click', 'cam2'));
  await d.click('.thumb[data-stream="cam2"]');
  const clickMs = await waitMark(d, 'click');
  await showsAndPaints(d, 'cam2', 'Test pattern 2', `click (was "${from}")`, fps);
  await checkPixels(d, 'mse after the click');

  // An alarm (added through the API, triggered as a detector would, input on for 1 s, then
  // latched) calls up cam3; Acknowledge returns the view to cam2.
  const put = await d.eval(async () => {
    const cfg = await fetch('/api/config').then((r) => r.json());
    cfg.alarms.push({ id: 'door', name: 'Front door', stream: 'cam3', priority: 10, mode: 'latched', hold_s: 30, video_loss: false, video_loss_after_s: 10, gpio: null, output: null });
    const r = await fetch('/api/config', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(cfg) });
    return r.status;
  });
  check(put === 200, `the alarm is added (PUT /api/config: ${put})`);
  const trig = await d.eval(() => {
    window.edgecam.expect('alarm', 'cam3');
    return fetch('/api/alarms/door/trigger', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"hold_s": 1}' }).then((r) => r.status);
  });
  check(trig === 200, `the alarm is triggered (${trig})`);
  const alarmMs = await waitMark(d, 'alarm');
  await showsAndPaints(d, 'cam3', 'Test pattern 3', 'alarm', fps);
  await d.screenshot(path.join(outDir, `${prefix}-mse-alarm.png`));
  await waitFor(d, () => [...document.querySelectorAll('#banner button')].some((b) => b.textContent === 'Acknowledge'), null, 'the latched alarm offers Acknowledge');
  await d.click('#banner button:not(.replay)');
  await showsAndPaints(d, 'cam2', 'Test pattern 2', 'acknowledged: back to cam2', fps);

  s = await stats(d);
  return { path: s.path, fps: Math.round(rate * 10) / 10, click_to_paint_ms: clickMs, alarm_to_paint_ms: alarmMs,
    first_frame_ms: s.firstPaintMs, ingest_to_paint_ms: summary(s.latencies), mse: s.mse };
}
