//! The local web server: the page, the JSON API, the live push and the metrics, on axum.
//!
//! [`WebServer::start`] takes ownership of a running [`Daemon`] and serves it; the daemon is
//! shared behind a read-write lock ([`AppState`]) because a config change (`PUT /api/config`)
//! needs it mutably while every other request only reads. No lock is held across a send to a
//! client, so a slow client never holds up a config change.

pub mod api;
pub mod assets;
pub mod auth;
pub mod error;
pub mod metrics;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::{RwLock, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::daemon::Daemon;
use crate::select::ActiveView;
use crate::health::beacon::{BeaconGuard, BeaconTable};
use crate::health::relay::spawn_relay;
use crate::health::{LIVE_BUDGET, LIVE_CLIENT_SLOTS};
use crate::output::LiveStream;
use crate::output::jpeg::{JpegHub, JpegSettings};
use crate::output::live::LiveOptions;
use auth::Auth;
use metrics::Metrics;

/// Kernel send buffer per connection. Small on purpose: frames should wait in the ring (where a
/// slow client skips to the newest keyframe), not in seconds of kernel buffer.
const SEND_BUFFER_BYTES: usize = 256 * 1024;

/// How long open connections get to finish when the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Options that are not in the config file.
#[derive(Debug, Clone, Default)]
pub struct WebOptions {
    /// Live push tuning.
    pub live: LiveOptions,
    /// A one-time admin password hash (`demo`): usable once, then it must be changed.
    pub one_time_password_hash: Option<String>,
}

/// Everything request handlers share.
pub struct AppState {
    /// The daemon; `None` once shutdown has taken it.
    daemon: RwLock<Option<Daemon>>,
    /// Passwords, sessions, tokens, rate limits.
    pub(crate) auth: Auth,
    /// Shared decoders for the JPEG outputs.
    pub(crate) jpeg: JpegHub,
    /// Prometheus registry and live-push metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Time source (wall clock for latency, same as ingest's).
    pub(crate) clock: Arc<dyn Clock>,
    /// Live push tuning.
    live: LiveOptions,
    /// Start time, for `uptime_s`.
    started: Instant,
    /// One beacon slot per live client loop; the relay forwards the stalest into the
    /// daemon's `live` beacon.
    live_members: Arc<BeaconTable>,
    /// Flipped to true on shutdown; live clients watch it.
    shutdown: watch::Sender<bool>,
}

impl AppState {
    /// Runs `f` on the daemon; an error (503) once it is shutting down.
    pub async fn with_daemon<R>(&self, f: impl FnOnce(&Daemon) -> R) -> Result<R, error::ApiError> {
        let guard = self.daemon.read().await;
        guard
            .as_ref()
            .map(f)
            .ok_or_else(error::ApiError::shutting_down)
    }

    /// The daemon for a change (config apply); 503 once it is shutting down.
    pub(crate) async fn daemon_mut(
        &self,
    ) -> Result<tokio::sync::RwLockMappedWriteGuard<'_, Daemon>, error::ApiError> {
        let guard = self.daemon.write().await;
        tokio::sync::RwLockWriteGuard::try_map(guard, |d| d.as_mut())
            .map_err(|_| error::ApiError::shutting_down())
    }

    /// A receiver of the active view; `None` once shutting down.
    pub(crate) async fn subscribe_view(&self) -> Option<watch::Receiver<ActiveView>> {
        self.with_daemon(|d| d.control().subscribe()).await.ok()
    }

    /// A running stream by id.
    pub(crate) async fn lookup_stream(&self, id: &str) -> Option<LiveStream> {
        self.with_daemon(|d| {
            d.streams().get(id).map(|e| LiveStream {
                name: e.config.display_name().to_string(),
                ring: Arc::clone(&e.ring),
                width: e.config.width,
                height: e.config.height,
            })
        })
        .await
        .ok()
        .flatten()
    }

    /// A receiver that changes when the server shuts down.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Live push tuning.
    pub(crate) fn live_options(&self) -> LiveOptions {
        self.live
    }

    /// Browsers currently connected to the live push.
    pub fn live_clients(&self) -> u64 {
        self.metrics.live_clients.get().max(0) as u64
    }

    /// Streams whose shared JPEG decoder is running (it runs only while someone watches).
    pub fn jpeg_decoders(&self) -> Vec<String> {
        self.jpeg.running()
    }

    /// A beacon for one live client loop; `None` (logged) when every slot is taken.
    pub(crate) fn live_beacon(&self) -> Option<BeaconGuard> {
        self.live_members
            .register("live client", LIVE_BUDGET, self.clock.mono_ns())
            .inspect_err(|e| tracing::warn!(error = %e, "live client not watched"))
            .ok()
    }

    /// Seconds since the server started.
    pub(crate) fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// A running web server with the daemon it serves.
pub struct WebServer {
    /// Shared state (also reachable from tests).
    state: Arc<AppState>,
    /// The bound address.
    addr: SocketAddr,
    /// The axum server task.
    server: JoinHandle<()>,
    /// The task beating the `live` beacon for the live client loops.
    relay: Option<JoinHandle<()>>,
}

impl WebServer {
    /// Serves `daemon` on `listener` until [`WebServer::shutdown`].
    pub async fn start(
        daemon: Daemon,
        listener: TcpListener,
        options: WebOptions,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<WebServer> {
        let addr = listener.local_addr()?;
        let cfg = daemon.config().clone();
        let auth = Auth::new(cfg.web.admin_password_hash.clone(), cfg.web.tokens.clone());
        if cfg.web.admin_password_hash.is_none()
            && let Some(h) = options.one_time_password_hash
        {
            auth.set_one_time_hash(h);
        }
        let (shutdown, _) = watch::channel(false);
        let live_members = BeaconTable::new(LIVE_CLIENT_SLOTS);
        let relay = match daemon
            .beacons()
            .register("live", LIVE_BUDGET, clock.mono_ns())
        {
            Ok(group) => Some(spawn_relay(
                "live",
                Arc::clone(&live_members),
                group,
                Arc::clone(&clock),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "live pusher not watched");
                None
            }
        };
        let state = Arc::new(AppState {
            daemon: RwLock::new(Some(daemon)),
            auth,
            jpeg: JpegHub::new(JpegSettings {
                quality: cfg.web.jpeg_quality,
                downscale: cfg.web.jpeg_downscale,
            }),
            metrics: Arc::new(Metrics::new()),
            clock,
            live: options.live,
            started: Instant::now(),
            live_members,
            shutdown,
        });
        let app = router(Arc::clone(&state));
        let mut stop = state.shutdown_signal();
        let server = tokio::spawn(async move {
            let listener = listener.tap_io(|tcp| {
                // Best effort: a socket that refuses these options still works.
                let _ = tcp.set_nodelay(true);
                let _ = socket2::SockRef::from(&*tcp).set_send_buffer_size(SEND_BUFFER_BYTES);
            });
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "web server failed");
            }
        });
        tracing::info!(%addr, "web server listening");
        Ok(WebServer {
            state,
            addr,
            server,
            relay,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shared state.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops the server (live clients first), then the daemon.
    pub async fn shutdown(self) {
        self.state.shutdown.send_replace(true);
        if let Some(relay) = self.relay {
            relay.abort();
        }
        let mut server = self.server;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        let daemon = self.state.daemon.write().await.take();
        if let Some(d) = daemon {
            d.shutdown().await;
        }
    }
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    api::routes()
        .merge(assets::routes())
        .layer(axum::middleware::from_fn(auth::origin_guard))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}
