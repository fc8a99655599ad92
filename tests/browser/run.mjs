// Headless Chromium test of the edgecam page, driven by playwright-core (which downloads no
// browser: it runs Debian's /usr/bin/chromium). Started by tests/browser.rs with a running
// `edgecam demo`:  node run.mjs <base url> <one-time password> <artifact dir>
//
// It logs in with the one-time password and sets a new one, checks that the live view paints
// frames (WebCodecs path, then the JPEG path forced by ?mode=jpeg), clicks another stream,
// adds an alarm on the Alarms tab, triggers it through the API, acknowledges it, saves
// screenshots, and prints the latencies the page measured as one JSON line.
import { launch } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [base, oneTime, outDir] = process.argv.slice(2);
if (!base || !oneTime || !outDir) {
  console.error('usage: node run.mjs <base url> <one-time password> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const NEW_PASSWORD = 'browser-test-password';
const TIMEOUT = 30000;

const { context, close } = await launch();
const results = {};
let failed = false;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

async function stats(page) { return page.evaluate(() => JSON.parse(JSON.stringify(window.edgecam.stats))); }

async function waitPainted(page, n) {
  await page.waitForFunction((k) => window.edgecam.stats.painted >= k, n, { timeout: TIMEOUT });
}

// The canvas shows a picture (not one flat colour) that changes over time.
async function checkPixels(page, label) {
  await waitPainted(page, 5);
  const a = await page.evaluate(() => window.edgecam.sample());
  check(new Set(a).size > 3, `${label}: canvas pixels are not uniform`);
  await page.waitForTimeout(600);
  const b = await page.evaluate(() => window.edgecam.sample());
  check(a.some((v, i) => v !== b[i]), `${label}: canvas pixels change`);
}

async function waitMark(page, label) {
  await page.waitForFunction((l) => window.edgecam.stats.marks.some((m) => m.label === l), label, { timeout: TIMEOUT });
  const s = await stats(page);
  return s.marks.filter((m) => m.label === label).pop().ms;
}

function summary(lat) {
  const v = [...lat].sort((x, y) => x - y);
  const q = (p) => (v.length ? Math.round(v[Math.min(v.length - 1, Math.floor(p * v.length))] * 10) / 10 : null);
  return { n: v.length, p50: q(0.5), p95: q(0.95), max: q(1) };
}

async function clickStream(page, id) {
  await page.click(`.thumb[data-stream="${id}"]`);
  const ms = await waitMark(page, 'click');
  await page.waitForFunction((s) => document.getElementById('now-showing').textContent.includes(s), id.replace('cam', 'Test pattern '), { timeout: TIMEOUT });
  return ms;
}

// Triggers `alarm` through the API (from the page's session) and measures until painted.
async function alarmRoundTrip(page, alarm, stream, name, shot) {
  await page.evaluate(([a, s]) => { window.edgecam.stats.marks = window.edgecam.stats.marks.filter((m) => m.label !== 'alarm'); window.edgecam.expect('alarm', s); return fetch(`/api/alarms/${a}/trigger`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ hold_s: 1 }) }).then((r) => r.status); }, [alarm, stream]);
  const ms = await waitMark(page, 'alarm');
  await page.waitForSelector('#banner:not([hidden])', { timeout: TIMEOUT });
  const text = await page.textContent('#banner');
  check(text.includes(name), `banner names the alarm (${text.trim()})`);
  check((await page.textContent('#reason')).includes('alarm'), 'the reason says alarm');
  if (shot) await page.screenshot({ path: path.join(outDir, shot) });
  await page.click('#banner button:has-text("Acknowledge")');
  await page.waitForSelector('#banner', { state: 'hidden', timeout: TIMEOUT });
  check(true, 'acknowledged: the banner is gone');
  return ms;
}

try {
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log('page:', m.text()); });
  await page.goto(base + '/');
  await page.waitForSelector('#auth-form', { state: 'visible', timeout: TIMEOUT });
  check((await page.textContent('#auth-title')).includes('Log in'), 'the page asks to log in');
  await page.fill('#auth-password', oneTime);
  await page.click('#auth-submit');
  await page.waitForFunction(() => document.getElementById('auth-title').textContent.includes('new admin password'), null, { timeout: TIMEOUT });
  check(true, 'the one-time password forces a new password');
  await page.fill('#auth-password', NEW_PASSWORD);
  await page.fill('#auth-repeat', NEW_PASSWORD);
  await page.evaluate(() => window.edgecam.expect('first', 'cam1'));
  await page.click('#auth-submit');
  await page.waitForSelector('#tab-live:not([hidden])', { timeout: TIMEOUT });

  // WebCodecs path.
  await checkPixels(page, 'webcodecs');
  let s = await stats(page);
  check(s.path === 'h264', `the live view uses WebCodecs (path ${s.path})`);
  const wc = { first_frame_ms: await waitMark(page, 'first') };
  await page.waitForSelector('.thumb[data-stream="cam2"]', { timeout: TIMEOUT });
  wc.click_to_paint_ms = await clickStream(page, 'cam2');
  check((await stats(page)).stream === 'cam2', 'clicking cam2 shows cam2');
  await page.screenshot({ path: path.join(outDir, 'live-webcodecs.png') });

  // An alarm on the Alarms tab: latched, calls up cam3.
  await page.click('#tabs button[data-tab="alarms"]');
  await page.click('#alarm-add');
  await page.fill('[data-path="alarms[0].id"] input', 'door');
  await page.fill('[data-path="alarms[0].name"] input', 'Front door');
  await page.selectOption('[data-path="alarms[0].stream"] select', 'cam3');
  await page.selectOption('[data-path="alarms[0].mode"] select', 'latched');
  await page.fill('[data-path="alarms[0].priority"] input', '10');
  await page.click('#alarms-save');
  await page.waitForFunction(() => document.getElementById('alarms-msg').textContent.includes('Saved'), null, { timeout: TIMEOUT });
  check(true, 'the alarm was saved from the Alarms tab');
  await page.click('#tabs button[data-tab="live"]');
  wc.alarm_to_paint_ms = await alarmRoundTrip(page, 'door', 'cam3', 'Front door', 'alarm-banner.png');
  await page.waitForFunction(() => window.edgecam.stats.stream === 'cam2', null, { timeout: TIMEOUT });
  check(true, 'after the alarm the view returns to cam2');
  await page.waitForTimeout(2000);
  s = await stats(page);
  wc.ingest_to_paint_ms = summary(s.latencies);
  wc.skipped = s.skipped;
  results.webcodecs = wc;

  // The other tabs render.
  await page.click('#tabs button[data-tab="cameras"]');
  await page.waitForSelector('[data-path="streams[2].id"]', { timeout: TIMEOUT });
  await page.click('#cameras .entry:first-child button:has-text("Test connection")');
  await page.waitForFunction(() => document.querySelector('#cameras .entry .msg').textContent.startsWith('OK'), null, { timeout: TIMEOUT });
  check(true, 'Test connection reports OK: ' + await page.textContent('#cameras .entry .msg'));
  await page.click('#tabs button[data-tab="system"]');
  await page.waitForFunction(() => document.querySelectorAll('#stream-stats tr').length >= 4, null, { timeout: TIMEOUT });
  await page.screenshot({ path: path.join(outDir, 'system.png') });
  await page.click('#tabs button[data-tab="live"]');
  // A phone-sized viewport: the same page, one column.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(500);
  await page.screenshot({ path: path.join(outDir, 'phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // JPEG path, forced by the query parameter (same session).
  const jp = await context.newPage();
  await jp.goto(base + '/?mode=jpeg');
  await checkPixels(jp, 'jpeg');
  s = await stats(jp);
  check(s.path === 'jpeg', `the forced JPEG path is used (path ${s.path})`);
  const jpeg = { first_frame_ms: s.firstPaintMs };
  await jp.waitForSelector('.thumb[data-stream="cam1"]', { timeout: TIMEOUT });
  jpeg.click_to_paint_ms = await clickStream(jp, 'cam1');
  jpeg.alarm_to_paint_ms = await alarmRoundTrip(jp, 'door', 'cam3', 'Front door', null);
  await jp.waitForFunction(() => window.edgecam.stats.stream === 'cam1', null, { timeout: TIMEOUT });
  await jp.waitForTimeout(2000);
  await jp.screenshot({ path: path.join(outDir, 'live-jpeg.png') });
  s = await stats(jp);
  jpeg.ingest_to_paint_ms = summary(s.latencies);
  jpeg.skipped = s.skipped;
  results.jpeg = jpeg;
  console.log('LATENCY ' + JSON.stringify(results));
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e && e.stack || e));
  for (const [i, p] of context.pages().entries()) {
    try { await p.screenshot({ path: path.join(outDir, `failure-${i}.png`) }); } catch (_) { /* closed */ }
  }
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
