//! The rates measured on each stream (peak byte rate, frame rate, keyframe interval), kept
//! across restarts in `<state_dir>/ring-rates.json`, so that a stream's ring is sized for its
//! camera from its first start on ([`super::sizing`]).
//!
//! The daemon feeds the book from the stream statistics and saves it when it changed
//! (atomically, every few seconds and at shutdown); the web reads it for the status's ring
//! warnings. The file is a hint: a missing, damaged or foreign file is logged by the caller
//! and ignored, and the rates are measured again.
//!
//! ```json
//! {"version": 1, "streams": {"cam1": {"bytes_per_s": 500000, "fps_milli": 25000, "keyframe_interval_ms": 2000}}}
//! ```

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::sizing::Measured;

/// The file's name in the state directory.
pub const FILE: &str = "ring-rates.json";

/// The file layout this build reads and writes.
const VERSION: u32 = 1;

/// Streams remembered at most: a box has a handful; a file with more is not ours.
pub const MAX_STREAMS: usize = 1024;

/// The file is a few hundred bytes; a larger one is not read.
const MAX_FILE_LEN: u64 = 256 * 1024;

/// Rates above these are not a camera's (1 GB/s, 1000 fps, a 10 min GOP): the file is damaged.
const MAX_BYTES_PER_S: u64 = 1 << 30;
/// Largest `fps_milli` read from the file.
const MAX_FPS_MILLI: u32 = 1_000_000;
/// Largest `keyframe_interval_ms` read from the file.
const MAX_GOP_MS: u64 = 600_000;

/// Why the file was not read or written.
#[derive(Debug, thiserror::Error)]
pub enum RatesError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The file is there but is not a rates file this build reads.
    #[error("{path} is damaged or from another version ({why}); the box measures the rates again")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// The file's shape.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    /// [`VERSION`].
    version: u32,
    /// Stream id → its peak rates, sorted so that the file is stable.
    streams: BTreeMap<String, Measured>,
}

/// What the book holds behind its lock.
#[derive(Debug, Default)]
struct Book {
    /// Stream id → the peak rates seen.
    streams: BTreeMap<String, Measured>,
    /// Bumped on every change; a save compares it with `saved`.
    changes: u64,
    /// The value of `changes` the file on disk reflects.
    saved: u64,
}

/// Each stream's peak measured rates, shared by the daemon (which records and saves) and the
/// web (which reads them for the status).
#[derive(Debug, Default)]
pub struct RateBook {
    /// The rates and their change counters.
    inner: Mutex<Book>,
}

/// `old` raised to `new` field by field: the ring must hold the busiest scene seen.
fn peak(old: Measured, new: Measured) -> Measured {
    Measured {
        bytes_per_s: old.bytes_per_s.max(new.bytes_per_s),
        fps_milli: old.fps_milli.max(new.fps_milli),
        keyframe_interval_ms: old.keyframe_interval_ms.max(new.keyframe_interval_ms),
    }
}

impl RateBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The peak rates of stream `id`, if any were measured.
    pub fn get(&self, id: &str) -> Option<Measured> {
        self.lock().streams.get(id).copied()
    }

    /// Records a measurement of stream `id`; the book keeps the peak of each rate. Returns
    /// whether a peak rose.
    pub fn record(&self, id: &str, m: Measured) -> bool {
        let mut book = self.lock();
        let old = book.streams.get(id).copied();
        if old.is_none() && book.streams.len() >= MAX_STREAMS {
            return false;
        }
        let new = peak(old.unwrap_or_default(), m);
        if old == Some(new) {
            return false;
        }
        book.streams.insert(id.to_string(), new);
        book.changes += 1;
        true
    }

    /// Forgets the streams not in `ids` (removed from the config), so the file stays small.
    pub fn retain(&self, ids: &[&str]) {
        let mut book = self.lock();
        let before = book.streams.len();
        book.streams.retain(|id, _| ids.contains(&id.as_str()));
        if book.streams.len() != before {
            book.changes += 1;
        }
    }

    /// Reads `<state_dir>/ring-rates.json` into the book (peaks of both). Returns how many
    /// streams the file named (0 without a file). On an error the book is unchanged.
    pub fn load(&self, state_dir: &Path) -> Result<usize, RatesError> {
        let path = state_dir.join(FILE);
        let damaged = |why: String| RatesError::Damaged {
            path: path.clone(),
            why,
        };
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(RatesError::Io { path, source }),
        };
        if len > MAX_FILE_LEN {
            return Err(damaged(format!(
                "{len} bytes, at most {MAX_FILE_LEN} expected"
            )));
        }
        let bytes = std::fs::read(&path).map_err(|source| RatesError::Io {
            path: path.clone(),
            source,
        })?;
        let body: FileBody = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
        if body.version != VERSION {
            return Err(damaged(format!("version {}", body.version)));
        }
        if body.streams.len() > MAX_STREAMS {
            return Err(damaged(format!("{} streams", body.streams.len())));
        }
        if let Some((id, _)) = body.streams.iter().find(|(_, m)| {
            m.bytes_per_s > MAX_BYTES_PER_S
                || m.fps_milli > MAX_FPS_MILLI
                || m.keyframe_interval_ms > MAX_GOP_MS
        }) {
            return Err(damaged(format!("rates of {id:?} out of range")));
        }
        let n = body.streams.len();
        let mut book = self.lock();
        for (id, m) in body.streams {
            let old = book.streams.get(&id).copied().unwrap_or_default();
            book.streams.insert(id, peak(old, m));
        }
        book.saved = book.changes;
        Ok(n)
    }

    /// Writes the book to `<state_dir>/ring-rates.json` (atomically) if it changed since the
    /// last save or load. Returns whether it wrote.
    pub fn save(&self, state_dir: &Path) -> Result<bool, RatesError> {
        let (changes, body) = {
            let book = self.lock();
            if book.changes == book.saved {
                return Ok(false);
            }
            let body = FileBody {
                version: VERSION,
                streams: book.streams.clone(),
            };
            (book.changes, body)
        };
        let path = state_dir.join(FILE);
        let bytes = serde_json::to_vec_pretty(&body).map_err(|e| RatesError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })?;
        crate::persist::write_atomic(&path, &bytes)
            .map_err(|source| RatesError::Io { path, source })?;
        self.lock().saved = changes;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(bytes_per_s: u64, fps_milli: u32, keyframe_interval_ms: u64) -> Measured {
        Measured {
            bytes_per_s,
            fps_milli,
            keyframe_interval_ms,
        }
    }

    #[test]
    fn peaks_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let before = RateBook::default();
        assert!(!before.save(dir.path()).unwrap(), "nothing measured");
        assert!(before.record("cam1", m(500_000, 25_000, 2000)));
        assert!(
            !before.record("cam1", m(300_000, 25_000, 2000)),
            "lower: the peak stands"
        );
        assert!(before.record("cam1", m(900_000, 24_000, 1000)));
        before.record("cam2", m(100_000, 10_000, 0));
        assert_eq!(before.get("cam1"), Some(m(900_000, 25_000, 2000)));
        assert!(before.save(dir.path()).unwrap());
        assert!(
            !before.save(dir.path()).unwrap(),
            "unchanged: not written again"
        );

        let after = RateBook::default();
        assert_eq!(after.load(dir.path()).unwrap(), 2);
        assert_eq!(after.get("cam1"), Some(m(900_000, 25_000, 2000)));
        assert_eq!(after.get("cam2"), Some(m(100_000, 10_000, 0)));
        assert_eq!(after.get("cam3"), None);
        assert!(!after.save(dir.path()).unwrap(), "just loaded: nothing new");
        after.retain(&["cam1"]);
        assert!(after.save(dir.path()).unwrap());
        let again = RateBook::default();
        assert_eq!(again.load(dir.path()).unwrap(), 1);
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let book = RateBook::default();
        assert_eq!(book.load(dir.path()).unwrap(), 0, "no file: a first start");
        book.record("cam1", m(1000, 1000, 0));
        for (body, says) in [
            (&b"{\"version\": 1, \"streams\": {\"cam1\": "[..], "EOF"),
            (b"{\"version\": 2, \"streams\": {}}", "version 2"),
            (
                b"{\"version\": 1, \"streams\": {\"cam1\": {\"bytes_per_s\": -4, \"fps_milli\": 1}}}",
                "invalid value",
            ),
            (
                b"{\"version\": 1, \"streams\": {\"cam1\": {\"bytes_per_s\": 99999999999, \"fps_milli\": 1}}}",
                "out of range",
            ),
            (&[0xff, 0xfe, 0x00][..], "expected value"),
        ] {
            std::fs::write(dir.path().join(FILE), body).unwrap();
            let e = book.load(dir.path()).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("measures the rates again"), "{e}");
        }
        std::fs::write(dir.path().join(FILE), vec![b' '; 300 * 1024]).unwrap();
        assert!(book.load(dir.path()).is_err());
        assert_eq!(book.get("cam1"), Some(m(1000, 1000, 0)));
        // The next save replaces the damaged file with a good one.
        assert!(book.save(dir.path()).unwrap());
        assert_eq!(RateBook::default().load(dir.path()).unwrap(), 1);
    }

    #[test]
    fn the_book_is_bounded() {
        let book = RateBook::default();
        for i in 0..MAX_STREAMS + 10 {
            book.record(&format!("s{i}"), m(1, 1, 1));
        }
        assert_eq!(book.lock().streams.len(), MAX_STREAMS);
    }
}
