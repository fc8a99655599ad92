//! Crash-safe file replacement.
//!
//! [`write_atomic`] is the only way edgecam writes a file it later reads back (`state.bin`, the live
//! `config.toml`). After a power cut at any instant the target holds either the complete old
//! contents or the complete new contents, never a mix:
//!
//! 1. the bytes go to `<name>.tmp.<pid>` in the target's directory (same filesystem, so the
//!    rename below is atomic),
//! 2. that file is fsynced, so its data is on disk before it gets the real name,
//! 3. it is renamed over the target,
//! 4. the directory is fsynced, so the rename itself survives a power cut.
//!
//! A crash between 1 and 3 leaves a stray temp file. Readers only ever open the target name, so
//! the stray is ignored, and the next write of the same target deletes it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The infix between a target's file name and the writer's pid in temp file names.
const TMP_INFIX: &str = ".tmp.";

/// Replaces the file at `path` with `bytes`, atomically and durably (see the module docs).
///
/// The file is created readable and writable by its owner only: the files written through here
/// hold camera passwords and API tokens. Leftover temp files of earlier, interrupted writes of
/// the same target are removed first.
///
/// Blocking: call it from `spawn_blocking` in async code. Writes of one target must not run
/// concurrently (the temp name is per process, not per call); callers serialise them.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, name) = split(path)?;
    remove_stale_temps(&dir, &name);

    let tmp = temp_path(&dir, &name, std::process::id());
    if let Err(e) = write_synced(&tmp, bytes) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir)
}

/// The temp file name a writer with process id `pid` uses for the target `dir/name`.
///
/// Public so that tests can fake an interrupted write of another process.
pub fn temp_path(dir: &Path, name: &std::ffi::OsStr, pid: u32) -> PathBuf {
    let mut tmp: OsString = name.to_owned();
    tmp.push(TMP_INFIX);
    tmp.push(pid.to_string());
    dir.join(tmp)
}

/// Splits `path` into its directory (`.` for a bare file name) and file name.
fn split(path: &Path) -> io::Result<(PathBuf, OsString)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_owned()))
}

/// Creates (or truncates) `tmp`, writes `bytes` and fsyncs the data.
fn write_synced(tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Fsyncs a directory so that a rename inside it is durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files elsewhere; the rename is all we can do.
        let _ = dir;
        Ok(())
    }
}

/// Deletes `<name>.tmp.*` files in `dir`, the remains of interrupted writes.
///
/// Best effort: a failure here only leaves a stray file behind, which is harmless.
fn remove_stale_temps(dir: &Path, name: &std::ffi::OsStr) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut prefix = name.to_owned();
    prefix.push(TMP_INFIX);
    let prefix = prefix.as_encoded_bytes();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if file_name.as_encoded_bytes().starts_with(prefix) {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::debug!(path = %entry.path().display(), "removed stale temp file")
                }
                Err(e) => {
                    tracing::debug!(path = %entry.path().display(), error = %e, "cannot remove stale temp file")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_file_name_uses_current_dir() {
        let (dir, name) = split(Path::new("state.bin")).unwrap();
        assert_eq!(dir, PathBuf::from("."));
        assert_eq!(name, OsString::from("state.bin"));
    }

    #[test]
    fn path_without_file_name_is_rejected() {
        let err = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn failed_write_leaves_target_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        // A target inside a missing directory: creating the temp file fails.
        let target = dir.path().join("missing").join("f");
        assert!(write_atomic(&target, b"x").is_err());
        assert!(!target.exists());
    }

    #[cfg(unix)]
    #[test]
    fn written_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        write_atomic(&target, b"token").unwrap();
        let mode = fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn similar_names_are_not_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("state.binx.tmp.1");
        fs::write(&other, b"keep").unwrap();
        let stale = temp_path(dir.path(), "state.bin".as_ref(), 1);
        fs::write(&stale, b"junk").unwrap();
        write_atomic(&dir.path().join("state.bin"), b"new").unwrap();
        assert!(other.exists());
        assert!(!stale.exists());
    }
}
