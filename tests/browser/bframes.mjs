// A camera with B-frames (x264 Main, bframes=2: decode order is not presentation order), in
// headless Chromium (playwright-core, Debian's /usr/bin/chromium). Started by
// tests/browser.rs with a running `edgecam demo --hostname edgebox.test` and the test RTSP
// server:
//   node bframes.mjs <port> <https port> <one-time password> <camera url> <fps> <artifact dir>
//
// MSE from the plain-HTTP LAN origin: the fMP4 composition offsets put the frames in
// presentation order, so the <video> plays at about the camera's rate with no corrupted
// frames. WebCodecs over HTTPS (a secure context): the page gives each chunk its
// presentation timestamp, so the pictures the decoder hands out (recorded by an init script
// that wraps VideoDecoder) come in strictly increasing timestamp order, at about the rate.
// No console errors. Prints `RESULT {...}`.
import { launch, pageDriver } from './chromium.mjs';
import { check, waitFor, stats, login, paintRate } from './mse-scenario.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [port, httpsPort, oneTime, cameraUrl, fpsArg, outDir] = process.argv.slice(2);
if (!port || !httpsPort || !oneTime || !cameraUrl || !fpsArg || !outDir) {
  console.error('usage: node bframes.mjs <port> <https port> <one-time password> <camera url> <fps> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const HOST = 'edgebox.test';
const fps = Number(fpsArg);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const { context, close } = await launch({
  extraArgs: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`, '--ignore-certificate-errors'],
});
await context.addInitScript(() => {
  const Real = window.VideoDecoder;
  if (!Real) return;
  window.decodedTs = [];
  window.VideoDecoder = class RecordingDecoder extends Real {
    constructor(init) {
      super({ ...init, output: (f) => { window.decodedTs.push(f.timestamp); if (window.decodedTs.length > 2000) window.decodedTs.shift(); init.output(f); } });
    }
  };
});

const errors = [];
const driver = (page) => pageDriver(page, errors);

let failed = false;
try {
  const page = context.pages()[0] || await context.newPage();
  const d = driver(page);
  await login(d, `http://${HOST}:${port}`, oneTime);
  const put = await d.eval(async (url) => {
    const cfg = await fetch('/api/config').then((r) => r.json());
    cfg.streams.push({ id: 'bf', name: 'B-frame camera', kind: 'rtsp', url });
    const r = await fetch('/api/config', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(cfg) });
    return r.status === 200 ? 200 : `${r.status} ${await r.text()}`;
  }, cameraUrl);
  check(put === 200, `the camera is added (PUT /api/config: ${put})`);
  const sel = await d.eval(() => fetch('/api/active', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"stream": "bf"}' }).then((r) => r.status));
  check(sel === 200, `the camera is selected (${sel})`);

  // MSE over plain HTTP.
  await waitFor(d, () => window.edgecam.stats.stream === 'bf' && window.edgecam.stats.path === 'mse', null, 'the B-frame camera painted over MSE');
  await sleep(1000);
  const mseRate = await paintRate(d, 4);
  const quality = await d.eval(() => { const q = document.getElementById('mse-video').getVideoPlaybackQuality(); return { total: q.totalVideoFrames, corrupted: q.corruptedVideoFrames || 0 }; });
  check(mseRate >= fps * 0.5, `MSE plays the B-frame stream at about its rate (${mseRate.toFixed(1)}/s)`);
  check(quality.total > 0 && quality.corrupted === 0, `MSE: no corrupted frames (${JSON.stringify(quality)})`);

  // WebCodecs over HTTPS.
  const sp = await context.newPage();
  const w = driver(sp);
  await w.goto(`https://${HOST}:${httpsPort}/`);
  await waitFor(w, () => !document.getElementById('tab-live').hidden, null, 'the live tab over HTTPS');
  check(await w.eval(() => window.isSecureContext && window.VideoDecoder.name === 'RecordingDecoder'), 'a secure context with the recording VideoDecoder');
  await waitFor(w, () => window.edgecam.stats.stream === 'bf' && window.edgecam.stats.path === 'h264', null, 'the B-frame camera painted over WebCodecs');
  await sleep(1000);
  await w.eval(() => { window.decodedTs = []; });
  const wcRate = await paintRate(w, 4);
  const ts = await w.eval(() => window.decodedTs);
  const backwards = ts.filter((t, i) => i > 0 && t <= ts[i - 1]).length;
  check(wcRate >= fps * 0.5, `WebCodecs plays the B-frame stream at about its rate (${wcRate.toFixed(1)}/s)`);
  check(ts.length > fps && backwards === 0, `WebCodecs hands out ${ts.length} pictures in presentation order (${backwards} out of order)`);
  const s = await stats(w);
  check(s.jumps === 0, `WebCodecs keeps up with no jump (${s.jumps})`);
  await sp.screenshot({ path: path.join(outDir, 'bframes-webcodecs.png') });
  check(errors.length === 0, `no console errors (${errors.join(' | ')})`);
  console.log('RESULT ' + JSON.stringify({ mse_fps: Math.round(mseRate * 10) / 10, mse_quality: quality, webcodecs_fps: Math.round(wcRate * 10) / 10, webcodecs_pictures: ts.length }));
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e && e.stack || e));
  for (const [i, p] of context.pages().entries()) {
    try { await p.screenshot({ path: path.join(outDir, `bframes-failure-${i}.png`) }); } catch (_) { /* closed */ }
  }
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
