//! ONVIF cameras: finding them on the box's LAN ([`discovery`], WS-Discovery) for the Cameras
//! tab's *Discover* button.
//!
//! This module talks to cameras only when the installer asks (an admin API call); it knows
//! nothing of streams, rings or the selector, and the web server calls it directly.

pub mod discovery;
