//! `multipart/x-mixed-replace` MJPEG: the newest picture of a stream's shared decoder, as a
//! never-ending HTTP body that `<img>`, VLC, ffmpeg, OpenCV and Home Assistant understand.
//!
//! While the stream has no picture (camera offline, no keyframe yet) the client gets the
//! [`placeholder`](super::placeholder) at once and again every [`PLACEHOLDER_EVERY`], so it
//! shows which camera is down and why instead of waiting on an empty body until it times
//! out; real pictures replace it as soon as they come. A live stream whose frames never
//! decode gets the placeholder too, saying so. Sending something every few seconds
//! also lets the server notice a client that went away. A stream restarted by a config change
//! (a new ring) is followed; a stream removed from the config, or a credential revoked, ends
//! the response.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::jpeg::{JpegFrame, JpegHub, JpegWatch};
use super::placeholder;
use super::{LiveStream, Pick, PictureStream, StreamLookup};

/// The multipart boundary.
pub const BOUNDARY: &str = "edgecamframe";
/// A part header marking a placeholder picture (clients ignore headers they do not know).
pub const PLACEHOLDER_HEADER: &str = "X-Edgecam-Placeholder: no-video";
/// How long without a real picture before a placeholder is sent (and again after it); also
/// how often an open response checks that its caller's credential is still valid.
pub const PLACEHOLDER_EVERY: Duration = Duration::from_secs(2);

/// What the MJPEG loop asks about its stream: [`StreamFeed`] for a real one, a fake in tests.
pub trait Feed: Send + 'static {
    /// The stream as it runs now, asked when no picture came for a while.
    fn refresh(&mut self) -> Refresh;
    /// Why the stream has no video now; `None` while it looks live.
    fn no_video(&self) -> Option<String>;
    /// The placeholder JPEG saying `reason`; `last` is the last real picture's size (0x0 if
    /// none). `None` when it cannot be made (the client then just waits).
    fn placeholder(&self, reason: &str, last: (u32, u32)) -> Option<Bytes>;
    /// False once the caller's credential is no longer valid: the response ends.
    fn authorized(&self) -> bool;
}

/// What [`Feed::refresh`] found.
pub enum Refresh {
    /// Still the stream the response follows.
    Same,
    /// The stream was restarted: its pictures now come on this channel.
    New(JpegWatch),
    /// The stream no longer runs.
    Gone,
}

/// One part of the body.
#[derive(Debug, Clone)]
pub enum Part {
    /// A picture of the stream.
    Real(Arc<JpegFrame>),
    /// The "no video" picture.
    Placeholder(Bytes),
}

impl Part {
    /// The part as sent: boundary, headers, JPEG, CRLF.
    pub fn bytes(&self) -> Bytes {
        match self {
            Part::Real(pic) => part(&pic.data, None),
            Part::Placeholder(jpeg) => part(jpeg, Some(PLACEHOLDER_HEADER)),
        }
    }
}

/// The loop behind one response: which picture to send next, and when.
pub struct Parts<F: Feed> {
    /// The stream.
    feed: F,
    /// Its pictures; `None` after the decoder went away (until a refresh finds a new one).
    rx: Option<JpegWatch>,
    /// When a placeholder is due if no real picture comes first.
    due: Instant,
    /// When the credential is checked next while real pictures keep coming.
    auth_due: Instant,
    /// Size of the last real picture, for the placeholder (0x0 before the first).
    last_size: (u32, u32),
    /// Nothing was sent yet (a stream without video gets its placeholder at once).
    first: bool,
    /// The last placeholder made and its reason: the same one is not encoded twice.
    cached: Option<(String, Bytes)>,
}

impl<F: Feed> Parts<F> {
    /// The parts of `feed`, whose pictures arrive on `rx`.
    pub fn new(rx: JpegWatch, feed: F) -> Parts<F> {
        let now = Instant::now();
        Parts {
            feed,
            rx: Some(rx),
            due: now + PLACEHOLDER_EVERY,
            auth_due: now + PLACEHOLDER_EVERY,
            last_size: (0, 0),
            first: true,
            cached: None,
        }
    }

    /// The next part; `None` when the response ends.
    pub async fn next(&mut self) -> Option<Part> {
        if std::mem::take(&mut self.first)
            && let Some(reason) = self.feed.no_video()
            && let Some(p) = self.placeholder(&reason)
        {
            return Some(p);
        }
        loop {
            let changed = async {
                match self.rx.as_mut() {
                    Some(rx) => rx.changed().await.map(|()| rx.borrow_and_update().clone()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = changed => match got {
                    Ok(Some(pic)) => return self.real(pic),
                    Ok(None) => {}
                    Err(_closed) => self.rx = None,
                },
                () = tokio::time::sleep_until(self.due) => {
                    if let Some(p) = self.on_quiet()? {
                        return Some(p);
                    }
                }
            }
        }
    }

    /// A real picture came: send it (unless the credential was revoked meanwhile).
    fn real(&mut self, pic: Arc<JpegFrame>) -> Option<Part> {
        let now = Instant::now();
        if now >= self.auth_due {
            self.auth_due = now + PLACEHOLDER_EVERY;
            if !self.feed.authorized() {
                return None;
            }
            // A camera's sub stream that came back takes over from the main stream again.
            match self.feed.refresh() {
                Refresh::Gone => return None,
                Refresh::New(rx) => self.rx = Some(rx),
                Refresh::Same => {}
            }
        }
        self.due = now + PLACEHOLDER_EVERY;
        self.last_size = (pic.width, pic.height);
        Some(Part::Real(pic))
    }

    /// No real picture for [`PLACEHOLDER_EVERY`]: follow a restarted stream, end for a gone
    /// one or a revoked credential, else send the placeholder. `None` ends the response;
    /// `Some(None)` waits on.
    fn on_quiet(&mut self) -> Option<Option<Part>> {
        let now = Instant::now();
        self.due = now + PLACEHOLDER_EVERY;
        self.auth_due = now + PLACEHOLDER_EVERY;
        if !self.feed.authorized() {
            return None;
        }
        match self.feed.refresh() {
            Refresh::Gone => return None,
            Refresh::New(rx) => self.rx = Some(rx),
            Refresh::Same => {}
        }
        let reason = self
            .feed
            .no_video()
            .unwrap_or_else(|| "no picture decoded yet".to_string());
        Some(self.placeholder(&reason))
    }

    /// The placeholder for `reason` (made once per reason).
    fn placeholder(&mut self, reason: &str) -> Option<Part> {
        if let Some((r, jpeg)) = &self.cached
            && r == reason
        {
            return Some(Part::Placeholder(jpeg.clone()));
        }
        let jpeg = self.feed.placeholder(reason, self.last_size)?;
        self.cached = Some((reason.to_string(), jpeg.clone()));
        Some(Part::Placeholder(jpeg))
    }
}

/// A streaming response of `parts`. A slow reader misses pictures (the watch channel keeps
/// only the newest); the decoder stops when the last reader is gone.
pub fn response<F: Feed>(parts: Parts<F>) -> Response {
    let stream = futures::stream::unfold(parts, |mut parts| async move {
        let p = parts.next().await?;
        Some((Ok::<Bytes, std::io::Error>(p.bytes()), parts))
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

/// One part: boundary, headers (`extra` too, if given), the JPEG, CRLF.
pub fn part(jpeg: &[u8], extra: Option<&str>) -> Bytes {
    let extra = extra.map(|h| format!("{h}\r\n")).unwrap_or_default();
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n{extra}\r\n",
        jpeg.len()
    );
    let mut out = Vec::with_capacity(head.len() + jpeg.len() + 2);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// A running stream as an MJPEG response follows it.
pub struct StreamFeed {
    /// Stream id, to look it up again.
    id: String,
    /// Which of the camera's streams to follow (the sub stream while live, or the main).
    pick: Pick,
    /// The decoder key of the stream followed (`id`, or `id/sub`).
    key: String,
    /// The stream as last found (its ring tells a restart, or a move between the main and
    /// the sub stream, apart).
    stream: LiveStream,
    /// Where running streams are found.
    lookup: Arc<dyn StreamLookup>,
    /// The shared decoders (a restarted stream needs a new subscription).
    hub: JpegHub,
    /// Asks the web server whether the caller's credential is still valid.
    authorized: Box<dyn Fn() -> bool + Send + Sync>,
}

impl StreamFeed {
    /// The parts of camera `id` (its pictures coming from `found`, as `pick` chose), for a
    /// caller `authorized` checks.
    pub fn parts(
        id: &str,
        pick: Pick,
        found: PictureStream,
        lookup: Arc<dyn StreamLookup>,
        hub: JpegHub,
        authorized: Box<dyn Fn() -> bool + Send + Sync>,
    ) -> Parts<StreamFeed> {
        let PictureStream { key, stream } = found;
        let rx = hub.subscribe(&key, &stream.ring);
        let feed = StreamFeed {
            id: id.to_string(),
            pick,
            key,
            stream,
            lookup,
            hub,
            authorized,
        };
        Parts::new(rx, feed)
    }
}

impl Feed for StreamFeed {
    fn refresh(&mut self) -> Refresh {
        let Some(now) = self.lookup.picture_stream(&self.id, self.pick) else {
            return Refresh::Gone;
        };
        if Arc::ptr_eq(&now.stream.ring, &self.stream.ring) {
            return Refresh::Same;
        }
        let rx = self.hub.subscribe(&now.key, &now.stream.ring);
        self.key = now.key;
        self.stream = now.stream;
        Refresh::New(rx)
    }

    fn no_video(&self) -> Option<String> {
        placeholder::no_video_reason(&self.stream)
            .or_else(|| self.hub.undecodable_reason(&self.key))
    }

    fn placeholder(&self, reason: &str, last: (u32, u32)) -> Option<Bytes> {
        let settings = self.hub.settings();
        let size = placeholder::size_for(&self.stream, settings, last);
        match placeholder::render(&self.stream.name, reason, size, settings) {
            Ok(jpeg) => Some(Bytes::from(jpeg)),
            Err(e) => {
                tracing::warn!(stream = %self.key, error = %e, "no placeholder picture");
                None
            }
        }
    }

    fn authorized(&self) -> bool {
        (self.authorized)()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Codec, FrameInfo, FrameMeta};
    use std::sync::Mutex;
    use tokio::sync::watch;

    #[test]
    fn part_has_boundary_length_and_payload() {
        let p = part(b"\xff\xd8xyz", None);
        let text = String::from_utf8_lossy(&p);
        assert!(text.starts_with(
            "--edgecamframe\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\n\r\n"
        ));
        assert!(p.ends_with(b"xyz\r\n"));
        let p = Part::Placeholder(Bytes::from_static(b"ab")).bytes();
        assert!(String::from_utf8_lossy(&p).starts_with(
            "--edgecamframe\r\nContent-Type: image/jpeg\r\nContent-Length: 2\r\n\
             X-Edgecam-Placeholder: no-video\r\n\r\nab"
        ));
    }

    /// What the fake feed says, changed by the test.
    #[derive(Default)]
    struct FakeState {
        /// The reason for no video, `None` = live.
        no_video: Option<String>,
        /// The credential was revoked.
        revoked: bool,
        /// The stream was removed.
        gone: bool,
    }

    struct Fake(Arc<Mutex<FakeState>>);

    impl Feed for Fake {
        fn refresh(&mut self) -> Refresh {
            if self.0.lock().unwrap().gone {
                Refresh::Gone
            } else {
                Refresh::Same
            }
        }
        fn no_video(&self) -> Option<String> {
            self.0.lock().unwrap().no_video.clone()
        }
        fn placeholder(&self, reason: &str, _last: (u32, u32)) -> Option<Bytes> {
            Some(Bytes::from(format!("no video: {reason}")))
        }
        fn authorized(&self) -> bool {
            !self.0.lock().unwrap().revoked
        }
    }

    fn picture(seq: u64) -> Option<Arc<JpegFrame>> {
        Some(Arc::new(JpegFrame {
            stream: "cam1".into(),
            meta: FrameMeta {
                seq,
                len: 2,
                info: FrameInfo {
                    codec: Codec::Jpeg,
                    keyframe: true,
                    params_changed: false,
                    pts_us: 0,
                    recv_mono_ns: 0,
                    recv_wall_us: 0,
                    epoch: 1,
                },
            },
            width: 64,
            height: 48,
            data: Bytes::from_static(b"\xff\xd8"),
        }))
    }

    fn text(p: &Part) -> String {
        match p {
            Part::Placeholder(b) => String::from_utf8_lossy(b).into_owned(),
            Part::Real(pic) => format!("real {}", pic.meta.seq),
        }
    }

    /// Where a test publishes pictures, as the shared decoder does.
    type Pictures = watch::Sender<Option<Arc<JpegFrame>>>;

    /// A fake stream with no video for `reason`: its state, picture sender and parts.
    fn offline(reason: &str) -> (Arc<Mutex<FakeState>>, Pictures, Parts<Fake>) {
        let state = Arc::new(Mutex::new(FakeState {
            no_video: Some(reason.into()),
            ..FakeState::default()
        }));
        let (tx, rx) = watch::channel(None);
        let parts = Parts::new(rx, Fake(Arc::clone(&state)));
        (state, tx, parts)
    }

    /// Paused time: each `next` returns at the virtual instant its part is due.
    #[tokio::test(start_paused = true)]
    async fn placeholders_come_at_once_then_every_interval_until_a_real_picture() {
        let (state, tx, mut parts) = offline("backoff: connection refused");
        let t0 = Instant::now();
        let p = parts.next().await.unwrap();
        assert_eq!(text(&p), "no video: backoff: connection refused");
        assert_eq!(Instant::now(), t0, "the first placeholder comes at once");
        let p = parts.next().await.unwrap();
        assert_eq!(text(&p), "no video: backoff: connection refused");
        assert_eq!(Instant::now() - t0, PLACEHOLDER_EVERY);

        tokio::time::advance(Duration::from_millis(500)).await;
        state.lock().unwrap().no_video = None;
        tx.send_replace(picture(7));
        let at = Instant::now();
        assert_eq!(text(&parts.next().await.unwrap()), "real 7");
        assert_eq!(Instant::now(), at, "a real picture goes out at once");
        tokio::time::advance(Duration::from_millis(1500)).await;
        tx.send_replace(picture(8));
        assert_eq!(text(&parts.next().await.unwrap()), "real 8");

        // The camera stops: after one interval without pictures, the placeholder again.
        state.lock().unwrap().no_video = Some("stalled".into());
        let quiet = Instant::now();
        assert_eq!(text(&parts.next().await.unwrap()), "no video: stalled");
        assert_eq!(Instant::now() - quiet, PLACEHOLDER_EVERY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_stream_gets_no_placeholder_before_its_first_picture() {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let (tx, rx) = watch::channel(None);
        let mut parts = Parts::new(rx, Fake(state));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tx.send_replace(picture(1));
            std::future::pending::<()>().await;
        });
        assert_eq!(text(&parts.next().await.unwrap()), "real 1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_credential_or_a_removed_stream_ends_the_response() {
        let (state, tx, mut parts) = offline("connecting");
        assert!(parts.next().await.is_some());
        state.lock().unwrap().revoked = true;
        assert!(parts.next().await.is_none(), "revoked while no video");

        let state = Arc::new(Mutex::new(FakeState::default()));
        let mut parts = Parts::new(tx.subscribe(), Fake(Arc::clone(&state)));
        tx.send_replace(picture(1));
        assert!(parts.next().await.is_some());
        state.lock().unwrap().revoked = true;
        tokio::time::advance(PLACEHOLDER_EVERY).await;
        tx.send_replace(picture(2));
        assert!(parts.next().await.is_none(), "revoked while pictures come");

        let state = Arc::new(Mutex::new(FakeState {
            gone: true,
            ..FakeState::default()
        }));
        let mut parts = Parts::new(tx.subscribe(), Fake(state));
        assert!(parts.next().await.is_none(), "the stream was removed");
    }
}
