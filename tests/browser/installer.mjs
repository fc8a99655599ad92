// The installer's first steps in headless Chromium, from a LAN-style origin: the page is loaded
// as http://<hostname>.local:PORT/, the box's mDNS name (Chromium maps it to 127.0.0.1), which is not a secure
// context, as a guard's or installer's browser on the LAN sees the box. Started by
// tests/browser.rs:
//   node installer.mjs <port> <one-time password> <rtsp url> <artifact dir> <closed port> <box name> <https port>
//
// It sets the first password, adds an RTSP camera on the Cameras tab (the form shows only the
// RTSP fields), checks that Test connection reports the camera's real result, that a stale
// result is cleared on an edit and that a bad URL is reported by its label and highlighted,
// saves, and sees the new camera live on the Live tab. Then: a token for a detector on the
// Tokens tab, an alarm without GPIO on the Alarms tab, raised and cleared by the detector over
// HTTP, its banner (name, on screen, Acknowledge for a hold), Acknowledge returning the view;
// a camera that is down (its RTSP port is closed): each camera's line on the Cameras tab says
// what the box does with it ("live over TCP ... sub stream live", "reconnecting: ... (5 s ago)"),
// and selecting the down camera blanks the picture and says
// "No video from <name>: <why>". At 1366×800 and at 390×844 the banner, the name line, the
// picture and the strip fit one screen; the System tab fits a phone's width. Expected
// answers (no session yet, nothing to acknowledge) never show as console errors. Last, the
// plain-HTTP page offers HTTPS with the certificate's fingerprint, and the HTTPS page (its
// self-signed certificate accepted, as a user does) is a secure context that decodes H.264
// with WebCodecs.
import { launch } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [port, oneTime, rtspUrl, outDir, closedPort, boxName, httpsPort, onvifPort] = process.argv.slice(2);
if (!port || !oneTime || !rtspUrl || !outDir || !closedPort || !boxName || !httpsPort) {
  console.error('usage: node installer.mjs <port> <one-time password> <rtsp url> <artifact dir> <closed port> <box name> <https port>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const BASE = `http://${boxName}:${port}`;
const TIMEOUT = 30000;

const { context, close } = await launch({
  viewport: { width: 1366, height: 800 },
  // --ignore-certificate-errors: what a user does by accepting the box's own certificate.
  extraArgs: [`--host-resolver-rules=MAP ${boxName} 127.0.0.1`, '--ignore-certificate-errors'],
});
let failed = false;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

const page = context.pages()[0] || await context.newPage();
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') { consoleErrors.push(m.text()); console.log('console error: ' + m.text()); } });

// The banner, the name line, the picture and the strip are on screen without scrolling.
async function fitsOneScreen(what) {
  const m = await page.evaluate(() => {
    const r = (id) => { const e = document.getElementById(id); return e && !e.hidden ? e.getBoundingClientRect() : null; };
    return { h: innerHeight, w: innerWidth, scrollH: document.documentElement.scrollHeight, scrollW: document.documentElement.scrollWidth,
      strip: r('strip'), stage: r('stage'), under: r('now-showing'), banner: r('banner') };
  });
  check(m.scrollH <= m.h + 1 && m.scrollW <= m.w + 1, `${what}: the page does not scroll (${m.scrollW}×${m.scrollH} in ${m.w}×${m.h})`);
  for (const k of ['strip', 'stage', 'under', 'banner']) {
    if (m[k]) check(m[k].top >= 0 && m[k].bottom <= m.h + 1 && m[k].height > 0, `${what}: ${k} is on screen (${Math.round(m[k].top)}..${Math.round(m[k].bottom)} of ${m.h})`);
  }
  check(m.stage.height >= 150, `${what}: the picture is not squeezed (${Math.round(m.stage.height)} px high)`);
}

// A detector on the LAN: plain HTTP with the token, as curl would send it.
async function detector(token, action) {
  const r = await fetch(`http://127.0.0.1:${port}/api/alarms/bell/${action}`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
  check(r.status === 200, `the detector's ${action} is accepted (${r.status})`);
}

const painted = () => page.evaluate(() => window.edgecam.stats.stream);
const showing = () => page.textContent('#now-showing');
try {
  await page.goto(BASE + '/');
  check(await page.evaluate(() => window.isSecureContext) === false, 'the LAN origin is not a secure context');

  // First password: log in with the one-time password, then choose one.
  await page.waitForSelector('#auth:not([hidden])', { timeout: TIMEOUT });
  check(/first opened this box/.test(await page.textContent('#auth-where')), 'the login card says where the password comes from');
  check((await page.evaluate(() => document.querySelector('link[rel=icon]').href)).endsWith('/favicon.svg'), 'the page has a favicon');
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

  // From ONVIF (the loopback ONVIF test camera): a wrong password is said in words; the
  // right one fills the URL and Sub stream URL fields with the largest and smallest profile.
  await entry.locator('summary', { hasText: 'From ONVIF' }).click();
  const onvif = entry.locator('details.onvif');
  await onvif.locator('label', { hasText: 'Camera address' }).locator('input').fill(`127.0.0.1:${onvifPort}`);
  await onvif.locator('label', { hasText: 'ONVIF user' }).locator('input').fill('admin');
  const onvifPassword = onvif.locator('label', { hasText: 'ONVIF password' }).locator('input');
  const onvifResult = onvif.locator('.onvif-result');
  await onvifPassword.fill('wrong');
  await onvif.locator('button', { hasText: 'Fill in from ONVIF' }).click();
  await page.waitForFunction((e) => /refused the user name or password/.test(e.textContent), await onvifResult.elementHandle(), { timeout: TIMEOUT });
  check(true, `a wrong ONVIF password is said in words (${(await onvifResult.textContent()).trim()})`);
  await onvifPassword.fill('s3cret:pw');
  await onvif.locator('button', { hasText: 'Fill in from ONVIF' }).click();
  await page.waitForFunction((e) => /^Filled in/.test(e.textContent), await onvifResult.elementHandle(), { timeout: TIMEOUT });
  const filled = [await url.inputValue(), await entry.locator('[data-path$=".sub_url"] input').inputValue()];
  check(filled[0] === 'rtsp://admin:s3cret%3Apw@127.0.0.1:554/main' && filled[1] === 'rtsp://admin:s3cret%3Apw@127.0.0.1:554/sub',
    `From ONVIF fills in the main and sub stream URLs (${(await onvifResult.textContent()).trim()})`);
  await entry.locator('[data-path$=".sub_url"] input').fill('');

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

  // Its sub stream (here the same mount): thumbnails and snapshots decode it.
  await entry.locator('[data-path$=".sub_url"] input').fill(rtspUrl);
  await page.click('#cameras-save');
  await page.waitForFunction(() => /Saved and applied/.test(document.getElementById('cameras-msg').textContent), null, { timeout: TIMEOUT });
  check(true, 'the camera is saved');
  const sub = await page.evaluate(() => fetch('/api/status').then((r) => r.json()).then((s) => s.streams.find((x) => x.id === 'door').sub));
  check(sub != null && typeof sub.state === 'string', `the sub stream entered on the page runs beside the main one (${sub && sub.state})`);

  // The new camera, live: its card in the strip, selected, painted.
  await page.click('[data-tab="live"]');
  await page.waitForSelector('.thumb[data-stream="door"]', { timeout: TIMEOUT });
  await page.click('.thumb[data-stream="door"]');
  await page.waitForFunction(() => document.getElementById('now-showing').textContent.includes('Door camera'), null, { timeout: TIMEOUT });
  const before = await page.evaluate(() => window.edgecam.stats.painted);
  await page.waitForFunction((n) => window.edgecam.stats.painted >= n + 3, before, { timeout: TIMEOUT });
  check(true, `the new camera is shown live (path ${await page.evaluate(() => window.edgecam.stats.path)})`);
  await page.screenshot({ path: path.join(outDir, 'installer-camera-live.png') });
  await fitsOneScreen('1366×800');
  check(await page.isVisible('#logout'), 'Log out is in the header');

  // Plain HTTP: one line says why not WebCodecs, and where HTTPS is, with the fingerprint to compare.
  await page.waitForSelector('#https-offer:not([hidden])', { timeout: TIMEOUT });
  const fp = await page.evaluate(() => fetch('/api/status').then((r) => r.json()).then((s) => s.https.fingerprint_sha256));
  const offer = await page.textContent('#https-offer');
  check(offer.includes(`https://${boxName}:${httpsPort}/`) && offer.includes(fp), `the page offers HTTPS with its fingerprint (${offer.trim().slice(0, 90)}…)`);
  await fitsOneScreen('1366×800 with the HTTPS offer');

  // A token for the detector, on its own tab: shown in full, with a Copy button and the URLs.
  await page.click('[data-tab="tokens"]');
  await page.click('#token-add');
  const tok = page.locator('#tokens .entry').last();
  await tok.locator('[data-path$=".name"] input').fill('detector');
  await tok.locator('[data-path$=".role"] select').selectOption('operator');
  const token = await tok.locator('[data-path$=".token"] input').inputValue();
  check(/^[0-9a-f]{32}$/.test(token), 'a new token is made on the page');
  check((await tok.textContent()).includes(`mjpeg?token=${token}`), 'the token\'s MJPEG URL is shown');
  const box = await tok.locator('[data-path$=".token"] input').boundingBox();
  check(box.width >= 260, `the token field is not cut off (${Math.round(box.width)} px)`);
  await tok.locator('button', { hasText: 'Copy' }).click();
  await page.waitForFunction((e) => /copied|selected/.test(e.textContent), await tok.locator('.token-line .msg').elementHandle(), { timeout: TIMEOUT });
  check(true, `Copy answers (${(await tok.locator('.token-line .msg').textContent()).trim()})`);
  await page.click('#tokens-save');
  await page.waitForFunction(() => /Saved/.test(document.getElementById('tokens-msg').textContent), null, { timeout: TIMEOUT });

  // An alarm without GPIO: only the detector raises it. Hold mode, on the new camera.
  await page.click('[data-tab="alarms"]');
  await page.click('#alarm-add');
  const al = page.locator('#alarms .entry').last();
  await al.locator('[data-path$=".id"] input').fill('bell');
  await al.locator('[data-path$=".name"] input').fill('Door bell');
  await al.locator('[data-path$=".stream"] select').selectOption('door');
  await al.locator('[data-path$=".mode"] select').selectOption('hold');
  await al.locator('[data-path$=".priority"] input').fill('5');
  await page.click('#alarms-save');
  await page.waitForFunction(() => /Saved/.test(document.getElementById('alarms-msg').textContent), null, { timeout: TIMEOUT });
  check(true, 'an HTTP alarm is saved');

  // A second camera whose RTSP port is closed: it is down from the start.
  await page.click('[data-tab="cameras"]');
  await page.click('#camera-add');
  const yard = page.locator('#cameras .entry').last();
  await yard.locator('[data-path$=".id"] input').fill('yard');
  await yard.locator('[data-path$=".name"] input').fill('Yard camera');
  await yard.locator('[data-path$=".url"] input').fill(`rtsp://127.0.0.1:${closedPort}/stream`);
  await page.click('#cameras-save');
  await page.waitForFunction(() => /Saved and applied/.test(document.getElementById('cameras-msg').textContent), null, { timeout: TIMEOUT });
  // Each entry's first line says what the box does with the camera, in relative times.
  const stateOf = (id) => page.textContent(`[data-state-of="${id}"]`);
  await page.waitForFunction(() => /^live over (TCP|UDP) .*sub stream live/.test(document.querySelector('[data-state-of="door"]').textContent), null, { timeout: TIMEOUT });
  check(true, `the live camera's line: ${await stateOf('door')}`);
  await page.waitForFunction(() => /^(reconnecting|failed|connecting).*\(\d+ (s|min) ago\)/.test(document.querySelector('[data-state-of="yard"]').textContent), null, { timeout: TIMEOUT });
  check(true, `the down camera's line: ${await stateOf('yard')}`);

  // The guard watches the test pattern; the detector rings.
  await page.click('[data-tab="live"]');
  await page.click('.thumb[data-stream="cam1"]');
  await page.waitForFunction(() => window.edgecam.stats.stream === 'cam1', null, { timeout: TIMEOUT });
  await detector(token, 'trigger');
  await page.waitForFunction(() => window.edgecam.stats.stream === 'door', null, { timeout: TIMEOUT });
  await page.waitForSelector('#banner:not([hidden])', { timeout: TIMEOUT });
  let banner = await page.textContent('#banner');
  check(banner.includes('ALARM: Door bell'), `the banner names the alarm, not its id (${banner.trim()})`);
  check(/on screen: Door camera/.test(banner), 'the banner says the alarm is on screen');
  check((await page.textContent('#reason')).includes('Door bell'), 'the reason names the alarm');
  check(await page.locator('#banner button', { hasText: 'Acknowledge' }).count() === 1, 'a hold alarm offers Acknowledge');
  await fitsOneScreen('1366×800 with an alarm');
  await page.screenshot({ path: path.join(outDir, 'installer-alarm-1366.png') });
  // The contact opens again: the hold runs; Acknowledge ends it and returns the view.
  await detector(token, 'clear');
  await page.waitForFunction(() => /holding/.test(document.getElementById('banner').textContent), null, { timeout: TIMEOUT });
  await page.click('#banner button:has-text("Acknowledge")');
  await page.waitForSelector('#banner', { state: 'hidden', timeout: TIMEOUT });
  await page.waitForFunction(() => window.edgecam.stats.stream === 'cam1', null, { timeout: TIMEOUT });
  check(true, 'Acknowledge ends the hold and the view returns to the guard\'s camera');

  // The camera that is down: the old picture goes, the message names the right camera.
  await page.waitForSelector('.thumb[data-stream="yard"] .why', { timeout: TIMEOUT });
  check(/No video|connecting/.test(await page.textContent('.thumb[data-stream="yard"] .why')), 'the down camera\'s tile says why instead of a black picture');
  await page.click('.thumb[data-stream="yard"]');
  await page.waitForFunction(() => document.getElementById('now-showing').textContent.includes('Yard camera'), null, { timeout: TIMEOUT });
  await page.waitForFunction(() => /No video from Yard camera: .+/.test(document.getElementById('nosignal').textContent) && !document.getElementById('nosignal').hidden, null, { timeout: TIMEOUT });
  const nosignal = (await page.textContent('#nosignal')).trim();
  check(/refused/.test(nosignal), `the message says why (${nosignal})`);
  check(await painted() === null, 'no other camera\'s frames are painted');
  const px = await page.evaluate(() => window.edgecam.sample());
  check(px.every((v) => v === 0), 'the previous picture is gone (the canvas is blank)');
  await page.screenshot({ path: path.join(outDir, 'installer-offline-1366.png') });

  // A phone: the same screen fits 390×844, with an alarm on.
  await page.setViewportSize({ width: 390, height: 844 });
  await detector(token, 'trigger');
  await page.waitForFunction(() => window.edgecam.stats.stream === 'door', null, { timeout: TIMEOUT });
  await page.waitForSelector('#banner:not([hidden])', { timeout: TIMEOUT });
  await fitsOneScreen('390×844 with an alarm');
  await page.screenshot({ path: path.join(outDir, 'installer-alarm-390.png') });
  await detector(token, 'clear');
  await page.click('#banner button:has-text("Acknowledge")');
  await page.waitForSelector('#banner', { state: 'hidden', timeout: TIMEOUT });
  await page.click('[data-tab="system"]');
  await page.waitForSelector('#stream-stats tr', { timeout: TIMEOUT });
  await page.waitForTimeout(500);
  const wide = await page.evaluate(() => ({ w: innerWidth, sw: document.documentElement.scrollWidth }));
  check(wide.sw <= wide.w + 1, `the System tab fits a phone's width (${wide.sw} in ${wide.w})`);
  await page.screenshot({ path: path.join(outDir, 'installer-system-390.png'), fullPage: true });
  check(consoleErrors.length === 0, `no console errors (${consoleErrors.join(' | ')})`);

  // The HTTPS page: a secure context, so WebCodecs decodes the camera's own H.264.
  const secure = await context.newPage();
  await secure.setViewportSize({ width: 1366, height: 800 });
  await secure.goto(`https://${boxName}:${httpsPort}/`);
  check(await secure.evaluate(() => window.isSecureContext), 'the HTTPS page is a secure context');
  await secure.waitForSelector('#tab-live:not([hidden])', { timeout: TIMEOUT });
  // The guard's last choice was the camera that is down: pick the test pattern.
  await secure.click('.thumb[data-stream="cam1"]');
  await secure.waitForFunction(() => window.edgecam.stats.path === 'h264' && window.edgecam.stats.painted > 10, null, { timeout: TIMEOUT });
  check(await secure.isHidden('#https-offer'), 'no HTTPS offer on the HTTPS page');
  check(true, 'the HTTPS page decodes H.264 with WebCodecs');
  await secure.screenshot({ path: path.join(outDir, 'installer-https.png') });
} catch (e) {
  failed = true;
  console.log('not ok - ' + e.message);
  await page.screenshot({ path: path.join(outDir, 'installer-failure.png') }).catch(() => {});
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
