//! IP cameras over RTSP, through the `retina` client.
//!
//! One [`Source::run`] call is one session: `DESCRIBE`, `SETUP` of the first H.264 video
//! stream (or, when the camera offers none, of its first RTP/JPEG one), `PLAY`, then frames
//! until the session breaks. The transport is TCP interleaved or
//! UDP as configured, or with `auto` (the default) TCP first and UDP when the camera refuses
//! TCP at `SETUP` (461 Unsupported Transport, as VLC's server answers; also 400 and 501).
//! What gave frames is remembered per camera URL ([`learned`], kept across restarts in the
//! state directory by [`super::learned`]) and tried first on the next session, so the refusal costs one extra `DESCRIBE` only once. A
//! UDP session that played but got no frame (a firewall or NAT in the way) makes the next
//! `auto` session start with TCP again. H.264 frames arrive as Annex B access units with
//! SPS/PPS in front of every keyframe (retina's [`FrameFormat::SIMPLE`]); H.265 (RFC 7798)
//! likewise, with VPS/SPS/PPS in front of every keyframe (an IRAP picture: IDR, CRA or BLA;
//! retina's `has_new_parameters` when they change), stored as [`Codec::H265`]; RTP/JPEG (RFC 2435,
//! older MJPEG cameras) arrives as one complete JPEG image per frame (retina rebuilds the
//! headers the RTP payload leaves out: SOI, quantization and Huffman tables, SOF0, SOS, EOI),
//! stored as [`Codec::Jpeg`], every frame a keyframe. Frames are copied into the sink and
//! retina's buffer is dropped. Frames pass a [`super::gate::KeyframeGate`]: those before the first keyframe of
//! a session, and those after a frame the ring refused until the next keyframe, are dropped,
//! so what is stored always decodes.
//!
//! Receive times come from retina's packet context: the time the last packet of the frame
//! was read from the socket. The clock in [`SourceCtx`] has its own origin, so the packet's
//! age (now − received, both `std::time::Instant`) is subtracted from `ctx.clock`'s current
//! readings; this keeps the injected clock authoritative and costs one `Instant::now()` per
//! frame.
//!
//! Credentials are taken out of the URL and handed to retina as [`Credentials`]; the URL that
//! goes on the wire and into every log line and error has no password.
//!
//! Along the way the source says what it waits for ([`Waiting`]: the RTSP answer, the first
//! packet, the first keyframe), which transport runs, and the RTP packets retina saw lost
//! ([`retina::codec::VideoFrame::loss`]), through the attempt's [`super::AttemptPhase`].
//!
//! Errors that retrying soon cannot fix (401, 403, 404, no H.264 or JPEG video) are
//! [`SourceError::Rejected`]: the supervisor parks the stream in `failed` instead of logging
//! in again every second, which would lock the account on many cameras.

use super::gate::KeyframeGate;
use super::redact::redact_url;
use super::{AttemptPhase, Source, SourceCtx, SourceError, Waiting};
use crate::config::schema::{StreamConfig, Transport};
use crate::frame::{Codec, FrameInfo};
use futures::StreamExt;
use futures::future::BoxFuture;
use retina::client::Demuxed;
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use url::Url;

/// The transport that last gave frames from the camera at `url` (credential-free), if any:
/// learned this run or loaded from the state directory ([`super::learned`]).
pub fn learned(url: &Url) -> Option<Transport> {
    super::learned::memory().get(url.as_str())
}

/// Remembers that `t` gave frames from the camera at `url`.
fn learn(url: &Url, t: Transport) {
    super::learned::memory().set(url.as_str(), t);
}

/// The transport a session tries first: the configured one, or for `auto` what worked last
/// (TCP when nothing did yet), except TCP when the last UDP session got no frame at all.
fn first_transport(
    configured: Transport,
    learned: Option<Transport>,
    udp_silent: bool,
) -> Transport {
    match configured {
        Transport::Auto if udp_silent => Transport::Tcp,
        Transport::Auto => learned.unwrap_or(Transport::Tcp),
        t => t,
    }
}

/// The other of TCP and UDP.
fn other(t: Transport) -> Transport {
    if t == Transport::Udp {
        Transport::Tcp
    } else {
        Transport::Udp
    }
}

/// The name of a concrete transport in logs and `/api/status`.
fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp | Transport::Auto => "tcp",
    }
}

/// How opening a session failed.
struct OpenError {
    /// The camera refused this transport at `SETUP` (another may work).
    transport_refused: bool,
    /// The error to report.
    error: SourceError,
    /// The refused session, still connected: kept open while the other transport is tried,
    /// because some servers (gst-rtsp-server) tear a shared stream down when its last
    /// client leaves and answer 503 to a `DESCRIBE` that comes meanwhile.
    refused: Option<Session<retina::client::Described>>,
}

impl From<SourceError> for OpenError {
    fn from(error: SourceError) -> Self {
        OpenError {
            transport_refused: false,
            error,
            refused: None,
        }
    }
}

/// An RTSP camera: what is needed to open one session, parsed once from the config.
pub struct RtspSource {
    /// The camera URL without user name or password: what goes on the wire and into logs.
    url: Url,
    /// User name and password from the configured URL, if it had any.
    creds: Option<Credentials>,
    /// `auto`, TCP interleaved or UDP, from the config.
    transport: Transport,
    /// Set while a UDP session plays and no frame came yet: when the next session starts
    /// with it still set, UDP went silent (a firewall, NAT), and `auto` tries TCP first.
    udp_silent: AtomicBool,
}

impl std::fmt::Debug for RtspSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hand-written so that the password can never reach a `{:?}`.
        f.debug_struct("RtspSource")
            .field("url", &self.url.as_str())
            .field("has_credentials", &self.creds.is_some())
            .field("transport", &self.transport)
            .finish()
    }
}

/// Which step of the session an error came from; decides between `Connect` and `Stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// DESCRIBE, SETUP or PLAY: nothing was received yet.
    Setup,
    /// Frames were flowing.
    Streaming,
}

impl RtspSource {
    /// Builds the source for one `kind = "rtsp"` stream. A missing, unparsable or non-`rtsp://`
    /// URL is a [`SourceError::Config`]: retrying cannot fix it.
    pub fn from_config(cfg: &StreamConfig) -> Result<Self, SourceError> {
        let raw = cfg.url.as_deref().ok_or_else(|| {
            SourceError::Config(format!(
                "stream {} is an RTSP stream but has no url",
                cfg.id
            ))
        })?;
        Self::new(raw, cfg.transport)
    }

    /// Builds the source from a URL (credentials allowed in it) and a transport.
    pub fn new(raw_url: &str, transport: Transport) -> Result<Self, SourceError> {
        let mut url = Url::parse(raw_url).map_err(|e| {
            SourceError::Config(format!("bad camera URL {}: {e}", redact_url(raw_url)))
        })?;
        if url.scheme() != "rtsp" {
            return Err(SourceError::Config(format!(
                "camera URL {} is not an rtsp:// URL",
                redact_url(raw_url)
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(SourceError::Config(format!(
                "camera URL {} has no host",
                redact_url(raw_url)
            )));
        }
        let creds = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            Some(Credentials {
                username: percent_decode(url.username()),
                password: percent_decode(url.password().unwrap_or("")),
            })
        };
        // Neither call can fail on an rtsp:// URL with a host (checked above).
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(RtspSource {
            url,
            creds,
            transport,
            udp_silent: AtomicBool::new(false),
        })
    }

    /// The URL as it is logged and sent: without credentials.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The configured transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// `host:port` for messages about the connection.
    fn endpoint(&self) -> String {
        format!(
            "{}:{}",
            self.url.host_str().unwrap_or("?"),
            self.url.port().unwrap_or(554)
        )
    }

    /// One session; see the module doc.
    async fn session(&self, ctx: SourceCtx<'_>) -> Result<(), SourceError> {
        let silent = self.udp_silent.swap(false, Ordering::Relaxed);
        let first = first_transport(self.transport, learned(&self.url), silent);
        let (demuxed, video, transport) = match self.open(ctx.id, &ctx.phase, first).await {
            Ok((d, v)) => (d, v, first),
            Err(e) if e.transport_refused && self.transport == Transport::Auto => {
                let _still_connected = e.refused;
                let second = other(first);
                tracing::warn!(stream = %ctx.id, url = %self.url, refused = transport_name(first), trying = transport_name(second), error = %e.error, "camera refused the RTSP transport; trying the other");
                match self.open(ctx.id, &ctx.phase, second).await {
                    Ok((d, v)) => (d, v, second),
                    Err(e2) if e2.transport_refused => {
                        return Err(SourceError::Connect(format!(
                            "the camera at {} refused both RTSP over TCP and over UDP; check \
                             its RTSP settings",
                            self.endpoint()
                        )));
                    }
                    Err(e2) => return Err(e2.error),
                }
            }
            Err(e) => return Err(e.error),
        };
        self.stream_frames(ctx, demuxed, video, transport).await
    }

    /// `DESCRIBE`, `SETUP` over `transport` (TCP or UDP) and `PLAY`: the demuxed session
    /// and the video stream chosen ([`video_stream`]).
    async fn open(
        &self,
        id: &str,
        phase: &AttemptPhase,
        transport: Transport,
    ) -> Result<(Demuxed, Video), OpenError> {
        let name = transport_name(transport);
        tracing::debug!(stream = %id, url = %self.url, transport = name, "rtsp connecting");
        phase.set_waiting(Waiting::Answer);
        let options = SessionOptions::default()
            .creds(self.creds.clone())
            .user_agent(concat!("edgecam/", env!("CARGO_PKG_VERSION")).to_string());
        let mut session = Session::describe(self.url.clone(), options)
            .await
            .map_err(|e| self.human_error(&e, Phase::Setup))?;
        let video = video_stream(session.streams())?;
        let index = video.index;
        let wire = match transport {
            Transport::Udp => retina::client::Transport::Udp(UdpTransportOptions::default()),
            Transport::Tcp | Transport::Auto => {
                retina::client::Transport::Tcp(TcpTransportOptions::default())
            }
        };
        let setup = SetupOptions::default()
            .transport(wire)
            .frame_format(FrameFormat::SIMPLE);
        if let Err(e) = session.setup(index, setup).await {
            return Err(OpenError {
                transport_refused: matches!(e.status_code(), Some(400 | 461 | 501)),
                error: self.setup_error(&e, transport),
                refused: Some(session),
            });
        }
        phase.set_transport(name);
        self.udp_silent
            .store(transport == Transport::Udp, Ordering::Relaxed);
        let playing = session
            .play(PlayOptions::default())
            .await
            .map_err(|e| self.human_error(&e, Phase::Setup))?;
        let demuxed = playing
            .demuxed()
            .map_err(|e| self.human_error(&e, Phase::Setup))?;
        phase.set_waiting(Waiting::Packets);
        tracing::info!(stream = %id, url = %self.url, transport = name, codec = video.codec.name(), "rtsp session playing");
        Ok((demuxed, video))
    }

    /// Copies the session's frames into the sink until it ends.
    async fn stream_frames(
        &self,
        ctx: SourceCtx<'_>,
        mut demuxed: Demuxed,
        video: Video,
        transport: Transport,
    ) -> Result<(), SourceError> {
        let id = ctx.id;
        // Drops everything before the session's first keyframe, and after a refused frame
        // until the next one (a camera cannot be asked for an early keyframe over RTSP).
        let mut gate = KeyframeGate::new();
        let mut first_frame = true;
        let mut keyed = false;
        // H.265: the parameter sets, for keyframes (CRA) that come without them.
        let mut hevc_sets = crate::codec::hevc::ParamSets::default();
        while let Some(item) = demuxed.next().await {
            let frame = match item {
                Ok(CodecItem::VideoFrame(frame)) => frame,
                Ok(_) => continue,
                Err(e) => return Err(self.human_error(&e, Phase::Streaming)),
            };
            if frame.stream_id() != video.index {
                continue;
            }
            if first_frame {
                first_frame = false;
                self.udp_silent.store(false, Ordering::Relaxed);
                if self.transport == Transport::Auto && learned(&self.url) != Some(transport) {
                    tracing::info!(stream = %id, transport = transport_name(transport), "rtsp transport remembered for this camera");
                }
                learn(&self.url, transport);
            }
            ctx.phase.record_loss(u64::from(frame.loss()));
            if frame.loss() > 0 {
                tracing::debug!(stream = %id, lost = frame.loss(), "rtp packets lost before frame");
            }
            let data = frame.data();
            // retina marks only IDR pictures as random access points; for H.265 every IRAP
            // picture (IDR, CRA, BLA) is a keyframe, stored with the parameter sets.
            let (keyframe, prefix) = if video.codec == Codec::H265 {
                let key = crate::codec::hevc::is_keyframe(data);
                if key
                    && hevc_sets.is_empty()
                    && let Some(retina::codec::ParametersRef::Video(v)) =
                        demuxed.streams()[video.index].parameters()
                {
                    hevc_sets.learn_hvcc(v.extra_data());
                }
                (key, hevc_sets.prefix_for(data, key))
            } else {
                (frame.is_random_access_point(), &[][..])
            };
            keyed |= keyframe;
            if !gate.admits(keyframe) {
                if !keyed {
                    ctx.phase.set_waiting(Waiting::Keyframe);
                }
                continue;
            }
            let age = Instant::now().saturating_duration_since(frame.end_ctx().received());
            let ts = frame.timestamp();
            let info = FrameInfo {
                codec: video.codec,
                keyframe,
                params_changed: frame.has_new_parameters(),
                pts_us: (i128::from(ts.elapsed()) * 1_000_000 / i128::from(ts.clock_rate().get()))
                    as i64,
                recv_mono_ns: ctx.clock.mono_ns().saturating_sub(age.as_nanos() as u64),
                recv_wall_us: ctx.clock.wall_us() - age.as_micros() as i64,
                epoch: ctx.epoch,
            };
            gate.push(ctx.sink, id, &info, &[prefix, data]);
        }
        Err(SourceError::Stream(format!(
            "camera at {} ended the session",
            self.endpoint()
        )))
    }

    /// The error of a failed `SETUP` over `transport`: a refused transport is named, with
    /// what to set instead; anything else as [`RtspSource::human_error`] says.
    fn setup_error(&self, e: &retina::Error, transport: Transport) -> SourceError {
        match e.status_code() {
            Some(code @ (400 | 461 | 501)) => {
                let (name, instead) = match transport {
                    Transport::Udp => ("UDP", "\"auto\" or \"tcp\""),
                    Transport::Tcp | Transport::Auto => ("TCP", "\"auto\" or \"udp\""),
                };
                SourceError::Connect(format!(
                    "the camera refused RTSP over {name} (status {code} at SETUP); set the \
                     camera's transport to {instead} in the Cameras tab"
                ))
            }
            _ => self.human_error(e, Phase::Setup),
        }
    }

    /// Turns a retina error into one sentence a person can act on. Retina's own message is
    /// several lines of connection context; only its first line is kept, and the URL in it
    /// has no credentials (they were removed before the request was made).
    fn human_error(&self, e: &retina::Error, phase: Phase) -> SourceError {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("").trim();
        let path = self.url.path();
        // The TCP connect itself failed: nothing answered at the camera's address.
        let unreachable =
            e.status_code().is_none() && first.starts_with("Unable to connect to RTSP server: ");
        let msg = match e.status_code() {
            Some(404) => {
                return SourceError::Rejected(format!(
                    "the camera has no stream at {path} (404 Not Found); check the path in the \
                     camera URL in the Cameras tab (the camera's manual lists it)"
                ));
            }
            Some(401) if self.creds.is_some() => {
                return SourceError::Rejected(
                    "the camera refused the user name or password (401 Unauthorized); check \
                     them in the camera URL in the Cameras tab"
                        .to_string(),
                );
            }
            Some(401) => {
                return SourceError::Rejected(
                    "the camera wants a user name and password (401 Unauthorized); put them in \
                     the camera URL in the Cameras tab (rtsp://user:password@...)"
                        .to_string(),
                );
            }
            Some(403) => {
                return SourceError::Rejected(format!(
                    "the camera refused access to {path} (403 Forbidden); check that the user \
                     in the camera URL may view this stream"
                ));
            }
            Some(code) => format!("camera answered RTSP status {code}: {first}"),
            None => {
                if let Some(io) = first.strip_prefix("Unable to connect to RTSP server: ") {
                    let lower = io.to_ascii_lowercase();
                    if lower.contains("refused") {
                        format!(
                            "connection to {} refused (nothing listening)",
                            self.endpoint()
                        )
                    } else if lower.contains("timed out") {
                        format!("connecting to {} timed out", self.endpoint())
                    } else {
                        format!("cannot connect to {}: {io}", self.endpoint())
                    }
                } else if let Some(why) = first.strip_prefix("RTSP framing error: ") {
                    // Retina appends a hex dump after "; buffered:"; the sentence stops before it.
                    let why = why.split("; buffered").next().unwrap_or(why);
                    format!("not an RTSP server: {} sent {why}", self.endpoint())
                } else if first.starts_with("Error reading from RTSP peer") {
                    let why = first.split(": ").nth(1).unwrap_or("read error");
                    if phase == Phase::Setup {
                        format!(
                            "camera at {} closed the connection before answering ({why})",
                            self.endpoint()
                        )
                    } else {
                        format!("connection to camera at {} broke: {why}", self.endpoint())
                    }
                } else if first == "Timeout" {
                    format!("camera at {} stopped answering (timeout)", self.endpoint())
                } else {
                    format!("RTSP error from {}: {first}", self.endpoint())
                }
            }
        };
        match phase {
            _ if unreachable => SourceError::Unreachable(msg),
            Phase::Setup => SourceError::Connect(msg),
            Phase::Streaming => SourceError::Stream(msg),
        }
    }
}

impl Source for RtspSource {
    fn run<'a>(&'a self, ctx: SourceCtx<'a>) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.session(ctx))
    }

    /// A TCP connect to the camera's RTSP port, closed at once: costs the camera a SYN and a
    /// FIN, far less than a session's DESCRIBE.
    fn probe(&self) -> Option<BoxFuture<'_, bool>> {
        let host = match self.url.host()? {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => a.to_string(),
        };
        let port = self.url.port().unwrap_or(554);
        Some(Box::pin(async move {
            tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .is_ok()
        }))
    }
}

/// The video stream a session sets up, and how its frames are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Video {
    /// Index in the session description: frames of other streams (audio) are skipped.
    index: usize,
    /// [`Codec::H264`], [`Codec::H265`], or [`Codec::Jpeg`] for RTP/JPEG: what the ring's
    /// frames say.
    codec: Codec,
}

/// The first H.264 video stream, or when there is none the first H.265 one, or the first
/// RTP/JPEG one (retina accepts JPEG under media `video` and `image`): H.264 is what every
/// browser and the box itself decode; H.265 only some browsers (and the box cannot make
/// pictures of it); JPEG costs the most bandwidth. Otherwise a [`SourceError::Rejected`] that names what the camera offers.
fn video_stream(streams: &[retina::client::Stream]) -> Result<Video, SourceError> {
    let find = |codec: Codec| {
        streams.iter().position(|s| match codec {
            Codec::H264 => s.media() == "video" && s.encoding_name() == "h264",
            Codec::H265 => s.media() == "video" && s.encoding_name() == "h265",
            Codec::Jpeg => matches!(s.media(), "video" | "image") && s.encoding_name() == "jpeg",
        })
    };
    for codec in [Codec::H264, Codec::H265, Codec::Jpeg] {
        if let Some(index) = find(codec) {
            return Ok(Video { index, codec });
        }
    }
    let found: Vec<String> = streams
        .iter()
        .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
        .collect();
    Err(SourceError::Rejected(no_video_sentence(&found)))
}

/// What to tell an installer whose camera offers `found` (`media/encoding`) but neither
/// H.264 nor JPEG video.
fn no_video_sentence(found: &[String]) -> String {
    let video = found
        .iter()
        .find_map(|f| f.strip_prefix("video/"))
        .map(|enc| match enc {
            "hevc" => "H.265".to_string(),
            other => other.to_uppercase(),
        });
    match video {
        Some(codec) => format!(
            "the camera sends {codec} video, which edgecam cannot show; set this stream to \
             H.264 (or MJPEG) in the camera's own settings, or use its H.264 stream's URL"
        ),
        None => {
            let list = if found.is_empty() {
                "nothing".to_string()
            } else {
                found.join(", ")
            };
            format!(
                "the camera offers no video at this URL (it offers {list}); use the URL of \
                 its H.264 video stream"
            )
        }
    }
}

/// Decodes `%XX` escapes in a URL's user name or password (`p%40ss` is `p@ss`). Invalid
/// escapes are kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        let s = RtspSource::new("rtsp://admin:p%40ss@cam.local:8554/live", Transport::Udp)
            .expect("valid url");
        assert_eq!(s.url().as_str(), "rtsp://cam.local:8554/live");
        let c = s.creds.as_ref().expect("credentials kept");
        assert_eq!(c.username, "admin");
        assert_eq!(c.password, "p@ss");
        assert_eq!(s.transport(), Transport::Udp);
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn url_without_credentials_has_none() {
        let s = RtspSource::new("rtsp://cam/live", Transport::Tcp).expect("valid url");
        assert!(s.creds.is_none());
        assert_eq!(s.endpoint(), "cam:554");
    }

    #[test]
    fn bad_urls_are_config_errors_without_the_password() {
        for u in ["http://u:hunter2@cam/x", "not a url", "rtsp://u:hunter2@/x"] {
            match RtspSource::new(u, Transport::Tcp) {
                Err(SourceError::Config(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
                other => panic!("{u}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn from_config_reads_url_and_transport_and_needs_a_url() {
        let mut cfg: StreamConfig = toml::from_str(
            "id = \"gate\"\nkind = \"rtsp\"\nurl = \"rtsp://u:pw@cam/s\"\ntransport = \"udp\"",
        )
        .expect("valid stream config");
        let s = RtspSource::from_config(&cfg).expect("valid");
        assert_eq!(s.url().as_str(), "rtsp://cam/s");
        assert_eq!(s.transport(), Transport::Udp);
        cfg.url = None;
        match RtspSource::from_config(&cfg) {
            Err(SourceError::Config(msg)) => {
                assert!(msg.contains("gate") && msg.contains("no url"))
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_probe_says_whether_the_port_accepts() {
        let open = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = open.local_addr().expect("addr").port();
        let s = RtspSource::new(&format!("rtsp://127.0.0.1:{port}/x"), Transport::Tcp).unwrap();
        assert!(s.probe().expect("rtsp can be probed").await);
        drop(open);
        assert!(!s.probe().expect("rtsp can be probed").await);
        let v6 = RtspSource::new(&format!("rtsp://[::1]:{port}/x"), Transport::Tcp).unwrap();
        assert!(!v6.probe().expect("an IPv6 host is probed too").await);
    }

    #[test]
    fn a_camera_without_usable_video_is_told_what_it_sends() {
        let h265 = no_video_sentence(&["video/hevc".into(), "audio/pcma".into()]);
        assert!(h265.starts_with("the camera sends H.265 video"), "{h265}");
        let mpeg4 = no_video_sentence(&["video/mp4v-es".into()]);
        assert!(
            mpeg4.starts_with("the camera sends MP4V-ES video"),
            "{mpeg4}"
        );
        let audio = no_video_sentence(&["audio/pcma".into()]);
        assert!(audio.contains("it offers audio/pcma"), "{audio}");
        assert!(no_video_sentence(&[]).contains("it offers nothing"));
    }

    #[test]
    fn learned_transports_are_kept_per_url() {
        let a = Url::parse("rtsp://127.0.0.1:1/learned-a").expect("url");
        let b = Url::parse("rtsp://127.0.0.1:1/learned-b").expect("url");
        assert_eq!(learned(&a), None);
        learn(&a, Transport::Udp);
        assert_eq!((learned(&a), learned(&b)), (Some(Transport::Udp), None));
        assert_eq!(other(Transport::Udp), Transport::Tcp);
        assert_eq!(other(Transport::Tcp), Transport::Udp);
    }

    #[test]
    fn auto_starts_with_what_worked_unless_udp_went_silent() {
        use Transport::{Auto, Tcp, Udp};
        assert_eq!(first_transport(Auto, None, false), Tcp);
        assert_eq!(first_transport(Auto, Some(Udp), false), Udp);
        assert_eq!(first_transport(Auto, Some(Udp), true), Tcp);
        assert_eq!(
            first_transport(Udp, Some(Tcp), true),
            Udp,
            "a forced transport stays"
        );
        assert_eq!(first_transport(Tcp, Some(Udp), false), Tcp);
    }

    #[test]
    fn percent_decoding_handles_edge_cases() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
