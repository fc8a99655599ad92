//! Login, logout, first-use setup and password changes (`/api/session`, `/api/login`,
//! `/api/logout`, `/api/setup`, `/api/password`). A new password is written as an Argon2 hash
//! into the live config, atomically, like any other config change.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api::apply_config;
use super::auth::{self, Caller, role_name};
use super::error::{ApiError, JsonBody};
use crate::config::Role;
use crate::secret::{PasswordError, hash_password, verify_password};

/// Shorthand for handler results.
type ApiResult<T> = Result<T, ApiError>;
/// Shared state as handlers receive it.
type St = State<Arc<AppState>>;

/// `GET /api/session`: who the caller is.
pub(crate) async fn session(caller: Caller) -> Json<serde_json::Value> {
    Json(json!({
        "role": role_name(caller.role),
        "name": caller.name,
        "must_change_password": caller.must_change_password,
    }))
}

/// A body with a password.
#[derive(Debug, Deserialize)]
pub(crate) struct PasswordBody {
    /// The password.
    password: String,
}

/// `POST /api/login`: a session cookie for the admin password; rate-limited per client.
pub(crate) async fn login(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(body): JsonBody<PasswordBody>,
) -> ApiResult<Response> {
    let (id, must_change) = st.auth.login(peer.ip(), body.password).await?;
    Ok(with_cookie(
        Json(json!({"ok": true, "must_change_password": must_change})),
        &auth::session_cookie(&id),
    ))
}

/// `POST /api/logout`.
pub(crate) async fn logout(State(st): St, headers: HeaderMap) -> Response {
    st.auth.logout(&headers);
    with_cookie(Json(json!({"ok": true})), &auth::clear_cookie())
}

fn with_cookie(body: impl IntoResponse, cookie: &str) -> Response {
    let mut resp = body.into_response();
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /api/setup`: sets the admin password on first use (only while none exists).
pub(crate) async fn setup(
    State(st): St,
    JsonBody(body): JsonBody<PasswordBody>,
) -> ApiResult<Response> {
    if !st.auth.claim_setup() {
        return Err(ApiError::forbidden("an admin password is already set"));
    }
    let stored = match hash_blocking(&st, body.password).await {
        Ok(hash) => store_password(&st, hash, None).await,
        Err(e) => Err(e),
    };
    if let Err(e) = stored {
        st.auth.release_setup();
        return Err(e);
    }
    let id = st.auth.open_session(Role::Admin, false)?;
    tracing::info!("admin password set on first use");
    Ok(with_cookie(
        Json(json!({"ok": true})),
        &auth::session_cookie(&id),
    ))
}

/// Body of `POST /api/password`.
#[derive(Debug, Deserialize)]
pub(crate) struct ChangePassword {
    /// The current password; not needed right after a one-time-password login.
    #[serde(default)]
    current: Option<String>,
    /// The new password.
    new: String,
}

/// `POST /api/password`: changes the admin password (persisted in the live config).
pub(crate) async fn change_password(
    State(st): St,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChangePassword>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(Role::Admin)?;
    if !caller.must_change_password {
        let current = body
            .current
            .ok_or_else(|| ApiError::field("current", "the current password is required"))?;
        let old = st.auth.admin_hash().unwrap_or_default();
        let permit = st.auth.hash_permit()?;
        let ok = tokio::task::spawn_blocking(move || verify_password(&current, &old))
            .await
            .unwrap_or(false);
        drop(permit);
        if !ok {
            return Err(ApiError::field("current", "wrong password"));
        }
    }
    let hash = hash_blocking(&st, body.new).await?;
    store_password(&st, hash, auth::cookie(&headers, auth::SESSION_COOKIE)).await?;
    tracing::info!("admin password changed");
    Ok(Json(json!({"ok": true})))
}

/// Hashes a new password on a blocking thread, within the server's hash permits (503 when
/// they are all taken).
async fn hash_blocking(st: &AppState, password: String) -> ApiResult<String> {
    let permit = st.auth.hash_permit()?;
    let hashed = tokio::task::spawn_blocking(move || hash_password(&password)).await;
    drop(permit);
    hashed
        .map_err(|e| ApiError::internal("password hashing failed", &e))?
        .map_err(|e| match e {
            PasswordError::TooShort => ApiError::field("password", e.to_string()),
            other => ApiError::internal("password hashing failed", &other),
        })
}

/// Writes the hash into the live config (atomically) and applies it; every session but
/// `keep_session` is closed.
async fn store_password(st: &AppState, hash: String, keep_session: Option<&str>) -> ApiResult<()> {
    let mut cfg = st.status().config.clone();
    cfg.web.admin_password_hash = Some(hash);
    apply_config(st, cfg, keep_session).await
}
