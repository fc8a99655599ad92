// Event clips in the page, in headless Chromium (playwright-core, Debian's /usr/bin/chromium),
// from a LAN-style origin. Started by tests/browser.rs with a running
// `edgecam demo --streams 2 --hostname edgebox.test`:
//   node clips.mjs <port> <one-time password> <artifact dir>
//
// As an installer and then a guard would: turn clips on and add an alarm on the Alarms tab,
// raise the alarm (a detector's HTTP call), press "Replay the last 3 s" in the banner and see
// the clip play beside the live picture, which keeps painting; clear the alarm, open the
// System tab, play the clip from the Events table's link, seek in it (HTTP range requests),
// and delete it. Prints `RESULT {...}`.
import { launch, pageDriver } from './chromium.mjs';
import { check, waitFor, stats, login, TIMEOUT } from './mse-scenario.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [port, oneTime, outDir] = process.argv.slice(2);
if (!port || !oneTime || !outDir) {
  console.error('usage: node clips.mjs <port> <one-time password> <artifact dir>');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const HOST = 'edgebox.test';
const PRE_S = 3;

const { context, close } = await launch({ extraArgs: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`] });
const errors = [];

const driver = (page) => pageDriver(page, errors, TIMEOUT);

// A request from the page with its session, as a detector (or the guard's click) makes it.
const post = (d, url) => d.eval((u) => fetch(u, { method: 'POST' }).then((r) => r.status), url);

// The `<video>` `sel` has decoded a picture of the camera's size and plays on.
async function plays(d, sel, what) {
  await waitFor(d, (s) => { const v = document.querySelector(s); return v.readyState >= 2 && v.videoWidth > 0; }, sel, `${what}: a picture`);
  const v0 = await d.eval((s) => { const v = document.querySelector(s); return { w: v.videoWidth, h: v.videoHeight, t: v.currentTime, err: v.error && v.error.message }; }, sel);
  check(v0.w === 640 && v0.h === 360, `${what}: 640x360 (got ${v0.w}x${v0.h})`);
  await waitFor(d, ([s, t]) => document.querySelector(s).currentTime > t + 0.5, [sel, v0.t], `${what}: time runs`);
  return v0;
}

let failed = false;
const result = {};
try {
  const page = context.pages()[0] || await context.newPage();
  const d = driver(page);
  await login(d, `http://${HOST}:${port}`, oneTime);

  // The installer: an alarm on cam2 and clips on, from the Alarms tab.
  await d.click('#tabs button[data-tab="alarms"]');
  await page.waitForSelector('[data-path="clips.enabled"] input', { timeout: TIMEOUT });
  await d.click('#alarm-add');
  await d.fill('[data-path="alarms[0].id"] input', 'door');
  await d.fill('[data-path="alarms[0].name"] input', 'Front door');
  await page.selectOption('[data-path="alarms[0].stream"] select', 'cam2');
  // Transparent: the alarm ends when the detector clears it (no hold).
  await page.selectOption('[data-path="alarms[0].mode"] select', 'transparent');
  await page.check('[data-path="clips.enabled"] input');
  await d.fill('[data-path="clips.pre_s"] input', String(PRE_S));
  await d.fill('[data-path="clips.post_s"] input', '2');
  await d.click('#alarms-save');
  await waitFor(d, () => document.getElementById('alarms-msg').textContent.includes('Saved'), null, 'alarm and clip settings saved');
  check(true, 'clips turned on and an alarm added on the Alarms tab');

  // The guard, on the live view; the ring fills with the seconds before the alarm.
  await d.click('#tabs button[data-tab="live"]');
  await waitFor(d, () => window.edgecam.stats.painted >= 5, null, 'the live view paints');
  await page.waitForTimeout((PRE_S + 1) * 1000);
  check(await post(d, '/api/alarms/door/trigger') === 200, 'a detector raises the alarm');
  const replay = '[data-replay="door"]';
  await page.waitForSelector(replay, { timeout: TIMEOUT });
  const label = (await page.textContent(replay)).trim();
  check(label === `Replay the last ${PRE_S} s`, `the banner offers "${label}"`);
  await d.click(replay);
  await plays(d, '#replay-video', 'the replay beside the live picture');
  // The replay loops the seconds up to the raise and one after: its time goes back to the
  // start there. (A first pass may end sooner, where the file ended when it was loaded; the
  // page then loads what has been written since.)
  const rec = await d.eval(() => fetch('/api/clips?alarm=door').then((r) => r.json()).then((j) => j.clips[0]));
  const raiseS = (rec.raised_us - rec.start_us) / 1e6;
  const tops = await d.eval(() => new Promise((resolve) => {
    const v = document.getElementById('replay-video');
    let top = 0;
    const seen = [];
    const t = setInterval(() => {
      if (v.currentTime + 0.5 < top) { seen.push(top); top = 0; if (seen.length === 3) { clearInterval(t); resolve(seen); } }
      top = Math.max(top, v.currentTime);
    }, 50);
    setTimeout(() => { clearInterval(t); resolve(seen); }, 25000);
  }));
  const loopAt = tops[tops.length - 1];
  check(tops.length === 3 && loopAt >= raiseS && loopAt <= raiseS + 2,
    `the replay loops the ${raiseS.toFixed(1)} s before the raise and 1 s after (went back to the start at ${tops.map((x) => x.toFixed(2)).join(', ')} s)`);
  // The live picture goes on beside the replay (progress, not a rate: CI machines are shared).
  const painted = (await stats(d)).painted;
  await waitFor(d, (n) => window.edgecam.stats.painted >= n + 10, painted, 'the live picture paints on beside the replay');
  const live = (await stats(d)).painted - painted;
  check(live >= 10, `the live picture paints on beside the replay (${live} more frames)`);
  result.replay_loop_s = loopAt;
  await page.screenshot({ path: path.join(outDir, 'clips-replay.png') });
  await d.click('#replay-close');
  check(await page.isHidden('#replay'), 'the replay closes');

  // The alarm ends; the clip is finished post_s later.
  check(await post(d, '/api/alarms/door/clear') === 200, 'the detector clears the alarm');
  await d.click('#tabs button[data-tab="system"]');
  await waitFor(d, () => [...document.querySelectorAll('#clips tr[data-clip]')].some((r) => r.textContent.includes('complete')), null, 'the System tab lists the complete clip', TIMEOUT);
  const info = await page.textContent('#clips-info');
  check(/1 clips/.test(info), `the System tab says how many clips there are (${info})`);
  await page.waitForSelector('[data-event-clip]', { timeout: TIMEOUT });
  check(true, 'the Events table links the raise to its clip');
  await d.click('[data-event-clip]');
  await plays(d, '#clip-video', 'the clip from the Events link');
  const duration = await d.eval(() => document.getElementById('clip-video').duration);
  check(Number.isFinite(duration) && duration >= PRE_S, `the clip lasts ${duration} s (${PRE_S} s before the raise and more)`);
  // Seeking needs range requests: the middle of the clip shows a picture.
  await d.eval(() => new Promise((resolve, reject) => {
    const v = document.getElementById('clip-video');
    v.pause();
    v.addEventListener('seeked', resolve, { once: true });
    v.addEventListener('error', () => reject(new Error(v.error && v.error.message)), { once: true });
    v.currentTime = v.duration / 2;
  }));
  check(true, 'the clip seeks to its middle');
  result.clip_duration_s = Math.round(duration * 10) / 10;
  const c = await d.eval(() => fetch('/api/clips').then((r) => r.json()).then((j) => j.clips[0]));
  result.pre_roll_s = (c.raised_us - c.start_us) / 1e6;
  check(result.pre_roll_s >= PRE_S, `the clip starts ${result.pre_roll_s} s before the raise (at a keyframe at or before ${PRE_S} s)`);
  await page.screenshot({ path: path.join(outDir, 'clips-system.png') });

  // An admin deletes it.
  await d.click('[data-delete]');
  await waitFor(d, () => document.querySelectorAll('#clips tr[data-clip]').length === 0, null, 'the deleted clip leaves the list');
  const left = await d.eval(() => fetch('/api/clips').then((r) => r.json()).then((j) => j.total));
  check(left === 0, 'the box has no clip left');
  check(errors.length === 0, `no console errors (${errors.join(' | ')})`);
  console.log('RESULT ' + JSON.stringify(result));
} catch (e) {
  failed = true;
  console.error('FAILED: ' + (e && e.stack || e));
  for (const [i, p] of context.pages().entries()) {
    try { await p.screenshot({ path: path.join(outDir, `clips-failure-${i}.png`) }); } catch (_) { /* closed */ }
  }
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
