//! Just enough RTSP for a relay: split the control connection's byte stream into messages
//! and interleaved `$` frames, hand each message head to an editor, and rewrite the ports of
//! a `Transport:` header (`client_port=` in a `SETUP` request, `server_port=` in its answer),
//! so that RTP and RTCP over UDP flow through the relay too.

/// A message head longer than this without its blank line is not RTSP: the framer gives up
/// and passes the rest of the connection through untouched.
const MAX_HEAD: usize = 64 * 1024;

/// Splits one direction of an RTSP connection into units and lets message heads be edited.
/// Interleaved binary frames (`$`, channel, 16-bit length) and message bodies (by
/// `Content-Length`) pass through as they come; only a head is held until it is complete.
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes of an incomplete unit start (a head without its blank line, or a `$` header
    /// shorter than four bytes).
    held: Vec<u8>,
    /// Bytes of the current frame or body still to pass through untouched.
    left: usize,
    /// Gave up parsing: everything passes through.
    raw: bool,
}

impl Framer {
    /// Feeds bytes read from the socket; returns the bytes that may be forwarded now, with
    /// every complete message head replaced by what `edit` returns for it (`None`: unchanged).
    pub fn feed(&mut self, data: &[u8], edit: &mut dyn FnMut(&str) -> Option<String>) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + self.held.len());
        self.held.extend_from_slice(data);
        let pending = std::mem::take(&mut self.held);
        let mut pos = 0;
        loop {
            if self.raw {
                out.extend_from_slice(&pending[pos..]);
                return out;
            }
            if self.left > 0 {
                let n = self.left.min(pending.len() - pos);
                out.extend_from_slice(&pending[pos..pos + n]);
                self.left -= n;
                pos += n;
            }
            if pos == pending.len() {
                return out;
            }
            let used = self.unit(&pending[pos..], &mut out, edit);
            if self.raw {
                continue;
            }
            if used == 0 {
                // An incomplete unit start: hold it for the next read, unless it is too long
                // to be RTSP.
                if pending.len() - pos > MAX_HEAD {
                    self.raw = true;
                    continue;
                }
                self.held = pending[pos..].to_vec();
                return out;
            }
            pos += used;
        }
    }

    /// Handles the unit at the start of `pending`: writes what may go now to `out` and
    /// returns the bytes of `pending` used, 0 if the unit's start is incomplete.
    fn unit(
        &mut self,
        pending: &[u8],
        out: &mut Vec<u8>,
        edit: &mut dyn FnMut(&str) -> Option<String>,
    ) -> usize {
        if pending.starts_with(b"$") {
            if pending.len() < 4 {
                return 0;
            }
            let size = 4 + usize::from(u16::from_be_bytes([pending[2], pending[3]]));
            let n = size.min(pending.len());
            out.extend_from_slice(&pending[..n]);
            self.left = size - n;
            return n;
        }
        if pending.starts_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
            return 2;
        }
        if pending == b"\r" {
            return 0;
        }
        let end = pending.windows(4).position(|w| w == b"\r\n\r\n");
        if !looks_like_head(&pending[..end.map_or(pending.len(), |e| e + 4)]) {
            // Not RTSP after all (a test's raw bytes, or a framing this relay does not know):
            // pass the rest of the connection through.
            self.raw = true;
            return 0;
        }
        let Some(end) = end else {
            return 0;
        };
        let head_len = end + 4;
        let head = String::from_utf8_lossy(&pending[..head_len]);
        let body = header(&head, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        match edit(&head) {
            Some(new) => out.extend_from_slice(new.as_bytes()),
            None => out.extend_from_slice(&pending[..head_len]),
        }
        let n = body.min(pending.len() - head_len);
        out.extend_from_slice(&pending[head_len..head_len + n]);
        self.left = body - n;
        head_len + n
    }
}

/// Whether `head` (a whole head, or the start of one) can be RTSP: a method or `RTSP/` (both
/// start with a capital letter), then printable ASCII and line breaks only.
fn looks_like_head(head: &[u8]) -> bool {
    head.first().is_some_and(u8::is_ascii_uppercase)
        && head
            .iter()
            .all(|&b| b == b'\r' || b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b))
}

/// The value of header `name` (case-insensitive) in a message head, trimmed.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The request method (`SETUP` ...) of a request head, `None` for a response.
pub fn method(head: &str) -> Option<&str> {
    let first = head.split("\r\n").next()?;
    if first.starts_with("RTSP/") {
        return None;
    }
    first.split(' ').next()
}

/// The status code of a response head, `None` for a request.
pub fn status(head: &str) -> Option<u16> {
    let rest = head.strip_prefix("RTSP/")?;
    rest.split(' ').nth(1)?.parse().ok()
}

/// The `CSeq` of a message.
pub fn cseq(head: &str) -> Option<u32> {
    header(head, "cseq")?.parse().ok()
}

/// The port pair of `key` (`client_port`, `server_port`) in the head's `Transport:` header:
/// `a-b`, or `a` alone meaning `a-(a+1)`.
pub fn transport_ports(head: &str, key: &str) -> Option<(u16, u16)> {
    let transport = header(head, "transport")?;
    transport.split([';', ',']).find_map(|param| {
        let value = param.trim().strip_prefix(key)?.strip_prefix('=')?;
        match value.split_once('-') {
            Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
            None => {
                let a: u16 = value.trim().parse().ok()?;
                Some((a, a.checked_add(1)?))
            }
        }
    })
}

/// The head with every `key=` parameter of its `Transport:` header set to `ports`; other
/// lines and parameters are kept byte for byte.
pub fn with_transport_ports(head: &str, key: &str, ports: (u16, u16)) -> String {
    let lines: Vec<String> = head
        .split("\r\n")
        .map(|line| {
            let Some((k, v)) = line.split_once(':') else {
                return line.to_string();
            };
            if !k.trim().eq_ignore_ascii_case("transport") {
                return line.to_string();
            }
            let params: Vec<String> = v
                .split(';')
                .map(|p| {
                    let lead = &p[..p.len() - p.trim_start().len()];
                    match p.trim_start().strip_prefix(key) {
                        Some(rest) if rest.starts_with('=') => {
                            format!("{lead}{key}={}-{}", ports.0, ports.1)
                        }
                        _ => p.to_string(),
                    }
                })
                .collect();
            format!("{k}:{}", params.join(";"))
        })
        .collect();
    lines.join("\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETUP: &str = "SETUP rtsp://127.0.0.1:8554/cam0/stream=0 RTSP/1.0\r\n\
                         CSeq: 3\r\n\
                         User-Agent: edgecam/0.1.0\r\n\
                         Transport: RTP/AVP/UDP;unicast;client_port=40000-40001\r\n\r\n";
    const REPLY: &str = "RTSP/1.0 200 OK\r\n\
                         CSeq: 3\r\n\
                         transport: RTP/AVP;unicast;client_port=40000-40001;server_port=5000-5001;ssrc=1A2B3C4D;mode=\"PLAY\"\r\n\
                         Session: abc;timeout=60\r\n\r\n";

    #[test]
    fn setup_heads_are_read() {
        assert_eq!(method(SETUP), Some("SETUP"));
        assert_eq!(status(SETUP), None);
        assert_eq!(cseq(SETUP), Some(3));
        assert_eq!(transport_ports(SETUP, "client_port"), Some((40000, 40001)));
        assert_eq!(transport_ports(SETUP, "server_port"), None);
        assert_eq!(method(REPLY), None);
        assert_eq!(status(REPLY), Some(200));
        assert_eq!(transport_ports(REPLY, "server_port"), Some((5000, 5001)));
        let single = "RTSP/1.0 200 OK\r\nTransport: RTP/AVP;server_port=6000\r\n\r\n";
        assert_eq!(transport_ports(single, "server_port"), Some((6000, 6001)));
    }

    #[test]
    fn ports_are_rewritten_in_the_transport_header_only() {
        let req = with_transport_ports(SETUP, "client_port", (50000, 50001));
        assert_eq!(
            req,
            SETUP.replace("client_port=40000-40001", "client_port=50000-50001")
        );
        let rep = with_transport_ports(REPLY, "server_port", (51000, 51001));
        assert!(rep.contains(";server_port=51000-51001;ssrc=1A2B3C4D;mode=\"PLAY\"\r\n"));
        assert!(rep.contains("client_port=40000-40001"), "{rep}");
        assert!(rep.ends_with("Session: abc;timeout=60\r\n\r\n"));
        // A port-like text elsewhere is left alone.
        let other = "RTSP/1.0 200 OK\r\nX-Note: server_port=1-2\r\nTransport: RTP/AVP;server_port=3-4\r\n\r\n";
        let r = with_transport_ports(other, "server_port", (9, 10));
        assert_eq!(r, other.replace("server_port=3-4", "server_port=9-10"));
    }

    /// Feeds `input` to a framer in pieces of `step` bytes; heads are upper-cased by the
    /// editor when they are SETUPs.
    fn framed(input: &[u8], step: usize) -> (Vec<u8>, Vec<String>) {
        let mut f = Framer::default();
        let mut heads = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            out.extend(f.feed(piece, &mut |h: &str| {
                heads.push(h.to_string());
                (method(h) == Some("SETUP")).then(|| h.to_uppercase())
            }));
        }
        (out, heads)
    }

    #[test]
    fn frames_bodies_and_heads_survive_any_split() {
        let mut input = Vec::new();
        input.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 13\r\n\r\n");
        input.extend_from_slice(b"v=0\r\n$\x00\r\n\r\n\r\n");
        input.extend_from_slice(b"$\x00\x00\x05hello");
        input.extend_from_slice(b"$\x01\x01\x00");
        input.extend((0..=255u8).cycle().take(256));
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(SETUP.as_bytes());
        let mut want = input.clone();
        let at = want.len() - SETUP.len();
        want.truncate(at);
        want.extend_from_slice(SETUP.to_uppercase().as_bytes());
        for step in [1, 2, 3, 7, 13, 64, 1000] {
            let (out, heads) = framed(&input, step);
            assert_eq!(out, want, "split every {step} bytes");
            // The body (which holds a `$` and a blank line) was not taken for units.
            assert_eq!(heads.len(), 2, "step {step}: {heads:?}");
        }
    }

    #[test]
    fn binary_after_a_message_passes_through_at_once() {
        let mut f = Framer::default();
        let out = f.feed(
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n\x00\x01ping",
            &mut |_| None,
        );
        assert!(out.ends_with(b"\x00\x01ping"), "nothing held: {out:?}");
        assert_eq!(f.feed(b"more", &mut |_| None), b"more");
    }

    #[test]
    fn a_stream_that_is_not_rtsp_passes_through() {
        let junk: Vec<u8> = (0..200_000u32).map(|i| (i % 7) as u8 + b'a').collect();
        let (out, heads) = framed(&junk, 4096);
        assert_eq!(out, junk);
        assert!(heads.is_empty());
    }
}
