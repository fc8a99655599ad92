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

/// The picture the server serves: the options `ingest`, `e2e` and `impair` share.
#[derive(Debug, Clone, clap::Args)]
pub struct PictureArgs {
    /// Picture width.
    #[arg(long, default_value_t = 1920)]
    pub width: u32,
    /// Picture height.
    #[arg(long, default_value_t = 1080)]
    pub height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,
    /// Encoder bitrate, kbit/s.
    #[arg(long, default_value_t = 4000)]
    pub bitrate: u32,
    /// Seconds of video the server encodes once and loops (cached under the target directory).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub clip_seconds: u32,
}

impl Default for PictureArgs {
    /// What the command line gives when no picture option is set (clap's defaults above,
    /// not a second copy of them).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            picture: PictureArgs,
        }
        <Only as clap::Parser>::parse_from(["edgecam-bench"]).picture
    }
}

impl PictureArgs {
    /// Server options for `mounts` mounts of this picture as a looped clip in `profile`.
    pub fn server_opts(&self, mounts: u32, profile: &str) -> ServerOpts {
        ServerOpts {
            mounts,
            width: self.width,
            height: self.height,
            fps: self.fps,
            bitrate_kbps: self.bitrate,
            ..clip(self.clip_seconds, profile)
        }
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
