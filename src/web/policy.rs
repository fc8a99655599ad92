//! Request and response rules every API route shares: a body is JSON, no API answer is cached.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Whether `path` is an API answer: JSON, MJPEG, snapshots and metrics, all of them live data
/// (and `GET /api/config` carries tokens and camera passwords).
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

/// Whether a request carries a body (a length above zero, or a chunked one).
fn has_body(req: &Request) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// Whether the request says its body is JSON (`application/json`, or `application/*+json`).
fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .is_some_and(|t| {
            t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
        })
}

/// Middleware: a POST, PUT or PATCH with a body that is not declared JSON gets 415, before any
/// handler reads it (a form or `text/plain` post from another site cannot look like an API
/// call); every API answer gets `Cache-Control: no-store` unless it set its own.
pub async fn api_rules(req: Request, next: Next) -> Response {
    let api = is_api(req.uri().path());
    let writes = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if api && writes && has_body(&req) && !is_json(&req) {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON, with the header Content-Type: application/json",
        )
        .into_response();
    }
    let mut resp = next.run(req).await;
    if api && !resp.headers().contains_key(header::CACHE_CONTROL) {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
