// The MSE scenario (mse-scenario.mjs) in a second engine: Debian's headless Firefox ESR,
// driven by puppeteer-core over WebDriver BiDi (no browser download: FIREFOX or
// /usr/bin/firefox-esr). Started by tests/browser.rs with a running `edgecam demo --hostname
// edgebox.test`:
//   node firefox.mjs <port> <one-time password> <fps> <artifact dir>
//
// Firefox resolves edgebox.test to the loopback address through the `network.dns.localDomains`
// pref, so the page is opened by a LAN-style name: not a secure context (a loopback IP or
// `localhost` would be one, and would get WebCodecs). Prints `RESULT {...}`.
import puppeteer from 'puppeteer-core';
import { mseScenario, TIMEOUT } from './mse-scenario.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [port, oneTime, fpsArg, outDir] = process.argv.slice(2);
if (!port || !oneTime || !fpsArg || !outDir) {
  console.error('usage: node firefox.mjs <port> <one-time password> <fps> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const HOST = 'edgebox.test';
const executablePath = process.env.FIREFOX || '/usr/bin/firefox-esr';
if (!fs.existsSync(executablePath)) {
  console.error(`FAILED: ${executablePath} is missing: apt-get install firefox-esr (or set FIREFOX)`);
  process.exit(1);
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecam-firefox-'));
const browser = await puppeteer.launch({
  browser: 'firefox',
  protocol: 'webDriverBiDi',
  executablePath,
  headless: true,
  userDataDir: profile,
  defaultViewport: { width: 1280, height: 900 },
  extraPrefsFirefox: {
    'network.dns.localDomains': HOST,
    // Muted autoplay is allowed by default; say so, so that a changed default fails loudly here.
    'media.autoplay.default': 0,
    // A closed network: no update, telemetry or safe-browsing traffic.
    'app.update.enabled': false,
    'datareporting.policy.dataSubmissionEnabled': false,
    'browser.safebrowsing.malware.enabled': false,
    'browser.safebrowsing.phishing.enabled': false,
  },
});

let failed = false;
let page = null;
try {
  page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warn') console.log('page:', m.text()); });
  const d = {
    goto: (url) => page.goto(url),
    eval: (fn, arg) => page.evaluate(fn, arg),
    click: (sel) => page.locator(sel).click(),
    fill: (sel, text) => page.locator(sel).fill(text),
    screenshot: (file) => page.screenshot({ path: file }),
  };
  const version = await browser.version();
  const mse = await mseScenario(d, { base: `http://${HOST}:${port}`, oneTime, fps: Number(fpsArg), outDir, prefix: 'firefox' });
  console.log('RESULT ' + JSON.stringify({ browser: version, mse }));
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e && e.stack || e));
  if (page) await page.screenshot({ path: path.join(outDir, 'firefox-failure.png') }).catch(() => {});
} finally {
  await browser.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
