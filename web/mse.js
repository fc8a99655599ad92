// edgecam page: the MSE player. H.264 in fragmented MP4 (an init segment, then one moof+mdat
// per frame, sent over /api/live with codec byte 2) played by a <video> through MediaSource,
// or ManagedMediaSource where only that exists (Safari on iOS). For browsers without
// WebCodecs: every plain-HTTP page on the LAN, since WebCodecs needs a secure context.
// Loaded before app.js, which uses mseSupported() and MsePlayer.
'use strict';

// What the page asks for when it chooses a path (Constrained Baseline 3.0).
const MSE_PROBE_TYPE = 'video/mp4; codecs="avc1.42E01E"';
// fMP4 decode time: `tfdt` version 1 holds a u64 of 90 kHz ticks.
const MSE_TIMESCALE = 90000;
// Live edge: further behind the end of the buffer than JUMP_S jumps (to END_GAP_S before
// it), further than CATCH_UP_S plays 10 % faster until within SETTLE_S again.
const MSE_JUMP_S = 0.5, MSE_CATCH_UP_S = 0.15, MSE_SETTLE_S = 0.08, MSE_END_GAP_S = 0.05;
// Data older than this behind the playhead is removed.
const MSE_KEEP_S = 10;
// Appends waiting for the SourceBuffer: beyond this the queued frames are dropped and the
// player waits for the next keyframe (a stalled decoder must not grow memory without bound).
const MSE_MAX_QUEUE = 90;

function mseClass() { return window.ManagedMediaSource || window.MediaSource || null; }

function mseSupported() {
  const C = mseClass();
  try { return !!(C && C.isTypeSupported && C.isTypeSupported(MSE_PROBE_TYPE)); } catch (_) { return false; }
}

// The fragment's presentation time in seconds (what requestVideoFrameCallback reports as
// mediaTime): its decode time plus the sample's composition offset (B-frames). The server
// writes moof(mfhd, traf(tfhd, tfdt v1, trun v1)), which puts tfdt's 64-bit time at bytes
// 60..68 and, with trun flag 0x800, the first sample's signed offset at 100..104; anything
// else is found by walking the boxes (decode time only).
function fragmentTime(p) {
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const isType = (at, t) => at + 8 <= p.length && String.fromCharCode(p[at + 4], p[at + 5], p[at + 6], p[at + 7]) === t;
  if (isType(52, 'tfdt') && p[56] === 1 && p.length >= 68) {
    let t = Number(dv.getBigUint64(60));
    if (isType(68, 'trun') && p.length >= 104 && (dv.getUint32(76) & 0xf01) === 0xf01) t += dv.getInt32(100);
    return t / MSE_TIMESCALE;
  }
  // Walks the boxes in [start, end) for `path`; returns the offset of the last one's header.
  const find = (start, end, path) => {
    for (let at = start; at + 8 <= end;) {
      const size = dv.getUint32(at);
      if (size < 8 || at + size > end) return -1;
      if (isType(at, path[0])) return path.length === 1 ? at : find(at + 8, at + size, path.slice(1));
      at += size;
    }
    return -1;
  };
  const at = find(0, p.length, ['moof', 'traf', 'tfdt']);
  if (at < 0 || at + 16 > p.length) return null;
  return p[at + 8] === 1 ? Number(dv.getBigUint64(at + 12)) / MSE_TIMESCALE : dv.getUint32(at + 12) / MSE_TIMESCALE;
}

// One MediaSource and one SourceBuffer for a whole WebSocket session: the server's timeline
// runs on across stream switches, so a switch only appends the new stream's init segment
// (after changeType when the MIME type changed). `onPaint(meta)` is called for every frame
// the video presents, with the meta given to append() for that fragment.
class MsePlayer {
  constructor(video, onPaint) {
    this.video = video;
    this.onPaint = onPaint;
    this.stats = { managed: !!window.ManagedMediaSource, appended: 0, dropped: 0, jumps: 0, removed: 0, quota: 0, rate: 1, lagMs: null, queue: 0 };
    this.ms = null; this.sb = null; this.mime = null; this.url = null;
    this.queue = [];          // {op: 'init'|'frame'|'type'|'remove', ...} in order
    this.frames = [];         // {t, meta}: presented frames are looked up here by media time
    this.needKey = true;      // after dropped frames: wait for a keyframe
    this.lastPresented = -1;
    video.muted = true; video.playsInline = true; video.autoplay = true;
    video.disableRemotePlayback = true;   // ManagedMediaSource opens only with this (Safari)
    video.addEventListener('waiting', () => this.toLiveEdge(true));
    video.addEventListener('pause', () => { if (this.sb) this.play(); });
    if ('requestVideoFrameCallback' in video) {
      const onFrame = (_now, md) => { this.presented(md.mediaTime, 0.02); video.requestVideoFrameCallback(onFrame); };
      video.requestVideoFrameCallback(onFrame);
    } else {
      // Without rVFC: a paint per new playhead position (timeupdate comes a few times a second).
      video.addEventListener('timeupdate', () => this.presented(video.currentTime, 0.5));
    }
    this.timer = setInterval(() => { this.toLiveEdge(false); this.trim(); }, 250);
  }

  // A stream's `init` with this MIME type (sent before its init segment).
  setType(mime) {
    if (!this.ms) this.open(mime);
    else if (mime !== this.mime) this.push({ op: 'type', mime });
    this.mime = mime;
  }

  // The init segment (FLAG_INIT) of the stream about to follow.
  appendInit(bytes) { this.push({ op: 'init', data: bytes }); }

  // One fragment; `meta` comes back through onPaint when the frame is presented.
  appendFrame(bytes, key, meta) {
    if (this.needKey && !key) { this.stats.dropped++; return; }
    if (this.queue.length >= MSE_MAX_QUEUE) {
      // Keep the init segments and type changes, drop the frames, restart at a keyframe.
      const kept = this.queue.filter((q) => q.op !== 'frame');
      this.stats.dropped += this.queue.length - kept.length;
      this.queue = kept;
      this.needKey = true;
      if (!key) { this.stats.dropped++; return; }
    }
    this.needKey = false;
    const t = fragmentTime(bytes);
    if (t !== null) {
      this.frames.push({ t, meta });
      if (this.frames.length > 400) this.frames.splice(0, this.frames.length - 300);
    }
    this.push({ op: 'frame', data: bytes });
  }

  open(mime) {
    const C = mseClass();
    this.ms = new C();
    const ms = this.ms;
    ms.addEventListener('sourceopen', () => {
      if (ms !== this.ms || this.sb) return;
      try {
        this.sb = ms.addSourceBuffer(this.mime || mime);
      } catch (e) { console.warn('MSE: addSourceBuffer failed', e); return; }
      // The MIME type the buffer was made with needs no changeType.
      this.queue = this.queue.filter((q) => q.op !== 'type');
      this.sb.addEventListener('updateend', () => { this.toLiveEdge(false); this.pump(); });
      this.sb.addEventListener('error', () => console.warn('MSE: SourceBuffer error'));
      this.pump();
    });
    // Safari's ManagedMediaSource takes srcObject; MediaSource elsewhere needs a blob URL.
    if (window.ManagedMediaSource && ms instanceof window.ManagedMediaSource && 'srcObject' in this.video) {
      try { this.video.srcObject = ms; } catch (_) { this.attachUrl(); }
    } else this.attachUrl();
    this.play();
  }

  attachUrl() {
    this.url = URL.createObjectURL(this.ms);
    this.video.src = this.url;
  }

  push(item) { this.queue.push(item); this.stats.queue = this.queue.length; this.pump(); }

  // Runs the next queued operation unless the SourceBuffer is busy; updateend calls again.
  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || !this.queue.length || this.ms.readyState !== 'open') return;
    const item = this.queue.shift();
    this.stats.queue = this.queue.length;
    try {
      if (item.op === 'type') {
        if (sb.changeType) sb.changeType(item.mime);
        this.pump();
      } else if (item.op === 'remove') {
        sb.remove(item.start, item.end);
        this.stats.removed++;
      } else {
        sb.appendBuffer(item.data);
        this.stats.appended++;
        if (item.op === 'frame' && this.video.paused) this.play();
      }
    } catch (e) {
      if (e.name === 'QuotaExceededError') {
        // Full: drop what lies behind the playhead, then try this append again.
        this.stats.quota++;
        this.queue.unshift(item);
        const now = this.video.currentTime;
        const b = sb.buffered;
        if (b.length && b.start(0) < now - 0.5) this.queue.unshift({ op: 'remove', start: 0, end: now - 0.5 });
        else { this.queue = this.queue.filter((q) => q.op !== 'frame'); this.needKey = true; }
        setTimeout(() => this.pump(), 50);
      } else console.warn('MSE: append failed', e);
    }
  }

  play() {
    const p = this.video.play();
    if (p && p.catch) p.catch(() => { /* autoplay refused or interrupted: the next append retries */ });
  }

  // Keeps the playhead close behind the newest frame: a jump when far behind (or stuck in a
  // gap), a slightly faster rate when a little behind.
  toLiveEdge(waiting) {
    const v = this.video, b = v.buffered;
    if (!this.sb || !b.length) return;
    const start = b.start(b.length - 1), end = b.end(b.length - 1);
    const lag = end - v.currentTime;
    this.stats.lagMs = Math.round(lag * 1000);
    const inGap = v.currentTime < start || (waiting && lag > MSE_END_GAP_S * 2);
    if (lag > MSE_JUMP_S || inGap) {
      const to = Math.max(start, end - MSE_END_GAP_S);
      if (Math.abs(to - v.currentTime) > 0.001) { v.currentTime = to; this.stats.jumps++; }
    }
    const rate = lag > MSE_CATCH_UP_S || (v.playbackRate > 1 && lag > MSE_SETTLE_S) ? 1.1 : 1.0;
    if (v.playbackRate !== rate) v.playbackRate = rate;
    this.stats.rate = rate;
    if (v.paused) this.play();
  }

  // Removes what lies more than MSE_KEEP_S behind the playhead.
  trim() {
    const sb = this.sb;
    if (!sb || !sb.buffered.length) return;
    const cut = this.video.currentTime - MSE_KEEP_S;
    if (sb.buffered.start(0) < cut - 1 && !this.queue.some((q) => q.op === 'remove')) this.push({ op: 'remove', start: 0, end: cut });
  }

  // The video presented the frame at `mediaTime`: finds its fragment (nearest decode time
  // within `tolerance` s; catch-up frames are 1 ms apart, live ones a frame interval) and
  // reports it once.
  presented(mediaTime, tolerance) {
    let best = -1, dist = Infinity;
    for (let i = this.frames.length - 1; i >= 0; i--) {
      const d = Math.abs(this.frames[i].t - mediaTime);
      if (d < dist) { dist = d; best = i; }
      if (this.frames[i].t < mediaTime - 1) break;
    }
    if (best < 0 || dist > tolerance) return;
    const f = this.frames[best];
    if (f.t === this.lastPresented) return;
    this.lastPresented = f.t;
    // Frames up to this one will not be presented any more.
    this.frames.splice(0, best + 1);
    this.onPaint(f.meta);
  }

  // Ends the session's MediaSource (the WebSocket closed: the next one starts a new timeline).
  reset() {
    this.queue = []; this.frames = []; this.sb = null; this.mime = null; this.needKey = true;
    this.lastPresented = -1; this.stats.queue = 0;
    if (this.ms && this.ms.readyState === 'open') { try { this.ms.endOfStream(); } catch (_) { /* closing anyway */ } }
    this.ms = null;
    this.video.removeAttribute('src');
    if ('srcObject' in this.video) this.video.srcObject = null;
    this.video.load();
    if (this.url) { URL.revokeObjectURL(this.url); this.url = null; }
  }
}
