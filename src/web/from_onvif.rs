//! `POST /api/onvif/profiles`: *From ONVIF* in the Cameras tab. The web asks the camera
//! itself through [`crate::onvif`] (no daemon involved): device information, media profiles,
//! their RTSP addresses and the proposed main and sub stream URLs.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

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

/// Admin only: the camera's URLs carry its password.
pub(super) async fn profiles(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(req): JsonBody<ProbeRequest>,
) -> Result<Json<DeviceReport>, ApiError> {
    caller.require(Role::Admin)?;
    match probe_device(&req.address, &req.user, &req.password, Arc::clone(&st.clock)).await {
        Ok(report) => Ok(Json(report)),
        Err(e @ OnvifError::BadAddress(_)) | Err(e @ OnvifError::Https) => {
            Err(ApiError::field("address", e.to_string()))
        }
        Err(e @ OnvifError::Unauthorized) => Err(ApiError::field("password", e.to_string())),
        Err(e) => {
            tracing::info!(camera = %req.address, error = %e, "From ONVIF failed");
            Err(ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))
        }
    }
}
