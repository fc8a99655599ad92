//! The program's main loop ([`run`]) and the same loop without the process around it
//! ([`Serving`], for tests and embedders). Both own their [`Daemon`] and are the only code that
//! changes it: config changes from the web arrive as requests and are applied here.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::{Daemon, DaemonError, Mode, demo_config};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::handles::Handles;
use crate::health::probe::spawn_web_probe;
use crate::health::watchdog::spawn_watchdog;
use crate::health::{MAIN_BUDGET, WEB_BUDGET, notify};
use crate::web::{HttpsSetup, WebOptions, WebServer, tls};

/// How often the ring and stream statistics are logged.
const STATS_LOG_PERIOD: Duration = Duration::from_secs(10);

/// How often the `STATUS=` line is recomputed (it is sent only when it changed).
const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// Extra start-up time asked of systemd before the rings are allocated and the one-time
/// password is hashed (both slow on a small board).
const START_EXTENSION: Duration = Duration::from_secs(30);

/// Runs the daemon and its web server until SIGTERM or Ctrl-C.
pub async fn run(mode: Mode) -> Result<(), DaemonError> {
    let demo = matches!(mode, Mode::Demo { .. });
    let config = load(mode)?;
    notify::extend_timeout(START_EXTENSION);
    let dir = config.paths.state_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| DaemonError::StateDir { path: dir, source })?;
    let listen = config.web.listen.clone();
    let listen_error = |source| DaemonError::Listen {
        addr: listen.clone(),
        source,
    };
    let listener = TcpListener::bind(&listen).await.map_err(listen_error)?;
    let https = https_setup(&config).await;
    let (options, one_time) = web_options(demo, &config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let mut daemon = Daemon::start(config, Arc::clone(&clock)).await?;
    let view = daemon.control().view();
    tracing::info!(
        streams = daemon.streams().len(),
        active = view.stream.as_deref().unwrap_or("-"),
        reason = %view.reason,
        "edgecam running"
    );
    let server = WebServer::start_with_https(
        daemon.handles(),
        listener,
        https,
        options,
        Arc::clone(&clock),
    )
    .await
    .map_err(listen_error)?;
    println!("edgecam: web page at http://{}/", server.local_addr());
    if let (Some(addr), Some(fp)) = (server.https_addr(), server.https_fingerprint()) {
        println!("edgecam: HTTPS page at https://{addr}/ (certificate SHA-256 {fp})");
    }
    if let Some(password) = one_time {
        println!("edgecam: one-time admin password: {password}");
        println!("edgecam: (log in with it once; the page then asks for a new password)");
    }
    let result = main_loop(&mut daemon, &server, &clock).await;
    server.shutdown().await;
    daemon.shutdown().await;
    result
}

/// The box's certificate and the bound HTTPS listener; `None` (and a warning that says why)
/// when HTTPS is off or cannot start: plain HTTP goes on.
async fn https_setup(config: &Config) -> Option<HttpsSetup> {
    if !config.web.https {
        return None;
    }
    let names = tls::box_names(&crate::web::origin::hostname(), &config.web.hostnames);
    let dir = config.paths.state_dir.clone();
    let made = tokio::task::spawn_blocking(move || tls::load_or_make(&dir, &names)).await;
    let cert = match made {
        Ok(Ok(cert)) => cert,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "HTTPS is off: no usable certificate");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "HTTPS is off: the certificate task failed");
            return None;
        }
    };
    let listener = match TcpListener::bind(&config.web.https_listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(addr = %config.web.https_listen, error = %e, "HTTPS is off: cannot listen (is the port taken? set web.https_listen)");
            return None;
        }
    };
    Some(HttpsSetup {
        listener,
        tls: tls::TlsState::new(config.paths.state_dir.clone(), cert),
    })
}

/// The config `mode` runs with: the effective config of `run`, or the built-in one of `demo`.
fn load(mode: Mode) -> Result<Config, DaemonError> {
    match mode {
        Mode::Run { config } => {
            let provisioned = crate::config::load_file(&config)?;
            let state_dir = provisioned.paths.state_dir.clone();
            let effective = crate::config::load_effective(&config, &state_dir)?;
            tracing::info!(origin = ?effective.origin, "config loaded");
            Ok(effective.config)
        }
        Mode::Demo {
            streams,
            listen,
            state_dir,
            hostnames,
            https_listen,
        } => {
            let dir = state_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("edgecam-demo-{}", std::process::id()))
            });
            let mut cfg = demo_config(streams, listen, &dir);
            cfg.web.hostnames = hostnames;
            cfg.web.https_listen = https_listen.to_string();
            crate::config::validate(&cfg).map_err(DaemonError::BuiltIn)?;
            tracing::info!(streams, state_dir = %dir.display(), "demo: test-pattern streams");
            Ok(cfg)
        }
    }
}

/// The web options, and the one-time password to print: `demo` without an admin password
/// gets one, usable once.
async fn web_options(
    demo: bool,
    config: &Config,
) -> Result<(WebOptions, Option<String>), DaemonError> {
    let mut options = WebOptions::default();
    if !demo || config.web.admin_password_hash.is_some() {
        return Ok((options, None));
    }
    let (password, hash) = tokio::task::spawn_blocking(one_time_password)
        .await
        .map_err(|e| DaemonError::Password(e.to_string()))??;
    options.one_time_password_hash = Some(hash);
    Ok((options, Some(password)))
}

/// Signals, the statistics log, the `STATUS=` line, the main loop's beacon and config changes,
/// until SIGTERM or Ctrl-C. Starts the watchdog and the web self-probe, and stops them again.
async fn main_loop(
    daemon: &mut Daemon,
    server: &WebServer,
    clock: &Arc<dyn Clock>,
) -> Result<(), DaemonError> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(DaemonError::Signals)?;
    let (status_tx, status_rx) = watch::channel(status_now(daemon, server));
    // This loop owns the daemon and applies config changes itself: an apply that never
    // finishes stops these beats too.
    let beacons = daemon.beacons();
    let main_beacon = beacons
        .register("main", MAIN_BUDGET, clock.mono_ns())
        .inspect_err(|e| tracing::warn!(error = %e, "main loop not watched"))
        .ok();
    let probe = match beacons.register("web", WEB_BUDGET, clock.mono_ns()) {
        Ok(beacon) => Some(spawn_web_probe(
            server.local_addr(),
            beacon,
            Arc::clone(clock),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "web server not watched");
            None
        }
    };
    notify::ready();
    let watchdog = spawn_watchdog(
        beacons,
        Arc::clone(clock),
        notify::watchdog_period(),
        status_rx,
        daemon.watchdog_status(),
    );
    let mut stats = tokio::time::interval(STATS_LOG_PERIOD);
    stats.tick().await;
    let mut status = tokio::time::interval(STATUS_PERIOD);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            _ = stats.tick() => {
                daemon.log_stats();
                daemon.save_transports().await;
            }
            _ = status.tick() => {
                crate::health::fault::checkpoint("main", "").await;
                if let Some(b) = &main_beacon {
                    b.beat(clock.mono_ns());
                }
                let line = status_now(daemon, server);
                status_tx.send_if_modified(|old| {
                    let changed = *old != line;
                    *old = line;
                    changed
                });
            }
            req = daemon.next_request() => daemon.serve_request(req).await,
        }
    }
    tracing::info!("shutting down");
    notify::stopping();
    watchdog.abort();
    if let Some(p) = probe {
        p.abort();
    }
    Ok(())
}

/// The `STATUS=` line for `daemon` and the viewers of `server`.
fn status_now(daemon: &Daemon, server: &WebServer) -> String {
    let (live, total) = daemon.live_count();
    let viewers = server.state().live_clients();
    notify::status_line(live, total, &daemon.control().view(), viewers)
}

/// A random one-time admin password (16 hex digits) and its Argon2 hash.
fn one_time_password() -> Result<(String, String), DaemonError> {
    let token = crate::secret::random_token().map_err(|e| DaemonError::Password(e.to_string()))?;
    let password = token[..16].to_string();
    let hash = crate::secret::hash_password(&password)
        .map_err(|e| DaemonError::Password(e.to_string()))?;
    Ok((password, hash))
}

/// A daemon owned by a task of its own that applies the config changes sent through its
/// [`Handles`]: [`run`]'s loop without the signals, the systemd protocol, the watchdog and the
/// statistics log. For tests and for programs that serve the handles with a [`WebServer`]
/// they start themselves.
pub struct Serving {
    /// Ends the loop, which then hands the daemon back.
    stop: oneshot::Sender<()>,
    /// The loop; it returns the daemon so [`Serving::shutdown`] can stop it.
    task: JoinHandle<Daemon>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("running", &!self.task.is_finished())
            .finish_non_exhaustive()
    }
}

impl Serving {
    /// Moves `daemon` onto its own task; the handles reach it there.
    pub fn start(daemon: Daemon) -> (Handles, Serving) {
        let handles = daemon.handles();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut daemon = daemon;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    req = daemon.next_request() => daemon.serve_request(req).await,
                }
            }
            daemon
        });
        (handles, Serving { stop, task })
    }

    /// Ends the loop, then stops the daemon (streams, then the control task, which saves the
    /// state one last time).
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Ok(daemon) = self.task.await {
            daemon.shutdown().await;
        }
    }
}
