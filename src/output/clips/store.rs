//! The clip directory: its index (`index.json`, written atomically), the quota and the state
//! shown in `/api/status`.
//!
//! A clip is the file `<id>.mp4`, its id `<raise ms>.<alarm>.<stream>`, and
//! `<raise ms>.<alarm>.<stream>.<part>` for the later parts of an event whose picture changed
//! (config ids hold no dot), so a damaged or missing index is rebuilt from the file names
//! alone. An entry left `recording` by a crash or a power cut becomes `partial` at the next
//! start; its file is scanned ([`super::scan`]) for its duration and cut after its last
//! complete fragment, so it plays up to there and the index says what it holds.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::config::ClipsConfig;

/// Name of the index file inside the clip directory.
pub const INDEX_FILE: &str = "index.json";

/// One clip as the index and `GET /api/clips` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipEntry {
    /// `<raise ms>.<alarm>.<stream>`, with `.<part>` from part 2 on; the file is `<id>.mp4`.
    pub id: String,
    /// 1, or 2, 3, ... for the files that continue the same event after the stream's picture
    /// size or parameter sets changed (a player takes one init segment per file).
    #[serde(default = "first_part")]
    pub part: u32,
    /// The stream recorded.
    pub stream: String,
    /// The alarm whose raise started it.
    pub alarm: String,
    /// Wall time of the alarm's raise, µs (to link events to clips).
    pub raised_us: i64,
    /// Wall time of the clip's first frame, µs.
    pub start_us: i64,
    /// Seconds of video written so far (from the frames' timestamps).
    pub duration_ms: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// `recording`, `complete`, `partial` (a crash or a write error ended it) or `failed`.
    pub state: String,
    /// Why it is partial or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The part number of a clip that says none (an index from before parts).
fn first_part() -> u32 {
    1
}

/// Why [`ClipStore::make_room`] found no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// `quota_bytes` or `quota_count` is taken by clips being recorded.
    Quota,
    /// The file system has fewer than `min_free_bytes` free, with no finished clip left.
    Disk,
}

/// The directory's health for `/api/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreState {
    /// `ok`, `full` (quota or free space) or `error` (cannot write).
    pub state: &'static str,
    /// What went wrong and what to do, for the installer.
    pub error: Option<String>,
}

/// What the store holds, under one lock.
#[derive(Debug)]
struct Inner {
    /// Every clip, oldest first.
    entries: Vec<ClipEntry>,
    /// The latest write outcome.
    state: StoreState,
}

/// The clip directory and its index; shared by the recorders and the web server.
#[derive(Debug)]
pub struct ClipStore {
    /// Where clips are written.
    dir: PathBuf,
    /// Quotas and timings.
    cfg: ClipsConfig,
    /// The index in memory and the state.
    inner: Mutex<Inner>,
    /// Serialises index writes, so a newer index is never overwritten by an older one.
    save_lock: Mutex<()>,
    /// Free bytes on the directory's file system ([`free_bytes`]; a test injects numbers).
    free_space: fn(&Path) -> Option<u64>,
}

impl ClipStore {
    /// Opens (creating) `dir`, loads its index or rebuilds it from the files. Blocking.
    /// A directory that cannot be made gives a store in the `error` state, not an error:
    /// the live view goes on and the System tab says why.
    pub fn open(dir: PathBuf, cfg: ClipsConfig) -> ClipStore {
        let state = match fs::create_dir_all(&dir) {
            Ok(()) => ok_state(),
            Err(e) => StoreState {
                state: "error",
                error: Some(format!(
                    "cannot create the clip directory {}: {e}; check clips.dir and its permissions",
                    dir.display()
                )),
            },
        };
        let entries = load_index(&dir);
        let store = ClipStore {
            dir,
            cfg,
            inner: Mutex::new(Inner { entries, state }),
            save_lock: Mutex::new(()),
            free_space: free_bytes,
        };
        store.save_index();
        store
    }

    /// The clip directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config it runs with.
    pub fn config(&self) -> &ClipsConfig {
        &self.cfg
    }

    /// The file of clip `id`.
    pub fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.mp4"))
    }

    /// Every clip, oldest first.
    pub fn entries(&self) -> Vec<ClipEntry> {
        self.lock().entries.clone()
    }

    /// One clip by id.
    pub fn get(&self, id: &str) -> Option<ClipEntry> {
        self.lock().entries.iter().find(|e| e.id == id).cloned()
    }

    /// The directory's state.
    pub fn state(&self) -> StoreState {
        self.lock().state.clone()
    }

    /// Whether the store's state is `ok` (no copy of its error text).
    pub fn is_ok(&self) -> bool {
        self.lock().state.state == "ok"
    }

    /// Updates a clip's size and duration in place (a recorder's write); nothing when the
    /// clip is not in the index any more.
    pub fn set_progress(&self, id: &str, bytes: u64, duration_ms: u64) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.iter_mut().find(|e| e.id == id) {
            e.bytes = bytes;
            e.duration_ms = duration_ms;
        }
    }

    /// Sets the state (a recorder's write outcome).
    pub fn set_state(&self, state: &'static str, error: Option<String>) {
        self.lock().state = StoreState { state, error };
    }

    /// Total bytes of the clips on disk.
    pub fn total_bytes(&self) -> u64 {
        self.lock().entries.iter().map(|e| e.bytes).sum()
    }

    /// Adds or replaces an entry (by id) without writing the index.
    pub fn upsert(&self, entry: ClipEntry) {
        let mut inner = self.lock();
        match inner.entries.iter_mut().find(|e| e.id == entry.id) {
            Some(e) => *e = entry,
            None => inner.entries.push(entry),
        }
    }

    /// Removes clip `id` and its file; false when there is no such clip. Blocking.
    pub fn remove(&self, id: &str) -> bool {
        let found = {
            let mut inner = self.lock();
            let before = inner.entries.len();
            inner.entries.retain(|e| e.id != id);
            inner.entries.len() != before
        };
        if found {
            if let Err(e) = fs::remove_file(self.path_of(id)) {
                tracing::warn!(clip = %id, error = %e, "cannot remove a clip file");
            }
            self.save_index();
        }
        found
    }

    /// Removes the oldest finished clips until `extra` more bytes and one more clip fit the
    /// quota (`extra` = 0 and no new clip with `adding` false), and until the file system
    /// keeps `min_free_bytes` free after `extra` more. Fails when the clips being recorded
    /// alone are in the way. Blocking.
    pub fn make_room(&self, extra: u64, adding: bool) -> Result<(), NoRoom> {
        let (quota_bytes, quota_count) = (self.cfg.quota_bytes, self.cfg.quota_count as usize);
        let want_free = self.cfg.min_free_bytes.saturating_add(extra);
        let free = (self.cfg.min_free_bytes > 0)
            .then(|| (self.free_space)(&self.dir))
            .flatten();
        let mut removed = Vec::new();
        let mut freed = 0u64;
        let fits = {
            let mut inner = self.lock();
            loop {
                let bytes: u64 = inner.entries.iter().map(|e| e.bytes).sum();
                let count = inner.entries.len() + usize::from(adding);
                let quota_ok = bytes + extra <= quota_bytes && count <= quota_count;
                let disk_ok = free.is_none_or(|f| f.saturating_add(freed) >= want_free);
                if quota_ok && disk_ok {
                    break Ok(());
                }
                let Some(i) = inner.entries.iter().position(|e| e.state != "recording") else {
                    break Err(if disk_ok { NoRoom::Quota } else { NoRoom::Disk });
                };
                let gone = inner.entries.remove(i);
                freed += gone.bytes;
                removed.push((gone.id, quota_ok));
            }
        };
        for (id, quota_ok) in &removed {
            let why = if *quota_ok { "disk space" } else { "quota" };
            tracing::info!(clip = %id, reason = why, "clip removed to make room");
            if let Err(e) = fs::remove_file(self.path_of(id)) {
                tracing::warn!(clip = %id, error = %e, "cannot remove a clip file");
            }
        }
        if !removed.is_empty() {
            self.save_index();
        }
        fits
    }

    /// What to tell the installer about a [`NoRoom`].
    pub fn no_room_message(&self, why: NoRoom) -> String {
        match why {
            NoRoom::Quota => {
                "the clip quota is taken by clips being recorded; raise clips.quota_bytes".into()
            }
            NoRoom::Disk => format!(
                "the disk of {} is full (fewer than clips.min_free_bytes = {} bytes free, \
                 and only clips being recorded are left to remove); free space on it or \
                 move clips.dir to a larger disk",
                self.dir.display(),
                self.cfg.min_free_bytes
            ),
        }
    }

    /// Writes the index atomically (see [`crate::persist`]). Blocking. A failure is logged
    /// and shown as the store's state; the clips themselves are unaffected.
    pub fn save_index(&self) {
        let _serial = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut bytes = Vec::new();
        for e in self.lock().entries.iter() {
            if let Ok(line) = serde_json::to_vec(e) {
                bytes.extend_from_slice(&line);
                bytes.push(b'\n');
            }
        }
        if let Err(e) = crate::persist::write_atomic(&self.dir.join(INDEX_FILE), &bytes) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the clip index");
            self.set_state(
                "error",
                Some(format!(
                    "cannot write the clip index in {}: {e}; is the disk full or read-only? check clips.dir",
                    self.dir.display()
                )),
            );
        }
    }

    /// The lock, also after a panic elsewhere (the data is plain values).
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The healthy state.
pub(super) fn ok_state() -> StoreState {
    StoreState {
        state: "ok",
        error: None,
    }
}

/// The index of `dir` (JSON lines), checked against the files there: entries without a file
/// go, files without an entry come back (as `partial`), `recording` becomes `partial`, sizes
/// are the files' own. A damaged index is rebuilt from the files.
fn load_index(dir: &Path) -> Vec<ClipEntry> {
    let files = clip_files(dir);
    let parsed: Result<Vec<ClipEntry>, _> = match fs::read(dir.join(INDEX_FILE)) {
        Ok(bytes) => bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(serde_json::from_slice::<ClipEntry>)
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the clip index; rebuilding it");
            Ok(Vec::new())
        }
    };
    let mut entries = parsed.unwrap_or_else(|e| {
        tracing::warn!(dir = %dir.display(), error = %e, "clip index damaged; rebuilt from the files");
        Vec::new()
    });
    entries.retain(|e| files.iter().any(|(id, _)| *id == e.id));
    for (id, bytes) in &files {
        let known = entries.iter().position(|e| e.id == *id);
        let entry = match known {
            Some(i) => &mut entries[i],
            None => match entry_from_name(id, *bytes) {
                Some(e) => {
                    entries.push(e);
                    entries.last_mut().expect("just pushed")
                }
                None => continue,
            },
        };
        entry.bytes = *bytes;
        // Still written by a recorder of this process (the store reopened on a `[clips]`
        // change): not a crash's leftover.
        if super::scan::being_recorded(&dir.join(format!("{id}.mp4"))) {
            continue;
        }
        if entry.state == "recording" || known.is_none() {
            if entry.state == "recording" {
                entry.state = "partial".into();
                entry.error = Some("the daemon stopped while recording".into());
            }
            recover(dir, entry);
        }
    }
    // A file with no complete fragment holds no video: it goes.
    entries.retain(|e| {
        let keep = e.bytes > 0;
        if !keep {
            let _ = fs::remove_file(dir.join(format!("{}.mp4", e.id)));
        }
        keep
    });
    entries.sort_by(|a, b| (a.start_us, &a.id).cmp(&(b.start_us, &b.id)));
    entries
}

/// Reads what a clip that a crash ended holds from its file: its duration, and its size up
/// to the last complete fragment (a torn tail is cut off). `bytes` becomes 0 when nothing in
/// it plays.
fn recover(dir: &Path, e: &mut ClipEntry) {
    let path = dir.join(format!("{}.mp4", e.id));
    match super::scan::scan(&path) {
        Ok(found) => {
            if found.end < e.bytes && found.fragments > 0 {
                if let Err(err) = super::scan::truncate_to(&path, found.end) {
                    tracing::warn!(clip = %e.id, error = %err, "cannot cut a torn clip tail");
                } else {
                    tracing::info!(clip = %e.id, cut = e.bytes - found.end, "torn clip tail cut off");
                    e.bytes = found.end;
                }
            }
            if found.fragments == 0 {
                tracing::info!(clip = %e.id, "clip without a complete fragment removed");
                e.bytes = 0;
            }
            e.duration_ms = found.duration_ms;
            tracing::info!(clip = %e.id, duration_ms = e.duration_ms, bytes = e.bytes, fragments = found.fragments, "partial clip recovered");
        }
        Err(err) => tracing::warn!(clip = %e.id, error = %err, "cannot read a partial clip"),
    }
}

/// The clip files of `dir`: id and size.
fn clip_files(dir: &Path) -> Vec<(String, u64)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|d| {
            let name = d.file_name().into_string().ok()?;
            let id = name.strip_suffix(".mp4")?.to_string();
            let len = d.metadata().ok()?.len();
            Some((id, len))
        })
        .collect()
}

/// The entry an index rebuild makes of a file name `<raise ms>.<alarm>.<stream>[.<part>]`.
fn entry_from_name(id: &str, bytes: u64) -> Option<ClipEntry> {
    let mut parts = id.split('.');
    let ms: i64 = parts.next()?.parse().ok()?;
    let alarm = parts.next()?.to_string();
    let stream = parts.next()?.to_string();
    let part = match parts.next() {
        Some(p) => p.parse().ok().filter(|p| *p >= 2)?,
        None => 1,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(ClipEntry {
        id: id.to_string(),
        part,
        stream,
        alarm,
        raised_us: ms * 1000,
        start_us: ms * 1000,
        duration_ms: 0,
        bytes,
        state: "partial".into(),
        error: Some("index rebuilt from the file name".into()),
    })
}

/// Free bytes for an unprivileged writer on the file system of `dir`; `None` when unknown.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, bytes: u64, state: &str) -> ClipEntry {
        let mut e = entry_from_name(id, bytes).unwrap();
        e.state = state.into();
        e
    }

    #[test]
    fn quota_removes_the_oldest_first() {
        let dir = std::env::temp_dir().join(format!("edgecam-clipq-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let cfg = ClipsConfig {
            quota_bytes: 250,
            quota_count: 10,
            min_free_bytes: 0,
            ..ClipsConfig::default()
        };
        let store = ClipStore::open(dir.clone(), cfg);
        for (i, id) in ["1.a.s", "2.a.s", "3.a.s"].iter().enumerate() {
            fs::write(store.path_of(id), vec![0; 100]).unwrap();
            store.upsert(entry(
                id,
                100,
                if i == 2 { "recording" } else { "complete" },
            ));
        }
        assert_eq!(store.make_room(0, false), Ok(()));
        let ids: Vec<_> = store.entries().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["2.a.s", "3.a.s"]);
        assert!(!store.path_of("1.a.s").exists());
        // Only the recording clip left, and still no room: reported, not removed.
        assert_eq!(store.make_room(200, false), Err(NoRoom::Quota));
        assert_eq!(store.entries().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Free bytes the next [`fake_free`] reports.
    static FREE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    fn fake_free(_: &Path) -> Option<u64> {
        Some(FREE.load(std::sync::atomic::Ordering::Relaxed))
    }

    #[test]
    fn a_short_disk_removes_the_oldest_clips_first_then_reports() {
        let dir = std::env::temp_dir().join(format!("edgecam-clipf-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let cfg = ClipsConfig {
            min_free_bytes: 1000,
            ..ClipsConfig::default()
        };
        let mut store = ClipStore::open(dir.clone(), cfg);
        store.free_space = fake_free;
        for (i, id) in ["1.a.s", "2.a.s", "3.a.s"].iter().enumerate() {
            fs::write(store.path_of(id), vec![0; 100]).unwrap();
            store.upsert(entry(
                id,
                100,
                if i == 2 { "recording" } else { "complete" },
            ));
        }
        // 950 free, 1000 + 100 wanted: two finished clips of 100 bytes must go.
        FREE.store(950, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(store.make_room(100, false), Ok(()));
        let ids: Vec<_> = store.entries().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["3.a.s"]);
        assert!(!store.path_of("1.a.s").exists() && !store.path_of("2.a.s").exists());
        // Only the clip being recorded is left: reported as a full disk, naming the field.
        FREE.store(10, std::sync::atomic::Ordering::Relaxed);
        let why = store.make_room(100, false).unwrap_err();
        assert_eq!(why, NoRoom::Disk);
        assert!(store.no_room_message(why).contains("clips.min_free_bytes"));
        assert_eq!(store.entries().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A clip file as the recorder writes it: init segment and `n` one-frame fragments of
    /// 40 ms (25 fps).
    fn clip_file(n: usize) -> Vec<u8> {
        let key = crate::codec::fmp4::tests::keyframe();
        let mut data = crate::codec::fmp4::init_segment(&key).unwrap().bytes;
        let mut frag = crate::codec::fmp4::Fragmenter::new();
        for i in 0..n {
            frag.append(&key, i as i64 * 40_000, true, false, &mut data);
        }
        data
    }

    #[test]
    fn damaged_index_is_rebuilt_and_recording_becomes_partial() {
        let dir = std::env::temp_dir().join(format!("edgecam-clipi-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = ClipStore::open(dir.clone(), ClipsConfig::default());
        let whole = clip_file(10);
        // A torn last write: half of an eleventh fragment.
        let eleven = clip_file(11);
        let torn = &eleven[..whole.len() + (eleven.len() - whole.len()) / 2];
        fs::write(store.path_of("5.door.cam1"), torn).unwrap();
        // Nothing but an init segment: no video, it goes.
        fs::write(store.path_of("6.door.cam1"), clip_file(0)).unwrap();
        store.upsert(entry("5.door.cam1", 1, "recording"));
        store.upsert(entry("6.door.cam1", 1, "recording"));
        store.save_index();
        drop(store);
        let again = ClipStore::open(dir.clone(), ClipsConfig::default());
        let e = again.get("5.door.cam1").unwrap();
        assert_eq!((e.state.as_str(), e.bytes), ("partial", whole.len() as u64));
        // Ten samples of 40 ms.
        assert_eq!(e.duration_ms, 400);
        assert_eq!(fs::read(again.path_of("5.door.cam1")).unwrap(), whole);
        assert!(again.get("6.door.cam1").is_none());
        assert!(!again.path_of("6.door.cam1").exists());
        // A clip a live recorder holds is not a crash's: left as it is.
        let held = fs::File::create(again.path_of("7.door.cam1")).unwrap();
        super::super::scan::mark_recording(&held);
        fs::write(again.path_of("7.door.cam1"), torn).unwrap();
        again.upsert(entry("7.door.cam1", 1, "recording"));
        again.save_index();
        let reopened = ClipStore::open(dir.clone(), ClipsConfig::default());
        let e = reopened.get("7.door.cam1").unwrap();
        assert_eq!(
            (e.state.as_str(), e.bytes),
            ("recording", torn.len() as u64)
        );
        drop(held);
        fs::remove_file(again.path_of("7.door.cam1")).unwrap();
        fs::write(dir.join(INDEX_FILE), b"{not json\n").unwrap();
        fs::write(again.path_of("5.door.cam1.2"), clip_file(5)).unwrap();
        let rebuilt = ClipStore::open(dir.clone(), ClipsConfig::default());
        let e = rebuilt.get("5.door.cam1").unwrap();
        assert_eq!((e.alarm.as_str(), e.stream.as_str()), ("door", "cam1"));
        assert_eq!((e.part, e.duration_ms), (1, 400));
        let p2 = rebuilt.get("5.door.cam1.2").unwrap();
        assert_eq!((p2.part, p2.raised_us, p2.duration_ms), (2, 5000, 200));
        fs::remove_dir_all(&dir).unwrap();
    }
}
