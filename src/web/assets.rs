//! The page's static files, embedded in the binary at build time. Only the names in
//! [`ASSETS`] exist; no request path ever reaches the file system.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

use super::AppState;

/// (URL name, content type, bytes) of every embedded file.
pub const ASSETS: [(&str, &str, &[u8]); 6] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/app.js"),
    ),
    (
        "clips.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/clips.js"),
    ),
    (
        "mse.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/mse.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../web/favicon.svg"),
    ),
];

/// `/` and `/{name}` for the embedded files.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        // Tools and old browsers ask for /favicon.ico without reading the page's <link>.
        .route("/favicon.ico", get(|| async { asset("favicon.svg") }))
        .route(
            "/{name}",
            get(|Path(name): Path<String>| async move { asset(&name) }),
        )
}

/// The embedded file `name`, or 404.
pub fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, body)) => {
            let mut resp = body.into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    // media-src blob:: the MSE path's <video> plays a MediaSource through a blob URL.
                    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'",
                ),
            );
            resp
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_embedded_names_resolve() {
        assert_eq!(asset("index.html").status(), StatusCode::OK);
        assert_eq!(asset("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(asset("%2e%2e/etc/passwd").status(), StatusCode::NOT_FOUND);
        assert_eq!(asset("").status(), StatusCode::NOT_FOUND);
    }
}
