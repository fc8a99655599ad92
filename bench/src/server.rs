//! The RTSP test server (`tests/support/rtsp_server.py`) as the bench runs it: the launcher
//! shared with the tests (`edgecam-testkit`), with the clip cached under the target directory,
//! the server's stderr in the run's log and Ctrl-C honoured while it starts.

use crate::child;
use std::path::Path;
use std::time::Duration;

pub use edgecam_testkit::{RtspServer, ServerOpts};

/// How long the server may take to print `READY`: encoding the 1080p clip the first time
/// takes a while on a small, busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// A looped clip of `clip_seconds` in `profile` with the script's 2 s GOP (what the benchmarks
/// of record used); the caller sets mounts and picture.
pub fn clip(clip_seconds: u32, profile: &str) -> ServerOpts {
    ServerOpts {
        clip_seconds,
        profile: profile.to_string(),
        gop: 0,
        ..ServerOpts::default()
    }
}

/// Starts the server (encoding the clip into `cache_dir` if it is not there yet) and waits
/// until it listens. `log` receives its stderr.
pub fn start(opts: ServerOpts, cache_dir: &Path, log: &Path) -> anyhow::Result<RtspServer> {
    let opts = ServerOpts {
        cache_dir: Some(cache_dir.to_path_buf()),
        log: Some(log.to_path_buf()),
        ready_timeout: READY_TIMEOUT,
        ..opts
    };
    RtspServer::launch_with(&opts, || child::sleep(Duration::ZERO))
}
