//! `/api/clips`: the event clips (list, file with HTTP range requests, delete).
//!
//! Roles as elsewhere: every authenticated caller may list and play clips; only `admin` may
//! delete one.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::config::Role;
use crate::handles::{RunningStream, Status};
use crate::output::clips::ClipStore;
use crate::ring::sizing::{Measured, shortfall};

/// Largest page of `GET /api/clips`.
const MAX_LIMIT: usize = 500;
/// Bytes read from the file per chunk of a response body.
const CHUNK: usize = 256 * 1024;

/// Query of `GET /api/clips`.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    /// Only clips of this stream.
    stream: Option<String>,
    /// Only clips of this alarm.
    alarm: Option<String>,
    /// Clips skipped (newest first).
    #[serde(default)]
    offset: usize,
    /// Page size (default 50, at most 500).
    limit: Option<usize>,
}

/// The store, or 404 when clips are off.
fn store(st: &AppState) -> Result<Arc<ClipStore>, ApiError> {
    st.handles
        .clips
        .current()
        .ok_or_else(|| ApiError::not_found("event clips are off (set clips.enabled = true)"))
}

/// The `clips` object of `/api/status`: `null` when off.
pub(super) fn status_json(st: &AppState) -> serde_json::Value {
    match st.handles.clips.current() {
        None => json!({"state": "off", "error": null}),
        Some(s) => {
            let state = s.state();
            json!({
                "state": state.state,
                "error": state.error,
                "count": s.entries().len(),
                "bytes": s.total_bytes(),
                "dir": s.dir().display().to_string(),
                "pre_s": s.config().pre_s,
                "post_s": s.config().post_s,
                "ring_warnings": ring_warnings(st, s.config().pre_s),
            })
        }
    }
}

/// The rates stream `s` is judged at: the peaks the daemon measured (what its ring is sized
/// from), or before any, the statistics of the moment.
pub(super) fn measured(status: &Status, s: &RunningStream) -> Option<Measured> {
    if let Some(m) = status.rates.get(&s.config.id) {
        return Some(m);
    }
    let snap = s.stats.snapshot();
    (snap.bitrate_kbps > 0).then(|| Measured {
        bytes_per_s: u64::from(snap.bitrate_kbps) * 1000 / 8,
        fps_milli: (snap.fps.max(0.0) * 1000.0) as u32,
        keyframe_interval_ms: snap.keyframe_interval_ms.unwrap_or(0),
    })
}

/// The running streams whose ring cannot hold `pre_s` seconds plus a GOP at their measured
/// rates: their clips start later than asked. Each says what the ring holds, whether its next
/// start fixes it or `ring.max_bytes_per_stream` is what limits it.
fn ring_warnings(st: &AppState, pre_s: u32) -> Vec<serde_json::Value> {
    let status = st.status();
    status
        .streams
        .iter()
        .filter_map(|s| {
            let m = measured(&status, s)?;
            let short = shortfall(&status.config.ring, pre_s, s.ring.spec(), &m).ok()??;
            Some(json!({
                "stream": s.config.id,
                "holds_s": short.holds_ms as f64 / 1000.0,
                "needs_s": short.needs_ms as f64 / 1000.0,
                "kbps": m.kbps(),
                "ring_bytes": short.spec.arena_bytes,
                "needed_bytes": short.next.wanted_bytes,
                "next_start_bytes": short.next.spec.arena_bytes,
                "limited_by_cap": short.cap_limits(),
                "error": short.sentence(&s.config.id),
            }))
        })
        .collect()
}

/// `GET /api/clips`: newest first, paged.
pub(super) async fn list(
    State(st): State<Arc<AppState>>,
    _caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = store(&st)?;
    let mut all = store.entries();
    all.reverse();
    let matching: Vec<_> = all
        .into_iter()
        .filter(|e| q.stream.as_ref().is_none_or(|s| *s == e.stream))
        .filter(|e| q.alarm.as_ref().is_none_or(|a| *a == e.alarm))
        .collect();
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let page: Vec<_> = matching.iter().skip(q.offset).take(limit).collect();
    Ok(Json(json!({
        "total": matching.len(),
        "offset": q.offset,
        "clips": page,
    })))
}

/// `DELETE /api/clips/{id}`: admin only.
pub(super) async fn delete(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let store = store(&st)?;
    let id = id.strip_suffix(".mp4").unwrap_or(&id).to_string();
    let found = tokio::task::spawn_blocking(move || store.remove(&id))
        .await
        .map_err(|e| ApiError::internal("cannot delete the clip", &e))?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such clip"))
    }
}

/// `GET /api/clips/{id}.mp4`: the file, whole (200) or a byte range (206).
pub(super) async fn file(
    State(st): State<Arc<AppState>>,
    _caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = store(&st)?;
    let id = name
        .strip_suffix(".mp4")
        .ok_or_else(|| ApiError::not_found("clip URLs end in .mp4"))?;
    if store.get(id).is_none() {
        return Err(ApiError::not_found("no such clip"));
    }
    let path = store.path_of(id);
    let mut f = std::fs::File::open(&path).map_err(|_| ApiError::not_found("no such clip"))?;
    let total = f
        .metadata()
        .map_err(|e| ApiError::internal("cannot read the clip", &e))?
        .len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, total));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, total),
        Some(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Some(None) => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "the range is outside the clip",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    f.seek(SeekFrom::Start(start))
        .map_err(|e| ApiError::internal("cannot read the clip", &e))?;
    let body = Body::from_stream(file_stream(f, end - start));
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {start}-{}/{total}", end.saturating_sub(1));
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// The bytes `[start, end)` of `Range: bytes=a-b` (one range; `a-`, `-n` too) on a file of
/// `total` bytes; `None` when it cannot be satisfied or does not parse.
pub fn parse_range(header: &str, total: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (total.saturating_sub(n), total)
    } else {
        let s: u64 = a.parse().ok()?;
        let e = if b.is_empty() {
            total
        } else {
            b.parse::<u64>().ok()?.saturating_add(1).min(total)
        };
        (s, e)
    };
    (start < end && start < total).then_some((start, end))
}

/// `len` bytes of `f` (from where it stands) in chunks read on the blocking pool.
fn file_stream(
    f: std::fs::File,
    len: u64,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold((f, len), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let res = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0; (left as usize).min(CHUNK)];
            let r = f.read(&mut buf).map(|n| {
                buf.truncate(n);
                buf
            });
            (f, r)
        })
        .await;
        match res {
            Ok((f, Ok(buf))) if !buf.is_empty() => {
                let n = buf.len() as u64;
                Some((Ok(buf), (f, left - n)))
            }
            Ok((f, Ok(_))) => Some((Err(std::io::ErrorKind::UnexpectedEof.into()), (f, 0))),
            Ok((f, Err(e))) => Some((Err(e), (f, 0))),
            Err(_) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
