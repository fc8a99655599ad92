// Latency benchmark of the edgecam page in one headless Chromium, driven by playwright-core
// (Debian's /usr/bin/chromium). Started by `edgecam-bench browser` with a running
// `edgecam demo --streams 4`:
//
//   node bench.mjs <base url> <one-time password> <iterations> <steady seconds> <gop|0> [lan url] [lan https url]
//
// It logs in with the one-time password and sets a new one (through the page, as a user
// would), adds a transparent alarm on the last stream, and then, for the WebCodecs path and
// for the JPEG path (forced with ?mode=jpeg) on <base url>, and, with a `lan url`
// (http://edgebox.test:PORT, a name Chromium maps to 127.0.0.1 with --host-resolver-rules, so
// the page is not a secure context), for the MSE path the page chooses there by itself (no
// ?mode; the run fails unless it chose `mse` and isSecureContext is false), measures
// `iterations` times each:
//   - first frame: page connect (the live WebSocket is opened) to the first frame painted;
//   - switch: click on a stream's thumbnail to that stream's first frame painted;
//   - alarm: the alarm API call (issued from the page) to the alarm stream's first frame painted;
// and, for `steady seconds` on one stream, ingest-to-paint of every painted frame (the receive
// wall time in the frame header against the paint time; both clocks are this machine's).
// Pauses between iterations are random, so switches land at every position in the GOP.
// With a `gop` other than 0, every stream's keyframe interval is set to that many frames first.
// With a `lan https url` (https://edgebox.test:HTTPS_PORT, the box's own certificate accepted as
// a user does, here with --ignore-certificate-errors) the WebCodecs path is measured again from
// that origin, a secure context: the row issue 16 asks for beside MSE.
// With BENCH_CAMERAS (a JSON array of RTSP URLs, one per demo stream), the demo's test patterns
// are replaced through the config API by those cameras (as an installer adds them on the page)
// and the run waits until all are live: the camera-like 1080p clip of `edgecam-bench browser
// --rtsp`.
// Connect → first frame is measured from the creation of the page's first WebSocket (the
// __benchSockets hook below), on every path.
// It prints the raw samples as one line: `RESULT {...}`.
import { launch } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [base, oneTime, itersArg, steadyArg, gopArg, lanBase, lanHttps] = process.argv.slice(2);
if (!base || !oneTime) {
  console.error('usage: node bench.mjs <base url> <one-time password> [iterations] [steady seconds] [gop|0] [lan url]');
  process.exit(2);
}
const ITERS = Number(itersArg || 30);
const STEADY_S = Number(steadyArg || 10);
const CAMERAS = process.env.BENCH_CAMERAS ? JSON.parse(process.env.BENCH_CAMERAS) : null;
// With cameras the GOP is the RTSP server's, not a setting of the box.
const GOP = !CAMERAS && gopArg && gopArg !== '0' ? Number(gopArg) : null;
const NEW_PASSWORD = 'browser-bench-password';
const TIMEOUT = 30000;
const ALARM_STREAM = 'cam4';
const USER_STREAMS = ['cam1', 'cam2', 'cam3'];

// Before the page's own script runs: note when each WebSocket is created, so connect-to-paint
// can be measured even on a page build that does not record it itself.
function recordSockets() {
  const Orig = window.WebSocket;
  window.__benchSockets = [];
  window.WebSocket = class extends Orig {
    constructor(...args) {
      super(...args);
      window.__benchSockets.push(performance.now());
    }
  };
}

// The LAN-style name for the MSE row; it must resolve to the demo's address.
const lanHost = lanBase ? new URL(lanBase).hostname : null;
const extraArgs = lanHost ? [`--host-resolver-rules=MAP ${lanHost} 127.0.0.1`] : [];
if (lanHttps) extraArgs.push('--ignore-certificate-errors');
const { context, close } = await launch({ extraArgs });
await context.addInitScript(recordSockets);
// Development aid: EDGECAM_APP_JS serves a working-tree app.js instead of the embedded one,
// to try page changes without rebuilding the daemon. Not for numbers of record.
if (process.env.EDGECAM_APP_JS) {
  const body = fs.readFileSync(process.env.EDGECAM_APP_JS, 'utf8');
  await context.route('**/app.js', (route) => route.fulfill({ body, contentType: 'text/javascript' }));
}
let failed = false;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A random pause, so that measurements fall on random positions in the GOP.
const pause = () => sleep(200 + Math.random() * 600);
const log = (s) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}`);

async function waitMark(page, label) {
  await page.waitForFunction((l) => window.edgecam.stats.marks.some((m) => m.label === l), label, { timeout: TIMEOUT });
  return page.evaluate((l) => {
    const m = window.edgecam.stats.marks.filter((x) => x.label === l).pop();
    window.edgecam.stats.marks = window.edgecam.stats.marks.filter((x) => x.label !== l);
    return m;
  }, label);
}

// The page shows `stream`, painted, with no measurement pending.
async function waitShowing(page, stream) {
  await page.waitForFunction((s) => window.edgecam.stats.stream === s, stream, { timeout: TIMEOUT });
}

async function login(page) {
  await page.goto(base + '/');
  await page.waitForSelector('#auth-form', { state: 'visible', timeout: TIMEOUT });
  await page.fill('#auth-password', oneTime);
  await page.click('#auth-submit');
  await page.waitForFunction(() => document.getElementById('auth-title').textContent.includes('new admin password'), null, { timeout: TIMEOUT });
  await page.fill('#auth-password', NEW_PASSWORD);
  await page.fill('#auth-repeat', NEW_PASSWORD);
  await page.click('#auth-submit');
  await page.waitForSelector('#tab-live:not([hidden])', { timeout: TIMEOUT });
  // The bench alarm (transparent: on while triggered), and no minimum dwell: the dwell is a
  // deliberate hold against flicker, not latency, and would only slow the iterations down.
  const status = await page.evaluate(async ([stream, gop, cameras]) => {
    const cfg = await (await fetch('/api/config')).json();
    if (gop) for (const s of cfg.streams) s.gop = gop;
    if (cameras) {
      cfg.streams.forEach((s, i) => {
        Object.assign(s, { kind: 'rtsp', url: cameras[i], transport: 'tcp', width: null, height: null, fps: null, bitrate_kbps: null, gop: null });
      });
    }
    cfg.alarms = [{ id: 'bench', name: 'Bench alarm', stream, priority: 10, mode: 'transparent', hold_s: 30, video_loss: false, video_loss_after_s: 10, gpio: null, output: null }];
    cfg.select.min_dwell_ms = 0;
    const r = await fetch('/api/config', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(cfg) });
    return r.status + ' ' + await r.text();
  }, [ALARM_STREAM, GOP, CAMERAS]);
  if (!status.startsWith('200')) throw new Error('PUT /api/config failed: ' + status);
  // Restarted streams need a moment and a keyframe.
  if (GOP) await sleep(3000);
  if (CAMERAS) await waitAllLive(page);
}

// Every stream in /api/status is live with frames arriving (after cameras were added).
async function waitAllLive(page) {
  const end = Date.now() + 90000;
  for (;;) {
    const streams = await page.evaluate(async () => (await (await fetch('/api/status')).json()).streams.map(({ id, state, fps }) => ({ id, state, fps })));
    if (streams.every((s) => s.state === 'live' && s.fps > 0)) break;
    if (Date.now() > end) throw new Error('the cameras did not all go live within 90 s: ' + streams.map((s) => `${s.id} ${s.state}`).join(', '));
    await sleep(500);
  }
  // A full GOP in every ring, so a switch finds a keyframe.
  await sleep(4000);
  log('cameras live');
}

// Selects `stream` through the API (not measured) and waits until it is painted.
async function select(page, stream) {
  await page.evaluate((s) => fetch('/api/active', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ stream: s }) }), stream);
  await waitShowing(page, stream);
}

// The page at `origin` (another origin than `base`: its own session cookie) logged in with
// the password login() set. Cookies do not separate ports: https://edgebox.test:P2 gets the
// session of http://edgebox.test:P1, and the page is logged in already.
async function loginAgain(page, origin) {
  await page.goto(origin + '/');
  await page.waitForSelector('#auth-form:visible, #tab-live:not([hidden])', { timeout: TIMEOUT });
  if (await page.isVisible('#auth-form')) {
    await page.fill('#auth-password', NEW_PASSWORD);
    await page.click('#auth-submit');
  }
  await page.waitForSelector('#tab-live:not([hidden])', { timeout: TIMEOUT });
}

// What the server must send on each path (window.edgecam.stats.path).
const WIRE = { webcodecs: 'h264', jpeg: 'jpeg', mse: 'mse', webcodecs_lan: 'h264' };

async function measurePath(page, label, origin, url) {
  const r = { page: origin + url, first_frame_ms: [], first_frame_from_navigation_ms: [], switch_ms: [], alarm_ms: [], ingest_to_paint_ms: [], detail: { first_frame: [], switch: [], alarm: [] } };
  // 1. First frame: a fresh page load each time; measured from the WebSocket's creation.
  await select(page, 'cam1');
  for (let i = 0; i < ITERS; i++) {
    await page.goto(origin + url);
    await page.waitForFunction(() => window.edgecam.stats.painted >= 1, null, { timeout: TIMEOUT });
    const s = await page.evaluate(() => ({
      first: window.edgecam.stats.firstPaintAt ?? window.edgecam.stats.firstPaintMs,
      connect: window.__benchSockets[0] ?? window.edgecam.stats.connectMs,
      path: window.edgecam.stats.path,
      choice: window.edgecam.stats.choice,
      why: window.edgecam.stats.why,
      secure: window.isSecureContext,
      burst: window.edgecam.stats.firstBurst,
    }));
    if (s.path !== WIRE[label]) throw new Error(`${label}: the page at ${origin + url} uses the ${s.path} path (chose ${s.choice}: ${s.why}), not ${WIRE[label]}`);
    if (label === 'mse') {
      if (s.choice !== 'mse') throw new Error(`mse: the page at ${origin + url} chose ${s.choice} (${s.why}), not mse by itself`);
      if (s.secure !== false) throw new Error(`mse: the page at ${origin + url} is a secure context (isSecureContext ${s.secure}); the MSE row needs a plain-HTTP non-loopback origin`);
    }
    if (label === 'webcodecs_lan' && (s.choice !== 'webcodecs' || s.secure !== true)) {
      throw new Error(`webcodecs_lan: the page at ${origin + url} chose ${s.choice} (${s.why}; isSecureContext ${s.secure}), not webcodecs in a secure context`);
    }
    r.secure_context = s.secure;
    r.choice = s.choice;
    r.first_frame_ms.push(s.first - s.connect);
    r.first_frame_from_navigation_ms.push(s.first);
    const since = (x) => (x == null ? null : Math.round(x - s.connect));
    r.detail.first_frame.push({ ms: Math.round(s.first - s.connect), connect_at: Math.round(s.connect),
      init: since(s.burst && s.burst.initAt), first: since(s.burst && s.burst.firstRxAt), rx: since(s.burst && s.burst.rxAt), frames: s.burst && s.burst.frames });
    await pause();
  }
  log(`${label}: first frame done`);
  // 2. Switch: a click on another stream's thumbnail.
  await page.waitForSelector(`.thumb[data-stream="${USER_STREAMS[2]}"]`, { timeout: TIMEOUT });
  let current = 'cam1';
  for (let i = 0; i < ITERS; i++) {
    const next = USER_STREAMS[(USER_STREAMS.indexOf(current) + 1) % USER_STREAMS.length];
    await page.click(`.thumb[data-stream="${next}"]`);
    const m = await waitMark(page, 'click');
    r.switch_ms.push(m.ms);
    r.detail.switch.push(m);
    current = next;
    await pause();
  }
  log(`${label}: switch done`);
  // 3. Alarm: the API call to the alarm stream painted; then clear it and return.
  for (let i = 0; i < ITERS; i++) {
    await page.evaluate((s) => {
      window.edgecam.expect('alarm', s);
      return fetch('/api/alarms/bench/trigger', { method: 'POST' });
    }, ALARM_STREAM);
    const m = await waitMark(page, 'alarm');
    r.alarm_ms.push(m.ms);
    r.detail.alarm.push(m);
    await pause();
    await page.evaluate(() => fetch('/api/alarms/bench/clear', { method: 'POST' }));
    await waitShowing(page, current);
    await pause();
  }
  log(`${label}: alarm done`);
  // 4. Steady state on one stream.
  await sleep(1000);
  await page.evaluate(() => { window.edgecam.stats.latencies.length = 0; });
  const painted0 = await page.evaluate(() => window.edgecam.stats.painted);
  await sleep(STEADY_S * 1000);
  const s = await page.evaluate(() => JSON.parse(JSON.stringify(window.edgecam.stats)));
  r.ingest_to_paint_ms = s.latencies;
  r.steady_painted_fps = (s.painted - painted0) / STEADY_S;
  r.skipped = s.skipped;
  r.decoder_jumps = s.jumps;
  if (s.mse) r.mse_player = s.mse;
  log(`${label}: steady state done (${s.latencies.length} frames, ${r.steady_painted_fps.toFixed(1)} painted/s)`);
  return r;
}

try {
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error('page:', m.text()); });
  await login(page);
  log('logged in; alarm configured');
  const result = { chromium: context.browser() ? context.browser().version() : null, iterations: ITERS, steady_s: STEADY_S };
  result.webcodecs = await measurePath(page, 'webcodecs', base, '/');
  result.jpeg = await measurePath(page, 'jpeg', base, '/?mode=jpeg');
  if (lanBase) {
    await loginAgain(page, lanBase);
    log(`logged in at ${lanBase}`);
    result.mse = await measurePath(page, 'mse', lanBase, '/');
  }
  if (lanHttps) {
    await loginAgain(page, lanHttps);
    log(`logged in at ${lanHttps}`);
    result.webcodecs_lan = await measurePath(page, 'webcodecs_lan', lanHttps, '/');
  }
  result.chromium_version = await page.evaluate(() => navigator.userAgent);
  console.log('RESULT ' + JSON.stringify(result));
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e && e.stack || e));
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
