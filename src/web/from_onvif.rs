//! `POST /api/onvif/profiles`: *From ONVIF* in the Cameras tab. The web asks the camera
//! itself through [`crate::onvif`] (no daemon involved): device information, media profiles,
//! their RTSP addresses and the proposed main and sub stream URLs.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, JsonBody};
use crate::config::Role;
use crate::onvif::{DeviceReport, OnvifError, probe_device};

/// The camera to read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProbeRequest {
    /// `192.168.1.20`, `192.168.1.20:8080` or `http://…/onvif/device_service`.
    address: String,
    /// ONVIF user (may be empty for a camera without authentication).
    #[serde(default)]
    user: String,
    /// ONVIF password; never logged.
    #[serde(default)]
    password: String,
}

/// Admin only: the camera's URLs carry its password. A camera that refuses or does not
/// answer is an expected result, not an HTTP error: `200 {"ok": false, "error", "field"}`
/// like *Test connection*; `200 {"ok": true, ...}` with the [`DeviceReport`] otherwise.
pub(super) async fn profiles(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(req): JsonBody<ProbeRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Admin)?;
    let result = probe_device(
        &req.address,
        &req.user,
        &req.password,
        Arc::clone(&st.clock),
    )
    .await;
    Ok(Json(answer(result, &req.address)))
}

/// The JSON answer for a probe result.
fn answer(result: Result<DeviceReport, OnvifError>, address: &str) -> serde_json::Value {
    match result {
        Ok(report) => {
            let mut v = serde_json::to_value(report).unwrap_or_default();
            v["ok"] = true.into();
            v
        }
        Err(e) => {
            let field = match e {
                OnvifError::BadAddress(_) => Some("address"),
                OnvifError::Unauthorized => Some("password"),
                _ => None,
            };
            tracing::info!(camera = %address, error = %e, "From ONVIF failed");
            json!({"ok": false, "error": e.to_string(), "field": field})
        }
    }
}
