// The page as a LAN user opens it, in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium). Started by tests/browser.rs with a running `edgecam demo --hostname
// edgebox.test`:
//   node lan.mjs <port> <https port> <one-time password> <fps> <artifact dir>
//
// http://edgebox.test:PORT/ (mapped to 127.0.0.1 with --host-resolver-rules) is not a secure
// context: the page must choose the MSE path by itself and play the cameras' H.264 at full
// rate (mse-scenario.mjs). Then the same box over HTTPS (its own certificate accepted, as a
// user does: --ignore-certificate-errors) is a secure context that uses WebCodecs. Prints
// what it measured as one line: `RESULT {...}`.
import { launch } from './chromium.mjs';
import { mseScenario, check, waitFor, stats, checkPixels, paintRate, TIMEOUT } from './mse-scenario.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [port, httpsPort, oneTime, fpsArg, outDir] = process.argv.slice(2);
if (!port || !httpsPort || !oneTime || !fpsArg || !outDir) {
  console.error('usage: node lan.mjs <port> <https port> <one-time password> <fps> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const HOST = 'edgebox.test';
const fps = Number(fpsArg);

const { context, close } = await launch({
  extraArgs: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`, '--ignore-certificate-errors'],
});

// The scenario's driver over a playwright page.
function driver(page) {
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log('page:', m.text()); });
  return {
    goto: (url) => page.goto(url),
    eval: (fn, arg) => page.evaluate(fn, arg),
    click: (sel) => page.click(sel, { timeout: TIMEOUT }),
    fill: (sel, text) => page.fill(sel, text, { timeout: TIMEOUT }),
    screenshot: (file) => page.screenshot({ path: file }),
  };
}

let failed = false;
try {
  const page = context.pages()[0] || await context.newPage();
  const result = { mse: await mseScenario(driver(page), { base: `http://${HOST}:${port}`, oneTime, fps, outDir, prefix: 'lan-chromium' }) };

  // HTTPS: the same box, a secure context, WebCodecs.
  const sp = await context.newPage();
  const d = driver(sp);
  await d.goto(`https://${HOST}:${httpsPort}/`);
  check(await d.eval(() => window.isSecureContext) === true, 'the HTTPS page is a secure context');
  await waitFor(d, () => !document.getElementById('tab-live').hidden, null, 'the live tab over HTTPS');
  await waitFor(d, () => window.edgecam.stats.choice, null, 'the HTTPS page chose a path');
  let s = await stats(d);
  check(s.choice === 'webcodecs', `the HTTPS page chose WebCodecs (choice ${s.choice}, why: ${s.why})`);
  await checkPixels(d, 'webcodecs over HTTPS');
  s = await stats(d);
  check(s.path === 'h264', `the server sends H.264 access units (path ${s.path})`);
  check(await sp.isHidden('#https-offer'), 'no "why" line on the WebCodecs path');
  const rate = await paintRate(d, 3);
  check(rate >= fps * 0.6, `WebCodecs at full rate: ${rate.toFixed(1)} frames painted a second`);
  await d.screenshot(path.join(outDir, 'lan-chromium-https-webcodecs.png'));
  result.webcodecs_https = { fps: Math.round(rate * 10) / 10, first_frame_ms: s.firstPaintMs };
  console.log('RESULT ' + JSON.stringify(result));
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e && e.stack || e));
  for (const [i, p] of context.pages().entries()) {
    try { await p.screenshot({ path: path.join(outDir, `lan-chromium-failure-${i}.png`) }); } catch (_) { /* closed */ }
  }
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
