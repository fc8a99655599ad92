// The installer's first steps in headless Chromium, from a LAN-style origin: the page is loaded
// as http://edgebox.test:PORT/ (Chromium maps the name to 127.0.0.1), which is not a secure
// context, as a guard's or installer's browser on the LAN sees the box. Started by
// tests/browser.rs:  node installer.mjs <port> <one-time password> <rtsp url> <artifact dir>
//
// It sets the first password, adds an RTSP camera on the Cameras tab (the form shows only the
// RTSP fields), checks that Test connection reports the camera's real result, that a stale
// result is cleared on an edit and that a bad URL is reported by its label and highlighted,
// saves, and sees the new camera live on the Live tab.
import { launch } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [port, oneTime, rtspUrl, outDir] = process.argv.slice(2);
if (!port || !oneTime || !rtspUrl || !outDir) {
  console.error('usage: node installer.mjs <port> <one-time password> <rtsp url> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const BASE = `http://edgebox.test:${port}`;
const TIMEOUT = 30000;

const { context, close } = await launch({
  viewport: { width: 1366, height: 800 },
  extraArgs: ['--host-resolver-rules=MAP edgebox.test 127.0.0.1'],
});
let failed = false;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

const page = context.pages()[0] || await context.newPage();
page.on('console', (m) => { if (m.type() === 'error') console.log('console error: ' + m.text()); });
try {
  await page.goto(BASE + '/');
  check(await page.evaluate(() => window.isSecureContext) === false, 'the LAN origin is not a secure context');

  // First password: log in with the one-time password, then choose one.
  await page.waitForSelector('#auth:not([hidden])', { timeout: TIMEOUT });
  await page.fill('#auth-password', oneTime);
  await page.click('#auth-submit');
  await page.waitForFunction(() => document.getElementById('auth-title').textContent.includes('new admin password'), null, { timeout: TIMEOUT });
  await page.fill('#auth-password', 'installer-password');
  await page.fill('#auth-repeat', 'installer-password');
  await page.click('#auth-submit');
  await page.waitForSelector('#tabs:not([hidden])', { timeout: TIMEOUT });
  check(true, 'logged in and set the admin password');

  // Add an RTSP camera.
  await page.click('[data-tab="cameras"]');
  await page.click('#camera-add');
  const entry = page.locator('#cameras .entry').last();
  check(await entry.locator('select').first().inputValue() === 'rtsp', 'a new camera starts as RTSP');
  for (const hidden of ['width', 'height', 'fps', 'bitrate_kbps', 'gop', 'device']) {
    check(await entry.locator(`[data-path$=".${hidden}"]`).count() === 0, `the RTSP form has no ${hidden} field`);
  }
  const idField = entry.locator('[data-path$=".id"] input');
  await idField.fill('door');
  await entry.locator('[data-path$=".name"] input').fill('Door camera');
  const url = entry.locator('[data-path$=".url"] input');

  // A URL that is not RTSP: the error names the field as the form labels it, and marks it.
  await url.fill('http://127.0.0.1:1/stream');
  await entry.locator('button', { hasText: 'Test connection' }).click();
  const msg = entry.locator('.msg');
  await page.waitForFunction((e) => /RTSP URL/.test(e.textContent), await msg.elementHandle(), { timeout: TIMEOUT });
  check(await entry.locator('[data-path$=".url"].field-error').count() === 1, `a bad URL is named and marked (${(await msg.textContent()).trim()})`);

  // The real camera: Test connection reports codec, size and rate.
  await url.fill(rtspUrl);
  check((await msg.textContent()) === '', 'an edit clears the stale result');
  check(await entry.locator('.field-error').count() === 0, 'an edit clears the error mark');
  await entry.locator('button', { hasText: 'Test connection' }).click();
  await page.waitForFunction((e) => /^(OK|Failed)/.test(e.textContent), await msg.elementHandle(), { timeout: TIMEOUT });
  const result = (await msg.textContent()).trim();
  check(/^OK: avc1\.[0-9a-fA-F]{6}/.test(result), `Test connection answers with the camera's result (${result})`);
  await page.screenshot({ path: path.join(outDir, 'installer-camera-tested.png') });

  await page.click('#cameras-save');
  await page.waitForFunction(() => /Saved and applied/.test(document.getElementById('cameras-msg').textContent), null, { timeout: TIMEOUT });
  check(true, 'the camera is saved');

  // The new camera, live: its card in the strip, selected, painted.
  await page.click('[data-tab="live"]');
  await page.waitForSelector('.thumb[data-stream="door"]', { timeout: TIMEOUT });
  await page.click('.thumb[data-stream="door"]');
  await page.waitForFunction(() => document.getElementById('now-showing').textContent.includes('Door camera'), null, { timeout: TIMEOUT });
  const before = await page.evaluate(() => window.edgecam.stats.painted);
  await page.waitForFunction((n) => window.edgecam.stats.painted >= n + 3, before, { timeout: TIMEOUT });
  check(true, `the new camera is shown live (path ${await page.evaluate(() => window.edgecam.stats.path)})`);
  await page.screenshot({ path: path.join(outDir, 'installer-camera-live.png') });
} catch (e) {
  failed = true;
  console.log('not ok - ' + e.message);
  await page.screenshot({ path: path.join(outDir, 'installer-failure.png') }).catch(() => {});
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
