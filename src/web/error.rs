//! The one error shape of the API: `{"error": "...", "field": "..."}` with a 4xx (or 5xx)
//! status, plus the JSON body extractor that reports bad JSON with the path of the bad field.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::FieldError;

/// Largest JSON body accepted (a config with many streams fits easily).
pub const MAX_JSON_BODY: usize = 256 * 1024;

/// An API error: a status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status, 4xx for the client's mistakes.
    pub status: StatusCode,
    /// What went wrong, in a sentence.
    pub error: String,
    /// The field it is about (`streams[1].url`), when there is one.
    pub field: Option<String>,
    /// Every problem when validation found several (the first is also in `error`/`field`).
    pub errors: Vec<FieldError>,
    /// Seconds after which a rate-limited client may retry.
    pub retry_after_s: Option<u64>,
}

/// The serialised form of [`ApiError`].
#[derive(Serialize)]
struct Body<'a> {
    /// The sentence.
    error: &'a str,
    /// The field, omitted when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// Every validation problem, omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<BodyField<'a>>,
}

/// One validation problem in the body.
#[derive(Serialize)]
struct BodyField<'a> {
    /// Field path.
    field: &'a str,
    /// What is wrong.
    error: &'a str,
}

impl ApiError {
    /// An error without a field.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            field: None,
            errors: Vec::new(),
            retry_after_s: None,
        }
    }

    /// 400 about one field.
    pub fn field(field: impl Into<String>, error: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, error)
        }
    }

    /// 400 listing validation problems; the first becomes `error` and `field`.
    pub fn invalid(errors: Vec<FieldError>) -> ApiError {
        let (error, field) = match errors.first() {
            Some(e) => (e.message.clone(), Some(e.path.clone())),
            None => ("invalid request".to_string(), None),
        };
        ApiError {
            field,
            errors,
            ..ApiError::new(StatusCode::BAD_REQUEST, error)
        }
    }

    /// 401: no or bad credentials.
    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication required")
    }

    /// 403 with a reason.
    pub fn forbidden(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, error)
    }

    /// 404 with a reason.
    pub fn not_found(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }

    /// 503: the daemon is shutting down.
    pub fn shutting_down() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        )
    }

    /// 500 for a failure on the box (disk full...); the details go to the log, not the client.
    pub fn internal(what: &str, e: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "{what}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, what.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.error,
            field: self.field.as_deref(),
            errors: self
                .errors
                .iter()
                .map(|e| BodyField {
                    field: &e.path,
                    error: &e.message,
                })
                .collect(),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after_s
            && let Ok(v) = axum::http::HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        resp
    }
}

/// A JSON request body. Unlike `axum::Json`, a body that does not fit the type is a 400 in the
/// API's error shape, with the path of the offending field (`streams[0].kind`).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(
    /// The parsed body.
    pub T,
);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        if bytes.len() > MAX_JSON_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body is larger than {MAX_JSON_BODY} bytes"),
            ));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// A body that could not be read: 413 (too large) with the limit in words, else its status.
pub fn body_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            status,
            format!(
                "the body is larger than the {} KiB allowed",
                MAX_JSON_BODY / 1024
            ),
        );
    }
    ApiError::new(status, text)
}

/// Parses JSON text, reporting the path of the field that does not fit.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        // The root renders as "." and an unknown position (a syntax error) as "?".
        let path = if path == "." || path.starts_with('?') {
            String::new()
        } else {
            path
        };
        let inner = e.into_inner();
        let mut err = ApiError::field(path, format!("invalid JSON: {inner}"));
        if err.field.as_deref() == Some("") {
            err.field = None;
        }
        err
    })?;
    de.end()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// Middleware: an error from below the handlers (an unknown method, a malformed path or
/// query, a plain HTTP request to the WebSocket) on an `/api` path gets the API's JSON shape
/// too, with the framework's sentence as `error`.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    body_error(status, error).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Outer {
        #[allow(dead_code)]
        inner: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        n: u8,
    }

    #[test]
    fn bad_json_names_the_field() {
        let e = parse_json::<Outer>(br#"{"inner": [{"n": 1}, {"n": "x"}]}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("inner[1].n"));
        let e = parse_json::<Outer>(b"{not json").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field, None);
    }
}
