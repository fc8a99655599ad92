// edgecam page: login, live view (WebCodecs, MSE from mse.js, or JPEG over /api/live), stream
// strip, alarm banner, and the camera / alarm / system tabs that edit the config through
// PUT /api/config.
'use strict';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// ?mode=webcodecs|mse|jpeg forces a live path; jpeg is also forced on the server.
const MODE = params.get('mode');
const FORCE_JPEG = MODE === 'jpeg';
const HEADER_LEN = 36;
const FLAG_KEY = 1, FLAG_CATCH_UP = 4, FLAG_INIT = 16;
const CODEC_JPEG = 1, CODEC_FMP4 = 2;

// Measurements the browser test reads (window.edgecam.stats).
const stats = {
  path: null,           // what the server sends: 'h264' (WebCodecs), 'mse' or 'jpeg'
  choice: null,         // the path chosen at load: 'webcodecs', 'mse' or 'jpeg'
  why: null,            // why not WebCodecs (null on the WebCodecs path)
  secure: window.isSecureContext,
  mse: null,            // the MSE player's counters (appends, drops, jumps, lag)
  frames: 0,            // binary frames received
  painted: 0,           // frames drawn on the canvas
  firstPaintMs: null,   // page start to first painted frame
  latencies: [],        // ingest-to-paint, ms, newest last (bounded)
  skipped: 0,           // frames the server skipped for us
  jumps: 0,             // WebCodecs: times the page dropped its decoder's backlog at a keyframe
  marks: [],            // {label, stream, ms}: click/alarm to new stream painted
  stream: null,         // stream currently painted
  lastPaintAt: 0,       // performance.now() of the last paint
  connectMs: null,      // performance.now() when the live WebSocket was opened
};
// Where a switch's time goes, for the marks: when the `init` came, frames received since.
const burst = { initAt: 0, frames: 0, firstRxAt: 0 };
const pending = [];     // {label, stream, t0}: waiting for a stream to be painted
window.edgecam = {
  stats,
  // Starts a measurement that ends when `stream` is painted.
  expect(label, stream) { pending.push({ label, stream, t0: performance.now() }); },
  // Pixel fingerprint of the picture (a few sampled values) for tests: the canvas, or on the
  // MSE path the video drawn onto a scratch canvas.
  sample() {
    let c = $('video');
    if (!mseEl.hidden && mseEl.videoWidth) {
      c = document.createElement('canvas');
      c.width = mseEl.videoWidth; c.height = mseEl.videoHeight;
      c.getContext('2d', { willReadFrequently: true }).drawImage(mseEl, 0, 0);
    }
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const out = [];
    for (let i = 0; i < 64; i++) out.push(d[Math.floor(d.length / 64 * i / 4) * 4]);
    return out;
  },
};

function nowUs() { return (performance.timeOrigin + performance.now()) * 1000; }

// ---------------------------------------------------------------- API helpers

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const e = new Error((data && data.error) || r.statusText);
    e.status = r.status; e.field = data && data.field; e.errors = (data && data.errors) || [];
    throw e;
  }
  return data;
}

// ---------------------------------------------------------------- authentication

let authMode = 'login';   // login | setup | change

function showAuth(mode, hint) {
  authMode = mode;
  $('tabs').hidden = true;
  for (const t of document.querySelectorAll('.tab')) t.hidden = true;
  $('auth').hidden = false;
  $('auth-title').textContent = { login: 'Log in', setup: 'Set the admin password', change: 'Choose a new admin password' }[mode];
  $('auth-hint').textContent = hint || '';
  $('auth-where').textContent = {
    login: 'The admin password was chosen by whoever first opened this box (or preset in its config as web.admin_password_hash, made with `edgecam hash-password`). Forgotten? See "Admin password" in the README.',
    setup: 'This box is new: whoever reaches it first sets the admin password. Choose one now; it is needed for every change.',
    change: '',
  }[mode];
  $('who').hidden = true; $('logout').hidden = true;
  $('auth-repeat-row').hidden = mode === 'login';
  $('auth-current-row').hidden = true;
  $('auth-submit').textContent = mode === 'login' ? 'Log in' : 'Save password';
  $('auth-password').autocomplete = mode === 'login' ? 'current-password' : 'new-password';
  $('auth-password').value = ''; $('auth-repeat').value = ''; $('auth-error').textContent = '';
  $('auth-password').focus();
}

$('auth-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const pw = $('auth-password').value;
  $('auth-error').textContent = '';
  try {
    if (authMode === 'login') {
      const r = await api('POST', '/api/login', { password: pw });
      if (r.must_change_password) { showAuth('change', 'This was a one-time password. Choose your own.'); return; }
    } else {
      if (pw !== $('auth-repeat').value) { $('auth-error').textContent = 'The passwords differ.'; return; }
      if (authMode === 'setup') await api('POST', '/api/setup', { password: pw });
      else {
        const body = { new: pw };
        if (!$('auth-current-row').hidden) body.current = $('auth-current').value;
        await api('POST', '/api/password', body);
      }
    }
    start();
  } catch (e) {
    $('auth-error').textContent = e.message;
  }
});

async function start() {
  try {
    const h = await api('GET', '/api/health');
    if (h.setup_required) { showAuth('setup', 'No admin password is set yet.'); return; }
    // Asked first so that a page without a session shows the login form without a 401.
    if (!h.logged_in) { showAuth('login'); return; }
    const s = await api('GET', '/api/session');
    if (s.must_change_password) { showAuth('change', 'This was a one-time password. Choose your own.'); return; }
    session = s;
  } catch (e) {
    if (e.status === 401) { showAuth('login'); return; }
    if (e.status === 403) { showAuth('change', e.message); return; }
    $('auth-error').textContent = e.message; showAuth('login'); return;
  }
  $('auth').hidden = true;
  $('tabs').hidden = false;
  $('who').hidden = false; $('who').textContent = session.role;
  $('logout').hidden = false;
  for (const b of document.querySelectorAll('#tabs button')) b.hidden = session.role !== 'admin' && b.dataset.tab !== 'live' && b.dataset.tab !== 'system';
  showTab(currentTab);
  connectLive();
  refreshStatus();
}

let session = null;

// ---------------------------------------------------------------- tabs

let currentTab = 'live';
for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));

function showTab(name) {
  currentTab = name;
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('on', b.dataset.tab === name);
  for (const t of document.querySelectorAll('.tab')) t.hidden = t.id !== 'tab-' + name;
  document.body.classList.toggle('live', name === 'live');
  // Unsaved edits on one editor tab survive a visit to another; otherwise the editors show
  // what the box runs now.
  if ((name === 'cameras' || name === 'alarms' || name === 'tokens') && !configDirty) loadConfig();
  if (name === 'system') refreshSystem();
}

// ---------------------------------------------------------------- live view

let ws = null, sid = 0, codec = null, decoder = null, info = new Map(), chunkTs = 0, tsSid = -1, tsBase = 0;
let view = { stream: null, reason: '', alarms: [] };
// The shown stream's video state from the server (`init`.video, `video` messages), and when it
// came, so "down for" counts on between messages.
let video = null, videoAt = 0;
const names = new Map();   // stream id -> display name, from /api/status
let fpsCount = 0, fps = 0;
const canvas = $('video'), g2d = canvas.getContext('2d');
// The MSE path's picture, and its player (made at the first MSE `init`, kept for the page).
const mseEl = $('mse-video');
let mse = null;

// The live path, chosen once at load by what this browser can do, so that connecting never
// waits: WebCodecs decodes H.264 onto the canvas (secure contexts only: localhost or HTTPS;
// not every build has H.264), MSE plays it as fragmented MP4 in the <video>, and JPEG
// pictures (transcoded by the box) are the last resort. `why` says why not WebCodecs.
const pathChoice = choosePath().then((c) => { stats.choice = c.path; stats.why = c.why; renderWhy(); return c; });

async function choosePath() {
  const wc = 'VideoDecoder' in window && await VideoDecoder.isConfigSupported({ codec: 'avc1.42e01f' }).then((r) => r.supported, () => false);
  const ms = mseSupported();
  const noWc = !window.isSecureContext ? 'not a secure context: WebCodecs needs HTTPS'
    : ('VideoDecoder' in window ? 'this browser\'s WebCodecs cannot decode H.264' : 'this browser has no WebCodecs');
  if (MODE === 'jpeg') return { path: 'jpeg', why: 'forced by ?mode=jpeg' };
  if (MODE === 'mse') return ms ? { path: 'mse', why: 'forced by ?mode=mse' } : { path: 'jpeg', why: '?mode=mse, but this browser has no Media Source for H.264' };
  if (wc) return { path: 'webcodecs', why: null };
  if (MODE === 'webcodecs') return { path: 'jpeg', why: `?mode=webcodecs, but ${noWc}` };
  if (ms) return { path: 'mse', why: noWc };
  return { path: 'jpeg', why: `${noWc}, and it has no Media Source for H.264` };
}
const HELLO_CODECS = { webcodecs: ['h264', 'jpeg'], mse: ['mse', 'jpeg'], jpeg: ['jpeg'] };
// H.265 cameras: offered only where this browser says it decodes HEVC (hardware decoders,
// Safari). `hvc1` for WebCodecs, `mse-hvc1` for MSE; without them the box says what to change.
const HEVC_PROBE = 'hvc1.1.6.L93.B0';
async function helloCodecs(path) {
  const codecs = HELLO_CODECS[path].slice();
  try {
    if (path === 'webcodecs' && 'VideoDecoder' in window
        && (await VideoDecoder.isConfigSupported({ codec: HEVC_PROBE })).supported) codecs.push('hvc1');
  } catch (e) { /* no HEVC in WebCodecs */ }
  const MS = window.ManagedMediaSource || window.MediaSource;
  if (path === 'mse' && MS && MS.isTypeSupported(`video/mp4; codecs="${HEVC_PROBE}"`)) codecs.push('mse-hvc1');
  return codecs;
}
const PATH_LABEL = { h264: 'WebCodecs', webcodecs: 'WebCodecs', mse: 'MSE', jpeg: 'JPEG' };

function connectLive() {
  if (ws) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  stats.connectMs = performance.now();
  ws = new WebSocket(`${proto}//${location.host}/api/live${FORCE_JPEG ? '?mode=jpeg' : ''}`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = async () => {
    ws.send(JSON.stringify({ type: 'hello', codecs: await helloCodecs((await pathChoice).path) }));
  };
  ws.onmessage = (ev) => (typeof ev.data === 'string' ? onText(JSON.parse(ev.data)) : onFrame(ev.data));
  // The next WebSocket starts a new fMP4 timeline: the MediaSource goes with this one.
  ws.onclose = () => { ws = null; closeDecoder(); if (mse) mse.reset(); setTimeout(() => { if (session) connectLive(); }, 1000); };
}

function onText(msg) {
  if (msg.type === 'init') {
    const switched = msg.sid !== sid || msg.stream !== view.stream;
    sid = msg.sid; codec = msg.codec;
    burst.initAt = performance.now(); burst.frames = 0;
    stats.path = codec ? (codec === 'jpeg' ? 'jpeg' : msg.mime ? 'mse' : 'h264') : stats.path;
    if (codec && msg.mime) startMse(msg.mime);
    else if (codec && codec !== 'jpeg') openDecoder(codec); else closeDecoder();
    if (codec) { canvas.hidden = !!msg.mime; mseEl.hidden = !msg.mime; }
    // A new camera without video: the previous camera's picture must not stay up under the
    // new name. Blank the canvas; the message says whose video is missing and why.
    if (!codec && switched) blankCanvas();
    setVideo(msg.video || (codec ? { live: true } : null));
  }
  if (msg.type === 'video' && msg.sid === sid) setVideo(msg);
  if (msg.type === 'init' || msg.type === 'view') {
    const name = msg.type === 'init' ? msg.name : (msg.name || view.name);
    view = { stream: msg.stream, reason: msg.reason, alarms: msg.alarms || [], name };
    renderView();
    renderNoVideo();
  }
}

function blankCanvas() {
  g2d.fillStyle = '#000'; g2d.fillRect(0, 0, canvas.width, canvas.height);
  // The video keeps its last frame: the black canvas instead until the next `init` with video.
  canvas.hidden = false; mseEl.hidden = true;
  stats.stream = null;
}

function setVideo(v) { video = v; videoAt = performance.now(); renderNoVideo(); }

function streamName() { return view.name || names.get(view.stream) || view.stream || ''; }

// The last /api/status, and when it came: the Cameras tab's state lines and the box's clock.
let lastStatus = null, statusAt = 0;

// The box's wall clock now, in µs: its `now_us` plus the time since (the viewer's clock may
// be off by minutes; the box's times are the box's).
function boxNowUs() { return lastStatus && lastStatus.now_us ? lastStatus.now_us + (performance.now() - statusAt) * 1000 : Date.now() * 1000; }

// "3 min ago" or "in 4 min" for a wall time in µs.
function rel(us) {
  const s = (us - boxNowUs()) / 1e6;
  return s >= 0 ? `in ${ago(s)}` : `${ago(-s)} ago`;
}

function ago(s) {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.round(s / 60) % 60} min`;
}

// The "No video from <name>: <why>" state over a blank (new camera) or dimmed (camera went
// down while shown) picture.
function renderNoVideo() {
  const box = $('nosignal');
  const down = video && !video.live;
  for (const e of [canvas, mseEl]) e.classList.toggle('stale', !!down && stats.stream === view.stream);
  if (!view.stream) { box.hidden = false; box.className = ''; box.textContent = 'No camera is configured yet: add one on the Cameras tab.'; return; }
  if (!down) { box.hidden = !!codec; box.className = ''; box.textContent = `Waiting for video from ${streamName()}…`; return; }
  const name = streamName();
  let text;
  if (video.state === 'not running') text = `No video from ${name}: this camera is not running (disabled, or not started).`;
  else if (video.state === 'live') text = `Waiting for the first picture from ${name}…`;
  else if (video.state === 'connecting' && !video.error) text = `Connecting to ${name}…`;
  else text = `No video from ${name}: ${video.error || video.state}`;
  if (video.down_s != null) text += ` · down for ${ago(video.down_s + (performance.now() - videoAt) / 1000)}`;
  else if (video.state !== 'live' && video.state !== 'not running') text += ' · no picture since the box started';
  box.textContent = text;
  box.className = video.state === 'live' || (video.state === 'connecting' && !video.error) ? '' : 'down';
  box.hidden = false;
}

// A decoder for codec string `c`. A switch keeps the running decoder when the codec is the
// same (making a new one costs more than the switch itself); the new stream starts on its
// keyframe, and frames of the old stream still being decoded are dropped by their sid.
function openDecoder(c) {
  if (decoder && decoder.state === 'configured' && decoder.codec === c) {
    // A long queue of the old stream's frames would delay the new keyframe: drop it.
    if (decoder.decodeQueueSize > 2) { decoder.reset(); decoder.configure({ codec: c, optimizeForLatency: true }); info.clear(); }
    decoder.needKey = true;
    return;
  }
  closeDecoder();
  decoder = new VideoDecoder({
    // A catch-up burst (the GOP sent on connect or switch) is decoded but only its newest
    // frame is painted.
    output: (frame) => {
      const i = info.get(frame.timestamp); info.delete(frame.timestamp);
      if (i && i.sid === sid && !i.catchUp) paint(frame, frame.displayWidth, frame.displayHeight, i);
      frame.close();
    },
    error: (e) => { console.warn('decoder error', e); closeDecoder(); },
  });
  decoder.configure({ codec: c, optimizeForLatency: true });
  decoder.codec = c;
  decoder.needKey = true;
}

function closeDecoder() {
  if (decoder && decoder.state !== 'closed') { try { decoder.close(); } catch (_) { /* already closed */ } }
  decoder = null; info.clear();
}

// The MSE path (web/mse.js): one player, one SourceBuffer per WebSocket session.
function startMse(mime) {
  closeDecoder();
  if (!mse) { mse = new MsePlayer(mseEl, msePresented); stats.mse = mse.stats; }
  mse.setType(mime);
}

// The video presented a frame: painted, as the other paths count it (catch-up frames and
// the previous stream's frames still buffered are not).
function msePresented(meta) {
  if (meta.sid !== sid || meta.catchUp) return;
  painted(meta);
}

// Frames queued in the WebCodecs decoder or awaiting its output (B-frame reordering holds a
// few) beyond which the page jumps to a live keyframe: 12 frames, about half a second at 25 fps.
const BEHIND_FRAMES = 12;

function onFrame(buf) {
  if (buf.byteLength < HEADER_LEN) return;
  const dv = new DataView(buf);
  const fcodec = dv.getUint8(1), flags = dv.getUint8(2), fsid = dv.getUint32(4, true);
  const recvUs = Number(dv.getBigInt64(16, true));
  stats.skipped = dv.getUint32(24, true);
  if (fsid !== sid) return;
  if (fcodec === CODEC_FMP4 && (flags & FLAG_INIT)) { if (mse) mse.appendInit(new Uint8Array(buf, HEADER_LEN)); return; }
  stats.frames++;
  const rxAt = performance.now();
  if (burst.frames++ === 0) burst.firstRxAt = rxAt;
  const meta = { recvUs, sid: fsid, rxAt, burst: burst.frames, catchUp: (flags & FLAG_CATCH_UP) !== 0, stream: view.stream };
  const payload = new Uint8Array(buf, HEADER_LEN);
  if (fcodec === CODEC_FMP4) {
    if (mse) mse.appendFrame(payload, (flags & FLAG_KEY) !== 0, meta);
    return;
  }
  if (fcodec === CODEC_JPEG) {
    createImageBitmap(new Blob([payload], { type: 'image/jpeg' })).then((bm) => {
      if (fsid === sid) paint(bm, bm.width, bm.height, meta);
      bm.close();
    }).catch(() => {});
    return;
  }
  if (!decoder || decoder.state !== 'configured') { if (codec && codec !== 'jpeg' && (flags & FLAG_KEY)) openDecoder(codec); else return; }
  const key = (flags & FLAG_KEY) !== 0;
  if (decoder.needKey && !key) return;
  decoder.needKey = false;
  // Behind the live edge: a decoder only a little faster than the camera (a busy PC or phone
  // decoding 1080p in software) drains the GOP sent on connect or switch and the frames that
  // came meanwhile at (its speed - the camera's), which at 1080p takes many seconds and keeps
  // the picture up to a GOP late. At a live keyframe with more than BEHIND_FRAMES frames still
  // queued or awaiting output, drop them and go on from this keyframe: the live edge again.
  if (key && !meta.catchUp && decoder.decodeQueueSize + info.size > BEHIND_FRAMES) {
    decoder.reset(); decoder.configure({ codec: decoder.codec, optimizeForLatency: true }); info.clear();
    stats.jumps++;
  }
  // Chunk timestamps are presentation times (header bytes 28..36, µs on the camera's clock):
  // with B-frames the decoder hands pictures out in that order, each stamped with its own
  // chunk's timestamp, so `info` finds the right frame. A switch (or a jump of the camera's
  // clock) takes a new base, so they count on across streams and never collide.
  const pts = Number(dv.getBigInt64(28, true));
  if (fsid !== tsSid || Math.abs(tsBase + pts - chunkTs) > 10e6) { tsSid = fsid; tsBase = chunkTs + 1e6 - pts; }
  const ts = tsBase + pts;
  chunkTs = Math.max(chunkTs, ts);
  info.set(ts, meta);
  if (info.size > 500) info.clear();
  try {
    decoder.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp: ts, data: payload }));
  } catch (e) { console.warn('decode failed', e); closeDecoder(); }
}

function paint(img, w, h, meta) {
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  g2d.drawImage(img, 0, 0, w, h);
  painted(meta);
}

// A frame is on screen (drawn on the canvas, or presented by the video): the counters, the
// latency and the marks waiting for its stream.
function painted(meta) {
  if (!video || video.live) { $('nosignal').hidden = true; canvas.classList.remove('stale'); mseEl.classList.remove('stale'); }
  const t = performance.now();
  stats.painted++; fpsCount++; stats.lastPaintAt = t;
  if (stats.firstPaintMs === null) {
    stats.firstPaintMs = Math.round(t);
    stats.firstPaintAt = t;
    stats.firstBurst = { initAt: burst.initAt, firstRxAt: burst.firstRxAt, rxAt: meta && meta.rxAt, frames: meta && meta.burst };
  }
  if (meta) {
    stats.stream = meta.stream;
    if (!meta.catchUp) {
      const lat = (nowUs() - meta.recvUs) / 1000;
      stats.latencies.push(lat);
      if (stats.latencies.length > 500) stats.latencies.shift();
    }
    for (let i = pending.length - 1; i >= 0; i--) {
      const p = pending[i];
      if (p.stream === meta.stream) {
        // ms: the measurement; init/first/rx: when the `init`, the first frame and the
        // painted frame arrived (ms after t0); frames: how many came from `init` to it.
        const since = (x) => Math.round(x - p.t0);
        stats.marks.push({ label: p.label, stream: meta.stream, ms: Math.round(t - p.t0),
          init: since(burst.initAt), first: since(burst.firstRxAt), rx: since(meta.rxAt), frames: meta.burst });
        pending.splice(i, 1);
      }
    }
  }
}

setInterval(() => {
  fps = fpsCount; fpsCount = 0;
  const l = stats.latencies.slice(-25);
  const avg = l.length ? l.reduce((a, b) => a + b, 0) / l.length : 0;
  $('overlay').hidden = !$('show-overlay').checked;
  const label = PATH_LABEL[stats.path || stats.choice] || '-';
  $('overlay').textContent = `${label} · ${fps} fps · latency ${avg.toFixed(0)} ms`;
  $('overlay').title = stats.why ? `${label}: ${stats.why}` : label;
  if (video && !video.live) renderNoVideo();
  $('skipped').hidden = stats.skipped === 0;
  $('skipped').textContent = `skipped ${stats.skipped}`;
}, 1000);

// Which alarms the view's reason names (`alarm:<id>`, `sequence:<id>,<id>`).
function reasonAlarms(r) {
  if (r.startsWith('alarm:')) return [r.slice(6)];
  if (r.startsWith('sequence:')) return r.slice(9).split(',');
  return [];
}

const STATE_WORDS = { active: 'active', holding: 'holding: the input is off, the hold runs out', latched: 'latched: stays until acknowledged' };

// One banner per alarm that is not idle, highest priority first; the one on screen says so.
// Acknowledge is offered only where it changes something (see docs/architecture.md): it
// drops a latch, ends a running hold early, or waives the hold of a `hold` alarm whose input
// is still on. A `transparent` alarm ends with its input and has no button.
function renderView() {
  $('now-showing').textContent = streamName() || 'no stream';
  $('reason').textContent = view.reason ? `(${describeReason(view.reason)})` : '';
  const shown = reasonAlarms(view.reason || '');
  const active = view.alarms.filter((a) => a.state !== 'idle')
    .sort((a, b) => (b.priority - a.priority) || ((a.since || 0) - (b.since || 0)));
  const banner = $('banner');
  banner.hidden = active.length === 0;
  banner.replaceChildren();
  for (const a of active) {
    const onScreen = shown.includes(a.id) && a.stream === view.stream;
    const row = el('div', { class: 'alarm' + (onScreen ? '' : ' behind'), 'data-alarm': a.id });
    row.append(el('span', {}, `ALARM: ${a.name}`), el('span', { class: 'small-state' }, `(${STATE_WORDS[a.state] || a.state})`));
    const camera = names.get(a.stream) || a.stream;
    row.append(el('span', { class: onScreen ? 'tag' : 'small-state' }, onScreen ? `on screen: ${camera}` : `camera ${camera}`));
    const again = replayButton(a);
    if (again) row.append(again);
    if (a.acknowledgeable) {
      const ack = el('button', {}, 'Acknowledge');
      const msg = el('span', { class: 'msg' });
      ack.addEventListener('click', () => acknowledge(a.id, ack, msg));
      row.append(ack, msg);
    }
    banner.append(row);
  }
  for (const t of document.querySelectorAll('.thumb')) t.classList.toggle('active', t.dataset.stream === view.stream);
}

function alarmName(id) { const a = view.alarms.find((x) => x.id === id); return a ? a.name : id; }

function describeReason(r) {
  if (r === 'user') return 'selected';
  if (r === 'default') return 'default camera';
  if (r.startsWith('alarm:')) return 'alarm: ' + alarmName(r.slice(6));
  if (r.startsWith('sequence:')) return 'alarms in turn: ' + r.slice(9).split(',').map(alarmName).join(', ');
  return r;
}

// Acknowledge = the operator has seen it: a latch is dropped, a hold ends now, and the view
// goes back to the user's choice when no other alarm wants the screen.
async function acknowledge(id, button, msg) {
  button.disabled = true;
  try {
    await api('POST', `/api/alarms/${encodeURIComponent(id)}/ack`);
  } catch (e) {
    msg.textContent = e.message; button.disabled = false;
  }
}

// The strip: one card per stream, thumbnails refreshed every few seconds.
let thumbTick = 0;
async function refreshStatus() {
  if (!session) return;
  let st;
  try { st = await api('GET', '/api/status'); } catch (e) { if (e.status === 401) { session = null; start(); } return; }
  const strip = $('strip');
  const ids = st.streams.map((s) => s.id);
  for (const el of [...strip.children]) if (!ids.includes(el.dataset.stream)) el.remove();
  for (const s of st.streams) {
    let el = strip.querySelector(`[data-stream="${CSS.escape(s.id)}"]`);
    if (!el) {
      el = document.createElement('button');
      el.className = 'thumb'; el.dataset.stream = s.id;
      el.innerHTML = '<img alt=""><div class="meta"><span class="name"></span><span class="badge"></span></div>';
      el.addEventListener('click', () => selectStream(s.id));
      strip.append(el);
    }
    names.set(s.id, s.name);
    el.querySelector('.name').textContent = s.name;
    el.title = s.name + (s.last_error && s.state !== 'live' ? ': ' + s.last_error : '');
    const b = el.querySelector('.badge'); b.textContent = s.state; b.className = 'badge ' + s.state;
    // A camera without video says why on its tile instead of a black picture.
    let why = el.querySelector('.why');
    if (s.state !== 'live') {
      if (!why) { why = document.createElement('div'); why.className = 'why'; el.prepend(why); }
      why.textContent = s.state === 'connecting' && !s.last_error ? 'connecting…' : `No video: ${s.last_error || s.state}`;
    } else if (why) why.remove();
    if (thumbTick % 3 === 0 && s.state === 'live' && thumbsDue()) el.querySelector('img').src = `/api/streams/${encodeURIComponent(s.id)}/snapshot.jpg?keyframe=1&t=${Date.now()}`;
    el.classList.toggle('active', s.id === view.stream);
  }
  if (thumbsDue()) thumbTick++;
  httpsInfo = st.https;
  clipsInfo = st.clips || { state: 'off' };
  lastStatus = st; statusAt = performance.now();
  if (currentTab === 'cameras') renderCameraStates();
  renderWhy();
  renderView();
  renderNoVideo();
}

// Off the WebCodecs path, one line says which path and why; on plain HTTP with the HTTPS
// address and the certificate's fingerprint to compare when the browser warns about it.
let httpsInfo = null;
function renderWhy() {
  const bar = $('https-offer'), h = httpsInfo;
  if (!stats.why) { bar.hidden = true; return; }
  const label = PATH_LABEL[stats.path || stats.choice];
  const parts = [`${label}: ${stats.why}`];
  if (!window.isSecureContext && h) {
    const url = `https://${location.hostname}:${h.port}/`;
    parts.push('. For WebCodecs open ', el('a', { href: url }, url),
      h.self_made ? ' (the box\'s own certificate: accept it if its SHA-256 is ' : ' (certificate SHA-256 ',
      el('code', {}, h.fingerprint_sha256), ').');
  } else parts.push('.');
  bar.replaceChildren(...parts);
  bar.hidden = false;
}

// Thumbnails wait for the live view's first frame (or 3 s): each one costs the box a GOP
// decode, which would compete with the live picture while the page connects.
function thumbsDue() { return stats.firstPaintMs !== null || performance.now() > 3000; }
setInterval(refreshStatus, 1500);

async function selectStream(id) {
  window.edgecam.expect('click', id);
  try { await api('POST', '/api/active', { stream: id }); } catch (e) { $('reason').textContent = `(cannot switch: ${e.message})`; }
}

// ---------------------------------------------------------------- config editing

let config = null;
// The editors hold changes not saved yet (any input, an added or removed entry).
let configDirty = false;
// The load in progress: an Add button waits for it, so an entry added meanwhile is not lost
// when the loaded config replaces the one on screen.
let configLoad = null;

function loadConfig() {
  configLoad = (async () => {
    try { config = await api('GET', '/api/config'); } catch (e) { return; }
    configDirty = false;
    renderCameras(); renderAlarms(); renderTokens();
  })();
  return configLoad;
}

// Runs `change` on the loaded config and marks the editors dirty.
async function editConfig(change) {
  if (configLoad) await configLoad;
  if (!config) return;
  change(config);
  configDirty = true;
}
for (const id of ['cameras', 'alarms', 'clip-settings', 'tokens']) {
  $(id).addEventListener('input', () => { configDirty = true; });
  $(id).addEventListener('change', () => { configDirty = true; });
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === 'class') e.className = v; else e.setAttribute(k, v); }
  e.append(...kids);
  return e;
}

// A labelled input bound to obj[key]. kind: text | number | bool | select:<a|b|c> | line
function field(obj, key, label, kind, path) {
  let input;
  const v = obj[key];
  if (kind === 'bool') {
    input = el('input', { type: 'checkbox' }); input.checked = !!v;
    input.addEventListener('change', () => { obj[key] = input.checked; });
    return el('label', { 'data-path': path, 'data-label': label }, input, ' ' + label);
  }
  if (kind.startsWith('select:')) {
    input = el('select');
    for (const o of kind.slice(7).split('|')) input.append(el('option', { value: o }, o));
    input.value = v ?? kind.slice(7).split('|')[0];
    input.addEventListener('change', () => { obj[key] = input.value; });
  } else {
    input = el('input', { type: kind === 'number' ? 'number' : 'text' });
    input.value = v ?? '';
    input.addEventListener('input', () => {
      const s = input.value.trim();
      if (kind === 'number') obj[key] = s === '' ? null : Number(s);
      else if (kind === 'line') obj[key] = /^\d+$/.test(s) ? Number(s) : s;
      else obj[key] = s === '' && key !== 'id' && key !== 'token' ? null : s;
    });
  }
  return el('label', { 'data-path': path, 'data-label': label }, label, input);
}

// The fields each camera kind has; the others are cleared when the kind changes, so the
// config holds exactly what the form shows.
const KIND_FIELDS = {
  rtsp: ['url', 'sub_url', 'transport'],
  v4l2: ['device', 'width', 'height', 'fps', 'bitrate_kbps', 'gop'],
  testpattern: ['width', 'height', 'fps', 'bitrate_kbps', 'gop'],
};
const KIND_SPECIFIC = ['url', 'sub_url', 'transport', 'device', 'width', 'height', 'fps', 'bitrate_kbps', 'gop'];

function setKind(s, kind) {
  s.kind = kind;
  for (const k of KIND_SPECIFIC) if (!KIND_FIELDS[kind].includes(k)) s[k] = null;
  if (kind === 'rtsp' && !s.transport) s.transport = 'auto';
  if (kind === 'v4l2' && !s.device) s.device = '/dev/video0';
}

// A server error about `streams[0].url` (the test endpoint sees one stream) or
// `streams[3].url` (the whole config) as the user sees it: the label of the field in this
// camera's form, highlighted.
function showFieldErrors(box, errors, prefix) {
  const words = [];
  for (const fe of errors) {
    const path = fe.field && prefix ? fe.field.replace(/^streams\[\d+\]/, prefix) : fe.field;
    const t = path && box.querySelector(`[data-path="${CSS.escape(path)}"]`);
    if (t) t.classList.add('field-error');
    const label = t ? t.dataset.label : fe.field;
    words.push((label ? label + ': ' : '') + (fe.error || fe.message));
  }
  return words.join('; ');
}

function probeResult(r) {
  if (!r.ok) return `Failed: ${r.error}`;
  const parts = [r.codec_string || r.codec];
  if (r.width && r.height) parts.push(`${r.width}×${r.height}`);
  if (r.fps) parts.push(`${r.fps.toFixed(1)} fps`);
  if (r.transport) parts.push(`RTSP over ${r.transport.toUpperCase()}`);
  return `OK: ${parts.join(', ')} (first keyframe after ${r.elapsed_ms} ms)`;
}

// What *From ONVIF* found, in one line: the camera and its profiles.
function onvifSummary(r) {
  const d = r.device || {};
  const what = [d.manufacturer, d.model].filter(Boolean).join(' ') || 'ONVIF camera';
  const fw = d.firmware ? ` (firmware ${d.firmware})` : '';
  const profiles = (r.profiles || []).map((p) => {
    const size = p.width && p.height ? ` ${p.width}×${p.height}` : '';
    return `${p.name}${size}${p.encoding ? ' ' + p.encoding : ''}${p.uri ? '' : ' (no address: ' + (p.uri_error || 'none') + ')'}`;
  });
  return `${what}${fw}: ${profiles.join(', ') || 'no profiles'}`;
}

// *From ONVIF*: the camera's address, ONVIF user and password; its profiles fill the RTSP URL
// (largest picture) and Sub stream URL (smallest) fields, the user and password put in them
// the way the RTSP URL field carries credentials. The password goes to the box once and is
// kept nowhere but in the URLs filled in.
function fromOnvif(s, entry, p) {
  let host = '';
  try { host = s.url ? new URL(s.url).hostname : ''; } catch (_) { /* not a URL yet */ }
  const address = el('input', { type: 'text', placeholder: '192.168.1.20 or 192.168.1.20:8080', spellcheck: 'false' });
  // A camera found by Discover: the device service's host:port is its ONVIF address.
  const found = discovered.get(s);
  address.value = found && found.host ? found.host : host;
  const user = el('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const password = el('input', { type: 'password', autocomplete: 'new-password' });
  const go = el('button', {}, 'Fill in from ONVIF');
  const out = el('span', { class: 'onvif-result' });
  go.addEventListener('click', async () => {
    out.className = 'onvif-result'; out.textContent = 'asking the camera…';
    go.disabled = true;
    try {
      const r = await api('POST', '/api/onvif/profiles', { address: address.value.trim(), user: user.value, password: password.value });
      if (!r.ok) throw new Error(r.error);
      if (!r.main_url) throw new Error('the camera gave no stream address: ' + onvifSummary(r));
      for (const [key, value] of [['url', r.main_url], ['sub_url', r.sub_url || null]]) {
        s[key] = value;
        const input = entry.querySelector(`[data-path="${CSS.escape(p + '.' + key)}"] input`);
        if (input) input.value = value || '';
      }
      configDirty = true;
      out.className = 'onvif-result good';
      out.textContent = `Filled in: ${onvifSummary(r)}. Test the connection, then Save.`;
    } catch (e) {
      out.className = 'onvif-result bad';
      out.textContent = e.message;
    } finally { go.disabled = false; }
  });
  return el('details', { class: 'onvif' }, el('summary', {}, 'From ONVIF'),
    el('div', { class: 'grid' }, el('label', {}, 'Camera address', address), el('label', {}, 'ONVIF user', user),
      el('label', {}, 'ONVIF password', password)),
    el('div', { class: 'row' }, go, out));
}

function renderCameras() {
  const box = $('cameras'); box.replaceChildren();
  config.streams.forEach((s, i) => {
    const p = `streams[${i}]`;
    const result = el('span', { class: 'msg' });
    const entry = el('div', { class: 'entry' });
    const clearResult = () => {
      result.className = 'msg'; result.textContent = '';
      for (const e of entry.querySelectorAll('.field-error')) e.classList.remove('field-error');
    };
    const test = el('button', {}, 'Test connection');
    test.addEventListener('click', async () => {
      clearResult(); result.textContent = 'testing…';
      test.disabled = true;
      try {
        const r = await api('POST', '/api/streams/test', s);
        result.className = 'msg ' + (r.ok ? 'good' : 'bad');
        result.textContent = r.ok || !r.errors ? probeResult(r) : 'Not tested: ' + showFieldErrors(entry, r.errors, p);
      } catch (e) {
        result.className = 'msg bad';
        result.textContent = showFieldErrors(entry, e.errors.length ? e.errors : [{ field: e.field, error: e.message }], p);
      } finally { test.disabled = false; }
    });
    const remove = el('button', { class: 'danger' }, 'Remove');
    remove.addEventListener('click', () => { config.streams.splice(i, 1); configDirty = true; renderCameras(); });
    const kind = field(s, 'kind', 'Kind', 'select:rtsp|v4l2|testpattern', p + '.kind');
    kind.querySelector('select').addEventListener('change', (ev) => { setKind(s, ev.target.value); renderCameras(); });
    const grid = el('div', { class: 'grid' },
      field(s, 'id', 'Id', 'text', p + '.id'), field(s, 'name', 'Name', 'text', p + '.name'), kind);
    const labels = { url: 'RTSP URL', sub_url: 'Sub stream URL (optional)', transport: 'Transport', device: 'Device', width: 'Width', height: 'Height', fps: 'FPS', bitrate_kbps: 'Bitrate kbit/s', gop: 'Keyframe interval (frames)' };
    for (const k of KIND_FIELDS[s.kind] || []) {
      const kindOf = k === 'transport' ? 'select:auto|tcp|udp' : ['url', 'sub_url', 'device'].includes(k) ? 'text' : 'number';
      const f = field(s, k, labels[k], kindOf, `${p}.${k}`);
      if (k === 'url') f.querySelector('input').placeholder = 'rtsp://user:password@camera:554/stream1';
      // The camera's second, smaller H.264 stream: thumbnails, snapshots and MJPEG decode it.
      if (k === 'sub_url') f.querySelector('input').placeholder = 'rtsp://user:password@camera:554/stream2';
      grid.append(f);
    }
    grid.append(field(s, 'enabled', 'Enabled', 'bool', p + '.enabled'));
    // A result belongs to the settings it was made with: any edit clears it.
    grid.addEventListener('input', clearResult);
    grid.addEventListener('change', clearResult);
    entry.append(el('div', { class: 'cam-state small', 'data-state-of': s.id }));
    const note = discoveredNote(s);
    if (note) {
      const url = grid.querySelector(`[data-path="${p}.url"] input`);
      if (url && discovered.get(s).host) url.placeholder = `rtsp://user:password@${discovered.get(s).host.replace(/:\d+$/, '')}:554/…`;
      entry.append(note);
    }
    entry.append(grid);
    if (s.kind === 'rtsp') entry.append(fromOnvif(s, entry, p));
    entry.append(el('div', { class: 'row' }, test, remove, result));
    box.append(entry);
  });
  renderCameraStates();
}

// Each camera entry's first line: what the box does with it now, with relative times
// ("failed 2 min ago: ... · retrying in 3 min"), and its sub stream's state.
function renderCameraStates() {
  for (const line of document.querySelectorAll('#cameras [data-state-of]')) {
    const s = lastStatus && lastStatus.streams.find((x) => x.id === line.dataset.stateOf);
    line.textContent = s ? cameraState(s) : 'not running (save to start it)';
    line.className = 'cam-state small ' + (s ? s.state : '');
  }
}

function cameraState(s) {
  const err = s.last_error, when = s.last_error_at_us ? ` (${rel(s.last_error_at_us)})` : '';
  let t;
  if (s.state === 'live') {
    t = `live${s.transport ? ' over ' + s.transport.toUpperCase() : ''} · ${s.fps.toFixed(1)} fps · ${s.bitrate_kbps} kbit/s`;
    if (err) t += ` · last error${s.last_error_at_us ? ' ' + rel(s.last_error_at_us) : ''}: ${err}`;
  } else if (s.state === 'connecting') {
    t = `connecting${s.waiting_for ? ` (waiting for ${s.waiting_for})` : ''}` + (err ? ` · last error: ${err}${when}` : '');
  } else if (s.state === 'failed') {
    t = `failed: ${err || 'refused'}${when} · ${s.retry_at_us ? 'retrying ' + rel(s.retry_at_us) : 'waits for a config change'}`;
  } else {
    t = (s.state === 'backoff' ? 'reconnecting' : s.state) + (err ? `: ${err}${when}` : '');
  }
  if (s.sub) {
    const sub = s.sub;
    t += ` · sub stream ${sub.state}` + (sub.state === 'live' ? ` (${sub.fps.toFixed(1)} fps)` : sub.last_error ? `: ${sub.last_error}` : '');
  }
  return t;
}

$('camera-add').addEventListener('click', () => editConfig((cfg) => {
  const n = cfg.streams.length + 1;
  const s = { id: `cam${n}`, name: null, kind: 'rtsp', url: '', transport: 'auto', device: null, width: null, height: null, fps: null, bitrate_kbps: null, gop: null, connect_timeout_ms: 5000, stall_timeout_ms: 3000, failed_retry_s: 300, enabled: true };
  cfg.streams.push(s);
  renderCameras();
}));

// ---------------------------------------------------------------- ONVIF discovery

// Cameras added from a Discover answer, and the device they came from: the form shows where
// the camera's ONVIF device service is (the address From ONVIF asks for).
const discovered = new WeakMap();
const DISCOVER_WAIT_MS = 3000;

// One found device as a row: name, hardware, address and a button that adds it as a camera.
function discoveredRow(d) {
  const use = el('button', {}, 'Add this camera');
  use.addEventListener('click', () => editConfig((cfg) => {
    const n = cfg.streams.length + 1;
    const s = { id: `cam${n}`, name: d.name || d.hardware || d.host, kind: 'rtsp', url: '', transport: 'auto', device: null, width: null, height: null, fps: null, bitrate_kbps: null, gop: null, connect_timeout_ms: 5000, stall_timeout_ms: 3000, failed_retry_s: 300, enabled: true };
    cfg.streams.push(s);
    discovered.set(s, d);
    renderCameras();
  }));
  const what = [d.name || '(no name)', d.hardware, d.host].filter(Boolean).join(' · ');
  return el('div', { class: 'entry discovered', 'data-endpoint': d.endpoint }, el('div', { class: 'row' }, el('span', {}, what), use));
}

$('camera-discover').addEventListener('click', async () => {
  const btn = $('camera-discover'), msg = $('discover-msg'), list = $('discover-list');
  $('discover').hidden = false;
  list.replaceChildren();
  msg.className = 'msg'; msg.textContent = `asking the network for ONVIF cameras (${DISCOVER_WAIT_MS / 1000} s)…`;
  btn.disabled = true;
  try {
    const r = await api('POST', '/api/onvif/discover', { wait_ms: DISCOVER_WAIT_MS });
    if (!r.devices.length) {
      msg.className = 'msg bad';
      msg.textContent = `No ONVIF cameras answered within ${r.wait_ms / 1000} s (a camera in another subnet or VLAN cannot hear the probe: add it by address).`;
    } else {
      msg.className = 'msg good';
      msg.textContent = `${r.devices.length} found:`;
      list.append(...r.devices.map(discoveredRow));
    }
  } catch (e) {
    msg.className = 'msg bad'; msg.textContent = `Discover failed: ${e.message}`;
  } finally { btn.disabled = false; }
});

// The line a discovered camera's form shows: its ONVIF device service and host.
function discoveredNote(s) {
  const d = discovered.get(s);
  if (!d) return null;
  const url = d.xaddrs[0] || '';
  return el('div', { class: 'row onvif-found', 'data-onvif-host': d.host || '' },
    `Found by Discover at ${d.host || '?'}; ONVIF device service: `, el('code', {}, url));
}

// The short event names an ONVIF input takes (an ONVIF topic such as
// tns1:RuleEngine/CellMotionDetector/Motion works too).
const ONVIF_EVENTS = ['motion', 'tamper', 'line', 'field'];

// An alarm's `[alarms.onvif]` input: the camera (one of the streams, whose URL gives host,
// user and password, or an ONVIF address), the event, and the ONVIF user and password. The
// password is write-only, like the other secrets the page edits: the field never shows the
// stored one; what is typed replaces it, and an empty field keeps it.
function onvifInput(a, p, i) {
  const box = el('div', { class: 'grid onvif-input' });
  const use = el('input', { type: 'checkbox' }); use.checked = !!a.onvif;
  use.addEventListener('change', () => {
    a.onvif = use.checked ? { stream: null, address: null, port: null, user: null, password: null, topic: 'motion', item: null } : null;
    configDirty = true; renderAlarms();
  });
  box.append(el('label', { 'data-path': p + '.onvif', 'data-label': 'ONVIF camera events' }, use, ' ONVIF camera events'));
  const o = a.onvif;
  if (!o) return box;
  const camera = el('select');
  camera.append(el('option', { value: '' }, '(by ONVIF address)'), ...config.streams.map((s) => el('option', { value: s.id }, s.id)));
  camera.value = o.stream || '';
  camera.addEventListener('change', () => { o.stream = camera.value || null; });
  const topic = field(o, 'topic', 'Event', 'text', p + '.onvif.topic');
  const topicInput = topic.querySelector('input');
  const list = `onvif-events-${i}`;
  topicInput.setAttribute('list', list);
  topicInput.addEventListener('input', () => { o.topic = topicInput.value.trim() || 'motion'; });
  topic.append(el('datalist', { id: list }, ...ONVIF_EVENTS.map((v) => el('option', { value: v }))));
  const saved = o.password;
  const password = el('input', { type: 'password', autocomplete: 'new-password',
    placeholder: saved ? 'saved (type to replace)' : 'none (or from the stream URL)' });
  password.addEventListener('input', () => { o.password = password.value === '' ? saved : password.value; });
  const address = field(o, 'address', 'ONVIF address', 'text', p + '.onvif.address');
  address.querySelector('input').placeholder = '192.168.1.20:8080 (with a stream: its host)';
  box.append(el('label', { 'data-path': p + '.onvif.stream', 'data-label': 'Camera' }, 'Camera', camera), address,
    field(o, 'port', 'ONVIF port', 'number', p + '.onvif.port'), topic,
    field(o, 'item', 'Data item', 'text', p + '.onvif.item'),
    field(o, 'user', 'ONVIF user', 'text', p + '.onvif.user'),
    el('label', { 'data-path': p + '.onvif.password', 'data-label': 'ONVIF password' }, 'ONVIF password', password));
  return box;
}

function renderAlarms() {
  const box = $('alarms'); box.replaceChildren();
  const streams = config.streams.map((s) => s.id).join('|') || '-';
  config.alarms.forEach((a, i) => {
    const p = `alarms[${i}]`;
    const grid = el('div', { class: 'grid' },
      field(a, 'id', 'Id', 'text', p + '.id'), field(a, 'name', 'Name', 'text', p + '.name'),
      field(a, 'stream', 'Target stream', 'select:' + streams, p + '.stream'),
      field(a, 'priority', 'Priority', 'number', p + '.priority'),
      field(a, 'mode', 'Mode', 'select:transparent|hold|latched', p + '.mode'),
      field(a, 'hold_s', 'Hold (s)', 'number', p + '.hold_s'),
      field(a, 'video_loss', 'Video-loss alarm', 'bool', p + '.video_loss'));
    const gpio = el('div', { class: 'grid' });
    const useGpio = el('input', { type: 'checkbox' }); useGpio.checked = !!a.gpio;
    useGpio.addEventListener('change', () => { a.gpio = useGpio.checked ? { chip: 'gpiochip0', line: 17, active: 'low', bias: 'pull-up', debounce_ms: 20 } : null; renderAlarms(); });
    gpio.append(el('label', {}, useGpio, ' GPIO input'));
    if (a.gpio) gpio.append(field(a.gpio, 'chip', 'Chip', 'text', p + '.gpio.chip'), field(a.gpio, 'line', 'Line', 'line', p + '.gpio.line'),
      field(a.gpio, 'active', 'Polarity (active)', 'select:low|high', p + '.gpio.active'), field(a.gpio, 'bias', 'Bias', 'select:pull-up|pull-down|none', p + '.gpio.bias'),
      field(a.gpio, 'debounce_ms', 'Debounce ms', 'number', p + '.gpio.debounce_ms'));
    const useOut = el('input', { type: 'checkbox' }); useOut.checked = !!a.output;
    useOut.addEventListener('change', () => { a.output = useOut.checked ? { chip: 'gpiochip0', line: 27, active: 'high' } : null; renderAlarms(); });
    gpio.append(el('label', {}, useOut, ' Output line'));
    if (a.output) gpio.append(field(a.output, 'chip', 'Output chip', 'text', p + '.output.chip'), field(a.output, 'line', 'Output line', 'line', p + '.output.line'),
      field(a.output, 'active', 'Output active', 'select:high|low', p + '.output.active'));
    const remove = el('button', { class: 'danger' }, 'Remove');
    remove.addEventListener('click', () => { config.alarms.splice(i, 1); configDirty = true; renderAlarms(); });
    box.append(el('div', { class: 'entry' }, grid, gpio, onvifInput(a, p, i), el('div', { class: 'row' }, remove)));
  });
  renderClipSettings();
}

// Copies `text`. The page is usually not a secure context (http://box:8080), where
// navigator.clipboard does not exist; a selected input and execCommand still work there.
async function copyText(input, msg) {
  try {
    if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(input.value);
    else { input.select(); if (!document.execCommand('copy')) throw new Error('copy refused'); }
    msg.className = 'msg good'; msg.textContent = 'copied';
  } catch (_) { input.select(); msg.className = 'msg'; msg.textContent = 'selected: press Ctrl+C'; }
  setTimeout(() => { msg.textContent = ''; }, 2500);
}

// The Tokens tab: name, role, the token in full with a Copy button, and the URLs a client
// without headers can use (they carry the token: treat them like the token).
function renderTokens() {
  const tbox = $('tokens'); tbox.replaceChildren();
  const cam = config.streams[0] ? encodeURIComponent(config.streams[0].id) : 'cam1';
  config.web.tokens.forEach((t, i) => {
    const p = `web.tokens[${i}]`;
    const remove = el('button', { class: 'danger' }, 'Remove');
    remove.addEventListener('click', () => { config.web.tokens.splice(i, 1); configDirty = true; renderTokens(); });
    const tokenField = field(t, 'token', 'Token', 'text', p + '.token');
    tokenField.classList.add('wide');
    const input = tokenField.querySelector('input');
    input.spellcheck = false; input.autocomplete = 'off';
    const copy = el('button', {}, 'Copy');
    const copied = el('span', { class: 'msg' });
    copy.addEventListener('click', () => copyText(input, copied));
    tokenField.replaceChildren('Token', el('span', { class: 'token-line' }, input, copy, copied));
    const urls = el('div', { class: 'wide small' });
    const showUrls = () => {
      const q = encodeURIComponent(t.token || '');
      urls.replaceChildren(
        el('div', {}, 'MJPEG: ', el('code', {}, `${location.origin}/api/streams/${cam}/mjpeg?token=${q}`)),
        el('div', {}, 'Snapshot: ', el('code', {}, `${location.origin}/api/streams/${cam}/snapshot.jpg?token=${q}`)),
        el('div', {}, 'Or HTTP Basic: user ', el('code', {}, t.name || ''), ', password: the token.'));
    };
    input.addEventListener('input', showUrls); showUrls();
    tbox.append(el('div', { class: 'entry' }, el('div', { class: 'grid' },
      field(t, 'name', 'Name', 'text', p + '.name'),
      field(t, 'role', 'Role', 'select:viewer|operator|admin', p + '.role'), tokenField, urls),
    el('div', { class: 'row' }, remove)));
  });
}

$('alarm-add').addEventListener('click', () => editConfig((cfg) => {
  const n = cfg.alarms.length + 1;
  cfg.alarms.push({ id: `alarm${n}`, name: null, stream: config.streams[0] ? config.streams[0].id : '', priority: 0, mode: 'hold', hold_s: 30, video_loss: false, video_loss_after_s: 10, gpio: null, output: null, onvif: null });
  renderAlarms();
}));
$('token-add').addEventListener('click', () => editConfig((cfg) => {
  const rnd = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
  cfg.web.tokens.push({ name: `client${cfg.web.tokens.length + 1}`, token: rnd, role: 'viewer' });
  renderTokens();
}));

async function saveConfig(msgId) {
  const msg = $(msgId);
  for (const e of document.querySelectorAll('.field-error')) e.classList.remove('field-error');
  msg.className = 'msg'; msg.textContent = 'saving…';
  try {
    await api('PUT', '/api/config', config);
    msg.className = 'msg good'; msg.textContent = 'Saved and applied.';
    loadConfig();
  } catch (e) {
    msg.className = 'msg bad';
    msg.textContent = showFieldErrors(document, e.errors.length ? e.errors : [{ field: e.field, error: e.message }], null);
  }
}
$('cameras-save').addEventListener('click', () => saveConfig('cameras-msg'));
$('alarms-save').addEventListener('click', () => saveConfig('alarms-msg'));
$('tokens-save').addEventListener('click', () => saveConfig('tokens-msg'));

// ---------------------------------------------------------------- system tab

// HH:MM of a wall time in µs (the API's `*_at_us`).
const hhmm = (us) => new Date(us / 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

// The state with what it waits for: `connecting (keyframe)`, `failed (retry at 14:05)`.
function streamState(s) {
  if (s.state === 'connecting' && s.waiting_for) return `connecting (waiting for ${s.waiting_for})`;
  if (s.state === 'failed' && s.retry_at_us) return `failed (retry at ${hhmm(s.retry_at_us)})`;
  return s.state;
}

// The last error: the reason while the stream is down, history ("last error at 14:02: ...")
// once it is live again.
function lastError(s) {
  if (!s.last_error) return '';
  const at = s.last_error_at_us ? ` at ${hhmm(s.last_error_at_us)}` : '';
  return s.state === 'live' ? `last error${at}: ${s.last_error}` : s.last_error + (at ? ` (${at.trim()})` : '');
}

async function refreshSystem() {
  if (currentTab !== 'system' || !session) return;
  try {
    const [st, ev] = await Promise.all([api('GET', '/api/status'), api('GET', '/api/events')]);
    const up = st.uptime_s;
    $('sysinfo').textContent = `edgecam ${st.version} · up ${Math.floor(up / 3600)} h ${Math.floor(up / 60) % 60} min · live clients: ${st.live_clients} · logged in as ${session.role}`;
    showWatchdog(st.watchdog);
    const h = st.https;
    $('https-info').replaceChildren(...(h ? [`On port ${h.port}, ${h.self_made ? 'the box\'s own self-signed certificate' : 'your certificate'}, SHA-256 `, el('code', {}, h.fingerprint_sha256)] : ['Off (web.https = false).']));
    // A camera with a sub stream has a second row, `<id>/sub`, for it.
    const rows = st.streams.flatMap((s) => [[s.id, streamState(s), s.transport || '', s.fps.toFixed(1), s.bitrate_kbps, s.frames, s.dropped, s.lost_packets, s.incomplete_frames, s.reconnects, s.ring_overwritten, s.ring_lagged, lastError(s)]]
      .concat(s.sub ? [[`${s.id}/sub`, s.sub.state, '', s.sub.fps.toFixed(1), s.sub.bitrate_kbps, s.sub.frames, '', '', '', s.sub.reconnects, '', '', lastError(s.sub)]] : []));
    table($('stream-stats'), ['stream', 'state', 'transport', 'fps', 'kbit/s', 'frames', 'dropped', 'RTP lost', 'frames missing data', 'reconnects', 'ring overwritten', 'ring lagged', 'last error'], rows);
    clipsInfo = st.clips || { state: 'off' };
    const clips = await renderClips();
    const evs = ev.events.slice(-50).reverse().map((e) => [new Date(e.at_us / 1000).toLocaleTimeString(), e.kind, e.action, e.stream || '', e.alarm || '', e.detail, e.cause || '', eventClipCell(e, clips)]);
    table($('events'), ['time', 'kind', 'what', 'stream', 'alarm', 'detail', 'cause', 'clip'], evs);
  } catch (_) { /* next tick */ }
}
setInterval(refreshSystem, 2000);

// The health watchdog: systemd's setting, the pings, and every watched loop's beacon.
function showWatchdog(w) {
  const secs = (ms) => (ms / 1000).toFixed(1) + ' s';
  let line;
  if (!w.enabled) line = 'systemd watchdog: not requested (no WATCHDOG_USEC)';
  else line = `systemd watchdog: every ${secs(w.period_ms)}, ping due every ${secs(w.ping_every_ms)} · ${w.pings} pings sent` + (w.last_ping_age_ms == null ? '' : `, last ${secs(w.last_ping_age_ms)} ago`);
  if (!w.running) line += ' · health checks not running';
  if (w.tripped) line += ` · STOPPED: loop ${w.tripped} hung, waiting for systemd to restart`;
  $('watchdog').textContent = line;
  $('watchdog').classList.toggle('bad', !!w.tripped);
  const rows = w.beacons.map((b) => [b.name, secs(b.age_ms), secs(b.budget_ms), b.fresh ? 'fresh' : 'STALE']);
  table($('beacons'), ['loop', 'last beat', 'budget', 'state'], rows);
  for (const tr of $('beacons').querySelectorAll('tr')) if (tr.lastChild.textContent === 'STALE') tr.classList.add('stale');
}

function table(t, head, rows) {
  t.replaceChildren(el('tr', {}, ...head.map((h) => el('th', {}, h))), ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, c instanceof Node ? c : String(c))))));
}

$('tls-install').addEventListener('click', async () => {
  const msg = $('tls-msg');
  msg.className = 'msg'; msg.textContent = 'checking…';
  try {
    const r = await api('POST', '/api/tls', { cert_pem: $('tls-cert').value, key_pem: $('tls-key').value });
    msg.className = 'msg good'; msg.textContent = `Installed; new connections get it (SHA-256 ${r.fingerprint_sha256}).`;
    $('tls-key').value = '';
    refreshSystem();
  } catch (e) { msg.className = 'msg bad'; msg.textContent = e.message; }
});

$('logout').addEventListener('click', async () => { await api('POST', '/api/logout').catch(() => {}); session = null; if (ws) ws.close(); showAuth('login'); });
$('change-password').addEventListener('click', () => { showAuth('change'); $('auth-current-row').hidden = false; });

clipsInit();
start();
