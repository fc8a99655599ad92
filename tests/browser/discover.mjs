// The Cameras tab's Discover in headless Chromium. Started by tests/onvif_discovery.rs inside
// the test's network namespace (the daemon beside it; a WS-Discovery camera in the other
// namespace), never on a real network:
//   node discover.mjs <port> <one-time password> <artifact dir>
//
// It logs in, presses Discover while no camera answers ("No ONVIF cameras answered within 3 s"),
// prints `WAITING` and waits for a line on stdin (the test has started the camera), presses
// Discover again, sees the camera's name, hardware and address, adds it and sees the new
// camera's name filled in and its ONVIF device service shown. No console errors.
import { launch } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

const [port, oneTime, outDir] = process.argv.slice(2);
if (!port || !oneTime || !outDir) {
  console.error('usage: node discover.mjs <port> <one-time password> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const TIMEOUT = 30000;
const { context, close } = await launch({ viewport: { width: 1366, height: 800 } });
const page = context.pages()[0] || await context.newPage();
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
let failed = false;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const msg = () => page.textContent('#discover-msg');
const discoverDone = () => page.waitForFunction(() => !document.getElementById('camera-discover').disabled, null, { timeout: TIMEOUT });

try {
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForSelector('#auth:not([hidden])', { timeout: TIMEOUT });
  await page.fill('#auth-password', oneTime);
  await page.click('#auth-submit');
  await page.waitForFunction(() => document.getElementById('auth-title').textContent.includes('new admin password'), null, { timeout: TIMEOUT });
  await page.fill('#auth-password', 'installer-password');
  await page.fill('#auth-repeat', 'installer-password');
  await page.click('#auth-submit');
  await page.waitForSelector('#tabs:not([hidden])', { timeout: TIMEOUT });
  await page.click('[data-tab="cameras"]');
  // The demo's one camera: the tab is drawn once the config has loaded.
  await page.waitForSelector('#cameras .entry', { timeout: TIMEOUT });
  const before = await page.locator('#cameras .entry').count();

  await page.click('#camera-discover');
  check(await page.isDisabled('#camera-discover'), 'Discover is disabled while it listens');
  await discoverDone();
  check(/^No ONVIF cameras answered within 3 s/.test(await msg()), `nobody answering is said so (${await msg()})`);

  console.log('WAITING');
  await lines.next();

  await page.click('#camera-discover');
  await discoverDone();
  check(/^1 found/.test(await msg()), `one camera found (${await msg()})`);
  const row = page.locator('#discover-list .discovered');
  const text = await row.textContent();
  check(text.includes('Gate camera') && text.includes('WSD Test Cam') && text.includes('10.231.7.2:8080'), `the row shows name, hardware and address (${text})`);
  await page.screenshot({ path: path.join(outDir, 'discover-found.png') });

  await row.locator('button', { hasText: 'Add this camera' }).click();
  const entries = page.locator('#cameras .entry');
  // The page adds it once the config it edits has loaded (editConfig awaits it).
  await page.waitForFunction((n) => document.querySelectorAll('#cameras .entry').length === n, before + 1, { timeout: TIMEOUT }).catch(() => {});
  check(await entries.count() === before + 1, 'a camera is added');
  const entry = entries.last();
  check(await entry.locator('[data-path$=".name"] input').inputValue() === 'Gate camera', 'its name is filled in');
  const note = await entry.locator('.onvif-found').textContent();
  check(note.includes('http://10.231.7.2:8080/onvif/device_service'), `its ONVIF device service is shown (${note})`);
  check(await entry.locator('.onvif-found').getAttribute('data-onvif-host') === '10.231.7.2:8080', 'the host is there for From ONVIF');
  check(/10\.231\.7\.2:554/.test(await entry.locator('[data-path$=".url"] input').getAttribute('placeholder')), 'the RTSP URL hint names the camera');
  check(consoleErrors.length === 0, `no console errors (${consoleErrors.join(' | ')})`);
} catch (e) {
  failed = true;
  console.log('not ok - ' + e.message);
  await page.screenshot({ path: path.join(outDir, 'discover-failure.png') }).catch(() => {});
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
