//! The JSON API handlers (see the table in DESIGN.md); the login flow is in [`super::session`].
//!
//! Roles: every authenticated caller may read and watch; `operator` may select streams and
//! raise, clear and acknowledge alarms; `admin` may change the config and the password.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::auth::{self, Caller, MediaCaller};
use super::error::{ApiError, JsonBody, parse_json};
use super::metrics::{Format, Sample, StreamSample};
use super::session;
use crate::config::{Config, Role, StreamConfig, StreamKind};
use crate::control::{Control, ControlError};
use crate::gpio::InputState;
use crate::handles::{ApplyError, RunningStream, SubStream};
use crate::ingest::stats::StreamState;
use crate::output::jpeg::{Depth, JpegSettings};
use crate::output::mjpeg::{self, StreamFeed};
use crate::output::{Pick, placeholder};
use crate::select::{EventsReport, SelectError};

/// Shorthand for handler results.
type ApiResult<T> = Result<T, ApiError>;
/// Shared state as handlers receive it.
type St = State<Arc<AppState>>;

/// Every `/api` route and `/metrics`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/session", get(session::session))
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/setup", post(session::setup))
        .route("/api/password", post(session::change_password))
        .route("/api/status", get(status))
        .route("/api/active", post(select_active))
        .route("/api/config", get(get_config).put(put_config))
        .route("/api/alarms/{id}/trigger", post(alarm_trigger))
        .route("/api/alarms/{id}/clear", post(alarm_clear))
        .route("/api/alarms/{id}/ack", post(alarm_ack))
        .route("/api/events", get(events))
        .route("/api/clips", get(super::clips::list))
        .route(
            "/api/clips/{id}",
            get(super::clips::file).delete(super::clips::delete),
        )
        .route("/api/tls", post(install_certificate))
        .route("/api/live", get(live))
        .route("/api/streams/test", post(test_stream))
        .route("/api/onvif/discover", post(super::onvif::discover))
        .route("/api/onvif/profiles", post(super::from_onvif::profiles))
        .route("/api/streams/{id}/snapshot.jpg", get(snapshot))
        .route("/api/streams/{id}/mjpeg", get(mjpeg))
        .route("/metrics", get(metrics))
        .route("/api/{*rest}", axum::routing::any(api_not_found))
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

/// `GET /api/health`: the only endpoint open without authentication.
///
/// `logged_in` says whether the request's cookie or token is valid, so the page can decide
/// between the login form and the app without an expected 401 in the browser's console.
async fn health(State(st): St, headers: HeaderMap) -> Json<serde_json::Value> {
    // `hang:web` (feature `fault-injection`) makes the server stop answering the self-probe.
    crate::health::fault::checkpoint("web", "").await;
    Json(json!({
        "ok": true,
        "version": env!("CARGO_PKG_VERSION"),
        "setup_required": st.auth.needs_setup(),
        "logged_in": st.auth.authenticate(&headers).is_ok(),
    }))
}

/// Has the daemon validate, persist and apply a config; keeps auth and JPEG settings in step.
pub(crate) async fn apply_config(
    st: &AppState,
    cfg: Config,
    keep_session: Option<&str>,
) -> ApiResult<()> {
    st.handles
        .config
        .apply(cfg.clone())
        .await
        .map_err(apply_error)?;
    st.auth.update_from_config(
        cfg.web.admin_password_hash.as_deref(),
        &cfg.web.tokens,
        keep_session,
    );
    st.jpeg.set_settings(JpegSettings {
        quality: cfg.web.jpeg_quality,
        downscale: cfg.web.jpeg_downscale,
    });
    Ok(())
}

/// The API's answer to a config change the daemon refused.
fn apply_error(e: ApplyError) -> ApiError {
    match e {
        ApplyError::Invalid(errors) => ApiError::invalid(errors),
        ApplyError::Save(e) => ApiError::internal("cannot save the config", &e),
        ApplyError::SaveTask(e) => ApiError::internal("cannot save the config", &e),
        ApplyError::Apply(e) => ApiError::internal("cannot apply the config", &e),
        ApplyError::Closed => ApiError::shutting_down(),
    }
}

/// One stream in `/api/status`.
#[derive(Debug, Serialize)]
struct StreamRow {
    /// Id.
    id: String,
    /// Display name.
    name: String,
    /// Source kind.
    kind: StreamKind,
    /// Supervisor state, or `disabled`.
    state: String,
    /// Frames per second.
    fps: f32,
    /// Received bitrate, kbit/s.
    bitrate_kbps: u32,
    /// Frames received.
    frames: u64,
    /// Frames refused by the ring.
    dropped: u64,
    /// Reconnects.
    reconnects: u64,
    /// Why the last attempt ended; kept as history once the stream is live again.
    last_error: Option<String>,
    /// When `last_error` was set, wall µs (like the events' `at_us`).
    last_error_at_us: Option<i64>,
    /// RTP packets lost (sequence gaps) since the stream started.
    lost_packets: u64,
    /// Frames that came right after lost packets: data of theirs, or of frames before
    /// them, is missing.
    incomplete_frames: u64,
    /// `tcp` / `udp`: the RTSP transport of the current or last session.
    transport: Option<&'static str>,
    /// While `connecting`: `answer`, `packets` or `keyframe`, what the attempt waits for.
    waiting_for: Option<&'static str>,
    /// The camera's keyframe interval measured on its stream, ms.
    keyframe_interval_ms: Option<u64>,
    /// While `failed`: when the next attempt is due, wall µs.
    retry_at_us: Option<i64>,
    /// `h264` or `jpeg`, of the newest stored frame: an RTSP camera may send either.
    codec: Option<&'static str>,
    /// Frames the ring recycled.
    ring_overwritten: u64,
    /// The ring's payload arena, bytes: sized from the camera's measured bitrate at the
    /// stream's start so that it holds `clips.pre_s` (0 when the stream does not run).
    ring_bytes: usize,
    /// The ring's frame slots.
    ring_slots: usize,
    /// About how many seconds of this camera the ring holds at its measured rates; `null`
    /// before anything was measured.
    ring_holds_s: Option<f64>,
    /// Frames readers lost by lagging.
    ring_lagged: u64,
    /// Frames the snapshot/JPEG decoder could not decode (lost packets, an unsupported
    /// profile): why a live stream shows an old picture or none.
    decode_errors: u64,
    /// The camera's sub stream (`sub_url`), which snapshots and MJPEG decode while it is
    /// live; `null` when the camera has none or the stream does not run.
    sub: Option<SubRow>,
}

/// A camera's sub stream in `GET /api/status`.
#[derive(Debug, Serialize)]
struct SubRow {
    /// `connecting`, `live`, `backoff`, `failed` (as the main stream's).
    state: &'static str,
    /// Frames per second, measured.
    fps: f32,
    /// Bitrate, measured, kbit/s.
    bitrate_kbps: u32,
    /// Frames received.
    frames: u64,
    /// Reconnects.
    reconnects: u64,
    /// Why its last attempt ended (kept as history once live again).
    last_error: Option<String>,
    /// When `last_error` was set, wall µs.
    last_error_at_us: Option<i64>,
    /// Frames of the sub stream the snapshot/JPEG decoder could not decode.
    decode_errors: u64,
}

/// One GPIO alarm input in `GET /api/status`: a missing chip or a permission problem shows
/// here (the input is retried; the daemon keeps running).
#[derive(Debug, Serialize)]
struct InputRow {
    /// The alarm the input belongs to.
    alarm: String,
    /// `gpio`, `onvif` or `mqtt`: where the input comes from.
    kind: &'static str,
    /// `starting`, `ok` or `failed`.
    state: &'static str,
    /// Why it failed, for the operator.
    error: Option<String>,
}

impl InputRow {
    fn new(alarm: &str, kind: &'static str, state: InputState) -> Self {
        let (state, error) = match state {
            InputState::Starting => ("starting", None),
            InputState::Ok => ("ok", None),
            InputState::Failed(why) => ("failed", Some(why)),
        };
        InputRow {
            alarm: alarm.to_string(),
            kind,
            state,
            error,
        }
    }
}

/// `GET /api/status`.
async fn status(State(st): St, _caller: Caller) -> ApiResult<Json<serde_json::Value>> {
    let status = st.status();
    let view = st.handles.control.view();
    let streams: Vec<StreamRow> = status
        .config
        .streams
        .iter()
        .map(|c| {
            let mut row = stream_row(c, status.stream(&c.id), st.jpeg.decode_errors(&c.id));
            row.ring_holds_s = status.stream(&c.id).and_then(|e| {
                let m = super::clips::measured(&status, e)?;
                let ms = crate::ring::sizing::holds_ms(e.ring.spec(), &m);
                (ms != u64::MAX).then(|| ms as f64 / 1000.0)
            });
            row.sub = status
                .stream(&c.id)
                .and_then(|e| e.sub.as_ref())
                .map(|sub| sub_row(sub, st.jpeg.decode_errors(&format!("{}/sub", c.id))));
            row
        })
        .collect();
    let watchdog = st
        .handles
        .watchdog
        .report(&st.handles.beacons, st.clock.mono_ns());
    let inputs: Vec<InputRow> = status
        .input_states()
        .map(|(alarm, kind, state)| InputRow::new(alarm, kind, state))
        .collect();
    Ok(Json(json!({
        "active": {"stream": view.stream, "reason": view.reason},
        "streams": streams,
        "alarms": view.alarms,
        "inputs": inputs,
        "webhooks": status.webhooks.iter().map(|w| w.status()).collect::<Vec<_>>(),
        "uptime_s": st.uptime_s(),
        // The box's wall clock, so the page says "3 min ago" however wrong the viewer's is.
        "now_us": st.clock.wall_us(),
        "version": env!("CARGO_PKG_VERSION"),
        "watchdog": watchdog,
        "live_clients": st.metrics.live.live_clients.get(),
        "https": https_status(&st),
        "clips": super::clips::status_json(&st),
    })))
}

/// The HTTPS port and certificate, for the page's offer to switch and for the installer to
/// compare fingerprints; `null` when HTTPS is off.
fn https_status(st: &AppState) -> serde_json::Value {
    match &st.https {
        Some((tls, port)) => {
            let cert = tls.current();
            json!({
                "port": port,
                "fingerprint_sha256": cert.fingerprint_sha256,
                "self_made": cert.self_made,
            })
        }
        None => serde_json::Value::Null,
    }
}

/// Body of `POST /api/tls`.
#[derive(Debug, Deserialize)]
struct CertificateBody {
    /// The certificate chain, PEM, the box's own certificate first.
    cert_pem: String,
    /// Its private key, PEM.
    key_pem: String,
}

/// `POST /api/tls`: the user's own certificate and key, checked, stored and served at once.
async fn install_certificate(
    State(st): St,
    caller: Caller,
    JsonBody(body): JsonBody<CertificateBody>,
) -> ApiResult<Json<serde_json::Value>> {
    use crate::web::tls::TlsError;
    caller.require(Role::Admin)?;
    let Some((tls, _)) = st.https.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "HTTPS is off (web.https = false): turn it on in the config and restart first",
        ));
    };
    let installed = tokio::task::spawn_blocking(move || tls.install(&body.cert_pem, &body.key_pem))
        .await
        .map_err(|e| ApiError::internal("certificate install failed", &e))?;
    match installed {
        Ok(cert) => {
            tracing::info!(by = %caller.name, fingerprint = %cert.fingerprint_sha256, "own HTTPS certificate installed");
            Ok(Json(
                json!({"ok": true, "fingerprint_sha256": cert.fingerprint_sha256}),
            ))
        }
        Err(e @ (TlsError::NoCertificate | TlsError::Unusable(_))) => {
            Err(ApiError::field("cert_pem", e.to_string()))
        }
        Err(e @ (TlsError::NoKey | TlsError::KeyMismatch)) => {
            Err(ApiError::field("key_pem", e.to_string()))
        }
        Err(e) => Err(ApiError::internal("cannot store the certificate", &e)),
    }
}

fn stream_row(c: &StreamConfig, entry: Option<&RunningStream>, decode_errors: u64) -> StreamRow {
    let mut row = StreamRow {
        id: c.id.clone(),
        name: c.display_name().to_string(),
        kind: c.kind,
        state: "disabled".to_string(),
        fps: 0.0,
        bitrate_kbps: 0,
        frames: 0,
        dropped: 0,
        reconnects: 0,
        last_error: None,
        last_error_at_us: None,
        lost_packets: 0,
        incomplete_frames: 0,
        transport: None,
        waiting_for: None,
        keyframe_interval_ms: None,
        retry_at_us: None,
        codec: None,
        ring_overwritten: 0,
        ring_bytes: 0,
        ring_slots: 0,
        ring_holds_s: None,
        ring_lagged: 0,
        decode_errors,
        sub: None,
    };
    if let Some(e) = entry {
        let s = e.stats.snapshot();
        let ring = e.ring.stats();
        row.state = s.state.as_str().to_string();
        row.fps = s.fps;
        row.bitrate_kbps = s.bitrate_kbps;
        row.frames = s.frames;
        row.dropped = s.dropped;
        row.reconnects = s.reconnects;
        row.last_error = s.last_error;
        row.last_error_at_us = s.last_error_at_us;
        row.lost_packets = s.lost_packets;
        row.incomplete_frames = s.incomplete_frames;
        row.transport = s.transport;
        row.waiting_for = s.waiting_for;
        row.keyframe_interval_ms = s.keyframe_interval_ms;
        row.retry_at_us = s.retry_at_us;
        row.codec = s.codec;
        row.ring_overwritten = ring.overwritten;
        row.ring_bytes = ring.arena_bytes;
        row.ring_slots = ring.slots;
        row.ring_lagged = ring.lagged_frames;
    }
    row
}

fn sub_row(sub: &SubStream, decode_errors: u64) -> SubRow {
    let s = sub.stats.snapshot();
    SubRow {
        state: s.state.as_str(),
        fps: s.fps,
        bitrate_kbps: s.bitrate_kbps,
        frames: s.frames,
        reconnects: s.reconnects,
        last_error: s.last_error,
        last_error_at_us: s.last_error_at_us,
        decode_errors,
    }
}

/// Body of `POST /api/active`.
#[derive(Debug, Deserialize)]
pub(crate) struct SelectBody {
    /// The stream, or `null` to go back to the default.
    pub(crate) stream: Option<String>,
}

/// `POST /api/active`: the user's selection.
async fn select_active(
    State(st): St,
    caller: Caller,
    JsonBody(body): JsonBody<SelectBody>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(Role::Operator)?;
    let control = &st.handles.control;
    control
        .select(body.stream)
        .await
        .map_err(|e| control_error(e, "stream"))?;
    let view = control.view();
    Ok(Json(
        json!({"ok": true, "active": {"stream": view.stream, "reason": view.reason}}),
    ))
}

fn control_error(e: ControlError, field: &str) -> ApiError {
    match e {
        ControlError::Rejected(SelectError::UnknownStream(s)) => {
            ApiError::field(field, format!("unknown stream `{s}`"))
        }
        ControlError::Rejected(SelectError::UnknownAlarm(a)) => {
            ApiError::not_found(format!("unknown alarm `{a}`"))
        }
        ControlError::Rejected(e @ SelectError::NotAcknowledgeable(_)) => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        ControlError::Closed => ApiError::shutting_down(),
    }
}

/// `GET /api/config`: the config in force; the password hash is never sent.
async fn get_config(State(st): St, caller: Caller) -> ApiResult<Json<Config>> {
    caller.require(Role::Admin)?;
    let mut cfg = st.status().config.clone();
    cfg.web.admin_password_hash = None;
    Ok(Json(cfg))
}

/// `PUT /api/config`: validated, persisted atomically, applied live. A config without
/// `web.admin_password_hash` keeps the current password.
async fn put_config(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(Role::Admin)?;
    check_complete(&parse_json(&body)?)?;
    let mut cfg: Config = parse_json(&body)?;
    let before = st.status();
    check_start_only(&before.config, &cfg)?;
    if cfg.web.admin_password_hash.is_none() {
        cfg.web.admin_password_hash = before.config.web.admin_password_hash.clone();
    }
    let restart = before.config.web.listen != cfg.web.listen;
    drop(before);
    apply_config(&st, cfg, auth::cookie(&headers, auth::SESSION_COOKIE)).await?;
    tracing::info!(by = %caller.name, "config changed from the API");
    Ok(Json(json!({
        "ok": true,
        "restart_required": restart,
        "note": if restart { "web.listen takes effect after a restart" } else { "" },
    })))
}

/// Keys a `PUT /api/config` body must have, by table: a PUT replaces the whole config, and a
/// missing table would silently become its defaults (every camera gone, `listen` and
/// `state_dir` reset, the admin's tokens gone).
const REQUIRED_KEYS: [(&str, &[&str]); 3] = [
    ("", &["web", "ring", "paths", "streams", "select", "alarms"]),
    ("web", &["listen", "tokens"]),
    ("paths", &["state_dir"]),
];

/// 400 unless `body` is a JSON object with every table of a whole config.
pub(crate) fn check_complete(body: &serde_json::Value) -> ApiResult<()> {
    let Some(top) = body.as_object() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the config must be a JSON object: the whole config as GET /api/config returns it",
        ));
    };
    for (table, keys) in REQUIRED_KEYS {
        let obj = if table.is_empty() {
            Some(top)
        } else {
            top.get(table).and_then(|v| v.as_object())
        };
        let Some(obj) = obj else {
            return Err(ApiError::field(
                table,
                format!("`{table}` must be a table (a JSON object)"),
            ));
        };
        if let Some(missing) = keys.iter().find(|k| !obj.contains_key(**k)) {
            let path = if table.is_empty() {
                missing.to_string()
            } else {
                format!("{table}.{missing}")
            };
            return Err(ApiError::field(
                path.clone(),
                format!(
                    "`{path}` is missing: PUT /api/config takes the whole config \
                     (GET /api/config, change it, PUT all of it back)"
                ),
            ));
        }
    }
    Ok(())
}

/// 400 for a change the running daemon cannot make: the state directory is read at start,
/// and the admin password changes only through `POST /api/password` (a wrong hash here
/// would lock everyone out).
fn check_start_only(before: &Config, after: &Config) -> ApiResult<()> {
    if after.paths.state_dir != before.paths.state_dir {
        return Err(ApiError::field(
            "paths.state_dir",
            format!(
                "the state directory is read at start only: keep `{}` here, and change it in \
                 /etc/edgecam/config.toml, then restart edgecam",
                before.paths.state_dir.display()
            ),
        ));
    }
    if let Some(h) = &after.web.admin_password_hash
        && before.web.admin_password_hash.as_ref() != Some(h)
    {
        return Err(ApiError::field(
            "web.admin_password_hash",
            "change the admin password on the System tab (POST /api/password), not in the config",
        ));
    }
    Ok(())
}

/// Optional body of `POST /api/alarms/{id}/trigger`.
#[derive(Debug, Default, Deserialize)]
struct TriggerBody {
    /// Pulse length in seconds, overriding the alarm's own rule.
    #[serde(default)]
    hold_s: Option<f64>,
}

/// The hold of a `POST /api/alarms/{id}/trigger` body: none for an empty body or no `hold_s`.
pub(crate) fn trigger_hold(body: &[u8]) -> ApiResult<Option<Duration>> {
    let body: TriggerBody = if body.iter().all(u8::is_ascii_whitespace) {
        TriggerBody::default()
    } else {
        parse_json(body)?
    };
    match body.hold_s {
        Some(s) if !(0.0..=86_400.0).contains(&s) || !s.is_finite() => Err(ApiError::field(
            "hold_s",
            "must be between 0 and 86400 seconds",
        )),
        Some(s) => Ok(Some(Duration::from_secs_f64(s))),
        None => Ok(None),
    }
}

/// Runs one alarm command as an operator: `call` gets the control handle; a refusal becomes
/// the API's error (404 unknown alarm, 409 nothing to acknowledge on a transparent alarm).
async fn alarm_call<T, Fut>(
    st: &AppState,
    caller: &Caller,
    call: impl FnOnce(Control) -> Fut,
) -> ApiResult<T>
where
    Fut: Future<Output = Result<T, ControlError>>,
{
    caller.require(Role::Operator)?;
    call(st.handles.control.clone())
        .await
        .map_err(|e| control_error(e, "id"))
}

/// `POST /api/alarms/{id}/trigger`.
async fn alarm_trigger(
    State(st): St,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    // Roles first: a viewer learns nothing from how its body would have parsed.
    caller.require(Role::Operator)?;
    let hold = trigger_hold(&body)?;
    let alarm = id.clone();
    alarm_call(
        &st,
        &caller,
        |c| async move { c.trigger(&alarm, hold).await },
    )
    .await?;
    tracing::info!(alarm = %id, by = %caller.name, "alarm triggered from the API");
    Ok(Json(json!({"ok": true})))
}

/// `POST /api/alarms/{id}/clear`.
async fn alarm_clear(
    State(st): St,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    alarm_call(&st, &caller, |c| async move { c.clear(&id).await }).await?;
    Ok(Json(json!({"ok": true})))
}

/// `POST /api/alarms/{id}/ack`.
async fn alarm_ack(
    State(st): St,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let dropped = alarm_call(&st, &caller, |c| async move { c.ack(&id).await }).await?;
    Ok(Json(json!({"ok": true, "was_latched": dropped})))
}

/// `GET /api/events`: the control task's bounded history (selections, view changes with
/// their cause, alarm raises, clears, acknowledgements and hold expiries).
async fn events(State(st): St, _caller: Caller) -> ApiResult<Json<EventsReport>> {
    let report = st
        .handles
        .control
        .events()
        .await
        .map_err(|e| control_error(e, "id"))?;
    Ok(Json(report))
}

/// Query of `/api/live`.
#[derive(Debug, Default, Deserialize)]
struct LiveQuery {
    /// `jpeg` forces the JPEG path.
    #[serde(default)]
    mode: Option<String>,
}

/// `GET /api/live`: the WebSocket.
async fn live(
    State(st): St,
    _caller: Caller,
    Query(q): Query<LiveQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let jpeg = q.mode.as_deref() == Some("jpeg");
    let ctx = st.live_context();
    // A client only ever sends its short `hello`: a bigger (or never-ending fragmented)
    // message ends the connection instead of growing a buffer.
    let max = crate::output::live::MAX_CLIENT_MESSAGE;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| crate::output::live::serve(ctx, socket, jpeg))
}

/// Query of `snapshot.jpg`.
#[derive(Debug, Default, Deserialize)]
struct SnapshotQuery {
    /// `keyframe=1`: the latest keyframe's picture, one decode instead of a GOP (thumbnails).
    #[serde(default)]
    keyframe: Option<String>,
    /// `main`: decode the main stream even when the camera has a live sub stream; `sub` (the
    /// default): the sub stream while it is live, else the main stream.
    #[serde(default)]
    stream: Option<String>,
}

/// Query of `mjpeg`.
#[derive(Debug, Default, Deserialize)]
struct MjpegQuery {
    /// As `snapshot.jpg`'s `stream`.
    #[serde(default)]
    stream: Option<String>,
}

/// Which of a camera's streams `?stream=` asks pictures from.
fn pick_of(stream: Option<&str>) -> ApiResult<Pick> {
    match stream {
        None | Some("" | "sub") => Ok(Pick::Pictures),
        Some("main") => Ok(Pick::Main),
        Some(other) => Err(ApiError::field(
            "stream",
            format!("`stream={other}` is not known; use `stream=main` or `stream=sub`"),
        )),
    }
}

impl SnapshotQuery {
    /// How deep to decode: `keyframe` given and not `0` or `false` asks for the keyframe.
    fn depth(&self) -> Depth {
        match self.keyframe.as_deref() {
            Some("0" | "false") | None => Depth::Newest,
            Some(_) => Depth::Keyframe,
        }
    }
}

/// `GET /api/streams/{id}/snapshot.jpg`: the stream's newest picture (from the shared decoder
/// when one runs for the stream, else by decoding the current GOP once; with `?keyframe=1`
/// the latest keyframe's picture, one decode: what the page's thumbnails use). When none can be
/// decoded now (no keyframe yet, a decode error) it is the last good picture, however old;
/// `X-Picture-Age-Ms` says how old the picture is in every case. 503 saying why when the
/// stream never had a picture.
async fn snapshot(
    State(st): St,
    _caller: MediaCaller,
    Path(id): Path<String>,
    Query(q): Query<SnapshotQuery>,
) -> ApiResult<Response> {
    let pick = pick_of(q.stream.as_deref())?;
    let found = st
        .picture_stream(&id, pick)
        .ok_or_else(|| ApiError::not_found(format!("no running stream `{id}`")))?;
    let (key, stream) = (found.key, found.stream);
    no_pictures_check(&stream)?;
    let depth = q.depth();
    let settings = {
        let web = &st.status().config.web;
        JpegSettings {
            quality: web.jpeg_quality,
            downscale: web.jpeg_downscale,
        }
    };
    let pic = match st.jpeg.latest(&key, &stream.ring) {
        Some(pic) => pic,
        None => {
            let why = placeholder::no_video_reason(&stream)
                .or_else(|| st.jpeg.undecodable_reason(&key))
                .unwrap_or_else(|| "no picture decoded yet".to_string());
            let no_picture = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no picture from {}: {why}", stream.name),
            );
            let (hub, ring) = (st.jpeg.clone(), stream.ring);
            tokio::task::spawn_blocking(move || hub.snapshot_or_last(&key, &ring, settings, depth))
                .await
                .map_err(|e| ApiError::internal("snapshot failed", &e))?
                .ok_or(no_picture)?
        }
    };
    let age_ms = st
        .clock
        .mono_ns()
        .saturating_sub(pic.meta.info.recv_mono_ns)
        / 1_000_000;
    let mut resp = pic.data.clone().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PICTURE_AGE, HeaderValue::from(age_ms));
    Ok(resp)
}

/// 503 with the sentence of [`crate::output::LiveStream::no_pictures_reason`] for a stream the box cannot
/// make pictures of (H.265): `snapshot.jpg` and `/mjpeg` would never have one.
fn no_pictures_check(stream: &crate::output::LiveStream) -> ApiResult<()> {
    match stream.no_pictures_reason() {
        Some(why) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no picture from {}: {why}", stream.name),
        )),
        None => Ok(()),
    }
}

/// Response header of `snapshot.jpg`: milliseconds since ingest received the frame the
/// picture shows, so a client can tell a stale picture (the stream does not decode) from a
/// fresh one.
const PICTURE_AGE: HeaderName = HeaderName::from_static("x-picture-age-ms");

/// `GET /api/streams/{id}/mjpeg`: every new picture, or the "no video" placeholder while the
/// stream has none. Ends when the stream is removed or the caller's credential revoked.
async fn mjpeg(
    State(st): St,
    caller: MediaCaller,
    Path(id): Path<String>,
    Query(q): Query<MjpegQuery>,
) -> ApiResult<Response> {
    let pick = pick_of(q.stream.as_deref())?;
    let found = st
        .picture_stream(&id, pick)
        .ok_or_else(|| ApiError::not_found(format!("no running stream `{id}`")))?;
    no_pictures_check(&found.stream)?;
    tracing::debug!(stream = %id, by = %caller.caller.name, "MJPEG client");
    let auth = st.auth.clone();
    let credential = caller.credential;
    let parts = StreamFeed::parts(
        &id,
        pick,
        found,
        Arc::new(st.handles.status.clone()),
        st.jpeg.clone(),
        Box::new(move || auth.still_valid(&credential)),
    );
    Ok(mjpeg::response(parts))
}

/// `POST /api/streams/test`: runs a stream config for a few seconds and reports whether it
/// delivered a keyframe (the "Test connection" button). A running stream of that id that
/// the camera refused (`failed`) is then retried at once rather than at its long interval.
async fn test_stream(
    State(st): St,
    caller: Caller,
    JsonBody(cfg): JsonBody<StreamConfig>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(Role::Admin)?;
    let report = crate::ingest::probe::probe(&cfg).await;
    if let Some(running) = st.status().stream(&cfg.id) {
        running.stats.retry_now();
    }
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// One stream's `/metrics` series under the label `key`.
fn stream_sample(
    st: &AppState,
    key: String,
    stats: &crate::ingest::stats::StreamStats,
    ring: &crate::ring::FrameRing,
) -> StreamSample {
    let s = stats.snapshot();
    let ring = ring.stats();
    StreamSample {
        decode_errors: st.jpeg.decode_errors(&key),
        id: key,
        fps: f64::from(s.fps),
        frames: s.frames,
        bytes: s.bytes,
        reconnects: s.reconnects,
        ring_overwritten: ring.overwritten,
        ring_lagged: ring.lagged_frames,
        lost_packets: s.lost_packets,
        incomplete_frames: s.incomplete_frames,
        live: s.state == StreamState::Live,
    }
}

/// `GET /metrics`: OpenMetrics when the `Accept` header prefers it, else the Prometheus text
/// format 0.0.4 (what `promtool check metrics` and older scrapers read).
async fn metrics(State(st): St, _caller: MediaCaller, headers: HeaderMap) -> ApiResult<Response> {
    let status = st.status();
    let streams: Vec<StreamSample> = status
        .streams
        .iter()
        .flat_map(|e| {
            // A camera's sub stream is its own series, labelled `stream="<id>/sub"`.
            let sub = e.sub.as_ref().map(|sub| {
                let key = format!("{}/sub", e.config.id);
                stream_sample(&st, key, &sub.stats, &sub.ring)
            });
            std::iter::once(stream_sample(&st, e.config.id.clone(), &e.stats, &e.ring)).chain(sub)
        })
        .collect();
    let alarms = st
        .handles
        .control
        .view()
        .alarms
        .into_iter()
        .map(|a| (a.id, a.state != "idle", a.raised))
        .collect();
    let webhooks = st.status().webhooks.iter().map(|w| w.status()).collect();
    let format = Format::negotiate(
        headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let text = st
        .metrics
        .render_as(
            Sample {
                streams,
                alarms,
                webhooks,
            },
            format,
        )
        .map_err(|e| ApiError::internal("cannot render metrics", &e))?;
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(resp)
}
