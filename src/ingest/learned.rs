//! The RTSP transport that last gave frames, per camera URL (without credentials), so that a
//! camera that refuses TCP (VLC's server, some NVR channels) costs the extra `DESCRIBE` once,
//! not on every start of the box.
//!
//! The process-wide memory ([`memory`]) is what [`super::rtsp`] reads and writes. The daemon
//! loads it from `<state_dir>/rtsp-transports.json` at start ([`TransportMemory::load`]) and
//! writes it back when it changed ([`TransportMemory::save`], atomically, from its periodic
//! tick and at shutdown). The file is a hint: a missing, damaged or foreign file is logged and
//! ignored, and a hint that no longer fits the camera is unlearned by the session itself
//! (`auto` falls back to the other transport and learns again).
//!
//! ```json
//! {"version": 1, "cameras": {"rtsp://192.0.2.7:554/stream1": "udp"}}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::config::schema::Transport;

/// The file's name in the state directory.
pub const FILE: &str = "rtsp-transports.json";

/// The file layout this build reads and writes.
const VERSION: u32 = 1;

/// Cameras remembered at most: a box has a handful; a file with more is not ours.
pub const MAX_CAMERAS: usize = 1024;

/// The file is a few hundred bytes; a larger one is not read.
const MAX_FILE_LEN: u64 = 256 * 1024;

/// Why the file was not read or written.
#[derive(Debug, thiserror::Error)]
pub enum LearnedError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The file is there but is not a transport file this build reads.
    #[error(
        "{path} is damaged or from another version ({why}); the box learns the transports again"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// The file's shape.
#[derive(Serialize, Deserialize)]
struct FileBody {
    /// [`VERSION`].
    version: u32,
    /// Credential-free camera URL → `tcp` or `udp`, sorted so that the file is stable.
    cameras: BTreeMap<String, Transport>,
}

/// Learned transports with a change counter, so a save writes only when something changed.
#[derive(Debug, Default)]
pub struct TransportMemory {
    /// Credential-free camera URL → the transport that last gave frames.
    map: Mutex<HashMap<String, Transport>>,
    /// Bumped on every change; the save compares it with `saved`.
    changes: AtomicU64,
    /// The value of `changes` the file on disk reflects.
    saved: AtomicU64,
}

/// The process-wide memory the RTSP sources use.
pub fn memory() -> &'static TransportMemory {
    static MEMORY: OnceLock<TransportMemory> = OnceLock::new();
    MEMORY.get_or_init(TransportMemory::default)
}

impl TransportMemory {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Transport>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The transport that last gave frames from the camera at `url`, if any.
    pub fn get(&self, url: &str) -> Option<Transport> {
        self.lock().get(url).copied()
    }

    /// Remembers that `t` gave frames from the camera at `url`. `auto` is not a transport
    /// that gives frames and is ignored.
    pub fn set(&self, url: &str, t: Transport) {
        if t == Transport::Auto {
            return;
        }
        let mut map = self.lock();
        if map.get(url) == Some(&t) {
            return;
        }
        if map.len() >= MAX_CAMERAS && !map.contains_key(url) {
            return;
        }
        map.insert(url.to_string(), t);
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `<state_dir>/rtsp-transports.json` into the memory; what this process has
    /// learned already wins. Returns how many cameras the file named (0 without a file).
    pub fn load(&self, state_dir: &Path) -> Result<usize, LearnedError> {
        let path = state_dir.join(FILE);
        let io_err = |source| LearnedError::Io {
            path: path.clone(),
            source,
        };
        let damaged = |why: String| LearnedError::Damaged {
            path: path.clone(),
            why,
        };
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(e)),
        };
        if len > MAX_FILE_LEN {
            return Err(damaged(format!(
                "{len} bytes, at most {MAX_FILE_LEN} expected"
            )));
        }
        let bytes = std::fs::read(&path).map_err(io_err)?;
        let body: FileBody = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
        if body.version != VERSION {
            return Err(damaged(format!("version {}", body.version)));
        }
        let n = body.cameras.len();
        let mut map = self.lock();
        for (url, t) in body.cameras.into_iter().take(MAX_CAMERAS) {
            if t != Transport::Auto {
                map.entry(url).or_insert(t);
            }
        }
        Ok(n)
    }

    /// Writes the memory to `<state_dir>/rtsp-transports.json` (atomically) if it changed
    /// since the last save or load. Returns whether it wrote.
    pub fn save(&self, state_dir: &Path) -> Result<bool, LearnedError> {
        let changes = self.changes.load(Ordering::Relaxed);
        if changes == self.saved.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let body = FileBody {
            version: VERSION,
            cameras: self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect(),
        };
        let path = state_dir.join(FILE);
        let bytes = serde_json::to_vec_pretty(&body).map_err(|e| LearnedError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })?;
        crate::persist::write_atomic(&path, &bytes)
            .map_err(|source| LearnedError::Io { path, source })?;
        self.saved.store(changes, Ordering::Relaxed);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learned_transport_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let before = TransportMemory::default();
        assert!(
            !before.save(dir.path()).unwrap(),
            "nothing learned, nothing written"
        );
        before.set("rtsp://127.0.0.1:8554/vlc", Transport::Udp);
        before.set("rtsp://127.0.0.1:8554/gst", Transport::Tcp);
        assert!(before.save(dir.path()).unwrap());
        assert!(
            !before.save(dir.path()).unwrap(),
            "unchanged: not written again"
        );

        let after = TransportMemory::default();
        assert_eq!(after.load(dir.path()).unwrap(), 2);
        assert_eq!(after.get("rtsp://127.0.0.1:8554/vlc"), Some(Transport::Udp));
        assert_eq!(after.get("rtsp://127.0.0.1:8554/gst"), Some(Transport::Tcp));
        assert_eq!(after.get("rtsp://127.0.0.1:8554/other"), None);
    }

    #[test]
    fn what_this_process_learned_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let old = TransportMemory::default();
        old.set("rtsp://127.0.0.1:1/a", Transport::Udp);
        old.save(dir.path()).unwrap();
        let now = TransportMemory::default();
        now.set("rtsp://127.0.0.1:1/a", Transport::Tcp);
        now.load(dir.path()).unwrap();
        assert_eq!(now.get("rtsp://127.0.0.1:1/a"), Some(Transport::Tcp));
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let m = TransportMemory::default();
        assert_eq!(m.load(dir.path()).unwrap(), 0, "no file: a first start");
        for (body, says) in [
            (
                &b"{\"version\": 1, \"cameras\": {\"rtsp://x/\": \"udp\""[..],
                "EOF",
            ),
            (b"{\"version\": 9, \"cameras\": {}}", "version 9"),
            (
                b"{\"version\": 1, \"cameras\": {\"rtsp://x/\": \"pigeon\"}}",
                "pigeon",
            ),
        ] {
            std::fs::write(dir.path().join(FILE), body).unwrap();
            let e = m.load(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains(says) && e.contains("learns the transports again"),
                "{e}"
            );
        }
        std::fs::write(dir.path().join(FILE), vec![b' '; 300 * 1024]).unwrap();
        assert!(m.load(dir.path()).is_err());
        assert_eq!(m.get("rtsp://x/"), None);
    }

    #[test]
    fn auto_is_not_learned_and_the_memory_is_bounded() {
        let m = TransportMemory::default();
        m.set("rtsp://127.0.0.1:1/a", Transport::Auto);
        assert_eq!(m.get("rtsp://127.0.0.1:1/a"), None);
        for i in 0..MAX_CAMERAS + 10 {
            m.set(&format!("rtsp://127.0.0.1:1/{i}"), Transport::Tcp);
        }
        assert_eq!(m.lock().len(), MAX_CAMERAS);
    }
}
