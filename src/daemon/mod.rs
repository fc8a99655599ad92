//! The daemon: wires config, streams, the control task, the state file and the web server
//! together and runs until SIGTERM or Ctrl-C.

pub mod alarms;
pub mod streams;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, FieldError, StreamConfig};
use crate::health::beacon::BeaconTable;
use crate::health::probe::spawn_web_probe;
use crate::health::watchdog::{WatchdogStatus, spawn_watchdog};
use crate::health::{BEACON_SLOTS, CONTROL_BUDGET, MAIN_BUDGET, WEB_BUDGET, notify};
use crate::ingest::stats::StreamState;
use crate::ring::{RingError, RingSpec};
use crate::state::StateStore;
use crate::web::{WebOptions, WebServer};
use alarms::{AlarmInputs, GpioBackends};
use crate::control::{Command, Control, spawn_control};
use streams::StreamSet;

/// How often the ring and stream statistics are logged.
const STATS_LOG_PERIOD: Duration = Duration::from_secs(10);

/// How often the `STATUS=` line is recomputed (it is sent only when it changed).
const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// Extra start-up time asked of systemd before the rings are allocated and the one-time
/// password is hashed (both slow on a small board).
const START_EXTENSION: Duration = Duration::from_secs(30);

/// How the daemon was started.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `edgecam run --config PATH`.
    Run {
        /// The provisioned config file.
        config: PathBuf,
    },
    /// `edgecam demo`: test-pattern streams from a built-in config.
    Demo {
        /// Number of test-pattern streams.
        streams: u32,
        /// Web listen address.
        listen: SocketAddr,
        /// State directory; a fresh one under the temp dir when `None`.
        state_dir: Option<PathBuf>,
    },
}

/// Why the daemon could not start.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// The config file could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The built-in demo config did not validate (a bug, reported rather than hidden).
    #[error("built-in config is invalid: {0:?}")]
    BuiltIn(Vec<FieldError>),
    /// A ring could not be allocated.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// The state directory cannot be created.
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The web server cannot listen on the configured address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address from `web.listen`.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The one-time demo password could not be made.
    #[error("cannot create the one-time admin password: {0}")]
    Password(String),
}

/// The built-in config of `edgecam demo`: `n` test-pattern streams `cam1..camN`.
pub fn demo_config(n: u32, listen: SocketAddr, state_dir: &Path) -> Config {
    let mut cfg = Config::default();
    cfg.web.listen = listen.to_string();
    cfg.paths.state_dir = state_dir.to_path_buf();
    cfg.ring.bytes_per_stream = 8 * 1024 * 1024;
    cfg.streams = (1..=n)
        .map(|i| StreamConfig {
            name: Some(format!("Test pattern {i}")),
            bitrate_kbps: Some(1000),
            // A 1 s GOP, as many cameras are set: a switch or a first frame decodes the GOP
            // from its keyframe, so the GOP bounds that cost (README, "Latency").
            gop: Some(25),
            stall_timeout_ms: 3000,
            ..StreamConfig::testpattern(format!("cam{i}"), 640, 360, 25)
        })
        .collect();
    cfg.select.default = Some("cam1".to_string());
    cfg
}

/// A running daemon: streams, rings and the control task.
pub struct Daemon {
    /// The config in force.
    config: Config,
    /// Running streams and their rings.
    streams: StreamSet,
    /// Handle to the control task (selection and alarms).
    control: Control,
    /// The control task itself, awaited on shutdown so the state file is flushed.
    control_task: JoinHandle<()>,
    /// GPIO alarm input tasks of the current config.
    inputs: AlarmInputs,
    /// GPIO backends, kept to restart inputs after a config change.
    gpio: GpioBackends,
    /// Clock shared by every task.
    clock: Arc<dyn Clock>,
    /// Liveness beacons of the stream loops and the control task, for the watchdog.
    beacons: Arc<BeaconTable>,
    /// What the watchdog task has done (pings, trip), for the System tab.
    watchdog: Arc<WatchdogStatus>,
}

impl Daemon {
    /// Starts everything `config` describes on the machine's GPIO. The state directory must exist.
    pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<Daemon, DaemonError> {
        Self::start_with(config, clock, GpioBackends::system()).await
    }

    /// Like [`Daemon::start`], with the given GPIO backends (tests pass mocks).
    pub async fn start_with(
        config: Config,
        clock: Arc<dyn Clock>,
        gpio: GpioBackends,
    ) -> Result<Daemon, DaemonError> {
        let spec = RingSpec::from_config(&config.ring)?;
        let beacons = BeaconTable::new(BEACON_SLOTS);
        let mut streams = StreamSet::new(spec, Arc::clone(&clock), Arc::clone(&beacons));
        streams.apply(&config.streams, spec)?;
        let store = StateStore::new(&config.paths.state_dir);
        let control_beacon = beacons
            .register("control", CONTROL_BUDGET, clock.mono_ns())
            .inspect_err(|e| tracing::warn!(error = %e, "control task not watched"))
            .ok();
        let (control, control_task) = spawn_control(
            &config,
            Arc::clone(&clock),
            store,
            Arc::clone(&gpio.output),
            control_beacon,
        );
        let inputs = AlarmInputs::start(
            &config.alarms,
            &gpio,
            Arc::clone(&clock),
            control.clone(),
            &beacons,
        );
        let daemon = Daemon {
            config,
            streams,
            control,
            control_task,
            inputs,
            gpio,
            clock,
            beacons,
            watchdog: Arc::default(),
        };
        daemon.watch_streams().await;
        Ok(daemon)
    }

    /// Applies a new, already validated config live: only what changed is restarted.
    pub async fn apply_config(&mut self, config: Config) -> Result<(), DaemonError> {
        let spec = RingSpec::from_config(&config.ring)?;
        self.streams.apply(&config.streams, spec)?;
        let _ = self
            .control
            .send(Command::ApplyConfig(Box::new(config.clone())))
            .await;
        if config.alarms != self.config.alarms {
            // Alarm indices may have moved: restart every input against the new list.
            self.inputs = AlarmInputs::start(
                &config.alarms,
                &self.gpio,
                Arc::clone(&self.clock),
                self.control.clone(),
                &self.beacons,
            );
        }
        self.config = config;
        self.watch_streams().await;
        Ok(())
    }

    async fn watch_streams(&self) {
        let stats = self.streams.iter().map(|s| s.stats()).collect();
        // Fails only when the control task is gone, i.e. during shutdown.
        let _ = self.control.send(Command::WatchStreams(stats)).await;
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The running streams.
    pub fn streams(&self) -> &StreamSet {
        &self.streams
    }

    /// Selection and alarm control.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// The liveness beacons of the daemon's loops.
    pub fn beacons(&self) -> Arc<BeaconTable> {
        Arc::clone(&self.beacons)
    }

    /// What the health watchdog has done; it runs once [`run`] starts it.
    pub fn watchdog_status(&self) -> Arc<WatchdogStatus> {
        Arc::clone(&self.watchdog)
    }

    /// Streams that are live, and all running streams.
    pub fn live_count(&self) -> (usize, usize) {
        let live = self
            .streams
            .iter()
            .filter(|s| s.stats().state() == StreamState::Live)
            .count();
        (live, self.streams.len())
    }

    /// GPIO alarm inputs and their state.
    pub fn alarm_inputs(&self) -> &AlarmInputs {
        &self.inputs
    }

    /// Logs one line per stream with its state and ring statistics.
    pub fn log_stats(&self) {
        for s in self.streams.iter() {
            let st = s.stats().snapshot();
            let ring = s.ring.stats();
            tracing::info!(
                stream = %s.config.id,
                state = %st.state,
                fps = st.fps,
                frames = st.frames,
                ring_written = ring.written,
                ring_overwritten = ring.overwritten,
                ring_bytes = ring.bytes_written,
                last_error = st.last_error.as_deref().unwrap_or(""),
                "stream stats"
            );
        }
    }

    /// Stops the streams, then the control task, which saves the state one last time.
    pub async fn shutdown(mut self) {
        drop(self.inputs);
        self.streams.stop_all().await;
        drop(self.control);
        let _ = self.control_task.await;
    }
}

/// Runs the daemon and its web server until SIGTERM or Ctrl-C.
pub async fn run(mode: Mode) -> Result<(), DaemonError> {
    let demo = matches!(mode, Mode::Demo { .. });
    let config = match mode {
        Mode::Run { config } => {
            let provisioned = crate::config::load_file(&config)?;
            let state_dir = provisioned.paths.state_dir.clone();
            let effective = crate::config::load_effective(&config, &state_dir)?;
            tracing::info!(origin = ?effective.origin, "config loaded");
            effective.config
        }
        Mode::Demo {
            streams,
            listen,
            state_dir,
        } => {
            let dir = state_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("edgecam-demo-{}", std::process::id()))
            });
            let cfg = demo_config(streams, listen, &dir);
            crate::config::validate(&cfg).map_err(DaemonError::BuiltIn)?;
            tracing::info!(streams, state_dir = %dir.display(), "demo: test-pattern streams");
            cfg
        }
    };
    notify::extend_timeout(START_EXTENSION);
    let dir = config.paths.state_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| DaemonError::StateDir { path: dir, source })?;
    let listen = config.web.listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: listen.clone(),
            source,
        })?;
    let mut options = WebOptions::default();
    let mut one_time = None;
    if demo && config.web.admin_password_hash.is_none() {
        let (password, hash) = tokio::task::spawn_blocking(one_time_password)
            .await
            .map_err(|e| DaemonError::Password(e.to_string()))??;
        options.one_time_password_hash = Some(hash);
        one_time = Some(password);
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let daemon = Daemon::start(config, Arc::clone(&clock)).await?;
    let beacons = daemon.beacons();
    let watchdog_status = daemon.watchdog_status();
    let view = daemon.control().view();
    tracing::info!(
        streams = daemon.streams().len(),
        active = view.stream.as_deref().unwrap_or("-"),
        reason = %view.reason,
        "edgecam running"
    );
    let server = WebServer::start(daemon, listener, options, Arc::clone(&clock))
        .await
        .map_err(|source| DaemonError::Listen {
            addr: listen.clone(),
            source,
        })?;
    let addr = server.local_addr();
    println!("edgecam: web page at http://{addr}/");
    if let Some(password) = one_time {
        println!("edgecam: one-time admin password: {password}");
        println!("edgecam: (log in with it once; the page then asks for a new password)");
    }
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(DaemonError::Signals)?;
    let (status_tx, status_rx) = tokio::sync::watch::channel(status_now(&server).await);
    // This loop reads the daemon through the web server's lock every second: a writer stuck
    // holding it (a config apply that never finishes) stops these beats too.
    let main_beacon = beacons
        .register("main", MAIN_BUDGET, clock.mono_ns())
        .inspect_err(|e| tracing::warn!(error = %e, "main loop not watched"))
        .ok();
    let probe = match beacons.register("web", WEB_BUDGET, clock.mono_ns()) {
        Ok(beacon) => Some(spawn_web_probe(addr, beacon, Arc::clone(&clock))),
        Err(e) => {
            tracing::warn!(error = %e, "web server not watched");
            None
        }
    };
    notify::ready();
    let watchdog = spawn_watchdog(
        beacons,
        Arc::clone(&clock),
        notify::watchdog_period(),
        status_rx,
        watchdog_status,
    );
    let mut stats = tokio::time::interval(STATS_LOG_PERIOD);
    stats.tick().await;
    let mut status = tokio::time::interval(STATUS_PERIOD);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            _ = stats.tick() => {
                let _ = server.state().with_daemon(Daemon::log_stats).await;
            }
            _ = status.tick() => {
                crate::health::fault::checkpoint("main", "").await;
                if let Some(b) = &main_beacon {
                    b.beat(clock.mono_ns());
                }
                let line = status_now(&server).await;
                status_tx.send_if_modified(|old| {
                    let changed = *old != line;
                    *old = line;
                    changed
                });
            }
        }
    }
    tracing::info!("shutting down");
    notify::stopping();
    watchdog.abort();
    if let Some(p) = probe {
        p.abort();
    }
    server.shutdown().await;
    Ok(())
}

/// The `STATUS=` line for the daemon behind `server`.
async fn status_now(server: &WebServer) -> String {
    let viewers = server.state().live_clients();
    server
        .state()
        .with_daemon(|d| {
            let (live, total) = d.live_count();
            notify::status_line(live, total, &d.control().view(), viewers)
        })
        .await
        .unwrap_or_else(|_| "shutting down".to_string())
}

/// A random one-time admin password (16 hex digits) and its Argon2 hash.
fn one_time_password() -> Result<(String, String), DaemonError> {
    let token =
        crate::secret::random_token().map_err(|e| DaemonError::Password(e.to_string()))?;
    let password = token[..16].to_string();
    let hash = crate::secret::hash_password(&password)
        .map_err(|e| DaemonError::Password(e.to_string()))?;
    Ok((password, hash))
}
