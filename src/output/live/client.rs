//! One live client's loop: follows the view, switches streams, pumps H.264 frames from its
//! own ring reader (as they are, or as fMP4 fragments on the MSE path) or pictures from the
//! shared JPEG decoder, and sends them with timeouts. A stream whose ring holds JPEG
//! pictures (an MJPEG camera, V4L2 or RTP/JPEG) goes out as those pictures on every path:
//! an `init` with `"codec":"jpeg"` and frames with the JPEG wire codec, which the page paints
//! whether it chose WebCodecs, MSE or JPEG.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use serde::Serialize;

use super::order::OrderWatch;
use super::{End, LiveContext, Path};
use crate::codec::fmp4::{Fragmenter, init_segment_for};
use crate::codec::h264::avc_codec_string;
use crate::codec::hevc::hvc_codec_string;
use crate::codec::sps;
use crate::frame::{Codec, FrameMeta};
use crate::health::beacon::BeaconGuard;
use crate::ingest::stats::{StreamState, StreamStats};
use crate::output::jpeg::JpegWatch;
use crate::output::wire::{
    FLAG_CATCH_UP, FLAG_DISCONTINUITY, FLAG_INIT, FLAG_KEYFRAME, FrameHeader, WireCodec,
    encode_frame, encode_header,
};
use crate::output::{Pick, PictureStream};
use crate::ring::{FrameRing, Reader, Start};
use crate::select::{ActiveView, AlarmStatus};

/// How often a client re-checks that its stream's ring is still the one running (a stream
/// restarted by a config change gets a fresh ring).
const RING_RECHECK: Duration = Duration::from_secs(1);
/// Most frames sent in one go before the view is re-checked.
const BURST_LIMIT: usize = 64;

/// The `init` and `view` text messages.
#[derive(Debug, Serialize)]
struct ViewMsg<'a> {
    /// `init` or `view`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Stream number the following frames carry.
    sid: u32,
    /// The active stream id.
    stream: Option<&'a str>,
    /// Its display name.
    name: Option<&'a str>,
    /// Why it is active.
    reason: &'a str,
    /// WebCodecs codec string or `jpeg`; `None` when the stream has no video yet.
    codec: Option<&'a str>,
    /// Picture width, when known.
    width: Option<u32>,
    /// Picture height, when known.
    height: Option<u32>,
    /// MSE path: the MIME type of the init segment that follows, for `addSourceBuffer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    mime: Option<&'a str>,
    /// Every alarm's state, for the banner.
    alarms: &'a [AlarmStatus],
    /// Whether the stream delivers video, and if not why; `None` on a `view` message.
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<&'a VideoState>,
}

/// Whether the stream shown delivers video: sent in every `init` and, as a `video` message,
/// whenever it changes, so the page can say "No video from <name>: <why>" instead of leaving
/// the previous picture up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct VideoState {
    /// The stream is live and its frames reach this client.
    live: bool,
    /// The supervisor's state (`live`, `connecting`, `backoff`, `stalled`, `failed`), or
    /// `not running` for a stream that is disabled or not started.
    state: String,
    /// Why the last attempt ended, as the status API says it.
    error: Option<String>,
    /// Seconds since the stream's last frame; `None` when it has had none since the start.
    down_s: Option<u64>,
}

/// The `video` text message.
#[derive(Debug, Serialize)]
struct VideoMsg<'a> {
    /// `video`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Stream number of the `init` this belongs to.
    sid: u32,
    /// The new state.
    #[serde(flatten)]
    video: &'a VideoState,
}

impl VideoState {
    /// The state of a stream that does not run.
    fn not_running() -> VideoState {
        VideoState {
            live: false,
            state: "not running".to_string(),
            error: None,
            down_s: None,
        }
    }

    /// The state of a running stream, at monotonic time `now_ns`. `has_video` says whether
    /// this client gets its frames (a live stream whose ring has no keyframe yet does not).
    fn of(stats: &StreamStats, has_video: bool, now_ns: u64) -> VideoState {
        let state = stats.state();
        let last = stats.last_frame_mono_ns();
        let live = state == StreamState::Live && has_video;
        VideoState {
            live,
            state: state.to_string(),
            error: if live { None } else { stats.last_error() },
            down_s: (!live && last != 0).then(|| now_ns.saturating_sub(last) / 1_000_000_000),
        }
    }

    /// True when `other` says something new (the seconds count on by themselves).
    fn differs(&self, other: &VideoState) -> bool {
        self.live != other.live || self.state != other.state || self.error != other.error
    }
}

/// The stream a client is currently watching.
struct Current {
    /// Display name.
    name: String,
    /// The ring (kept to notice a restarted stream).
    ring: Arc<FrameRing>,
    /// Configured size, when known.
    size: (Option<u32>, Option<u32>),
    /// H.264 path: this client's position in the ring.
    reader: Option<Reader>,
    /// JPEG path: the shared decoder's pictures.
    jpeg: Option<JpegWatch>,
    /// The `init` for this stream has been sent.
    init_sent: bool,
    /// JPEG path: sequence number of the last picture sent.
    last_jpeg: Option<u64>,
    /// Frames must be skipped until the next keyframe (start, or after a lag).
    need_key: bool,
    /// The next frame sent follows skipped frames.
    discontinuity: bool,
    /// Its supervisor's state, for the `video` messages.
    stats: Arc<StreamStats>,
    /// The video state this client was last told.
    reported: VideoState,
    /// JPEG path: pictures of frames older than this were in the ring before the switch
    /// while the stream was down; they are stale and not shown.
    fresh_from: u64,
    /// MSE path: a keyframe of this stream could not make an init segment; logged once.
    mse_refused: bool,
    /// Whether this stream reorders, from the frames sent so far.
    order: OrderWatch,
    /// Whether the last keyframe sent got the low-delay SPS; `None` before the first. When
    /// it changes, the MSE path needs a new init segment.
    low_delay: Option<bool>,
    /// H.264 and MSE paths: the last `init` sent said `jpeg` (the ring holds JPEG pictures);
    /// an H.264 frame after it (the camera was switched to H.264) needs a new `init`.
    jpeg_shown: bool,
    /// This client was told it gets no video of this stream (an H.265 stream for a browser
    /// that cannot decode it, or on the JPEG path); the sentence, so it is said once and the
    /// `video` updates do not overwrite it. Cleared when a frame it can show arrives.
    refused: Option<&'static str>,
}

/// One connected client.
pub(super) struct Client {
    /// What the loop needs from the server: view, streams, JPEG hub, metrics, clock.
    ctx: LiveContext,
    /// The socket.
    ws: WebSocket,
    /// H.264, MSE or JPEG.
    path: Path,
    /// The client decodes H.265 on its path (its hello offered `hvc1` for WebCodecs or
    /// `mse-hvc1` for MSE): an H.265 stream goes to it as it is, else it is told why not.
    hevc: bool,
    /// Stream number, bumped on every switch.
    sid: u32,
    /// The last view acted on.
    view: ActiveView,
    /// What is shown now.
    current: Option<Current>,
    /// Frames this client skipped.
    skipped: u64,
    /// Payload buffer reused for every frame read.
    buf: Vec<u8>,
    /// This loop's watchdog slot, beaten every iteration and every send.
    beacon: Option<BeaconGuard>,
    /// Catch-up frames were queued on the socket without a flush (a burst goes out in one
    /// write, and the browser gets it at once).
    unflushed: bool,
    /// MSE path: the session's one decode timeline, continued across switches so the page
    /// keeps one SourceBuffer.
    fragmenter: Fragmenter,
    /// A keyframe with its SPS rewritten for low delay ([`low_delay_keyframe`]); swapped
    /// with `buf` when the rewrite applies.
    sps_buf: Vec<u8>,
}

impl Client {
    /// A client on `path` that has said hello, not yet showing anything.
    pub(super) fn new(
        ctx: LiveContext,
        ws: WebSocket,
        path: Path,
        hevc: bool,
        beacon: Option<BeaconGuard>,
    ) -> Client {
        Client {
            ctx,
            ws,
            path,
            hevc,
            sid: 0,
            view: ActiveView::default(),
            current: None,
            skipped: 0,
            buf: Vec::with_capacity(256 * 1024),
            beacon,
            unflushed: false,
            fragmenter: Fragmenter::new(),
            sps_buf: Vec::new(),
        }
    }

    /// The socket, for the goodbye.
    pub(super) fn socket(&mut self) -> &mut WebSocket {
        &mut self.ws
    }

    /// Serves the client until it leaves, stops reading, or the server stops.
    pub(super) async fn run(&mut self) -> End {
        let mut view_rx = self.ctx.view.clone();
        let mut shutdown = self.ctx.shutdown.clone();
        let mut recheck = tokio::time::interval(RING_RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // `hang:live:client` (feature `fault-injection`) hangs every client loop here.
            crate::health::fault::checkpoint("live", "client").await;
            self.beat();
            // `changed()` below marks the value seen, so compare instead of asking.
            let view = {
                let v = view_rx.borrow_and_update();
                (self.sid == 0 || *v != self.view).then(|| v.clone())
            };
            if let Some(view) = view
                && let Err(e) = self.apply_view(view).await
            {
                return e;
            }
            if let Err(e) = self.pump().await {
                return e;
            }
            let (reader, jpeg) = match self.current.as_mut() {
                Some(c) => (c.reader.as_mut(), c.jpeg.as_mut()),
                None => (None, None),
            };
            tokio::select! {
                r = view_rx.changed() => if r.is_err() { return End::Shutdown },
                _ = shutdown.changed() => return End::Shutdown,
                msg = self.ws.recv() => match msg {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Closed,
                    Some(Ok(_)) => {}
                },
                _ = wait_reader(reader) => {}
                _ = wait_jpeg(jpeg) => {}
                _ = recheck.tick() => {
                    if let Err(e) = self.recheck_ring().await {
                        return e;
                    }
                }
            }
        }
    }

    /// Acts on a new view: a switch when the stream (or its ring) changed, otherwise a `view`
    /// message when the reason or alarms changed.
    async fn apply_view(&mut self, view: ActiveView) -> Result<(), End> {
        let stream_changed = self.sid == 0 || view.stream != self.view.stream;
        let changed = view.reason != self.view.reason || view.alarms != self.view.alarms;
        self.view = view;
        if stream_changed {
            return self.switch().await;
        }
        // Before a live stream's `init` (sent with its first frame, at once) there is nothing
        // to update; a stream without video has had its `init` already.
        if changed
            && self
                .current
                .as_ref()
                .is_none_or(|c| c.init_sent || !c.reported.live)
        {
            let msg = self.view_msg("view", None, (None, None), None);
            self.send(msg).await?;
        }
        Ok(())
    }

    /// Starts showing the view's stream: the current GOP from its latest keyframe.
    ///
    /// Every switch tells the page at once: a stream with video gets its `init` with the
    /// first keyframe (at once, from the ring); one without (down, not running, no keyframe
    /// yet) gets an `init` without a codec and the reason, so the page never leaves the
    /// previous camera's picture under the new name. A stream that is down starts reading at
    /// the next new frame: the frames still in its ring are from before it went down.
    async fn switch(&mut self) -> Result<(), End> {
        self.sid = self.sid.wrapping_add(1);
        self.current = None;
        self.fragmenter.restart();
        let Some(id) = self.view.stream.clone() else {
            let msg = self.view_msg("init", None, (None, None), None);
            return self.send(msg).await;
        };
        let Some(PictureStream { key, stream: found }) = self.find(&id) else {
            // Not running (yet): tell the page, and look again on the next recheck.
            let name = self.ctx.streams.display_name(&id);
            let video = VideoState::not_running();
            let msg = self.init_without_video(name.as_deref(), &video);
            return self.send(msg).await;
        };
        let has_key = found.ring.latest_keyframe().is_some();
        let video = VideoState::of(&found.stats, has_key, self.ctx.clock.mono_ns());
        let start = if video.live {
            Start::LatestKeyframe
        } else {
            Start::Newest
        };
        let fresh_from = if video.live { 0 } else { found.ring.head() };
        let (reader, jpeg) = match self.path {
            Path::H264 | Path::Mse => (Some(found.ring.reader(start)), None),
            Path::Jpeg => (None, Some(self.ctx.jpeg.subscribe(&key, &found.ring))),
        };
        let live = video.live;
        self.current = Some(Current {
            name: found.name,
            ring: found.ring,
            size: (found.width, found.height),
            reader,
            jpeg,
            init_sent: false,
            last_jpeg: None,
            need_key: true,
            discontinuity: false,
            stats: found.stats,
            reported: video.clone(),
            fresh_from,
            mse_refused: false,
            order: OrderWatch::default(),
            low_delay: None,
            jpeg_shown: false,
            refused: None,
        });
        if !live {
            let name = self.current.as_ref().map(|c| c.name.clone());
            let msg = self.init_without_video(name.as_deref(), &video);
            self.send(msg).await?;
        }
        Ok(())
    }

    /// Tells the client once that it gets no video of the current stream, and why: an
    /// `init` without a codec whose `video` has state `unsupported` and `why` as its error.
    async fn refuse(&mut self, why: &'static str) -> Result<(), End> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        cur.refused = Some(why);
        cur.init_sent = false;
        let video = VideoState {
            live: false,
            state: "unsupported".to_string(),
            error: Some(why.to_string()),
            down_s: None,
        };
        cur.reported = video.clone();
        let stream = self.view.stream.as_deref().unwrap_or("");
        tracing::info!(stream = %stream, path = ?self.path, "live client cannot show this stream's codec");
        let name = self.current.as_ref().map(|c| c.name.clone());
        let msg = self.init_without_video(name.as_deref(), &video);
        self.send(msg).await
    }

    /// An `init` without a codec: the stream has no video for this client (yet).
    fn init_without_video(&self, name: Option<&str>, video: &VideoState) -> Message {
        let msg = ViewMsg {
            kind: "init",
            sid: self.sid,
            stream: self.view.stream.as_deref(),
            name,
            reason: &self.view.reason,
            codec: None,
            width: None,
            height: None,
            mime: None,
            alarms: &self.view.alarms,
            video: Some(video),
        };
        text_msg(&msg)
    }

    /// Sends a `video` message when the shown stream's state changed since the page was
    /// last told (it went down, came back, or failed for another reason).
    async fn report_video(&mut self) -> Result<(), End> {
        let now = self.ctx.clock.mono_ns();
        let path = self.path;
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if cur.refused.is_some() {
            return Ok(());
        }
        if path == Path::Jpeg && cur.stats.codec().is_some_and(|c| !c.decodable_here()) {
            return self.refuse(crate::output::H265_NO_PICTURES).await;
        }
        // Before its `init` with a codec the client has no frames of this stream.
        let video = VideoState::of(&cur.stats, cur.init_sent, now);
        if !video.differs(&cur.reported) {
            return Ok(());
        }
        cur.reported = video.clone();
        let msg = VideoMsg {
            kind: "video",
            sid: self.sid,
            video: &video,
        };
        self.send(text_msg(&msg)).await
    }

    /// The stream this client shows of camera `id`: the main stream on the H.264 and MSE
    /// paths (the big view), except that a client which cannot decode the main stream's
    /// H.265 gets the camera's H.264 sub stream while that is live; on the JPEG path the
    /// stream pictures decode (the sub stream while it is live). A lost sub stream falls back
    /// to the main one ([`Self::recheck_ring`] sees the ring change).
    fn find(&self, id: &str) -> Option<PictureStream> {
        if self.path == Path::Jpeg {
            return self.ctx.streams.picture_stream(id, Pick::Pictures);
        }
        let main = self.ctx.streams.live_stream(id)?;
        if !self.hevc
            && main.stats.codec() == Some(Codec::H265)
            && let Some(sub) = self.ctx.streams.picture_stream(id, Pick::Pictures)
            && !Arc::ptr_eq(&sub.stream.ring, &main.ring)
            && sub.stream.stats.codec().is_some_and(|c| c != Codec::H265)
        {
            return Some(sub);
        }
        Some(PictureStream {
            key: id.to_string(),
            stream: main,
        })
    }

    /// Switches again when the stream shown has no ring yet or a new one (on the JPEG path
    /// also when pictures move between a camera's sub and main stream).
    async fn recheck_ring(&mut self) -> Result<(), End> {
        let Some(id) = self.view.stream.clone() else {
            return Ok(());
        };
        let found = self.find(&id);
        let stale = match (&self.current, &found) {
            (Some(c), Some(f)) => !Arc::ptr_eq(&c.ring, &f.stream.ring),
            (None, Some(_)) => true,
            (Some(_), None) => true,
            (None, None) => false,
        };
        if stale {
            return self.switch().await;
        }
        self.report_video().await
    }

    /// Sends whatever is ready for the current stream.
    async fn pump(&mut self) -> Result<(), End> {
        match self.path {
            Path::H264 | Path::Mse => self.pump_h264().await,
            Path::Jpeg => self.pump_jpeg().await,
        }
    }

    /// Sends the H.264 frames that are ready; a catch-up burst is queued and flushed once.
    async fn pump_h264(&mut self) -> Result<(), End> {
        let sent = self.pump_h264_frames().await;
        if std::mem::take(&mut self.unflushed) {
            let timeout = self.ctx.options.send_timeout;
            match tokio::time::timeout(timeout, futures::SinkExt::flush(&mut self.ws)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(End::Closed),
                Err(_) => return Err(End::Stuck),
            }
        }
        sent
    }

    async fn pump_h264_frames(&mut self) -> Result<(), End> {
        let queue = self.ctx.options.queue_frames;
        for _ in 0..BURST_LIMIT {
            let Some(cur) = self.current.as_mut() else {
                return Ok(());
            };
            let Some(reader) = cur.reader.as_mut() else {
                return Ok(());
            };
            // Bounded queue: too far behind, skip to the newest keyframe.
            let head = cur.ring.head();
            if head.saturating_sub(reader.cursor()) > queue
                && let Some(k) = cur.ring.latest_keyframe()
                && k > reader.cursor()
            {
                let skipped = k - reader.cursor();
                reader.jump_to_latest_keyframe();
                self.skipped += skipped;
                self.ctx.metrics.skipped_frames.inc_by(skipped);
                cur.discontinuity = true;
            }
            let meta = match reader.next_into(&mut self.buf) {
                Ok(Some(meta)) => meta,
                Ok(None) => return Ok(()),
                Err(lag) => {
                    self.skipped += lag.skipped;
                    self.ctx.metrics.skipped_frames.inc_by(lag.skipped);
                    cur.discontinuity = true;
                    cur.need_key = true;
                    continue;
                }
            };
            if cur.need_key {
                if !meta.info.keyframe {
                    // After a lag these are frames lost to this client; at the start of a
                    // stream without a keyframe yet they were never part of its view.
                    if cur.discontinuity {
                        self.skipped += 1;
                        self.ctx.metrics.skipped_frames.inc();
                    }
                    continue;
                }
                cur.need_key = false;
            }
            if meta.info.codec == Codec::Jpeg {
                self.send_ring_jpeg(&meta).await?;
                continue;
            }
            if meta.info.codec == Codec::H265 && !self.hevc {
                if cur.refused.is_none() {
                    self.refuse(crate::output::H265_NOT_IN_BROWSER).await?;
                }
                continue;
            }
            if cur.refused.take().is_some() {
                cur.init_sent = false;
            }
            if std::mem::take(&mut cur.jpeg_shown) {
                cur.init_sent = false;
            }
            let h265 = meta.info.codec == Codec::H265;
            let in_order = cur.order.observe(meta.info.pts_us, meta.info.keyframe);
            let mut sps_changed = false;
            if meta.info.keyframe && !h265 {
                let low = low_delay_keyframe(&mut self.buf, in_order, &mut self.sps_buf);
                sps_changed = cur.low_delay.replace(low).is_some_and(|was| was != low);
            }
            if self.path == Path::Mse {
                // An init segment before the first frame and whenever SPS/PPS change (also
                // by the low-delay rewrite).
                if (!cur.init_sent || meta.info.params_changed || sps_changed)
                    && !self.send_mse_init(&meta).await?
                {
                    if let Some(cur) = self.current.as_mut() {
                        cur.need_key = true;
                    }
                    continue;
                }
            } else if !cur.init_sent || (h265 && meta.info.params_changed) {
                let codec = if h265 {
                    hvc_codec_string(&self.buf)
                } else {
                    avc_codec_string(&self.buf)
                };
                let size = cur.size;
                self.send_init(codec.as_deref(), size, None).await?;
            }
            let Some(cur) = self.current.as_mut() else {
                return Ok(());
            };
            let mut flags = 0;
            if std::mem::take(&mut cur.discontinuity) {
                flags |= FLAG_DISCONTINUITY;
            }
            if meta.seq + 1 < cur.ring.head() {
                flags |= FLAG_CATCH_UP;
            }
            self.send_frame(&meta, flags).await?;
        }
        Ok(())
    }

    async fn pump_jpeg(&mut self) -> Result<(), End> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        let Some(rx) = cur.jpeg.as_mut() else {
            return Ok(());
        };
        let Some(pic) = rx.borrow_and_update().clone() else {
            return Ok(());
        };
        if cur.last_jpeg == Some(pic.meta.seq) || pic.meta.seq < cur.fresh_from {
            return Ok(());
        }
        cur.last_jpeg = Some(pic.meta.seq);
        if !cur.init_sent {
            self.send_init(Some("jpeg"), (Some(pic.width), Some(pic.height)), None)
                .await?;
        }
        let header = FrameHeader {
            codec: WireCodec::Jpeg,
            flags: FLAG_KEYFRAME,
            sid: self.sid,
            seq: pic.meta.seq,
            recv_wall_us: pic.meta.info.recv_wall_us,
            skipped: self.skipped as u32,
            pts_us: pic.meta.info.pts_us,
        };
        let mut msg = Vec::new();
        encode_frame(&header, &pic.data, &mut msg);
        self.observe_latency(&pic.meta);
        self.send(Message::Binary(msg.into())).await
    }

    /// H.264 and MSE paths: the JPEG picture in `self.buf` (every JPEG frame is a keyframe)
    /// as it is, after an `init` saying `jpeg` with the picture's size.
    async fn send_ring_jpeg(&mut self, meta: &FrameMeta) -> Result<(), End> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        let mut flags = 0;
        if std::mem::take(&mut cur.discontinuity) {
            flags |= FLAG_DISCONTINUITY;
        }
        if !cur.init_sent || !cur.jpeg_shown || meta.info.params_changed {
            cur.jpeg_shown = true;
            let size = match crate::codec::jfif::picture_size(&self.buf) {
                Some((w, h)) => (Some(w), Some(h)),
                None => cur.size,
            };
            self.send_init(Some("jpeg"), size, None).await?;
        }
        let header = FrameHeader::for_frame(meta, self.sid, flags, self.skipped as u32);
        let mut msg = Vec::new();
        encode_frame(&header, &self.buf, &mut msg);
        self.observe_latency(meta);
        self.unflushed = false;
        self.send(Message::Binary(msg.into())).await
    }

    /// Sends the frame in `self.buf` with its header. A catch-up frame is only queued: the
    /// newest frame of the burst (or [`Client::pump_h264`]) flushes them all in one write.
    async fn send_frame(&mut self, meta: &FrameMeta, flags: u8) -> Result<(), End> {
        let mut header = FrameHeader::for_frame(meta, self.sid, flags, self.skipped as u32);
        // One allocation per message: the socket takes ownership of its bytes.
        let mut msg = Vec::new();
        if self.path == Path::Mse {
            if flags & FLAG_DISCONTINUITY != 0 {
                // Frames were skipped: continue the timeline without a hole the player would
                // stall at.
                self.fragmenter.restart();
            }
            header.codec = WireCodec::Fmp4;
            // The fragment is written right after the header, in the message itself.
            encode_header(&header, self.buf.len() + 128, &mut msg);
            let (au, pts, key) = (&self.buf, meta.info.pts_us, meta.info.keyframe);
            let catch_up = flags & FLAG_CATCH_UP != 0;
            self.fragmenter.set_hevc(meta.info.codec == Codec::H265);
            self.fragmenter.append(au, pts, key, catch_up, &mut msg);
        } else {
            encode_frame(&header, &self.buf, &mut msg);
        }
        self.observe_latency(meta);
        let msg = Message::Binary(msg.into());
        if flags & FLAG_CATCH_UP == 0 {
            self.unflushed = false;
            return self.send(msg).await;
        }
        let timeout = self.ctx.options.send_timeout;
        match tokio::time::timeout(timeout, futures::SinkExt::feed(&mut self.ws, msg)).await {
            Ok(Ok(())) => {
                self.unflushed = true;
                Ok(())
            }
            Ok(Err(_)) => Err(End::Closed),
            Err(_) => Err(End::Stuck),
        }
    }

    fn observe_latency(&self, meta: &FrameMeta) {
        let now = self.ctx.clock.wall_us();
        let secs = (now - meta.info.recv_wall_us).max(0) as f64 / 1e6;
        self.ctx.metrics.ingest_to_send.observe(secs);
        self.ctx.metrics.sent_frames.inc();
    }

    /// Sends the `init` that starts the current stream's frames: its video is live now.
    async fn send_init(
        &mut self,
        codec: Option<&str>,
        size: (Option<u32>, Option<u32>),
        mime: Option<&str>,
    ) -> Result<(), End> {
        let now = self.ctx.clock.mono_ns();
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        cur.init_sent = true;
        cur.reported = VideoState::of(&cur.stats, true, now);
        let video = cur.reported.clone();
        let mut msg = self.view_fields("init", codec, size, Some(&video));
        msg.mime = mime;
        let msg = text_msg(&msg);
        self.send(msg).await
    }

    /// MSE path: the `init` text and the init segment for the keyframe in `self.buf`.
    /// `false` when the keyframe cannot make one (no SPS/PPS): it is skipped, and the client
    /// waits for the next keyframe.
    async fn send_mse_init(&mut self, meta: &FrameMeta) -> Result<bool, End> {
        let seg = match init_segment_for(meta.info.codec, &self.buf) {
            Ok(seg) => seg,
            Err(e) => {
                if let Some(cur) = self.current.as_mut()
                    && !std::mem::replace(&mut cur.mse_refused, true)
                {
                    let stream = self.view.stream.as_deref().unwrap_or("");
                    tracing::warn!(stream = %stream, error = %e, "no MSE init segment from this keyframe; waiting for the next");
                }
                return Ok(false);
            }
        };
        let mime = seg.mime();
        let size = (Some(seg.width), Some(seg.height));
        self.send_init(Some(&seg.codec), size, Some(&mime)).await?;
        let header = FrameHeader {
            codec: WireCodec::Fmp4,
            flags: FLAG_INIT,
            sid: self.sid,
            seq: meta.seq,
            recv_wall_us: meta.info.recv_wall_us,
            skipped: self.skipped as u32,
            pts_us: meta.info.pts_us,
        };
        let mut msg = Vec::new();
        encode_frame(&header, &seg.bytes, &mut msg);
        self.send(Message::Binary(msg.into())).await?;
        Ok(true)
    }

    fn view_msg(
        &self,
        kind: &'static str,
        codec: Option<&str>,
        size: (Option<u32>, Option<u32>),
        video: Option<&VideoState>,
    ) -> Message {
        text_msg(&self.view_fields(kind, codec, size, video))
    }

    /// An `init` or `view` message for the current stream.
    fn view_fields<'a>(
        &'a self,
        kind: &'static str,
        codec: Option<&'a str>,
        size: (Option<u32>, Option<u32>),
        video: Option<&'a VideoState>,
    ) -> ViewMsg<'a> {
        ViewMsg {
            kind,
            sid: self.sid,
            stream: self.view.stream.as_deref(),
            name: self.current.as_ref().map(|c| c.name.as_str()),
            reason: &self.view.reason,
            codec,
            width: size.0,
            height: size.1,
            mime: None,
            alarms: &self.view.alarms,
            video,
        }
    }

    /// Sends one message; a client that does not take it within the timeout is dropped.
    async fn send(&mut self, msg: Message) -> Result<(), End> {
        let timeout = self.ctx.options.send_timeout;
        match tokio::time::timeout(timeout, self.ws.send(msg)).await {
            Ok(Ok(())) => {
                self.beat();
                Ok(())
            }
            Ok(Err(_)) => Err(End::Closed),
            Err(_) => Err(End::Stuck),
        }
    }
}

impl Client {
    /// Tells the watchdog this loop is alive.
    fn beat(&self) {
        if let Some(b) = &self.beacon {
            b.beat(self.ctx.clock.mono_ns());
        }
    }
}

/// Gives the keyframe in `buf` an SPS that says "no reordering" where its SPS rules
/// reordering out, or `seen_in_order` says the stream does not reorder, but the SPS does not
/// say so (see [`crate::codec::sps`]): hardware decoders then output every picture at once
/// instead of filling their DPB first. Both paths get it: the in-band SPS of the WebCodecs
/// path and the MSE init segment's `avcC` are made from `buf`. Returns whether it did.
fn low_delay_keyframe(buf: &mut Vec<u8>, seen_in_order: bool, scratch: &mut Vec<u8>) -> bool {
    let changed = sps::low_delay_access_unit(buf, seen_in_order, scratch);
    if changed {
        std::mem::swap(buf, scratch);
    }
    changed
}

/// A JSON text message.
fn text_msg(msg: &impl Serialize) -> Message {
    let text = serde_json::to_string(msg).unwrap_or_default();
    Message::Text(Utf8Bytes::from(text))
}

/// Waits for a new frame in the reader's ring; forever when there is no reader.
async fn wait_reader(reader: Option<&mut Reader>) {
    match reader {
        Some(r) => r.wait().await,
        None => std::future::pending().await,
    }
}

/// Waits for a new JPEG picture; forever when there is no channel (or it closed).
async fn wait_jpeg(rx: Option<&mut JpegWatch>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::h264::{NAL_SPS, nal_units};

    fn sps_of(au: &[u8]) -> sps::SpsInfo {
        let nal = nal_units(au)
            .find(|n| n.nal_type() == NAL_SPS)
            .expect("sps");
        sps::parse(nal.body).expect("parse")
    }

    #[test]
    fn keyframes_go_out_with_a_low_delay_sps_on_both_paths() {
        let pps_idr: &[u8] = &[
            0, 0, 1, 0x68, 0xce, 0x38, 0x80, 0, 0, 0, 1, 0x65, 0x88, 0x84,
        ];
        let key = [&[0, 0, 0, 1][..], &sps::baseline_without_vui(), pps_idr].concat();
        assert_eq!(sps_of(&key).restriction, None);
        let (mut buf, mut scratch) = (key.clone(), Vec::new());
        assert!(low_delay_keyframe(&mut buf, false, &mut scratch));
        let r = sps_of(&buf).restriction.expect("restriction added");
        assert_eq!(
            (r.max_num_reorder_frames, r.max_dec_frame_buffering),
            (0, 1)
        );
        assert!(buf.ends_with(pps_idr), "PPS and slice untouched");
        // The MSE init segment is made from the same buffer: its avcC has the new SPS.
        let init = crate::codec::fmp4::init_segment(&buf).expect("init");
        let new_sps = nal_units(&buf).next().expect("sps").body.to_vec();
        assert!(init.bytes.windows(new_sps.len()).any(|w| w == new_sps));
        // An SPS that says so already is left as it is.
        let again = buf.clone();
        assert!(!low_delay_keyframe(&mut buf, true, &mut scratch));
        assert_eq!(buf, again);
    }
}
