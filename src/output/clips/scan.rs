//! What a clip file left by a crash or a power cut holds: its complete fragments.
//!
//! The recorder saves the index when a clip starts and when it ends, not per write (an SD card
//! lives longer), so the index entry of a clip that a crash ended says nothing of its length.
//! At the next start [`scan`] walks the file's top-level boxes (headers only; `mdat` bodies are
//! skipped, not read): the init segment, then `moof` + `mdat` pairs. The end of the last
//! complete pair is where the playable file ends, and the `moof`s' decode times and sample
//! durations give its duration. A torn last write (a power cut mid-write, a half-written
//! fragment) is cut off by [`truncate_to`], so players and the index see the same file.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::codec::fmp4::{TIMESCALE, boxes};

/// The playable part of a clip file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scan {
    /// Bytes up to the end of the last complete fragment (the init segment when none).
    pub end: u64,
    /// Complete `moof` + `mdat` pairs.
    pub fragments: u64,
    /// From the first sample's decode time to the end of the last sample, ms.
    pub duration_ms: u64,
}

/// Largest `moof` read into memory: ours hold one sample (about 100 bytes); anything larger is
/// not a file this recorder wrote.
const MAX_MOOF: u64 = 64 * 1024;

/// Scans the clip file at `path`. Blocking.
pub(super) fn scan(path: &Path) -> io::Result<Scan> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(16 * 1024, file);
    let mut pos = 0u64;
    let mut out = Scan {
        end: 0,
        fragments: 0,
        duration_ms: 0,
    };
    // (first decode time, end of the last sample), ticks.
    let mut span: Option<(u64, u64)> = None;
    // The `moof` waiting for its `mdat`: its first decode time and the end of its samples.
    let mut moof_end: Option<(u64, u64)> = None;
    let mut moov_seen = false;
    let mut moof = Vec::new();
    while let Some((kind, size)) = header(&mut r, pos, len)? {
        let body = size - 8;
        match &kind {
            b"moof" if body <= MAX_MOOF => {
                moof.resize(body as usize, 0);
                r.read_exact(&mut moof)?;
                moof_end = moof_times(&moof);
            }
            b"mdat" => {
                r.seek_relative(body as i64)?;
                if let Some((dts, end)) = moof_end.take() {
                    let first = span.map_or(dts, |s| s.0);
                    span = Some((first, end));
                    out.fragments += 1;
                    out.end = pos + size;
                }
            }
            _ => {
                r.seek_relative(body as i64)?;
                moof_end = None;
            }
        }
        if kind == *b"moov" {
            moov_seen = true;
            out.end = pos + size;
        }
        pos += size;
    }
    if !moov_seen {
        // No init segment: nothing in the file plays.
        out.end = 0;
        out.fragments = 0;
        span = None;
    }
    if let Some((first, end)) = span {
        out.duration_ms = end.saturating_sub(first) * 1000 / u64::from(TIMESCALE);
    }
    Ok(out)
}

/// The next box header at `pos` of a file of `len` bytes: (type, size), or `None` at the end
/// or when the box does not fit in the file (a torn write).
fn header(r: &mut impl Read, pos: u64, len: u64) -> io::Result<Option<([u8; 4], u64)>> {
    if pos + 8 > len {
        return Ok(None);
    }
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
    let kind = [h[4], h[5], h[6], h[7]];
    // Size 0 (to the end) and 1 (64-bit size) are never written by the recorder.
    if size < 8 || pos + size > len {
        return Ok(None);
    }
    Ok(Some((kind, size)))
}

/// Decode time of a `moof`'s first sample and the end of its last, ticks (`tfdt` and the
/// `trun` sample durations of its first `traf`).
fn moof_times(moof: &[u8]) -> Option<(u64, u64)> {
    let (_, traf) = boxes(moof).find(|(k, _)| k == b"traf")?;
    let (_, tfdt) = boxes(traf).find(|(k, _)| k == b"tfdt")?;
    let dts = match tfdt.first()? {
        1 => u64::from_be_bytes(tfdt.get(4..12)?.try_into().ok()?),
        _ => u64::from(u32::from_be_bytes(tfdt.get(4..8)?.try_into().ok()?)),
    };
    let (_, trun) = boxes(traf).find(|(k, _)| k == b"trun")?;
    let flags = u32::from_be_bytes(trun.get(0..4)?.try_into().ok()?) & 0x00ff_ffff;
    let count = u32::from_be_bytes(trun.get(4..8)?.try_into().ok()?) as usize;
    let mut at = 8 + 4 * (usize::from(flags & 0x1 != 0) + usize::from(flags & 0x4 != 0));
    let per_sample: usize = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .map(|f| usize::from(flags & f != 0) * 4)
        .sum();
    if flags & 0x100 == 0 {
        // No per-sample duration: not written by this recorder.
        return None;
    }
    let mut total = 0u64;
    for _ in 0..count {
        let d = u32::from_be_bytes(trun.get(at..at + 4)?.try_into().ok()?);
        total += u64::from(d);
        at += per_sample;
    }
    Some((dts, dts + total))
}

/// Marks `file` as being recorded: an exclusive `flock`, which the kernel drops when the file
/// is closed or the process dies (kill -9, a power cut), so [`being_recorded`] tells a clip a
/// recorder still writes (a store reopened on a `[clips]` change) from one a crash left.
/// A file system without `flock` leaves it unmarked.
pub(super) fn mark_recording(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; flock has no other precondition.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "clip file not locked");
    }
}

/// Whether a live recorder holds the file at `path` ([`mark_recording`]).
pub(super) fn being_recorded(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = File::open(path) else {
        return false;
    };
    // SAFETY: as above; a shared lock conflicts with the recorder's exclusive one.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// Cuts the file at `path` to `end` bytes (a torn last fragment goes). Blocking.
pub(super) fn truncate_to(path: &Path, end: u64) -> io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(end)?;
    f.sync_all()
}
