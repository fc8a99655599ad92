//! The local web server: the page, the JSON API, the live push and the metrics, on axum.
//!
//! [`WebServer::start`] serves what a running daemon lends it, a [`Handles`]: the control
//! handle, the status reader, the config handle, the beacon table and the watchdog status. The
//! daemon itself stays with its own loop (`daemon::run`), which applies config changes
//! sent through the config handle; the server never holds the daemon, so nothing here can hold
//! up that loop. No lock is held across a send to a client: reading the status clones an `Arc`
//! and lets go.

pub mod api;
pub mod assets;
pub mod auth;
mod clips;
pub mod error;
mod from_onvif;
#[doc(hidden)]
pub mod fuzz;
pub mod metrics;
mod onvif;
pub mod origin;
pub mod policy;
pub mod serve;
pub mod session;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::handles::{Handles, Status};
use crate::health::beacon::BeaconTable;
use crate::health::relay::spawn_relay;
use crate::health::{LIVE_BUDGET, LIVE_CLIENT_SLOTS};
use crate::output::jpeg::{JpegHub, JpegSettings};
use crate::output::live::{LiveContext, LiveOptions};
use crate::output::{Pick, PictureStream};
use auth::Auth;
use metrics::Metrics;

/// How long open connections get to finish when the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Options that are not in the config file.
#[derive(Debug, Clone, Default)]
pub struct WebOptions {
    /// Live push tuning.
    pub live: LiveOptions,
    /// A one-time admin password hash (`demo`): usable once, then it must be changed.
    pub one_time_password_hash: Option<String>,
    /// Header-read timeout and connection cap of the accept loop.
    pub limits: serve::ServeLimits,
}

/// HTTPS beside plain HTTP: where, and with which certificate.
pub struct HttpsSetup {
    /// The bound HTTPS listener.
    pub listener: TcpListener,
    /// The certificate served (swappable from the System tab).
    pub tls: Arc<tls::TlsState>,
}

/// Everything request handlers share.
pub struct AppState {
    /// What the daemon lends: control, status, config changes, beacons, watchdog.
    pub(crate) handles: Handles,
    /// Passwords, sessions, tokens, rate limits.
    pub(crate) auth: Auth,
    /// Shared decoders for the JPEG outputs.
    pub(crate) jpeg: JpegHub,
    /// The names this box answers to, for the Host and Origin checks.
    pub(crate) names: origin::BoxNames,
    /// The HTTPS certificate and port, when HTTPS is on.
    pub(crate) https: Option<(Arc<tls::TlsState>, u16)>,
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
    /// What the daemon runs now (config, streams, inputs).
    pub fn status(&self) -> Arc<Status> {
        self.handles.status.current()
    }

    /// The stream camera `id`'s pictures come from now, as `pick` asks.
    pub(crate) fn picture_stream(&self, id: &str, pick: Pick) -> Option<PictureStream> {
        crate::output::StreamLookup::picture_stream(&self.handles.status, id, pick)
    }

    /// What one live client loop needs.
    pub(crate) fn live_context(&self) -> LiveContext {
        LiveContext {
            options: self.live,
            view: self.handles.control.subscribe(),
            streams: Arc::new(self.handles.status.clone()),
            jpeg: self.jpeg.clone(),
            metrics: self.metrics.live.clone(),
            clock: Arc::clone(&self.clock),
            shutdown: self.shutdown.subscribe(),
            members: Arc::clone(&self.live_members),
        }
    }

    /// A receiver that changes when the server shuts down.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Browsers currently connected to the live push.
    pub fn live_clients(&self) -> u64 {
        self.metrics.live.live_clients.get().max(0) as u64
    }

    /// Streams whose shared JPEG decoder is running (it runs only while someone watches).
    pub fn jpeg_decoders(&self) -> Vec<String> {
        self.jpeg.running()
    }

    /// Seconds since the server started.
    pub(crate) fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// A running web server.
pub struct WebServer {
    /// Shared state (also reachable from tests).
    state: Arc<AppState>,
    /// The bound address.
    addr: SocketAddr,
    /// The axum server task.
    server: JoinHandle<()>,
    /// The HTTPS accept loop and its address, when HTTPS is on.
    https: Option<(JoinHandle<()>, SocketAddr)>,
    /// The task beating the `live` beacon for the live client loops.
    relay: Option<JoinHandle<()>>,
}

impl WebServer {
    /// Serves what `handles` reach on `listener` until [`WebServer::shutdown`].
    pub async fn start(
        handles: Handles,
        listener: TcpListener,
        options: WebOptions,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<WebServer> {
        Self::start_with_https(handles, listener, None, options, clock).await
    }

    /// Like [`WebServer::start`], and HTTPS on `https` too.
    pub async fn start_with_https(
        handles: Handles,
        listener: TcpListener,
        https: Option<HttpsSetup>,
        options: WebOptions,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<WebServer> {
        let addr = listener.local_addr()?;
        let https_addr = match &https {
            Some(h) => Some(h.listener.local_addr()?),
            None => None,
        };
        let cfg = handles.status.current().config.clone();
        let auth = Auth::new(cfg.web.admin_password_hash.clone(), cfg.web.tokens.clone());
        if cfg.web.admin_password_hash.is_none()
            && let Some(h) = options.one_time_password_hash
        {
            auth.set_one_time_hash(h);
        }
        let (shutdown, _) = watch::channel(false);
        let live_members = BeaconTable::new(LIVE_CLIENT_SLOTS);
        let relay = match handles
            .beacons
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
            handles,
            auth,
            jpeg: JpegHub::new(JpegSettings {
                quality: cfg.web.jpeg_quality,
                downscale: cfg.web.jpeg_downscale,
            }),
            names: origin::BoxNames::of_this_machine(&cfg.web.listen),
            https: https
                .as_ref()
                .zip(https_addr)
                .map(|(h, a)| (Arc::clone(&h.tls), a.port())),
            metrics: Arc::new(Metrics::new()),
            clock,
            live: options.live,
            started: Instant::now(),
            live_members,
            shutdown,
        });
        let app = router(Arc::clone(&state));
        let server = tokio::spawn(serve::serve(
            listener,
            app.clone(),
            options.limits,
            None,
            state.shutdown_signal(),
            SHUTDOWN_GRACE,
        ));
        tracing::info!(%addr, "web server listening");
        let https = match (https, https_addr) {
            (Some(h), Some(a)) => {
                let config = h.tls.server_config().map_err(std::io::Error::other)?;
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let task = tokio::spawn(serve::serve(
                    h.listener,
                    app,
                    options.limits,
                    Some(acceptor),
                    state.shutdown_signal(),
                    SHUTDOWN_GRACE,
                ));
                let fingerprint = h.tls.current().fingerprint_sha256.clone();
                tracing::info!(addr = %a, %fingerprint, "HTTPS listening (certificate SHA-256)");
                Some((task, a))
            }
            _ => None,
        };
        Ok(WebServer {
            state,
            addr,
            server,
            https,
            relay,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTPS address, when HTTPS is on.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().map(|(_, a)| *a)
    }

    /// The SHA-256 fingerprint of the certificate served, when HTTPS is on.
    pub fn https_fingerprint(&self) -> Option<String> {
        let (tls, _) = self.state.https.as_ref()?;
        Some(tls.current().fingerprint_sha256.clone())
    }

    /// Shared state.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops the server, live clients first. The daemon keeps running until its owner stops it.
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
        if let Some((mut task, _)) = self.https
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    api::routes()
        .merge(assets::routes())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            origin::guard,
        ))
        .layer(axum::middleware::from_fn(policy::api_rules))
        .layer(axum::middleware::from_fn(error::json_errors))
        // Every body the API takes is small JSON; bigger ones get 413 before they are read.
        .layer(axum::extract::DefaultBodyLimit::max(error::MAX_JSON_BODY))
        .with_state(state)
}

/// A header map of `pairs`, for the unit tests of the request checks.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(axum::http::HeaderName, &str)]) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(k.clone(), axum::http::HeaderValue::from_str(v).unwrap());
    }
    h
}
