//! Child processes the bench owns: a guard that kills each one when dropped (normal end,
//! error or panic), a captured output stream with arrival times, and an interruptible sleep
//! that turns Ctrl-C or SIGTERM into an ordinary error so that every guard runs.

use anyhow::{Context, anyhow, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to get the daemon beside this program, for "not found" errors.
pub const BUILD_HINT: &str = "run the bench as `cargo run --release -p edgecam-bench -- ...` \
     (it builds the daemon first), or build the daemon in the same profile yourself: \
     `cargo build --release` at the repository root";

/// The `edgecam` daemon built beside this program (same target dir and profile): the bench
/// measures that build. When cargo started this program (`cargo run -p edgecam-bench`, which
/// builds only the bench and the edgecam library), the daemon is built first with
/// `cargo build -p edgecam --bin edgecam` in the same profile and target directory, so the bench
/// never measures a stale or missing binary. Run directly (as CI's soak stage does), it takes
/// the binary that is there. Warns when this is a debug build, whose numbers mean little.
pub fn sibling_daemon() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let bin_dir = exe.parent().context("this program has no directory")?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        build_daemon(Path::new(&cargo), bin_dir)?;
    }
    let daemon = bin_dir.join("edgecam");
    if !daemon.is_file() {
        bail!("{} not found: {BUILD_HINT}", daemon.display());
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; its numbers mean little without --release");
    }
    Ok(daemon)
}

/// `cargo build -p edgecam --bin edgecam` into `bin_dir` (`<target dir>/<profile dir>`), the
/// daemon's default features. A cross build's layout (`<target dir>/<triple>/<profile>`) is
/// left alone: the daemon must already be there.
fn build_daemon(cargo: &Path, bin_dir: &Path) -> anyhow::Result<()> {
    let (Some(target_dir), Some(profile_dir)) = (bin_dir.parent(), bin_dir.file_name()) else {
        return Ok(());
    };
    // Cargo marks the root of every target directory with this file.
    if !target_dir.join("CACHEDIR.TAG").is_file() {
        return Ok(());
    }
    let profile = match profile_dir.to_str() {
        Some("debug") => "dev",
        Some(p) => p,
        None => return Ok(()),
    };
    let manifest = crate::repo_dir().join("Cargo.toml");
    eprintln!(
        "edgecam-bench: building the daemon it measures (cargo build --profile {profile} \
         -p edgecam --bin edgecam)"
    );
    let status = Command::new(cargo)
        .args([
            "build",
            "--profile",
            profile,
            "-p",
            "edgecam",
            "--bin",
            "edgecam",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .with_context(|| format!("cannot run {}", cargo.display()))?;
    if !status.success() {
        bail!("building the daemon failed ({status})");
    }
    Ok(())
}

/// Where the RTSP test server's encoded clips are cached: `target/bench-cache`, beside the
/// profile directory that holds `daemon` (see [`sibling_daemon`]).
pub fn bench_cache(daemon: &std::path::Path) -> PathBuf {
    let bin_dir = daemon.parent().unwrap_or(daemon);
    bin_dir.parent().unwrap_or(bin_dir).join("bench-cache")
}

/// Writes `config` to `<work>/<name>.toml` and starts `exe run --config` on it (log level
/// info, no colours), its stderr captured into `<work>/<name>.log`.
pub fn spawn_daemon(
    exe: &std::path::Path,
    work: &std::path::Path,
    name: &str,
    config: &str,
) -> anyhow::Result<(Guard, Lines)> {
    let path = work.join(format!("{name}.toml"));
    std::fs::write(&path, config).with_context(|| format!("cannot write {}", path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut guard = Guard::spawn("edgecam", &mut cmd, BUILD_HINT)?;
    let stderr = guard.child_mut().stderr.take().context("no stderr pipe")?;
    let log = Lines::capture(stderr, Some(work.join(format!("{name}.log"))))?;
    Ok((guard, log))
}

/// Set by the signal thread on Ctrl-C or SIGTERM; every wait in the bench checks it.
static STOP: AtomicBool = AtomicBool::new(false);

/// Catches Ctrl-C and SIGTERM on a background thread, so that instead of dying at once the
/// bench returns an error from its current wait and its guards kill the children.
pub fn catch_signals() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            STOP.store(true, Ordering::SeqCst);
        });
    });
}

/// Sleeps `d`, or fails early if the bench was interrupted.
pub fn sleep(d: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + d;
    loop {
        if STOP.load(Ordering::SeqCst) {
            bail!("interrupted; stopping every child process");
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so that no server,
/// daemon or decoder outlives the bench.
pub struct Guard {
    /// What it is, for error messages ("edgecam", "ffmpeg cam3", ...).
    name: String,
    /// The process.
    child: Child,
}

impl Guard {
    /// Spawns `cmd`; `missing` is the hint shown when the program is not installed.
    pub fn spawn(name: &str, cmd: &mut Command, missing: &str) -> anyhow::Result<Guard> {
        match cmd.spawn() {
            Ok(child) => Ok(Guard {
                name: name.to_string(),
                child,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(anyhow!("cannot start {name}: {missing}"))
            }
            Err(e) => Err(anyhow!(e).context(format!("cannot start {name}"))),
        }
    }

    /// The process id, for `/proc/<pid>`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process itself, to take its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Fails, naming the process and its exit status, if it has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("{} exited early ({status})", self.name),
            Err(e) => Err(anyhow!(e).context(format!("cannot check on {}", self.name))),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Either may fail only because the process is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines a child writes to one of its pipes, each with the time it arrived, collected
/// by a thread that keeps draining the pipe (a full pipe would stall the child).
#[derive(Clone, Default)]
pub struct Lines {
    /// Every line so far, oldest first.
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Lines {
    /// Starts draining `pipe`; with `copy_to`, every line is also appended to that file.
    pub fn capture(
        pipe: impl Read + Send + 'static,
        copy_to: Option<PathBuf>,
    ) -> anyhow::Result<Lines> {
        let mut file = match copy_to {
            Some(path) => Some(
                std::fs::File::create(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
            None => None,
        };
        let lines = Lines::default();
        let shared = Arc::clone(&lines.lines);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                let mut v = shared.lock().unwrap_or_else(|p| p.into_inner());
                v.push((Instant::now(), line));
            }
        });
        Ok(lines)
    }

    /// A copy of the lines so far.
    pub fn snapshot(&self) -> Vec<(Instant, String)> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let v = self.snapshot();
        let from = v.len().saturating_sub(n);
        v[from..]
            .iter()
            .map(|(_, l)| format!("  | {l}\n"))
            .collect()
    }
}

/// Polls `ready` every 100 ms until it returns true; fails after `timeout`, on interrupt, or
/// as soon as `alive` fails (the child died).
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let end = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        alive()?;
        if Instant::now() >= end {
            bail!("timed out after {} s waiting for {what}", timeout.as_secs());
        }
        sleep(Duration::from_millis(100))?;
    }
}
