//! The daemon: wires config, streams, the control task, the state file and the web server
//! together and runs until SIGTERM or Ctrl-C.
//!
//! A [`Daemon`] is owned by one loop: [`run`]'s main loop in the real program, or a
//! [`Serving`] task in tests. That loop is the only code that changes it: the web server gets
//! [`Handles`] ([`Daemon::handles`]) and sends config changes to the loop, which applies them
//! ([`Daemon::serve_request`]) and publishes the new [`Status`].

pub mod alarms;
pub mod rates;
mod run;
pub mod streams;

pub use run::{Serving, run};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{Config, ConfigError, FieldError, StreamConfig};
use crate::control::{Command, Control, spawn_control_gated};
use crate::handles::{
    ApplyError, ConfigHandle, ConfigRequest, Handles, RunningStream, Status, StatusReader,
    SubStream,
};
use crate::health::beacon::BeaconTable;
use crate::health::watchdog::WatchdogStatus;
use crate::health::{BEACON_SLOTS, CONTROL_BUDGET};
use crate::hooks::Webhooks;
use crate::ingest::stats::StreamState;
use crate::mqtt::MqttBridge;
use crate::output::clips::{ClipManager, ClipStore, ClipsHandle, clip_dir, spawn_manager};
use crate::ring::RingError;
use crate::ring::rates::RateBook;
use crate::state::StateStore;
use alarms::{AlarmInputs, GpioBackends};
use streams::{RingPlan, StreamSet};

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
        /// More names the page is opened by (`web.hostnames`), e.g. a test's
        /// `edgebox.test` mapped to loopback.
        hostnames: Vec<String>,
        /// HTTPS listen address.
        https_listen: SocketAddr,
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

/// [`Daemon::save_transports`] for the state directory `dir`.
async fn save_transports_in(dir: PathBuf) {
    let saved =
        tokio::task::spawn_blocking(move || crate::ingest::learned::memory().save(&dir)).await;
    match saved {
        Ok(Ok(true)) => tracing::debug!("learned rtsp transports saved"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "learned rtsp transports not saved"),
        Err(e) => tracing::warn!(error = %e, "learned rtsp transports not saved"),
    }
}

/// Loads the RTSP transports learned before the last restart (a hint: a bad file is logged).
fn load_transports(state_dir: &Path) {
    match crate::ingest::learned::memory().load(state_dir) {
        Ok(0) => {}
        Ok(n) => tracing::info!(cameras = n, "learned rtsp transports loaded"),
        Err(e) => tracing::warn!(error = %e, "learned rtsp transports not loaded"),
    }
}

/// Starts `config`'s webhooks on `control`'s event feed, the hostname as the box's name.
fn start_hooks(config: &Config, control: &Control, clock: &Arc<dyn Clock>) -> Webhooks {
    let box_name = crate::web::origin::hostname();
    Webhooks::start(
        &config.webhooks,
        &config.alarms,
        &box_name,
        control,
        Arc::clone(clock),
    )
}

/// A running daemon: streams, rings, GPIO inputs and the control task.
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
    /// Outgoing webhooks of the current config.
    hooks: Webhooks,
    /// GPIO backends, kept to restart inputs after a config change.
    gpio: GpioBackends,
    /// Clock shared by every task.
    clock: Arc<dyn Clock>,
    /// Liveness beacons of the stream loops and the control task, for the watchdog.
    beacons: Arc<BeaconTable>,
    /// What the watchdog task has done (pings, trip), for the System tab.
    watchdog: Arc<WatchdogStatus>,
    /// Publishes what runs to the web's [`StatusReader`]s after the start and every apply.
    status: watch::Sender<Arc<Status>>,
    /// A reader of `status`, cloned into every [`Handles`].
    status_reader: StatusReader,
    /// The sending end of `requests`, cloned into every [`Handles`].
    config_handle: ConfigHandle,
    /// Config changes from the web, answered by the loop that owns the daemon.
    requests: mpsc::Receiver<ConfigRequest>,
    /// The MQTT connection of `[mqtt]`, when configured and startable.
    mqtt: Option<MqttBridge>,
    /// The clip store in force, shared with the web server.
    clips: ClipsHandle,
    /// The clip manager watching the view; `None` while clips are off.
    clip_manager: Option<ClipManager>,
    /// Each stream's measured peak rates, which size its ring at its next start.
    rates: Arc<RateBook>,
    /// The task that measures the rates and saves them ([`rates::spawn`]).
    rates_task: rates::RatesTask,
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
        let plan = RingPlan::of(&config)?;
        load_transports(&config.paths.state_dir);
        let rates = Arc::new(RateBook::default());
        rates::load(&rates, &config.paths.state_dir);
        let beacons = BeaconTable::new(BEACON_SLOTS);
        let mut streams = StreamSet::new(
            plan.clone(),
            Arc::clone(&rates),
            Arc::clone(&clock),
            Arc::clone(&beacons),
        );
        streams.apply(&config.streams, plan)?;
        let store = StateStore::new(&config.paths.state_dir);
        let control_beacon = beacons
            .register("control", CONTROL_BUDGET, clock.mono_ns())
            .inspect_err(|e| tracing::warn!(error = %e, "control task not watched"))
            .ok();
        // The task waits for `gate` until the webhooks and MQTT listen: an input active at
        // start is then reported to them too.
        let (control, control_task, gate) = spawn_control_gated(
            &config,
            Arc::clone(&clock),
            store,
            Arc::clone(&gpio.output),
            control_beacon,
        );
        let inputs = AlarmInputs::start(
            &config.alarms,
            &config.streams,
            &gpio,
            Arc::clone(&clock),
            control.clone(),
            &beacons,
        );
        let hooks = start_hooks(&config, &control, &clock);
        let (status, status_reader) = StatusReader::channel(Status::default());
        let (config_handle, requests) = ConfigHandle::channel();
        let rates_task = rates::spawn(
            status_reader.clone(),
            Arc::clone(&rates),
            Arc::clone(&clock),
        );
        let daemon = Daemon {
            config,
            streams,
            control,
            control_task,
            inputs,
            hooks,
            gpio,
            clock,
            beacons,
            watchdog: Arc::default(),
            status,
            status_reader,
            config_handle,
            requests,
            mqtt: None,
            clips: ClipsHandle::default(),
            clip_manager: None,
            rates,
            rates_task,
        };
        let mut daemon = daemon;
        daemon.start_clips(None).await;
        daemon.watch_streams().await;
        daemon.mqtt = daemon.start_mqtt();
        daemon.publish_status();
        gate.open();
        Ok(daemon)
    }

    /// What the web server may use: control, status, config changes, beacons, watchdog.
    pub fn handles(&self) -> Handles {
        Handles {
            control: self.control.clone(),
            status: self.status_reader.clone(),
            config: self.config_handle.clone(),
            beacons: Arc::clone(&self.beacons),
            watchdog: Arc::clone(&self.watchdog),
            clips: self.clips.clone(),
        }
    }

    /// The next config change sent through a [`Handles`]; waits while there is none.
    pub async fn next_request(&mut self) -> ConfigRequest {
        match self.requests.recv().await {
            Some(req) => req,
            // The daemon keeps a sender itself, so the queue never closes while it lives.
            None => std::future::pending().await,
        }
    }

    /// Validates, saves (atomically, as the live config) and applies a requested config, and
    /// answers the request.
    pub async fn serve_request(&mut self, req: ConfigRequest) {
        let result = self.save_and_apply(req.config).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "config change refused");
        }
        // The requester may have given up (its client left); the change stands anyway.
        let _ = req.reply.send(result);
    }

    /// Validates `config`, writes it as the live config, then applies it.
    async fn save_and_apply(&mut self, config: Config) -> Result<(), ApplyError> {
        crate::config::validate(&config).map_err(ApplyError::Invalid)?;
        let dir = config.paths.state_dir.clone();
        let to_save = config.clone();
        tokio::task::spawn_blocking(move || crate::config::save_live(&to_save, &dir))
            .await
            .map_err(ApplyError::SaveTask)?
            .map_err(|e| match e {
                ConfigError::Invalid { errors, .. } => ApplyError::Invalid(errors),
                other => ApplyError::Save(other),
            })?;
        self.apply_config(config).await.map_err(ApplyError::Apply)
    }

    /// Applies a new, already validated config live: only what changed is restarted. The new
    /// [`Status`] is published before this returns.
    pub async fn apply_config(&mut self, config: Config) -> Result<(), RingError> {
        let plan = RingPlan::of(&config)?;
        self.streams.apply(&config.streams, plan)?;
        let _ = self
            .control
            .send(Command::ApplyConfig(Box::new(config.clone())))
            .await;
        // Before the inputs restart, so the new hooks hear what a new input raises at once.
        if !self.hooks.runs(&config.webhooks) || config.alarms != self.config.alarms {
            // Alarm names go into the bodies; queued events of the old set are lost.
            self.hooks = Webhooks::default();
            self.hooks = start_hooks(&config, &self.control, &self.clock);
        }
        let onvif_camera_moved = config.streams != self.config.streams
            && config.alarms.iter().any(|a| a.onvif.is_some());
        let inputs_changed = config.alarms != self.config.alarms || onvif_camera_moved;
        let mqtt_changed = config.mqtt != self.config.mqtt;
        let old = std::mem::replace(&mut self.config, config);
        // MQTT and the clip manager, like the hooks, before the inputs restart: an input
        // that is on at once raises its alarm into listeners that hear it (a listener that
        // starts later takes the raise for the state it found).
        if mqtt_changed {
            // Drop the old connection first: the new one has the same client id.
            self.mqtt = None;
            self.mqtt = self.start_mqtt();
        }
        if old.clips != self.config.clips
            || old.alarms != self.config.alarms
            || old.paths != self.config.paths
        {
            self.start_clips(Some(&old)).await;
        }
        if inputs_changed {
            // Alarm indices may have moved (or an ONVIF input's camera did): restart every
            // input against the new list.
            self.inputs = AlarmInputs::start(
                &self.config.alarms,
                &self.config.streams,
                &self.gpio,
                Arc::clone(&self.clock),
                self.control.clone(),
                &self.beacons,
            );
        }
        self.watch_streams().await;
        self.publish_status();
        Ok(())
    }

    /// Starts the `[mqtt]` connection of the config in force; `None` (and a warning) when
    /// there is none or it cannot start.
    fn start_mqtt(&self) -> Option<MqttBridge> {
        let cfg = self.config.mqtt.clone()?;
        MqttBridge::start(cfg, self.handles())
            .inspect_err(|e| tracing::warn!(error = %e, "MQTT is off"))
            .ok()
    }

    /// Publishes what runs now to the web's status readers.
    /// (Re)starts the clip manager for the config in force; the store is reopened only when
    /// `[clips]` or the directory changed since `old`.
    async fn start_clips(&mut self, old: Option<&Config>) {
        self.clip_manager = None;
        let cfg = &self.config;
        if !cfg.clips.enabled {
            self.clips.set(None);
            return;
        }
        let same = old.is_some_and(|o| o.clips == cfg.clips && clip_dir(o) == clip_dir(cfg));
        let store = match self.clips.current().filter(|_| same) {
            Some(store) => store,
            None => {
                let (dir, clips) = (clip_dir(cfg), cfg.clips.clone());
                match tokio::task::spawn_blocking(move || ClipStore::open(dir, clips)).await {
                    Ok(store) => Arc::new(store),
                    Err(e) => {
                        tracing::warn!(error = %e, "clips are off: the store could not be opened");
                        self.clips.set(None);
                        return;
                    }
                }
            }
        };
        self.clips.set(Some(Arc::clone(&store)));
        self.clip_manager = Some(spawn_manager(
            cfg,
            store,
            self.control.subscribe(),
            Arc::new(self.status_reader.clone()),
            Arc::clone(&self.clock),
        ));
    }

    fn publish_status(&self) {
        let status = Status {
            config: self.config.clone(),
            streams: self
                .streams
                .iter()
                .map(|e| RunningStream {
                    config: e.config.clone(),
                    ring: Arc::clone(&e.ring),
                    stats: e.stats(),
                    sub: e.sub.as_ref().map(|sub| SubStream {
                        ring: Arc::clone(&sub.ring),
                        stats: sub.stats(),
                    }),
                })
                .collect(),
            inputs: self
                .inputs
                .status_handles()
                .into_iter()
                .chain(self.mqtt.iter().flat_map(|m| m.input_statuses()))
                .collect(),
            webhooks: self.hooks.stats(),
            rates: Arc::clone(&self.rates),
        };
        self.status.send_replace(Arc::new(status));
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

    /// Writes the RTSP transports learned since the last save to the state directory, off the
    /// async threads (an atomic write ends with an `fsync`); called from the main loop's
    /// periodic tick and at shutdown.
    pub async fn save_transports(&self) {
        save_transports_in(self.config.paths.state_dir.clone()).await;
    }

    /// Stops the streams, then the control task, which saves the state one last time.
    ///
    /// Handles lent out may outlive the daemon (a web connection that has not ended yet): the
    /// control task is told to stop rather than waited for until every handle is gone.
    pub async fn shutdown(mut self) {
        let state_dir = self.config.paths.state_dir.clone();
        drop(self.inputs);
        drop(self.rates_task);
        self.streams.stop_all().await;
        save_transports_in(state_dir.clone()).await;
        rates::save(Arc::clone(&self.rates), state_dir).await;
        let _ = self.control.send(Command::Stop).await;
        drop(self.control);
        let _ = self.control_task.await;
    }
}
