// Decoder reorder hold (issue 16 item 4): how many frames Chromium's decoders hold before
// they output one, for the H.264 streams `edgecam-bench decoder-latency` prepared in DIR.
//
//   node decoder-latency.mjs DIR [FPS]
//
// DIR holds manifest.json and data.bin (see bench/src/declat.rs). For every stream it feeds
// the chunks one at a time at FPS (25) to
//   - a WebCodecs VideoDecoder (Annex B, no description, as web/app.js does), configured with
//     and without optimizeForLatency: chunks submitted when the first frame comes out, and
//     the steady-state lag (chunks submitted minus frames output, just before each submit);
//   - a <video> with MediaSource (the fMP4 of src/codec/fmp4.rs, one fragment per frame),
//     where the stream has one: fragments appended when the first frame is presented
//     (requestVideoFrameCallback), and appended minus presented in the steady state.
// It prints one `RESULT {json}` line. It asserts nothing about time: it is a measurement.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { launch } from './chromium.mjs';

const dir = process.argv[2];
const fps = Number(process.argv[3] || 25);
if (!dir) {
  console.error('usage: node decoder-latency.mjs DIR [FPS]');
  process.exit(2);
}
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
const data = fs.readFileSync(path.join(dir, 'data.bin'));

// The page: it fetches data.bin and manifest.json, and runs one measurement per call.
const PAGE = `<!doctype html><meta charset="utf-8"><video id="v" muted playsinline></video>
<script>
'use strict';
const sleepUntil = (t) => new Promise((r) => setTimeout(r, Math.max(0, t - performance.now())));
let blob = null, manifest = null;
async function load() {
  blob = new Uint8Array(await (await fetch('/data.bin')).arrayBuffer());
  manifest = await (await fetch('/manifest.json')).json();
  return manifest.streams.length;
}
const part = (r) => blob.slice(r[0], r[0] + r[1]);
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : null; };
// WebCodecs: feed chunk i at t0 + i / fps; before each submit, note how many are out.
async function webcodecs(index, optimizeForLatency, fps) {
  const s = manifest.streams[index];
  let outputs = 0, firstAfter = null, submitted = 0, error = null, outOfOrder = 0, lastTs = -1;
  const dec = new VideoDecoder({
    output: (f) => {
      outputs++;
      if (firstAfter === null) firstAfter = submitted;
      if (f.timestamp < lastTs) outOfOrder++;
      lastTs = f.timestamp; f.close();
    },
    error: (e) => { error = String(e); },
  });
  const config = { codec: s.codec, optimizeForLatency };
  const support = await VideoDecoder.isConfigSupported(config);
  if (!support.supported) return { error: 'not supported: ' + s.codec };
  dec.configure(config);
  const lags = [];
  const t0 = performance.now() + 50;
  for (let i = 0; i < s.chunks.length && !error; i++) {
    await sleepUntil(t0 + (i * 1000) / fps);
    if (i > 0) lags.push(submitted - outputs);
    const c = s.chunks[i];
    // Presentation timestamps: frames carry their display index (B-frames reorder them).
    dec.decode(new EncodedVideoChunk({ type: c.key ? 'key' : 'delta', timestamp: c.pts * 40000, data: part(c.range) }));
    submitted++;
  }
  await sleepUntil(t0 + (s.chunks.length * 1000) / fps);
  lags.push(submitted - outputs);
  const beforeFlush = outputs;
  try { await dec.flush(); } catch (e) { error = error || String(e); }
  dec.close();
  const steady = lags.slice(Math.floor(lags.length / 2));
  return { firstAfter, steadyLag: median(steady), maxLag: Math.max(...steady), beforeFlush, outputs, outOfOrder, error };
}
// MSE: append fragment i at t0 + i / fps; presented frames come from requestVideoFrameCallback.
async function mse(index, fps) {
  const s = manifest.streams[index];
  if (!s.mse) return null;
  const v = document.getElementById('v');
  const ms = new MediaSource();
  v.src = URL.createObjectURL(ms);
  await new Promise((r) => ms.addEventListener('sourceopen', r, { once: true }));
  const sb = ms.addSourceBuffer(s.mse.mime);
  sb.mode = 'segments';
  const append = (bytes) => new Promise((res, rej) => {
    sb.addEventListener('updateend', res, { once: true });
    sb.addEventListener('error', rej, { once: true });
    sb.appendBuffer(bytes);
  });
  await append(part(s.mse.init));
  let appended = 0, presented = 0, firstAfter = null, lastIndex = -1;
  const lags = [];
  const onFrame = (now, meta) => {
    presented++;
    lastIndex = Math.round(meta.mediaTime * fps);
    if (firstAfter === null) firstAfter = appended;
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
  const t0 = performance.now() + 50;
  let playing = null;
  for (let i = 0; i < s.mse.frags.length; i++) {
    await sleepUntil(t0 + (i * 1000) / fps);
    if (i > 0) lags.push(appended - (lastIndex + 1));
    await append(part(s.mse.frags[i]));
    appended++;
    if (!playing) playing = v.play().catch((e) => e);
  }
  await sleepUntil(t0 + (s.mse.frags.length * 1000) / fps);
  lags.push(appended - (lastIndex + 1));
  const steady = lags.slice(Math.floor(lags.length / 2));
  const result = { firstAfter, steadyLag: median(steady), maxLag: Math.max(...steady), presented, appended,
    dropped: v.getVideoPlaybackQuality().droppedVideoFrames, bufferedEnd: v.buffered.length ? v.buffered.end(0) : null,
    currentTime: v.currentTime };
  v.pause(); v.removeAttribute('src'); v.load();
  return result;
}
window.bench = { load, webcodecs, mse };
</script>`;

const server = http.createServer((req, res) => {
  if (req.url === '/') { res.writeHead(200, { 'content-type': 'text/html' }); res.end(PAGE); return; }
  if (req.url === '/data.bin') { res.writeHead(200, { 'content-type': 'application/octet-stream' }); res.end(data); return; }
  if (req.url === '/manifest.json') { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(manifest)); return; }
  res.writeHead(404); res.end();
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;
const browser = await launch({ extraArgs: ['--autoplay-policy=no-user-gesture-required'] });
const results = [];
try {
  const page = await browser.context.newPage();
  page.on('console', (m) => console.error('page: ' + m.text()));
  await page.goto(base + '/');
  const n = await page.evaluate(() => window.bench.load());
  const ua = await page.evaluate(() => navigator.userAgent);
  for (let i = 0; i < n; i++) {
    const s = manifest.streams[i];
    for (const latency of [true, false]) {
      const r = await page.evaluate(([i, l, f]) => window.bench.webcodecs(i, l, f), [i, latency, fps]);
      console.error(`${s.name} webcodecs optimizeForLatency=${latency}: ${JSON.stringify(r)}`);
      results.push({ stream: s.name, path: 'webcodecs', optimizeForLatency: latency, ...r });
    }
    const m = await page.evaluate(([i, f]) => window.bench.mse(i, f), [i, fps]);
    if (m) {
      console.error(`${s.name} mse: ${JSON.stringify(m)}`);
      results.push({ stream: s.name, path: 'mse', ...m });
    }
  }
  console.log('RESULT ' + JSON.stringify({ userAgent: ua, fps, results }));
} finally {
  await browser.close();
  server.close();
}
