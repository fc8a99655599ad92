//! ONVIF: the cameras' own SOAP interface. [`soap`] is a small client (SOAP 1.2 over HTTP/1
//! with a WS-Security `UsernameToken` digest, the clock corrected to the camera's);
//! [`device`] reads device information, media profiles and stream URIs (the Cameras tab's
//! *From ONVIF*); [`events`] subscribes to a camera's events through a PullPoint and turns
//! them into alarm input levels (`[alarms.onvif]`); [`discovery`] finds cameras on the box's
//! LAN (WS-Discovery) for the Cameras tab's *Discover* button.
//!
//! Passwords are never logged, and never part of an error message.

pub mod device;
pub mod discovery;
pub mod events;
pub mod soap;
mod tls;
pub mod topics;
mod xml;

pub use device::{DeviceReport, MediaProfile, probe_device};
pub use events::{OnvifInput, run_onvif_input};
pub use soap::{Client, Endpoint};

/// Why an ONVIF exchange failed, in words for the installer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnvifError {
    /// The address is not something a camera can be reached at.
    #[error(
        "`{0}` is not a camera address; write a host name or IP address such as 192.168.1.20, \
         optionally with a port (192.168.1.20:8080) or as a full http:// or https:// URL"
    )]
    BadAddress(String),
    /// Nothing answered HTTP at the address (refused, unreachable, no answer in time).
    #[error(
        "the camera at {host} does not answer ONVIF on port {port} ({why}); check the address, \
         the port and that ONVIF is enabled in the camera's settings"
    )]
    Unreachable {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
        /// What the network said.
        why: String,
    },
    /// The camera answered that the credentials are wrong.
    #[error(
        "the camera refused the user name or password; check them (many cameras keep ONVIF \
         users apart from the web login: create one in the camera's ONVIF settings)"
    )]
    Unauthorized,
    /// The camera has no events service (no motion or other events over ONVIF).
    #[error("the camera has no events service; it cannot send its motion events over ONVIF")]
    NoEvents,
    /// The camera has no media service (no profiles, no stream addresses).
    #[error("the camera has no media service; enter its RTSP address by hand")]
    NoMedia,
    /// The camera answered with a SOAP fault.
    #[error("the camera answered {action} with an error: {reason}")]
    Fault {
        /// The request that failed, such as `PullMessages`.
        action: &'static str,
        /// The fault's reason text.
        reason: String,
    },
    /// The answer is not the ONVIF answer expected.
    #[error("the camera's answer to {action} is not usable ONVIF: {why}")]
    BadAnswer {
        /// The request that failed.
        action: &'static str,
        /// What is wrong with the answer.
        why: String,
    },
    /// TLS to an `https://` address could not be set up or failed.
    #[error("TLS with the camera at {host} failed ({why}); try its http:// ONVIF address")]
    Tls {
        /// Host name or address.
        host: String,
        /// What TLS said.
        why: String,
    },
}
