//! `multipart/x-mixed-replace` MJPEG: the newest picture of a stream's shared decoder, as a
//! never-ending HTTP body that `<img>`, VLC and Home Assistant understand.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::jpeg::JpegWatch;

/// The multipart boundary.
pub const BOUNDARY: &str = "edgecamframe";

/// A streaming response of every new picture on `rx`. A slow reader misses pictures (the
/// watch channel keeps only the newest); the decoder stops when the last reader is gone.
pub fn response(rx: JpegWatch) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            if rx.changed().await.is_err() {
                return None;
            }
            let pic = rx.borrow_and_update().clone();
            if let Some(pic) = pic {
                return Some((Ok::<Bytes, std::io::Error>(part(&pic.data)), rx));
            }
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/x-mixed-replace; boundary={BOUNDARY}"))
    {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// One part: boundary, headers, the JPEG, CRLF.
pub fn part(jpeg: &[u8]) -> Bytes {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    );
    let mut out = Vec::with_capacity(head.len() + jpeg.len() + 2);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_has_boundary_length_and_payload() {
        let p = part(b"\xff\xd8xyz");
        let text = String::from_utf8_lossy(&p);
        assert!(text.starts_with(
            "--edgecamframe\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\n\r\n"
        ));
        assert!(p.ends_with(b"xyz\r\n"));
    }
}
