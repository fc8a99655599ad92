//! edgecam: camera ingest, active-stream selection and low-latency live view for a small edge box.
//!
//! Data flows through the modules in this order:
//! [`ingest`] (sources and their supervisors) → [`ring`] (one preallocated frame ring per
//! stream) → [`select`] (which stream is active, run by the [`control`] task) → [`output`]
//! (the live push, JPEG, MJPEG), served by [`web`] (the page and its API). The [`daemon`]
//! starts and owns all of it and lends the web server narrow [`handles`].
//! [`config`], [`state`] and [`clock`] serve all of them.
//!
//! # Module order
//!
//! Dependencies run one way. A module uses (a `crate::x` path in code, `use` or not) only
//! modules before it in this list; `tests/module_deps.rs` checks every file under `src/`
//! against it (doc links may point anywhere):
//!
//! Module order: `clock` → `persist` → `backoff` → `secret` → `http1` → `frame` → `config` → `state` →
//! `codec` → `ring` → `select` → `health` → `ingest` → `gpio` → `onvif` → `control` → `output` →
//! `hooks` → `handles` → `web` → `mqtt` → `daemon`
//!
//! Why this order:
//! - `clock`, `persist` (atomic file writes), `backoff` (retry delays), `secret` (password
//!   hashes, random tokens) and `http1` (one outgoing HTTP/1 request) need nothing of the
//!   crate.
//! - `frame` is the frame type everything moves; `config` the schema and its validation;
//!   `state` the persisted selection. `codec` (H.264, pixels, JPEG) and `ring` (the
//!   preallocated frame store) know frames and sizes, nothing that runs.
//! - `select` is the pure selection state machine and its published view; `health` (beacons,
//!   watchdog, `sd_notify`) renders that view in the `STATUS=` line.
//! - `ingest` (sources, supervisors, the connection probe) and `gpio` (alarm inputs, relay
//!   outputs) beat `health` beacons; `control` is the task that owns the selector and hears
//!   from both. `onvif` (camera events as alarm inputs, the cameras' profiles, finding cameras
//!   on the LAN) reports through `gpio`'s input status and signal types.
//! - `output` (live push, JPEG, MJPEG) reads rings and the view; `hooks` posts the control
//!   task's alarm and switch events to webhooks; `handles` bundles what the
//!   daemon lends the web (control, status, config changes, beacons, watchdog) without naming
//!   either; `web` serves those handles and never names the daemon.
//! - `mqtt` takes the same handles to the site's broker (state, discovery, commands, inputs).
//! - `daemon` is the top: it starts everything, owns the streams and applies config changes
//!   in its own loop, and starts the web server.
#![deny(missing_docs)]

pub mod backoff;
pub mod clock;
pub mod codec;
pub mod config;
pub mod control;
pub mod daemon;
pub mod frame;
pub mod gpio;
pub mod handles;
pub mod health;
pub mod hooks;
pub mod http1;
pub mod ingest;
pub mod mqtt;
pub mod onvif;
pub mod output;
pub mod persist;
pub mod ring;
pub mod secret;
pub mod select;
pub mod state;
pub mod web;
