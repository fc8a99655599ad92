//! One HTTP/1 request on a fresh client connection (hyper), for the box's outgoing calls:
//! webhooks ([`crate::hooks`]) and ONVIF SOAP ([`crate::onvif`]).
//!
//! The connection is driven inside the returned future, not a task of its own, so a timeout
//! that drops the future also closes the connection, and a peer that closes or breaks it
//! ends the exchange at once with an error that says so.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

/// Why an exchange gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    /// The HTTP/1 handshake on the connection failed.
    #[error("HTTP handshake failed: {0}")]
    Handshake(hyper::Error),
    /// Sending the request or reading the answer's head failed.
    #[error("request failed: {0}")]
    Request(hyper::Error),
    /// The connection broke.
    #[error("connection failed: {0}")]
    Connection(hyper::Error),
    /// The answer's body broke off or was longer than allowed.
    #[error("the answer broke off: {0}")]
    Body(String),
}

/// Sends `req` over `io` and returns the answer's status and up to `max_body` bytes of its
/// body. With `max_body` 0 the body is not read (the status is all the caller needs).
pub async fn exchange<I>(
    io: I,
    req: hyper::Request<Full<Bytes>>,
    max_body: usize,
) -> Result<(u16, Bytes), Http1Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(Http1Error::Handshake)?;
    let mut conn = std::pin::pin!(conn);
    let answer = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(Http1Error::Request)?;
        let status = resp.status().as_u16();
        if max_body == 0 {
            return Ok((status, Bytes::new()));
        }
        let body = Limited::new(resp.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| Http1Error::Body(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    };
    let mut answer = std::pin::pin!(answer);
    tokio::select! {
        r = &mut answer => r,
        r = &mut conn => match r {
            // A peer that answers and closes (`Connection: close`) ends the connection
            // before the answer future has run: what it sent is buffered, so the answer is
            // still there. A peer that closed without answering fails the request instead.
            Ok(()) => answer.await,
            Err(e) => Err(Http1Error::Connection(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot server on loopback that reads a request and writes `answer` (then closes).
    async fn server(answer: &'static [u8]) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer).await;
        });
        addr
    }

    fn request(addr: std::net::SocketAddr) -> hyper::Request<Full<Bytes>> {
        hyper::Request::post("/x")
            .header(hyper::header::HOST, addr.to_string())
            .body(Full::new(Bytes::from_static(b"hi")))
            .unwrap()
    }

    async fn run(answer: &'static [u8], max_body: usize) -> Result<(u16, Bytes), Http1Error> {
        let addr = server(answer).await;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        exchange(TokioIo::new(tcp), request(addr), max_body).await
    }

    #[tokio::test]
    async fn returns_the_status_and_the_body() {
        let r = run(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok", 100).await;
        let (status, body) = r.unwrap();
        assert_eq!((status, &body[..]), (201, &b"ok"[..]));
    }

    #[tokio::test]
    async fn skips_the_body_when_none_is_wanted() {
        let r = run(b"HTTP/1.1 500 Oops\r\ncontent-length: 4\r\n\r\nnope", 0).await;
        assert_eq!(r.unwrap(), (500, Bytes::new()));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_an_error() {
        let r = run(
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789",
            4,
        )
        .await;
        assert!(matches!(r, Err(Http1Error::Body(_))), "{r:?}");
    }

    #[tokio::test]
    async fn a_peer_that_closes_without_answering_is_an_error() {
        let r = run(b"", 100).await;
        assert!(matches!(r, Err(Http1Error::Request(_))), "{r:?}");
    }

    /// Answer and close at once, many times: the answer is never lost to the close (it was,
    /// at random, when the connection's end was taken for a failure).
    #[tokio::test]
    async fn an_answer_followed_by_a_close_is_never_lost() {
        for _ in 0..50 {
            let r = run(
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
                10,
            )
            .await;
            assert_eq!(r.unwrap(), (200, Bytes::from_static(b"ok")));
        }
    }
}
