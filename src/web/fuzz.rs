//! Entry points for the fuzz targets (`fuzz/`) and `tests/fuzz_inputs.rs`: each parses a
//! request body exactly as its handler does, up to the point where the handler would act on
//! it, without a server, a caller or a daemon. Not an API; hidden from the docs.

use std::time::Duration;

use super::api;
use super::error::{ApiError, parse_json};
use super::session::{ChangePassword, PasswordBody};
use crate::config::{Config, StreamConfig};

/// `POST /api/active`: the stream asked for (`None` = back to the default).
pub fn select_body(body: &[u8]) -> Result<Option<String>, ApiError> {
    parse_json::<api::SelectBody>(body).map(|b| b.stream)
}

/// `POST /api/alarms/{id}/trigger`: the hold asked for, checked to lie in 0..=86400 s.
pub fn trigger_body(body: &[u8]) -> Result<Option<Duration>, ApiError> {
    api::trigger_hold(body)
}

/// `POST /api/login` and `POST /api/setup`: the body parses as a password body.
pub fn password_body(body: &[u8]) -> Result<(), ApiError> {
    parse_json::<PasswordBody>(body).map(drop)
}

/// `POST /api/password`: the body parses as a password change.
pub fn change_password_body(body: &[u8]) -> Result<(), ApiError> {
    parse_json::<ChangePassword>(body).map(drop)
}

/// `POST /api/streams/test`: the stream config, validated as the probe does before it runs
/// anything. `Ok(Err(..))` is a body that parsed but does not validate (the probe's report).
pub fn test_stream_body(
    body: &[u8],
) -> Result<Result<StreamConfig, Vec<crate::config::FieldError>>, ApiError> {
    let cfg: StreamConfig = parse_json(body)?;
    Ok(crate::ingest::probe::check(&cfg).map(|()| cfg))
}

/// `PUT /api/config`: a whole config (every required table present), validated as the daemon
/// does before it saves and applies it (the 400 listing every problem).
pub fn put_config_body(body: &[u8]) -> Result<Config, ApiError> {
    api::check_complete(&parse_json(body)?)?;
    let cfg: Config = parse_json(body)?;
    crate::config::validate(&cfg).map_err(ApiError::invalid)?;
    Ok(cfg)
}
