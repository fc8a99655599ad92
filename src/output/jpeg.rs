//! JPEG output: one shared decoder per stream that has JPEG consumers, and the encoder.
//!
//! [`JpegHub::subscribe`] starts (or joins) a decoder thread for a stream. The thread reads
//! the stream's ring from its latest keyframe, decodes every frame with openh264 (a P-frame
//! needs its predecessors) and encodes a JPEG only of the newest frame, so a burst after a
//! switch or a slow box costs decoding but sends one picture. Pictures are published on a
//! [`watch`] channel: every consumer (live JPEG clients, MJPEG, snapshots) sees the newest
//! one and a slow consumer simply misses intermediate ones. When the last receiver is gone the
//! thread ends, so nothing is decoded while nobody watches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType};
use tokio::sync::watch;

use crate::codec::{H264Decoder, I420Frame};
use crate::frame::{Codec, FrameMeta};
use crate::ring::{FrameRing, Start};

/// How long the decoder thread waits for a frame before rechecking that it is still wanted.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// A decoder this many frames behind the writer jumps to the latest keyframe.
const MAX_BEHIND: u64 = 100;

/// JPEG settings (`web.jpeg_quality`, `web.jpeg_downscale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegSettings {
    /// Encoder quality, 1-100.
    pub quality: u8,
    /// Integer downscale factor, 1 = full size.
    pub downscale: u8,
}

impl Default for JpegSettings {
    fn default() -> Self {
        JpegSettings {
            quality: 75,
            downscale: 1,
        }
    }
}

/// One encoded picture.
#[derive(Debug, Clone)]
pub struct JpegFrame {
    /// The stream it shows.
    pub stream: String,
    /// The ring frame it was decoded from (the header describes that frame).
    pub meta: FrameMeta,
    /// Picture width after downscaling.
    pub width: u32,
    /// Picture height after downscaling.
    pub height: u32,
    /// The JPEG file.
    pub data: Bytes,
}

/// The newest picture of a stream; `None` until the first one is encoded.
pub type JpegWatch = watch::Receiver<Option<Arc<JpegFrame>>>;

/// A running decoder: its channel and the ring it reads (a restarted stream has a new ring).
struct Entry {
    /// Publishes pictures; `subscribe` hands out receivers.
    tx: Arc<watch::Sender<Option<Arc<JpegFrame>>>>,
    /// The ring the thread reads.
    ring: Arc<FrameRing>,
}

/// The shared decoders, by stream id.
#[derive(Clone, Default)]
pub struct JpegHub {
    /// Running decoders. The thread removes its entry (under this lock) when it ends.
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    /// Settings for decoders started from now on.
    settings: Arc<Mutex<JpegSettings>>,
}

impl std::fmt::Debug for JpegHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JpegHub")
            .field("running", &self.running())
            .finish()
    }
}

impl JpegHub {
    /// A hub encoding with `settings`.
    pub fn new(settings: JpegSettings) -> JpegHub {
        let hub = JpegHub::default();
        hub.set_settings(settings);
        hub
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes quality and downscale (running decoders pick them up on their next picture).
    pub fn set_settings(&self, s: JpegSettings) {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Streams with a running decoder.
    pub fn running(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().keys().cloned().collect();
        v.sort();
        v
    }

    /// The newest pictures of `stream` (read from `ring`), starting its decoder if needed.
    pub fn subscribe(&self, stream: &str, ring: &Arc<FrameRing>) -> JpegWatch {
        let mut entries = self.lock();
        if let Some(e) = entries.get(stream)
            && Arc::ptr_eq(&e.ring, ring)
        {
            return e.tx.subscribe();
        }
        let (tx, rx) = watch::channel(None);
        let tx = Arc::new(tx);
        entries.insert(
            stream.to_string(),
            Entry {
                tx: Arc::clone(&tx),
                ring: Arc::clone(ring),
            },
        );
        let job = Decoder {
            stream: stream.to_string(),
            ring: Arc::clone(ring),
            tx,
            hub: self.clone(),
            handle: tokio::runtime::Handle::current(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("jpeg-{stream}"))
            .spawn(move || job.run());
        if let Err(e) = spawned {
            tracing::error!(stream = %stream, error = %e, "cannot start the JPEG decoder thread");
            entries.remove(stream);
        }
        rx
    }

    fn settings(&self) -> JpegSettings {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One decoder thread's state.
struct Decoder {
    /// Stream id, for logs and the pictures.
    stream: String,
    /// The ring read.
    ring: Arc<FrameRing>,
    /// Where pictures go.
    tx: Arc<watch::Sender<Option<Arc<JpegFrame>>>>,
    /// The hub, to remove our entry when nobody watches.
    hub: JpegHub,
    /// Runtime handle, to wait on the ring from this plain thread.
    handle: tokio::runtime::Handle,
}

impl Decoder {
    fn run(self) {
        tracing::debug!(stream = %self.stream, "JPEG decoder started");
        let mut dec = match H264Decoder::new() {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!(stream = %self.stream, error = %e, "cannot create an H.264 decoder");
                None
            }
        };
        let mut reader = self.ring.reader(Start::LatestKeyframe);
        let mut buf = Vec::new();
        let mut scratch = Vec::new();
        let mut synced = false;
        loop {
            if self.tx.receiver_count() == 0 && self.stop_if_unwatched() {
                break;
            }
            if self.ring.head().saturating_sub(reader.cursor()) > MAX_BEHIND
                && reader.jump_to_latest_keyframe()
            {
                synced = false;
            }
            let meta = match reader.next_into(&mut buf) {
                Ok(Some(meta)) => meta,
                Ok(None) => {
                    let _ = self
                        .handle
                        .block_on(async { tokio::time::timeout(IDLE_POLL, reader.wait()).await });
                    continue;
                }
                Err(_lagged) => {
                    synced = false;
                    continue;
                }
            };
            let newest = meta.seq + 1 >= self.ring.head();
            let settings = self.hub.settings();
            match meta.info.codec {
                Codec::Jpeg => {
                    if newest {
                        self.publish(meta, 0, 0, Bytes::copy_from_slice(&buf));
                    }
                }
                Codec::H264 => {
                    let Some(d) = dec.as_mut() else { continue };
                    if !synced {
                        if !meta.info.keyframe {
                            continue;
                        }
                        if let Err(e) = d.reset() {
                            tracing::warn!(stream = %self.stream, error = %e, "decoder reset failed");
                            continue;
                        }
                        synced = true;
                    }
                    match d.decode(&buf) {
                        Ok(Some(pic)) if newest => match encode_i420(pic, settings, &mut scratch) {
                            Ok((w, h)) => {
                                self.publish(meta, w, h, Bytes::copy_from_slice(&scratch))
                            }
                            Err(e) => {
                                tracing::warn!(stream = %self.stream, error = %e, "JPEG encoding failed")
                            }
                        },
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(stream = %self.stream, error = %e, "decode failed; waiting for a keyframe");
                            synced = false;
                        }
                    }
                }
            }
        }
        tracing::debug!(stream = %self.stream, "JPEG decoder stopped");
    }

    /// Removes our hub entry if still nobody watches; true when the thread should end.
    fn stop_if_unwatched(&self) -> bool {
        let mut entries = self.hub.lock();
        if self.tx.receiver_count() > 0 {
            return false;
        }
        if entries
            .get(&self.stream)
            .is_some_and(|e| Arc::ptr_eq(&e.tx, &self.tx))
        {
            entries.remove(&self.stream);
        }
        true
    }

    fn publish(&self, meta: FrameMeta, width: u32, height: u32, data: Bytes) {
        self.tx.send_replace(Some(Arc::new(JpegFrame {
            stream: self.stream.clone(),
            meta,
            width,
            height,
            data,
        })));
    }
}

/// Decodes the current GOP of `ring` (latest keyframe to newest frame) and encodes the newest
/// picture: a snapshot of a stream nobody is watching. Blocking; `None` when the ring has no
/// keyframe yet or decoding fails.
pub fn snapshot(ring: &Arc<FrameRing>, settings: JpegSettings) -> Option<JpegFrameData> {
    ring.latest_keyframe()?;
    let head = ring.head();
    let mut reader = ring.reader(Start::LatestKeyframe);
    let mut buf = Vec::new();
    let mut dec = H264Decoder::new().ok()?;
    let mut out = Vec::new();
    let mut last = None;
    while reader.cursor() < head {
        let Ok(Some(meta)) = reader.next_into(&mut buf) else {
            break;
        };
        let newest = reader.cursor() >= head;
        match meta.info.codec {
            Codec::Jpeg if newest => {
                out.clear();
                out.extend_from_slice(&buf);
                last = Some((meta, 0, 0));
            }
            Codec::Jpeg => {}
            Codec::H264 => {
                if let Ok(Some(pic)) = dec.decode(&buf)
                    && newest
                {
                    let (w, h) = encode_i420(pic, settings, &mut out).ok()?;
                    last = Some((meta, w, h));
                }
            }
        }
    }
    last.map(|(meta, width, height)| JpegFrameData {
        meta,
        width,
        height,
        data: out,
    })
}

/// A picture made by [`snapshot`].
#[derive(Debug, Clone)]
pub struct JpegFrameData {
    /// The ring frame it shows.
    pub meta: FrameMeta,
    /// Width (0 when the camera sent JPEG and it was passed through).
    pub width: u32,
    /// Height (0 likewise).
    pub height: u32,
    /// The JPEG file.
    pub data: Vec<u8>,
}

/// Encodes an I420 picture as JPEG into `out` (cleared first); returns the encoded size.
pub fn encode_i420(
    pic: &I420Frame,
    settings: JpegSettings,
    out: &mut Vec<u8>,
) -> Result<(u32, u32), jpeg_encoder::EncodingError> {
    let d = u32::from(settings.downscale.max(1));
    let (w, h) = ((pic.width / d).max(1), (pic.height / d).max(1));
    let img = ScaledI420 {
        pic,
        step: d as usize,
        width: w.min(u32::from(u16::MAX)) as u16,
        height: h.min(u32::from(u16::MAX)) as u16,
    };
    out.clear();
    let enc = Encoder::new(&mut *out, settings.quality.clamp(1, 100));
    enc.encode_image(img)?;
    Ok((u32::from(img.width), u32::from(img.height)))
}

/// An I420 picture seen by the JPEG encoder: every `step`-th pixel, converted from the video
/// range (Y 16-235, Cb/Cr 16-240) to the full range JPEG uses.
#[derive(Clone, Copy)]
struct ScaledI420<'a> {
    /// The source picture.
    pic: &'a I420Frame,
    /// Downscale factor.
    step: usize,
    /// Output width.
    width: u16,
    /// Output height.
    height: u16,
}

/// Video-range luma to full range.
fn full_y(v: u8) -> u8 {
    ((i32::from(v) - 16) * 255 / 219).clamp(0, 255) as u8
}

/// Video-range chroma to full range.
fn full_c(v: u8) -> u8 {
    ((i32::from(v) - 128) * 255 / 224 + 128).clamp(0, 255) as u8
}

impl ImageBuffer for ScaledI420<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let pw = self.pic.width as usize;
        let cw = self.pic.chroma_width();
        let sy = (usize::from(y) * self.step).min(self.pic.height as usize - 1);
        let yrow = &self.pic.y[sy * pw..][..pw];
        let urow = &self.pic.u[(sy / 2) * cw..][..cw];
        let vrow = &self.pic.v[(sy / 2) * cw..][..cw];
        for x in 0..usize::from(self.width) {
            let sx = (x * self.step).min(pw - 1);
            buffers[0].push(full_y(yrow[sx]));
            buffers[1].push(full_c(urow[sx / 2]));
            buffers[2].push(full_c(vrow[sx / 2]));
        }
    }
}
