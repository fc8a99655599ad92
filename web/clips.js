// edgecam page, event clips: the alarm banner's "Replay the last N s" beside the live picture,
// the System tab's clip list and player, the Events table's links to clips, and the clip
// settings on the Alarms tab. Loaded before app.js; it only defines functions, which app.js
// calls (it uses app.js's `$`, `el`, `api`, `field`, `session`, `names` and `config` at call
// time). The clips are `GET /api/clips` and `/api/clips/{id}.mp4` (docs/api.md, "Event clips").
'use strict';

// The `clips` object of the last /api/status: `{state: 'off'}` while clips are off.
let clipsInfo = { state: 'off' };

// The clip of an alarm raise at `at_us`: the newest clip of that alarm that covers the time
// (a raise while a clip is written extends it), with a few seconds of slack for the clock
// reads of the control task and the recorder.
function clipFor(clips, alarm, atUs) {
  const slack = 3e6;
  // Part 1 holds the raise; later parts continue the event after a picture size change.
  return clips.find((c) => c.alarm === alarm && (c.part || 1) === 1 && c.start_us - slack <= atUs
    && atUs <= c.start_us + (c.duration_ms || 0) * 1000 + slack) || null;
}

const clipUrl = (c) => `/api/clips/${encodeURIComponent(c.id)}.mp4`;
const clipWhen = (us) => new Date(us / 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const mib = (b) => (b / 1048576).toFixed(1) + ' MiB';

// ---------------------------------------------------------------- replay beside the live view

// The clip on the replay panel, and where its raise is (seconds into the file): the panel
// loops the part before the raise, as a guard arriving at an alarm needs to see what made it.
let replay = null;

// The banner's button for alarm `a`, or null while clips are off.
function replayButton(a) {
  if (clipsInfo.state === 'off') return null;
  const b = el('button', { class: 'replay', 'data-replay': a.id }, `Replay the last ${clipsInfo.pre_s} s`);
  b.addEventListener('click', () => openReplay(a));
  return b;
}

async function openReplay(a) {
  const panel = $('replay'), msg = $('replay-msg');
  panel.hidden = false;
  msg.textContent = 'looking for the clip…';
  let c;
  try {
    // The newest raise's part 1 (the one with the seconds before it), not a later part.
    const r = await api('GET', `/api/clips?alarm=${encodeURIComponent(a.id)}&limit=10`);
    c = r.clips.find((x) => (x.part || 1) === 1);
  } catch (e) { msg.textContent = e.message; return; }
  if (!c) { msg.textContent = `No clip of ${a.name} yet: the box writes one on each raise while clips are on.`; return; }
  replay = { clip: c, raiseS: Math.max(0, (c.raised_us - c.start_us) / 1e6) };
  $('replay-title').textContent = `Before the alarm: ${a.name}, ${names.get(c.stream) || c.stream}, raised ${clipWhen(c.raised_us)}`;
  msg.textContent = `looped: the ${replay.raiseS.toFixed(0)} s up to the raise and 1 s after`;
  loadReplay();
}

// (Re)loads the clip file: while it is still recorded the file grows, and each load sees
// what is written by then.
function loadReplay() {
  const v = $('replay-video');
  v.src = clipUrl(replay.clip) + `?t=${Date.now()}`;
  v.play().catch(() => { /* muted autoplay; a refusal leaves the controls */ });
}

function closeReplay() {
  replay = null;
  const v = $('replay-video');
  v.pause(); v.removeAttribute('src'); v.load();
  $('replay').hidden = true;
}

// Loops at 1 s after the raise, and says where the picture is relative to the raise.
function replayTick() {
  const v = $('replay-video');
  if (!replay) return;
  if (v.currentTime >= replay.raiseS + 1) { v.currentTime = 0; v.play().catch(() => {}); return; }
  const d = v.currentTime - replay.raiseS;
  $('replay-msg').textContent = `${Math.abs(d).toFixed(1)} s ${d < 0 ? 'before' : 'after'} the raise · looped: the ${replay.raiseS.toFixed(0)} s up to it and 1 s after`;
}

// The end of what was written: start again from the top, with what has been written since.
function replayEnded() { if (replay) loadReplay(); }

// ---------------------------------------------------------------- the System tab

// The clips card: the store's state, the list (newest first) with Play and, for admins,
// Delete. Returns the clips, which the Events table links to.
async function renderClips() {
  const card = $('clips-card');
  const info = clipsInfo;
  if (info.state === 'off') {
    $('clips-info').textContent = 'Off: no clips are written. An admin turns them on in the Alarms tab (Event clips).';
    $('clips').replaceChildren();
    return [];
  }
  const parts = [`${info.state === 'ok' ? 'Recording on alarms' : info.state.toUpperCase()}: ${info.count} clips, ${mib(info.bytes)} in ${info.dir}`];
  if (info.error) parts.push(` · ${info.error}`);
  for (const w of info.ring_warnings || []) parts.push(` · ${w.error}`);
  $('clips-info').textContent = parts.join('');
  card.classList.toggle('bad', info.state !== 'ok');
  let list;
  try { list = await api('GET', '/api/clips?limit=50'); } catch (e) { $('clips-info').textContent += ` · ${e.message}`; return []; }
  const admin = session && session.role === 'admin';
  const head = ['raised', 'alarm', 'camera', 'length', 'size', 'state', ''];
  const rows = list.clips.map((c) => {
    const play = el('button', { class: 'quiet', 'data-play': c.id }, 'Play');
    play.addEventListener('click', () => playClip(c));
    const acts = el('span', {}, play);
    if (admin) {
      const del = el('button', { class: 'quiet danger', 'data-delete': c.id }, 'Delete');
      del.addEventListener('click', () => deleteClip(c));
      acts.append(' ', del);
    }
    const state = c.error ? `${c.state}: ${c.error}` : c.state;
    return el('tr', { 'data-clip': c.id }, ...[clipWhen(c.raised_us), c.part > 1 ? `${c.alarm} (part ${c.part})` : c.alarm, names.get(c.stream) || c.stream,
      (c.duration_ms / 1000).toFixed(1) + ' s', mib(c.bytes), state].map((t) => el('td', {}, t)), el('td', {}, acts));
  });
  $('clips').replaceChildren(el('tr', {}, ...head.map((h) => el('th', {}, h))), ...rows);
  if (list.total > list.clips.length) $('clips-info').textContent += ` (the newest ${list.clips.length} shown)`;
  return list.clips;
}

function playClip(c) {
  const v = $('clip-video');
  $('clip-player').hidden = false;
  $('clip-title').textContent = `${c.alarm} on ${names.get(c.stream) || c.stream}, raised ${clipWhen(c.raised_us)} (${c.state})`;
  v.src = clipUrl(c) + `?t=${Date.now()}`;
  v.play().catch(() => {});
  $('clip-player').scrollIntoView({ block: 'nearest' });
}

async function deleteClip(c) {
  try {
    await api('DELETE', `/api/clips/${encodeURIComponent(c.id)}`);
    $('clips-msg').className = 'msg good'; $('clips-msg').textContent = `Deleted ${c.id}.`;
  } catch (e) { $('clips-msg').className = 'msg bad'; $('clips-msg').textContent = e.message; }
  refreshSystem();
}

// The Events table's last cell: a Play button for an alarm raise that has a clip.
function eventClipCell(e, clips) {
  if (e.kind !== 'alarm' || e.action !== 'raised' || !e.alarm) return '';
  const c = clipFor(clips, e.alarm, e.at_us);
  if (!c) return '';
  const b = el('button', { class: 'quiet', 'data-event-clip': c.id }, 'clip');
  b.addEventListener('click', () => playClip(c));
  return b;
}

// ---------------------------------------------------------------- settings (Alarms tab)

// `[clips]` on the Alarms tab, saved with the alarms.
function renderClipSettings() {
  const box = $('clip-settings');
  const c = config.clips;
  const p = 'clips';
  box.replaceChildren(el('h3', {}, 'Event clips'),
    el('p', { class: 'small' }, 'On each alarm raise the box writes an MP4 of the alarm\'s camera, from a few seconds before the raise to a few seconds after the alarm ends, into its clip directory; the oldest clips go first when the quota is reached.'),
    el('div', { class: 'entry' }, el('div', { class: 'grid' },
      field(c, 'enabled', 'Record a clip on every alarm', 'bool', p + '.enabled'),
      field(c, 'pre_s', 'Seconds before the raise', 'number', p + '.pre_s'),
      field(c, 'post_s', 'Seconds after the alarm ends', 'number', p + '.post_s'),
      field(c, 'max_s', 'Longest clip (s)', 'number', p + '.max_s'),
      field(c, 'quota_count', 'Most clips kept', 'number', p + '.quota_count'),
      mibField(c, 'quota_bytes', 'Most space (MiB)', p + '.quota_bytes'),
      field(c, 'video_loss', 'Also on video loss', 'bool', p + '.video_loss'))));
}

// A number field in MiB bound to a byte count.
function mibField(obj, key, label, path) {
  const input = el('input', { type: 'number', min: '1' });
  input.value = Math.round(obj[key] / 1048576);
  input.addEventListener('input', () => { obj[key] = Math.round(Number(input.value) * 1048576); });
  return el('label', { 'data-path': path, 'data-label': label }, label, input);
}

function clipsInit() {
  $('replay-close').addEventListener('click', closeReplay);
  $('replay-video').addEventListener('timeupdate', replayTick);
  $('replay-video').addEventListener('ended', replayEnded);
  $('clip-close').addEventListener('click', () => { const v = $('clip-video'); v.pause(); v.removeAttribute('src'); v.load(); $('clip-player').hidden = true; });
}
