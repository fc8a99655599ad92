//! One clip's recording: its own task with its own ring [`Reader`], so a slow disk only
//! makes this recorder lag (and skip to a keyframe), never the ingest or the control task.
//!
//! The file is a fragmented MP4 made by the live path's writer ([`crate::codec::fmp4`]): the
//! init segment, then one `moof` + `mdat` per access unit on one decode timeline (with
//! composition offsets for B-frames). Fragments are gathered and written once per GOP or per
//! second, sequentially; the file is `fsync`ed once, at the end. A power cut leaves a file
//! that plays up to its last complete write.
//!
//! A file holds one init segment, as browsers and VLC expect of an MP4: when the stream's
//! parameter sets change mid-clip (the camera's resolution was changed), the file ends
//! (`complete`) at that keyframe and the event goes on in a new file, part 2, 3, ... of the
//! same alarm raise ([`ClipEntry::part`]), each with its own timeline from zero.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::store::{ClipEntry, ClipStore, ok_state};
use crate::clock::Clock;
use crate::codec::fmp4::{Fragmenter, init_segment};
use crate::frame::Codec;
use crate::ring::{FrameRing, Reader, Start};

/// Longest wait for a frame before the clock is checked again (a stream that stopped).
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// Most time (µs) of fragments gathered before they are written.
const FLUSH_SPAN_US: i64 = 1_000_000;

/// What a recorder needs to know about its clip.
pub(super) struct Job {
    /// The clip's index entry (id, stream, alarm, raise time), updated as it grows; the
    /// current part's.
    pub entry: ClipEntry,
    /// Wall time of the event's first frame (part 1's), µs: `max_s` counts from it, whatever
    /// part is being written.
    pub event_start_us: i64,
    /// The alarm stream's ring.
    pub ring: Arc<FrameRing>,
    /// When the alarm ended (wall µs), `None` while it is up; the manager sets it.
    pub ended: watch::Receiver<Option<i64>>,
    /// The directory and index.
    pub store: Arc<ClipStore>,
    /// Wall time, to end a clip whose stream stopped sending.
    pub clock: Arc<dyn Clock>,
    /// Set once the recording takes no more frames, so the manager starts a new clip for a
    /// raise that comes while this one is still closing its file.
    pub done: Arc<std::sync::atomic::AtomicBool>,
}

/// Why a recording stopped early.
#[derive(Debug)]
enum Stop {
    /// Quota or free space reached.
    Full(String),
    /// A write failed.
    Io(String),
}

/// The open clip file and what was written.
struct Out {
    /// The file, moved into the blocking pool for each write.
    file: Option<File>,
    /// Fragments gathered since the last write.
    pending: Vec<u8>,
    /// Bytes written to the file.
    written: u64,
    /// The file's init segment: a keyframe whose parameter sets make another one ends it.
    init: Vec<u8>,
    /// The file's path, made once: a write allocates nothing for it.
    path: Arc<std::path::Path>,
}

/// Records one clip to its end and updates the index.
pub(super) async fn record(mut job: Job) {
    let id = job.entry.id.clone();
    let result = run(&mut job).await;
    job.done.store(true, std::sync::atomic::Ordering::Release);
    let store = Arc::clone(&job.store);
    let (state, error) = match &result {
        Ok(()) => ("complete", None),
        Err(Stop::Full(e)) => {
            store.set_state("full", Some(e.clone()));
            ("partial", Some(e.clone()))
        }
        Err(Stop::Io(e)) => {
            store.set_state("error", Some(e.clone()));
            ("partial", Some(e.clone()))
        }
    };
    job.entry.state = state.into();
    job.entry.error = error;
    if job.entry.bytes == 0 {
        job.entry.state = "failed".into();
        let _ = std::fs::remove_file(store.path_of(&id));
    }
    tracing::info!(clip = %id, part = job.entry.part, state = %job.entry.state, bytes = job.entry.bytes, "clip ended");
    // A later part that never got a frame is no clip; a first one is listed as failed.
    if job.entry.part == 1 || job.entry.bytes > 0 {
        store.upsert(job.entry.clone());
    }
    let _ = tokio::task::spawn_blocking(move || {
        // Errors here were reported by the flushes; this only trims after the clip.
        let _ = store.make_room(0, false);
        store.save_index();
    })
    .await;
}

/// The recording itself: pre-roll from the ring, then live frames until the end.
async fn run(job: &mut Job) -> Result<(), Stop> {
    let pre_us = i64::from(job.store.config().pre_s) * 1_000_000;
    let mut reader = start_reader(&job.ring, job.entry.raised_us - pre_us);
    let mut buf = Vec::with_capacity(job.ring.max_frame_bytes().min(1 << 20));
    let mut frag = Fragmenter::new();
    let mut out: Option<Out> = None;
    let (mut first_pts, mut flushed_pts) = (None::<i64>, 0i64);
    loop {
        let meta = match reader.next_into(&mut buf) {
            Ok(Some(m)) => m,
            Ok(None) => {
                if past_end(job, job.clock.wall_us()) {
                    break;
                }
                tokio::select! {
                    _ = reader.wait() => {}
                    _ = job.ended.changed() => {}
                    _ = tokio::time::sleep(IDLE_CHECK) => {}
                }
                continue;
            }
            Err(lag) => {
                tracing::warn!(clip = %job.entry.id, skipped = lag.skipped, "clip recorder fell behind; frames skipped");
                continue;
            }
        };
        if meta.info.codec != Codec::H264 || past_end(job, meta.info.recv_wall_us) {
            if meta.info.codec != Codec::H264 {
                tracing::warn!(clip = %job.entry.id, "clip ended: the stream is not H.264");
            }
            break;
        }
        let key = meta.info.keyframe;
        // A new picture size or parameter sets: this file ends, the next part begins.
        if key
            && meta.info.params_changed
            && let Some(o) = out.as_mut()
            && init_segment(&buf).is_ok_and(|i| i.bytes != o.init)
        {
            flush(job, o, true).await?;
            next_part(job).await;
            (out, frag, first_pts) = (None, Fragmenter::new(), None);
        }
        let o = match out.as_mut() {
            Some(o) => o,
            None if !key => continue,
            None => {
                let Ok(init) = init_segment(&buf) else {
                    continue;
                };
                job.entry.start_us = meta.info.recv_wall_us;
                if job.entry.part == 1 {
                    job.event_start_us = meta.info.recv_wall_us;
                    short_pre_roll(job, meta.info.recv_wall_us, pre_us);
                }
                first_pts = Some(meta.info.pts_us);
                flushed_pts = meta.info.pts_us;
                let o = open(job, init.bytes).await?;
                tracing::info!(clip = %job.entry.id, part = job.entry.part, width = init.width, height = init.height, "clip recording");
                out.insert(o)
            }
        };
        let pts = meta.info.pts_us;
        if key || pts - flushed_pts >= FLUSH_SPAN_US {
            flush(job, o, false).await?;
            flushed_pts = pts;
        }
        frag.append(&buf, pts, key, false, &mut o.pending);
        if let Some(p0) = first_pts {
            job.entry.duration_ms = u64::try_from((pts - p0) / 1000).unwrap_or(0);
        }
    }
    if let Some(o) = out.as_mut() {
        flush(job, o, true).await?;
    }
    Ok(())
}

/// Warns when the ring did not hold `pre_s` of the stream: the clip's first frame came at
/// `first_wall_us`.
fn short_pre_roll(job: &Job, first_wall_us: i64, pre_us: i64) {
    let want = job.entry.raised_us - pre_us;
    if first_wall_us > want + 1_000_000 {
        tracing::warn!(
            clip = %job.entry.id,
            short_ms = (first_wall_us - want) / 1000,
            ring_bytes = job.ring.stats().arena_bytes,
            "clip pre-roll is short: the ring does not hold clips.pre_s of this stream (ring_warnings in /api/status says why and what fixes it)"
        );
    }
}

/// Ends the current part (its file is written and `fsync`ed) as `complete` and makes the
/// entry the next part's: same alarm raise, id `<raise ms>.<alarm>.<stream>.<part>`.
async fn next_part(job: &mut Job) {
    job.entry.state = "complete".into();
    job.entry.error = None;
    tracing::info!(
        clip = %job.entry.id,
        part = job.entry.part,
        duration_ms = job.entry.duration_ms,
        "clip part ended: the stream's picture changed; the event goes on in the next part"
    );
    job.store.upsert(job.entry.clone());
    let store = Arc::clone(&job.store);
    let _ = tokio::task::spawn_blocking(move || store.save_index()).await;
    let e = &job.entry;
    let part = e.part + 1;
    job.entry = ClipEntry {
        id: format!("{}.{}.{}.{part}", e.raised_us / 1000, e.alarm, e.stream),
        part,
        duration_ms: 0,
        bytes: 0,
        state: "recording".into(),
        error: None,
        ..e.clone()
    };
}

/// A reader at the latest keyframe received at or before `from_wall_us` (else the oldest
/// stored keyframe; else the next frame).
fn start_reader(ring: &Arc<FrameRing>, from_wall_us: i64) -> Reader {
    let mut reader = ring.reader(Start::Oldest);
    let mut buf = Vec::new();
    let (mut best, mut first) = (None, None);
    while let Ok(Some(m)) = reader.next_into(&mut buf) {
        if m.info.keyframe {
            first = first.or(Some(m.seq));
            if m.info.recv_wall_us <= from_wall_us {
                best = Some(m.seq);
            }
        }
    }
    if let Some(seq) = best.or(first) {
        reader.seek(seq);
    }
    reader
}

/// Whether a frame received at `wall_us` (or the clock, when none comes) is past the clip's
/// end: `post_s` after the alarm ended, or `max_s` after the clip's first frame.
fn past_end(job: &Job, wall_us: i64) -> bool {
    let cfg = job.store.config();
    let max_end = job.event_start_us + i64::from(cfg.max_s) * 1_000_000;
    let post_end = (*job.ended.borrow()).map(|e| e + i64::from(cfg.post_s) * 1_000_000);
    wall_us >= max_end || post_end.is_some_and(|p| wall_us >= p)
}

/// Creates the clip file, writes the init segment and enters the clip in the index.
async fn open(job: &mut Job, init: Vec<u8>) -> Result<Out, Stop> {
    let path = job.store.path_of(&job.entry.id);
    let store = Arc::clone(&job.store);
    let init_len = init.len() as u64;
    let entry = job.entry.clone();
    let opened = tokio::task::spawn_blocking(move || {
        if let Err(why) = store.make_room(init.len() as u64, true) {
            return Err(Stop::Full(store.no_room_message(why)));
        }
        let mut file = File::create(&path).map_err(|e| io_stop(&path, &e))?;
        super::scan::mark_recording(&file);
        file.write_all(&init).map_err(|e| io_stop(&path, &e))?;
        store.upsert(ClipEntry {
            bytes: init.len() as u64,
            ..entry
        });
        store.save_index();
        Ok((file, init))
    })
    .await
    .map_err(|e| Stop::Io(format!("the clip write task failed: {e}")))??;
    let (opened, init) = opened;
    job.entry.bytes = init_len;
    Ok(Out {
        file: Some(opened),
        pending: Vec::with_capacity(1 << 20),
        written: init_len,
        init,
        path: job.store.path_of(&job.entry.id).into(),
    })
}

/// Writes the gathered fragments (checking free space and quota first); on `last` also
/// `fsync`s the file.
async fn flush(job: &mut Job, o: &mut Out, last: bool) -> Result<(), Stop> {
    if o.pending.is_empty() && !last {
        return Ok(());
    }
    let Some(mut file) = o.file.take() else {
        return Err(Stop::Io("the clip file is gone".into()));
    };
    let store = Arc::clone(&job.store);
    let path = Arc::clone(&o.path);
    let data = std::mem::take(&mut o.pending);
    let len = data.len() as u64;
    let (file, data, res) = tokio::task::spawn_blocking(move || {
        if let Err(why) = store.make_room(len, false) {
            let e = store.no_room_message(why);
            return (file, data, Err(Stop::Full(e)));
        }
        // The directory unmounted or replaced meanwhile: the open file would go on filling
        // an unlinked inode nobody can see.
        if let Err(e) = std::fs::metadata(&path) {
            return (file, data, Err(io_stop(&path, &e)));
        }
        let mut res = file.write_all(&data).map_err(|e| io_stop(&path, &e));
        if res.is_ok() && last {
            res = file.sync_all().map_err(|e| io_stop(&path, &e));
        }
        (file, data, res)
    })
    .await
    .map_err(|e| Stop::Io(format!("the clip write task failed: {e}")))?;
    o.file = Some(file);
    o.pending = data;
    o.pending.clear();
    res?;
    o.written += len;
    job.entry.bytes = o.written;
    // In place: the entry's strings are not copied for every write.
    job.store
        .set_progress(&job.entry.id, job.entry.bytes, job.entry.duration_ms);
    if !job.store.is_ok() {
        let ok = ok_state();
        job.store.set_state(ok.state, ok.error);
    }
    Ok(())
}

/// A write error in words an installer understands.
fn io_stop(path: &std::path::Path, e: &std::io::Error) -> Stop {
    Stop::Io(format!(
        "cannot write the clip {}: {e}; is the disk full or read-only? check clips.dir",
        path.display()
    ))
}
