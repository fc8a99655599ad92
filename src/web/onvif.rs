//! `/api/onvif/discover`: the Cameras tab's *Discover* button (a WS-Discovery probe on the
//! box's LAN, [`crate::onvif::discovery`]). Admin only: it sends traffic onto the site's
//! network and its answer lists the site's cameras.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use super::auth::Caller;
use super::error::{ApiError, JsonBody};
use crate::config::Role;
use crate::onvif::discovery::{self, ProbeOptions};

/// Shortest listening time a caller may ask for, in milliseconds.
const MIN_WAIT_MS: u64 = 200;
/// Longest listening time a caller may ask for, in milliseconds (the request waits for it).
const MAX_WAIT_MS: u64 = 10_000;

/// One probe at a time: a second click while one listens gets 409, not a second socket.
static RUNNING: Semaphore = Semaphore::const_new(1);

/// Body of `POST /api/onvif/discover`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DiscoverBody {
    /// How long to listen for answers (default 3000 ms, 200 to 10 000).
    wait_ms: Option<u64>,
}

/// `POST /api/onvif/discover`: probes for ONVIF cameras and lists those that answered.
pub(super) async fn discover(
    caller: Caller,
    JsonBody(body): JsonBody<DiscoverBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Admin)?;
    let default_ms = discovery::DEFAULT_WAIT.as_millis() as u64;
    let wait_ms = body.wait_ms.unwrap_or(default_ms);
    if !(MIN_WAIT_MS..=MAX_WAIT_MS).contains(&wait_ms) {
        return Err(ApiError::field(
            "wait_ms",
            format!("wait_ms must be between {MIN_WAIT_MS} and {MAX_WAIT_MS} (milliseconds)"),
        ));
    }
    let Ok(_one) = RUNNING.try_acquire() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a discovery is already running; wait for its answer",
        ));
    };
    let options = ProbeOptions {
        wait: Duration::from_millis(wait_ms),
        ..ProbeOptions::default()
    };
    let devices = discovery::probe(&options)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    tracing::info!(caller = %caller.name, devices = devices.len(), "ONVIF discovery");
    Ok(Json(json!({ "wait_ms": wait_ms, "devices": devices })))
}
