//! edgecam: camera ingest, active-stream selection and low-latency live view for a small edge box.
//!
//! Data flows through the modules in this order:
//! [`ingest`] (sources and their supervisors) → [`ring`] (one preallocated frame ring per
//! stream) → [`select`] (which stream is active) → [`output`] (the live push, JPEG, MJPEG), served by
//! [`web`] (the page and its API).
//! [`config`], [`state`] and [`clock`] serve all of them.
#![deny(missing_docs)]

pub mod backoff;
pub mod clock;
pub mod codec;
pub mod config;
pub mod control;
pub mod daemon;
pub mod frame;
pub mod gpio;
pub mod health;
pub mod ingest;
pub mod output;
pub mod persist;
pub mod ring;
pub mod secret;
pub mod select;
pub mod state;
pub mod web;
