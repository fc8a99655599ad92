//! A minimal blocking HTTP/1.1 client for the bench's control calls (`POST /api/active`,
//! alarm triggers, `GET /metrics`, the MJPEG switcher's control) on 127.0.0.1. One request per
//! connection (`Connection: close`), so the response ends when the server closes.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long one control call may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status code and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body, as text (every endpoint the bench calls answers text or JSON).
    pub body: String,
}

/// Sends one request; `token` adds `Authorization: Bearer`, `body` is sent as JSON.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("cannot connect to {addr}"))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.set_nodelay(true)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req += &format!("Authorization: Bearer {t}\r\n");
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes())
        .with_context(|| format!("cannot send {method} {path}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("no answer to {method} {path}"))?;
    parse_response(&raw).with_context(|| format!("bad answer to {method} {path}"))
}

/// Sends a request and fails unless the status is 2xx.
pub fn ok(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<String> {
    let r = request(addr, method, path, token, body)?;
    if !(200..300).contains(&r.status) {
        bail!("{method} {path}: HTTP {}: {}", r.status, r.body.trim());
    }
    Ok(r.body)
}

/// Splits a raw response into status and body (de-chunking a chunked body).
fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status code")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Joins the chunks of a chunked body.
fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line not terminated")?;
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).context("chunk shorter than its size")?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

/// The value of every label set of one metric.
pub fn metric_values(text: &str, name: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            rest.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .collect()
}

/// The value of a Prometheus sample line `name{labels} value` or `name value`, summed over
/// every label set.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let v = metric_values(text, name);
    (!v.is_empty()).then(|| v.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies_are_read() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let r = parse_response(plain).unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "hi"));
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n";
        let r = parse_response(chunked).unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "abcde"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn metric_sums_add_up_label_sets_and_ignore_longer_names() {
        let text = "# HELP x\nedgecam_ring_overwritten_frames_total{stream=\"a\"} 3\n\
                    edgecam_ring_overwritten_frames_total{stream=\"b\"} 4\n\
                    edgecam_live_clients 1\nedgecam_live_clients_other 9\n";
        assert_eq!(
            metric_sum(text, "edgecam_ring_overwritten_frames_total"),
            Some(7.0)
        );
        assert_eq!(metric_sum(text, "edgecam_live_clients"), Some(1.0));
        assert_eq!(metric_sum(text, "missing"), None);
        assert_eq!(
            metric_values(text, "edgecam_ring_overwritten_frames_total"),
            vec![3.0, 4.0]
        );
    }
}
