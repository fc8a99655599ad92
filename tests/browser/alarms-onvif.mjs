// ONVIF inputs on the Alarms tab, in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium), from a LAN-style origin. Started by tests/browser.rs with a running
// `edgecam demo --streams 2 --hostname edgebox.test` and the ONVIF test camera
// (tests/support/onvif_camera.py) on loopback:
//   node alarms-onvif.mjs <port> <one-time password> <onvif port> <artifact dir>
//
// As an installer would: add an alarm, tick "ONVIF camera events", give the camera by its
// ONVIF address, user and a wrong password, save; the status says the camera refused the
// password; type the right one, save: the box subscribes to the camera's events. The password
// is write-only: no field shows it after the save, and an edit that leaves it alone keeps it.
// Unticking removes the input. Prints `RESULT {...}`.
import { launch, pageDriver } from './chromium.mjs';
import { check, waitFor, login } from './mse-scenario.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [port, oneTime, onvifPort, outDir] = process.argv.slice(2);
if (!port || !oneTime || !onvifPort || !outDir) {
  console.error('usage: node alarms-onvif.mjs <port> <one-time password> <onvif port> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const HOST = 'edgebox.test';
const PASSWORD = 's3cret:pw';
const TIMEOUT = 30000;

const { context, close } = await launch({ extraArgs: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`] });
const errors = [];
const page = context.pages()[0] || await context.newPage();
const d = pageDriver(page, errors, TIMEOUT);
const f = (key) => `[data-path="alarms[0].onvif.${key}"]`;
// The `door` input's row of /api/status, fetched with the page's session.
const doorInput = () => d.eval(() => fetch('/api/status').then((r) => r.json())
  .then((st) => (st.inputs || []).find((i) => i.alarm === 'door') || null));
const saved = async (what) => {
  await waitFor(d, () => document.getElementById('alarms-msg').textContent.includes('Saved'), null, what);
  check(true, what);
  // The page reloads the config after a save; the next edit works on that.
  await page.waitForTimeout(300);
};
const save = async (what) => {
  await d.eval(() => { document.getElementById('alarms-msg').textContent = ''; });
  await d.click('#alarms-save');
  await saved(what);
};

let failed = false;
const result = {};
try {
  await login(d, `http://${HOST}:${port}`, oneTime);
  check(await d.eval(() => window.isSecureContext) === false, 'the LAN origin is not a secure context');
  await d.click('#tabs button[data-tab="alarms"]');
  await page.waitForSelector('#alarm-add', { timeout: TIMEOUT });
  await d.click('#alarm-add');
  await d.fill('[data-path="alarms[0].id"] input', 'door');
  await page.selectOption('[data-path="alarms[0].stream"] select', 'cam2');
  await page.selectOption('[data-path="alarms[0].mode"] select', 'transparent');
  check(await page.locator(f('address')).count() === 0, 'no ONVIF fields before the box is ticked');
  await page.check('[data-path="alarms[0].onvif"] input');
  check(await page.inputValue(`${f('topic')} input`) === 'motion', 'a new ONVIF input listens for motion');
  check(await page.inputValue(`${f('stream')} select`) === '', 'the camera is given by address by default');
  await d.fill(`${f('address')} input`, `127.0.0.1:${onvifPort}`);
  await d.fill(`${f('user')} input`, 'admin');
  check(await page.getAttribute(`${f('password')} input`, 'type') === 'password', 'the ONVIF password field hides what is typed');
  await d.fill(`${f('password')} input`, 'wrong');
  await save('the alarm with its ONVIF input saved');

  await waitFor(d, () => fetch('/api/status').then((r) => r.json())
    .then((st) => (st.inputs || []).some((i) => i.alarm === 'door' && i.state === 'failed')), null, 'the wrong password fails the input');
  const bad = await doorInput();
  check(bad.kind === 'onvif' && /refused the user name or password/.test(bad.error), `the status says why (${bad.error})`);

  await d.fill(`${f('password')} input`, PASSWORD);
  await save('the right password saved');
  await waitFor(d, () => fetch('/api/status').then((r) => r.json())
    .then((st) => (st.inputs || []).some((i) => i.alarm === 'door' && i.state === 'ok')), null, 'the box subscribes to the camera');
  check((await doorInput()).kind === 'onvif', 'the status row is an onvif input');

  // Write-only: the stored password is in no field, the field says one is saved.
  const shown = await d.eval(() => [...document.querySelectorAll('input')].map((i) => i.value).filter((v) => v.includes('s3cret')));
  check(shown.length === 0, 'no field shows the saved password');
  check(/saved/.test(await page.getAttribute(`${f('password')} input`, 'placeholder')), 'the password field says a password is saved');

  // An edit that leaves the password alone keeps it.
  await d.fill(`${f('topic')} input`, 'tamper');
  await save('the event changed to tamper');
  const cfg = await d.eval(() => fetch('/api/config').then((r) => r.json()));
  const o = cfg.alarms[0].onvif;
  check(o.topic === 'tamper' && o.password === PASSWORD && o.user === 'admin' && o.address === `127.0.0.1:${onvifPort}`,
    `the config has the edited event and the password kept (${o.topic}, ${o.address})`);
  await waitFor(d, () => fetch('/api/status').then((r) => r.json())
    .then((st) => (st.inputs || []).some((i) => i.alarm === 'door' && i.state === 'ok')), null, 'subscribed again after the edit');
  await page.screenshot({ path: path.join(outDir, 'alarms-onvif.png'), fullPage: true });

  // Unticked: the input goes.
  await page.uncheck('[data-path="alarms[0].onvif"] input');
  await save('the ONVIF input removed');
  const after = await d.eval(() => fetch('/api/config').then((r) => r.json()));
  check(after.alarms[0].onvif === null || after.alarms[0].onvif === undefined, 'the config has no ONVIF input');
  await waitFor(d, () => fetch('/api/status').then((r) => r.json())
    .then((st) => !(st.inputs || []).some((i) => i.alarm === 'door')), null, 'the status has no ONVIF input row');
  check(errors.length === 0, `no console errors (${errors.join('; ')})`);
  result.ok = true;
} catch (e) {
  failed = true;
  console.error(e);
  await page.screenshot({ path: path.join(outDir, 'alarms-onvif-failed.png'), fullPage: true }).catch(() => {});
} finally {
  await close();
}
console.log('RESULT ' + JSON.stringify(result));
process.exit(failed ? 1 : 0);
