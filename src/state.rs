//! The small piece of runtime state that survives a restart: the user's stream selection and
//! the latched alarms nobody has acknowledged yet.
//!
//! The file (`state.bin` in the state directory) is, in order:
//!
//! | bytes | content                                            |
//! |-------|----------------------------------------------------|
//! | 4     | magic `ECST`                                       |
//! | 2     | format version, little endian ([`FORMAT_VERSION`]) |
//! | 4     | payload length, little endian                      |
//! | n     | postcard encoding of [`PersistedState`]            |
//! | 4     | CRC-32 of everything above, little endian          |
//!
//! It is written with [`crate::persist::write_atomic`]. Loading never fails: a missing file
//! means a first start (defaults, silently); any damage (truncation, bit rot, a file from another
//! version, garbage) is logged as a warning with the reason and also yields the defaults. Losing
//! a selection is a nuisance; refusing to start would be an outage.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// File name of the state file inside the state directory.
pub const STATE_FILE: &str = "state.bin";

/// The four bytes every state file starts with.
pub const MAGIC: [u8; 4] = *b"ECST";

/// The payload layout this build reads and writes. Bump it when [`PersistedState`] changes shape.
pub const FORMAT_VERSION: u16 = 1;

/// Bytes before the payload: magic, version, length.
const HEADER_LEN: usize = 4 + 2 + 4;
/// Bytes after the payload: the CRC.
const TRAILER_LEN: usize = 4;
/// A state file is a few hundred bytes; anything much larger is not ours and is not read whole.
pub const MAX_FILE_LEN: u64 = 1024 * 1024;

/// What is persisted.
#[derive(Serialize, Deserialize, Default, Clone, PartialEq, Eq, Debug)]
pub struct PersistedState {
    /// The stream the user chose last, so that a restart shows the same camera.
    pub user_selection: Option<String>,
    /// Latched alarms stay active until acknowledged, across restarts too.
    pub latched_alarms: Vec<LatchedAlarm>,
}

/// One latched, unacknowledged alarm.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct LatchedAlarm {
    /// The alarm's config id.
    pub id: String,
    /// When it was raised (wall clock, µs since the Unix epoch), so the banner keeps its "since".
    pub since_wall_us: i64,
}

impl PersistedState {
    /// Drops what the current config no longer knows: a selection of a stream that is gone or
    /// disabled, latched alarms whose id is gone (or duplicated). Returns one message per drop,
    /// for the log.
    pub fn reconcile(&mut self, cfg: &Config) -> Vec<String> {
        let mut dropped = Vec::new();
        if let Some(sel) = &self.user_selection {
            let usable = cfg.streams.iter().any(|s| &s.id == sel && s.enabled);
            if !usable {
                dropped.push(format!(
                    "saved selection `{sel}` is not an enabled stream any more"
                ));
                self.user_selection = None;
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        let mut kept = Vec::with_capacity(self.latched_alarms.len());
        for latched in &self.latched_alarms {
            if !cfg.alarms.iter().any(|a| a.id == latched.id) {
                dropped.push(format!(
                    "latched alarm `{}` is not configured any more",
                    latched.id
                ));
            } else if seen.contains(&latched.id.as_str()) {
                dropped.push(format!("latched alarm `{}` was saved twice", latched.id));
            } else {
                seen.push(&latched.id);
                kept.push(latched.clone());
            }
        }
        self.latched_alarms = kept;
        dropped
    }
}

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the fixed header and trailer, or shorter than its header says.
    #[error("truncated: {len} bytes, expected {expected}")]
    Truncated {
        /// Bytes in the file.
        len: usize,
        /// Bytes the layout needs.
        expected: usize,
    },
    /// Does not start with [`MAGIC`]: not a state file at all.
    #[error("not an edgecam state file (wrong magic bytes)")]
    BadMagic,
    /// Longer than its header says.
    #[error("{extra} unexpected bytes after the checksum")]
    TrailingBytes {
        /// Bytes beyond the declared end.
        extra: usize,
    },
    /// The CRC does not match: bit rot or a torn write.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// The CRC in the file.
        stored: u32,
        /// The CRC of the bytes read.
        computed: u32,
    },
    /// Intact, but written by a build with another payload layout.
    #[error("format version {found}, this build reads version {supported}")]
    Version {
        /// The version in the file.
        found: u16,
        /// [`FORMAT_VERSION`].
        supported: u16,
    },
    /// Intact and the right version, yet the payload does not decode (or has bytes left over).
    #[error("payload does not decode: {0}")]
    Payload(String),
    /// Larger than [`MAX_FILE_LEN`].
    #[error("file is larger than {MAX_FILE_LEN} bytes")]
    TooLarge,
    /// The file exists but cannot be read.
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
}

/// Why saving failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state does not serialise (it always should; kept rather than panicking).
    #[error("cannot encode state: {0}")]
    Encode(#[from] postcard::Error),
    /// The encoded state does not fit the format's 32-bit length field.
    #[error("state is too large to save ({0} bytes)")]
    TooLarge(usize),
    /// Writing the file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The state file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

/// What [`load`] found.
#[derive(Debug)]
pub enum LoadOutcome {
    /// A good file.
    Loaded(PersistedState),
    /// No file: a first start.
    Missing,
    /// A file that could not be used; already logged as a warning.
    Discarded(DecodeError),
}

impl LoadOutcome {
    /// The state to start with: the loaded one, or the defaults.
    pub fn into_state(self) -> PersistedState {
        match self {
            LoadOutcome::Loaded(state) => state,
            LoadOutcome::Missing | LoadOutcome::Discarded(_) => PersistedState::default(),
        }
    }
}

/// Encodes `state` into the file format described in the module docs.
pub fn encode(state: &PersistedState) -> Result<Vec<u8>, StateError> {
    let payload = postcard::to_allocvec(state)?;
    let len = u32::try_from(payload.len()).map_err(|_| StateError::TooLarge(payload.len()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes a state file's bytes. Checks, in order: length, magic, declared length, CRC,
/// version, payload. The CRC comes before the version so that a flipped bit in the version
/// field is reported as damage, not as a file from another build.
pub fn decode(bytes: &[u8]) -> Result<PersistedState, DecodeError> {
    let min = HEADER_LEN + TRAILER_LEN;
    if bytes.len() < min {
        // A prefix of the magic is still "ours, truncated"; anything else is not ours.
        let n = bytes.len().min(MAGIC.len());
        if bytes[..n] != MAGIC[..n] {
            return Err(DecodeError::BadMagic);
        }
        return Err(DecodeError::Truncated {
            len: bytes.len(),
            expected: min,
        });
    }
    if bytes[..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let declared = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
    let expected = HEADER_LEN
        .saturating_add(declared)
        .saturating_add(TRAILER_LEN);
    if bytes.len() < expected {
        return Err(DecodeError::Truncated {
            len: bytes.len(),
            expected,
        });
    }
    if bytes.len() > expected {
        return Err(DecodeError::TrailingBytes {
            extra: bytes.len() - expected,
        });
    }
    let body_end = HEADER_LEN + declared;
    let stored = u32::from_le_bytes([
        bytes[body_end],
        bytes[body_end + 1],
        bytes[body_end + 2],
        bytes[body_end + 3],
    ]);
    let computed = crc32fast::hash(&bytes[..body_end]);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let (state, rest) = postcard::take_from_bytes::<PersistedState>(&bytes[HEADER_LEN..body_end])
        .map_err(|e| DecodeError::Payload(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Payload(format!(
            "{} bytes left over after the state",
            rest.len()
        )));
    }
    Ok(state)
}

/// Writes `state` to `path` atomically (see [`crate::persist::write_atomic`]). Blocking.
pub fn save(path: &Path, state: &PersistedState) -> Result<(), StateError> {
    let bytes = encode(state)?;
    crate::persist::write_atomic(path, &bytes).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the state file at `path`. Never fails and never panics: see [`LoadOutcome`]. A
/// discarded file is logged with `tracing::warn!` (path and reason). Blocking.
pub fn load(path: &Path) -> LoadOutcome {
    let bytes = match read_capped(path) {
        Ok(bytes) => bytes,
        Err(ReadError::Missing) => return LoadOutcome::Missing,
        Err(ReadError::Bad(e)) => return discard(path, e),
    };
    match decode(&bytes) {
        Ok(state) => LoadOutcome::Loaded(state),
        Err(e) => discard(path, e),
    }
}

/// Logs why a file is not used and says so.
fn discard(path: &Path, reason: DecodeError) -> LoadOutcome {
    tracing::warn!(
        path = %path.display(),
        reason = %reason,
        "ignoring damaged state file; starting with no saved selection and no latched alarms"
    );
    LoadOutcome::Discarded(reason)
}

/// Why [`read_capped`] returned no bytes.
enum ReadError {
    /// No file: not a warning.
    Missing,
    /// Anything else.
    Bad(DecodeError),
}

/// Reads at most [`MAX_FILE_LEN`] bytes of `path`.
fn read_capped(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => return Err(ReadError::Bad(e.into())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Bad(e.into()))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(ReadError::Bad(DecodeError::TooLarge));
    }
    Ok(bytes)
}

/// The state file of one state directory, with saves serialised.
#[derive(Debug)]
pub struct StateStore {
    /// `<state_dir>/state.bin`.
    path: PathBuf,
    /// [`crate::persist::write_atomic`] must not run twice at once for one target; this lock
    /// makes concurrent `save` calls (from several tasks) take turns.
    write_lock: Mutex<()>,
}

impl StateStore {
    /// The store for `<state_dir>/state.bin`.
    pub fn new(state_dir: &Path) -> Self {
        StateStore {
            path: state_dir.join(STATE_FILE),
            write_lock: Mutex::new(()),
        }
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// See [`load`].
    pub fn load(&self) -> LoadOutcome {
        load(&self.path)
    }

    /// See [`save`]; creates the state directory when it does not exist yet.
    pub fn save(&self, state: &PersistedState) -> Result<(), StateError> {
        // A poisoned lock only means another save panicked; the file is still consistent.
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        save(&self.path, state)
    }
}
