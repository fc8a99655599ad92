//! JPEG output: one shared decoder per stream that has JPEG consumers, and the encoder.
//!
//! [`JpegHub::subscribe`] starts (or joins) a decoder task for a stream. The task reads
//! the stream's ring from its latest keyframe, decodes every frame with openh264 (a P-frame
//! needs its predecessors) and encodes a JPEG only of the newest frame, so a burst after a
//! switch or a slow box costs decoding but sends one picture. Pictures are published on a
//! [`watch`] channel: every consumer (live JPEG clients, MJPEG, snapshots) sees the newest
//! one and a slow consumer simply misses intermediate ones. When the last receiver is gone the
//! task ends, so nothing is decoded while nobody watches. Decoding runs on tokio's blocking
//! pool, one batch (every frame stored since the last batch) at a time.
//!
//! A decode error (a lost packet, a profile openh264 cannot decode) makes the decoder wait
//! for the next keyframe. The hub remembers each stream's last good picture and counts its
//! decode errors across decoder runs, so a snapshot can still show the last picture (with its
//! age) while the stream cannot be decoded, and `/api/status` and `/metrics` can say why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType};
use tokio::sync::watch;

use crate::codec::{H264Decoder, I420Frame};
use crate::frame::{Codec, FrameMeta};
use crate::ring::{FrameRing, Reader, Start};

/// How long the decoder waits for a frame before rechecking that it is still wanted.
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
    /// The ring the decoder reads.
    ring: Arc<FrameRing>,
}

/// What the hub keeps of a stream whether or not a decoder runs for it.
#[derive(Debug, Default)]
struct Memory {
    /// The newest picture any decoder (shared or one-shot) made of the stream: what a
    /// snapshot shows, with its age, when no fresh picture can be decoded.
    last_good: Option<Arc<JpegFrame>>,
    /// Frames that failed to decode, counted once each however many decoders read them.
    decode_errors: u64,
    /// The ring (by address) and sequence number of the newest frame counted in
    /// `decode_errors`, so the shared decoder and repeated snapshots do not count a frame twice.
    counted_through: Option<(usize, u64)>,
}

/// The shared decoders, by stream id.
#[derive(Clone, Default)]
pub struct JpegHub {
    /// Running decoders. A decoder removes its entry (under this lock) when it ends.
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    /// Last good pictures and decode error counts, by stream id (never removed: a stream
    /// that comes back keeps its count, as the other per-stream counters do).
    memory: Arc<Mutex<HashMap<String, Memory>>>,
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

    fn memory(&self) -> MutexGuard<'_, HashMap<String, Memory>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `pic` as the newest good picture of its stream.
    fn remember(&self, pic: &Arc<JpegFrame>) {
        let mut memory = self.memory();
        let m = memory.entry(pic.stream.clone()).or_default();
        if m.last_good
            .as_ref()
            .is_none_or(|old| !Arc::ptr_eq(old, pic))
        {
            m.last_good = Some(Arc::clone(pic));
        }
    }

    /// Counts a decode error of frame `seq` of `stream` read from `ring`, unless a decoder
    /// already counted this frame (or a newer one of the same ring).
    fn count_error(&self, stream: &str, ring: &FrameRing, seq: u64) {
        let ring_id = std::ptr::from_ref(ring) as usize;
        let mut memory = self.memory();
        let m = memory.entry(stream.to_string()).or_default();
        if m.counted_through
            .is_some_and(|(r, s)| r == ring_id && s >= seq)
        {
            return;
        }
        m.counted_through = Some((ring_id, seq));
        m.decode_errors += 1;
    }

    /// Frames of `stream` that failed to decode so far (for `/api/status` and `/metrics`).
    pub fn decode_errors(&self, stream: &str) -> u64 {
        self.memory().get(stream).map_or(0, |m| m.decode_errors)
    }

    /// Why `stream` shows no picture although it is live: its frames fail to decode and none
    /// ever did (a profile openh264 cannot decode, such as High 4:4:4). `None` otherwise.
    pub fn undecodable_reason(&self, stream: &str) -> Option<String> {
        let memory = self.memory();
        let m = memory.get(stream)?;
        (m.last_good.is_none() && m.decode_errors > 0).then(|| {
            format!(
                "its H.264 does not decode ({} frames failed)",
                m.decode_errors
            )
        })
    }

    /// The newest good picture ever made of `stream`, however old: what a snapshot falls
    /// back to while the stream yields no picture.
    pub fn last_good(&self, stream: &str) -> Option<Arc<JpegFrame>> {
        self.memory().get(stream)?.last_good.clone()
    }

    /// A snapshot of `stream`: a fresh picture decoded from the current GOP of `ring` (see
    /// [`snapshot`]), else the last good picture. Blocking; `None` when the stream never
    /// had a picture.
    pub fn snapshot_or_last(
        &self,
        stream: &str,
        ring: &Arc<FrameRing>,
        settings: JpegSettings,
        depth: Depth,
    ) -> Option<Arc<JpegFrame>> {
        let shot = snapshot(ring, settings, depth);
        if let Some(seq) = shot.error_at {
            self.count_error(stream, ring, seq);
        }
        let Some(pic) = shot.picture else {
            return self.last_good(stream);
        };
        let pic = Arc::new(JpegFrame {
            stream: stream.to_string(),
            meta: pic.meta,
            width: pic.width,
            height: pic.height,
            data: Bytes::from(pic.data),
        });
        self.remember(&pic);
        Some(pic)
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

    /// The newest picture of a running decoder of `stream` reading `ring`, if there is one:
    /// a snapshot that costs nothing.
    pub fn latest(&self, stream: &str, ring: &Arc<FrameRing>) -> Option<Arc<JpegFrame>> {
        let entries = self.lock();
        let e = entries.get(stream)?;
        if !Arc::ptr_eq(&e.ring, ring) {
            return None;
        }
        let pic = e.tx.borrow().clone()?;
        // Only while the decoder keeps up (a picture of the current GOP).
        (ring.latest_keyframe().is_some_and(|k| pic.meta.seq >= k)).then_some(pic)
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
        };
        tokio::spawn(job.run());
        rx
    }

    /// The quality and downscale pictures are encoded with now.
    pub fn settings(&self) -> JpegSettings {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One shared decoder: an async task that waits on the ring and decodes batches of frames
/// on the blocking pool.
struct Decoder {
    /// Stream id, for logs and the pictures.
    stream: String,
    /// The ring read.
    ring: Arc<FrameRing>,
    /// Where pictures go.
    tx: Arc<watch::Sender<Option<Arc<JpegFrame>>>>,
    /// The hub, to remove our entry when nobody watches.
    hub: JpegHub,
}

/// What a decoder carries from one batch to the next (moved into the blocking pool and back).
struct Work {
    /// The openh264 decoder; `None` if it could not be created.
    dec: Option<H264Decoder>,
    /// This decoder's position in the ring.
    reader: Reader,
    /// Payload buffer, reused.
    buf: Vec<u8>,
    /// JPEG output buffer, reused.
    out: Vec<u8>,
    /// The decoder has seen a keyframe since the last reset or skip.
    synced: bool,
    /// The decoder has decoded nothing yet, so it needs no reset before its first keyframe.
    fresh: bool,
}

impl Decoder {
    async fn run(self) {
        tracing::debug!(stream = %self.stream, "JPEG decoder started");
        let dec = match H264Decoder::new() {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!(stream = %self.stream, error = %e, "cannot create an H.264 decoder");
                None
            }
        };
        let mut work = Work {
            dec,
            reader: self.ring.reader(Start::LatestKeyframe),
            buf: Vec::new(),
            out: Vec::new(),
            synced: false,
            fresh: true,
        };
        loop {
            if self.tx.receiver_count() == 0 && self.stop_if_unwatched() {
                break;
            }
            tokio::select! {
                _ = work.reader.wait() => {}
                _ = self.tx.closed() => continue,
                _ = tokio::time::sleep(IDLE_POLL) => continue,
            }
            let settings = self.hub.settings();
            let stream = self.stream.clone();
            let tx = Arc::clone(&self.tx);
            let ring = Arc::clone(&self.ring);
            let hub = self.hub.clone();
            let joined = tokio::task::spawn_blocking(move || {
                work.decode_available(&ring, &hub, &stream, settings, &tx);
                work
            })
            .await;
            work = match joined {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(stream = %self.stream, error = %e, "JPEG decoder failed");
                    self.stop_if_unwatched();
                    return;
                }
            };
        }
        tracing::debug!(stream = %self.stream, "JPEG decoder stopped");
    }

    /// Removes our hub entry if still nobody watches; true when the decoder should end.
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
}

impl Work {
    /// Decodes every stored frame after the cursor and publishes the newest as JPEG.
    ///
    /// It works in rounds: a round ends at the ring's head as it was when the round began,
    /// and the frame there is published even if newer frames arrived meanwhile (they are the
    /// next round). So a burst (the GOP after a switch) shows its picture as soon as it is
    /// decoded, and a decoder slower than the camera still shows a picture every round
    /// instead of none until it catches up.
    ///
    /// The keyframe the decoder (re)starts from is published at once as well: after a switch
    /// the viewer sees the new camera after one decode (the GOP's first picture, at most a
    /// GOP old) instead of after the whole burst, which then replaces it with the newest.
    fn decode_available(
        &mut self,
        ring: &FrameRing,
        hub: &JpegHub,
        stream: &str,
        settings: JpegSettings,
        tx: &watch::Sender<Option<Arc<JpegFrame>>>,
    ) {
        let mut round_end = ring.head();
        let mut round = (std::time::Instant::now(), 0u32);
        loop {
            if ring.head().saturating_sub(self.reader.cursor()) > MAX_BEHIND
                && self.reader.jump_to_latest_keyframe()
            {
                self.synced = false;
            }
            if self.reader.cursor() >= round_end {
                round_end = ring.head();
            }
            let meta = match self.reader.next_into(&mut self.buf) {
                Ok(Some(meta)) => meta,
                Ok(None) => return,
                Err(_lagged) => {
                    self.synced = false;
                    continue;
                }
            };
            round.1 += 1;
            let newest = meta.seq + 1 >= round_end;
            let size = match meta.info.codec {
                Codec::Jpeg if newest => {
                    std::mem::swap(&mut self.out, &mut self.buf);
                    Some(crate::codec::jfif::picture_size(&self.out).unwrap_or((0, 0)))
                }
                // No H.265 decoder on the box: no pictures (see `crate::output::H265_NO_PICTURES`).
                Codec::Jpeg | Codec::H265 => None,
                Codec::H264 => self.decode_h264(&meta, newest, ring, hub, stream, settings),
            };
            if let Some((width, height)) = size {
                let pic = Arc::new(JpegFrame {
                    stream: stream.to_string(),
                    meta,
                    width,
                    height,
                    data: Bytes::copy_from_slice(&self.out),
                });
                hub.remember(&pic);
                tx.send_replace(Some(pic));
            }
            if newest {
                let us = round.0.elapsed().as_micros() as u64;
                tracing::trace!(stream = %stream, frames = round.1, us, "JPEG decoder round");
                round = (std::time::Instant::now(), 0);
            }
        }
    }

    /// Decodes the H.264 frame in `self.buf`; encodes the picture into `self.out` and returns
    /// its size when it is to be published (the newest frame of a round, or the keyframe the
    /// decoder starts from).
    ///
    /// With B-frames the decoder gives out each picture one or more frames late, and nothing
    /// for the keyframe it starts from: that keyframe's picture is then made by a one-shot
    /// decoder ([`H264Decoder::decode_flushed`]), since draining this one would break the
    /// frames after it. A decode error is counted and the decoder waits for the next
    /// keyframe; the last picture published stays the stream's last good picture.
    fn decode_h264(
        &mut self,
        meta: &FrameMeta,
        newest: bool,
        ring: &FrameRing,
        hub: &JpegHub,
        stream: &str,
        settings: JpegSettings,
    ) -> Option<(u32, u32)> {
        let d = self.dec.as_mut()?;
        let starting = !self.synced;
        if starting {
            if !meta.info.keyframe {
                return None;
            }
            if !self.fresh
                && let Err(e) = d.reset()
            {
                tracing::warn!(stream = %stream, error = %e, "decoder reset failed");
                return None;
            }
            self.synced = true;
        }
        self.fresh = false;
        let pic = match d.decode(&self.buf) {
            Ok(Some(pic)) if newest || starting => Some(pic),
            Ok(Some(_)) => return None,
            Ok(None) if starting => {
                return self.one_shot(stream, settings);
            }
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(stream = %stream, seq = meta.seq, error = %e, "decode failed; waiting for a keyframe");
                hub.count_error(stream, ring, meta.seq);
                self.synced = false;
                return None;
            }
        };
        let pic = pic?;
        encode_or_log(pic, settings, &mut self.out, stream)
    }

    /// The picture of the keyframe in `self.buf` from a decoder of its own, encoded into
    /// `self.out`.
    fn one_shot(&mut self, stream: &str, settings: JpegSettings) -> Option<(u32, u32)> {
        let mut dec = H264Decoder::new().ok()?;
        match dec.decode_flushed(&self.buf) {
            Ok(Some(pic)) => encode_or_log(pic, settings, &mut self.out, stream),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(stream = %stream, error = %e, "keyframe does not decode on its own");
                None
            }
        }
    }
}

/// [`encode_i420`], logging a failure.
fn encode_or_log(
    pic: &I420Frame,
    settings: JpegSettings,
    out: &mut Vec<u8>,
    stream: &str,
) -> Option<(u32, u32)> {
    encode_i420(pic, settings, out)
        .inspect_err(|e| tracing::warn!(stream = %stream, error = %e, "JPEG encoding failed"))
        .ok()
}

/// What [`snapshot`] made of the current GOP.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The newest picture that could be produced; `None` when there is no keyframe or not
    /// even it decodes.
    pub picture: Option<JpegFrameData>,
    /// The ring sequence number of the frame that failed to decode, if one did (decoding
    /// stops there: what follows depends on it).
    pub error_at: Option<u64>,
}

/// Decodes the current GOP of `ring` (latest keyframe to newest frame) and encodes the newest
/// picture that can be produced (or, with [`Depth::Keyframe`], only the keyframe's): a
/// snapshot of a stream nobody is watching. Blocking.
///
/// The decoder is drained at the end, so a stream with B-frames (whose pictures come out of
/// the decoder late) yields its newest picture too. A frame that fails to decode ends the
/// decode: the picture is then the last one decoded before it (at worst the keyframe's), and
/// the failing frame is reported in [`Snapshot::error_at`].
pub fn snapshot(ring: &Arc<FrameRing>, settings: JpegSettings, depth: Depth) -> Snapshot {
    let mut shot = Snapshot::default();
    if ring.latest_keyframe().is_none() {
        return shot;
    }
    let head = ring.head();
    let mut reader = ring.reader(Start::LatestKeyframe);
    let mut buf = Vec::new();
    let Ok(mut dec) = H264Decoder::new() else {
        return shot;
    };
    let mut out = Vec::new();
    // The frame the newest picture is attributed to: the last one fed before it came out.
    let mut shown = None;
    let mut fed = None;
    while reader.cursor() < head {
        let Ok(Some(meta)) = reader.next_into(&mut buf) else {
            break;
        };
        match meta.info.codec {
            Codec::Jpeg if reader.cursor() >= head || depth == Depth::Keyframe => {
                out.clear();
                out.extend_from_slice(&buf);
                shot.picture = Some(JpegFrameData {
                    meta,
                    width: 0,
                    height: 0,
                    data: out,
                });
                return shot;
            }
            Codec::Jpeg | Codec::H265 => {}
            Codec::H264 => match dec.decode(&buf) {
                Ok(Some(_)) => (shown, fed) = (Some(meta), Some(meta)),
                Ok(None) => fed = Some(meta),
                Err(e) => {
                    tracing::debug!(seq = meta.seq, error = %e, "snapshot: frame does not decode");
                    shot.error_at = Some(meta.seq);
                    break;
                }
            },
        }
        if depth == Depth::Keyframe {
            break;
        }
    }
    if shot.error_at.is_none() && matches!(dec.flush(), Ok(Some(_))) {
        shown = fed;
    }
    if let (Some(meta), Some(pic)) = (shown, dec.last_picture())
        && let Ok((width, height)) = encode_i420(pic, settings, &mut out)
    {
        shot.picture = Some(JpegFrameData {
            meta,
            width,
            height,
            data: out,
        });
    }
    shot
}

/// How far into the current GOP [`snapshot`] decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// To the newest frame: the freshest picture, at the cost of decoding up to a whole GOP
    /// (50 frames of a camera's 2 s GOP).
    Newest,
    /// The latest keyframe only: one decode, a picture up to one GOP old. What the page's
    /// thumbnails ask for (`?keyframe=1`): four 1080p thumbnails refreshed every few seconds
    /// would otherwise decode whole GOPs on the box whenever a page is open.
    Keyframe,
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
const fn full_y(v: u8) -> u8 {
    let y = (v as i32 - 16) * 255 / 219;
    if y < 0 {
        0
    } else if y > 255 {
        255
    } else {
        y as u8
    }
}

/// Video-range chroma to full range.
const fn full_c(v: u8) -> u8 {
    let x = (v as i32 - 128) * 255;
    // Rounded to nearest (integer division alone truncates towards zero).
    let c = (x + x.signum() * 112) / 224 + 128;
    if c < 0 {
        0
    } else if c > 255 {
        255
    } else {
        c as u8
    }
}

/// [`full_y`] and [`full_c`] for every value: one table lookup per sample instead of a
/// multiply and a divide (the conversion runs for every pixel of every JPEG).
const FULL_RANGE: ([u8; 256], [u8; 256]) = {
    let (mut y, mut c) = ([0u8; 256], [0u8; 256]);
    let mut i = 0;
    while i < 256 {
        y[i] = full_y(i as u8);
        c[i] = full_c(i as u8);
        i += 1;
    }
    (y, c)
};

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
        let (ly, lc) = (&FULL_RANGE.0, &FULL_RANGE.1);
        let n = usize::from(self.width);
        if self.step == 1 && n <= pw {
            buffers[0].extend(yrow[..n].iter().map(|&v| ly[usize::from(v)]));
            buffers[1].extend((0..n).map(|x| lc[usize::from(urow[x / 2])]));
            buffers[2].extend((0..n).map(|x| lc[usize::from(vrow[x / 2])]));
            return;
        }
        for x in 0..n {
            let sx = (x * self.step).min(pw - 1);
            buffers[0].push(ly[usize::from(yrow[sx])]);
            buffers[1].push(lc[usize::from(urow[sx / 2])]);
            buffers[2].push(lc[usize::from(vrow[sx / 2])]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{EncoderSettings, H264Encoder};
    use crate::frame::{FrameInfo, FrameSink};
    use crate::ring::{RingSpec, RingWriter};

    /// A ring, a 64x48 encoder (2 s GOP) and a picture to encode: what each test starts from.
    fn setup() -> (RingWriter, Arc<FrameRing>, H264Encoder, I420Frame) {
        let (writer, ring) = FrameRing::new(RingSpec {
            arena_bytes: 1 << 20,
            slots: 64,
        })
        .unwrap();
        let enc = H264Encoder::new(EncoderSettings {
            width: 64,
            height: 48,
            fps: 25,
            bitrate_kbps: 200,
            gop: 50,
        })
        .unwrap();
        (writer, ring, enc, I420Frame::new(64, 48).unwrap())
    }

    /// An H.264 frame's ring metadata.
    fn info(keyframe: bool) -> FrameInfo {
        FrameInfo {
            codec: Codec::H264,
            keyframe,
            params_changed: keyframe,
            pts_us: 0,
            recv_mono_ns: 0,
            recv_wall_us: 0,
            epoch: 1,
        }
    }

    /// A decoder starting on a GOP whose later frames cannot be decoded still shows the
    /// keyframe's picture: the first picture after a switch does not wait for the burst.
    #[test]
    fn the_starting_keyframe_is_published_before_the_burst_is_decoded() {
        let (mut writer, ring, mut enc, pic) = setup();
        let key = enc.encode(&pic, true).unwrap().unwrap();
        assert!(key.keyframe);
        let key_seq = writer.push_frame(&info(true), &[key.data]).unwrap();
        // Deltas that are not H.264 at all: the newest frame yields no picture.
        for _ in 0..5 {
            writer
                .push_frame(&info(false), &[&[0, 0, 0, 1, 0x41, 0xff, 0x00, 0x13, 0x37]])
                .unwrap();
        }
        let mut work = Work {
            dec: Some(H264Decoder::new().unwrap()),
            reader: ring.reader(Start::LatestKeyframe),
            buf: Vec::new(),
            out: Vec::new(),
            synced: false,
            fresh: true,
        };
        let (tx, rx) = watch::channel(None);
        let hub = JpegHub::default();
        work.decode_available(&ring, &hub, "cam1", JpegSettings::default(), &tx);
        let shown = rx.borrow().clone().expect("a picture was published");
        assert_eq!(shown.meta.seq, key_seq);
        assert!(shown.meta.info.keyframe);
        assert_eq!((shown.width, shown.height), (64, 48));
        assert!(shown.data.starts_with(&[0xff, 0xd8]), "a JPEG");
    }

    /// A GOP that does not decode (a keyframe whose slice is garbage) leaves the snapshot on
    /// the last good picture, and its failing frame is counted once however often it is read.
    #[test]
    fn a_gop_that_does_not_decode_keeps_the_last_good_picture_and_counts_one_error() {
        let (mut writer, ring, mut enc, pic) = setup();
        let key = enc.encode(&pic, true).unwrap().unwrap().data.to_vec();
        writer.push_frame(&info(true), &[&key]).unwrap();
        let hub = JpegHub::default();
        let good = hub
            .snapshot_or_last("cam1", &ring, JpegSettings::default(), Depth::Newest)
            .expect("a picture of the good GOP");
        assert_eq!((good.width, good.height), (64, 48));
        assert_eq!(hub.decode_errors("cam1"), 0);

        // The same parameter sets, then an IDR slice of noise.
        let slice_at = key
            .windows(5)
            .position(|w| w[..4] == [0, 0, 0, 1] && w[4] & 0x1f == 5)
            .expect("an IDR slice");
        let mut broken = key[..slice_at + 5].to_vec();
        broken.extend((0..400u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1));
        writer.push_frame(&info(true), &[&broken]).unwrap();
        for _ in 0..2 {
            let shown = hub
                .snapshot_or_last("cam1", &ring, JpegSettings::default(), Depth::Newest)
                .expect("the last good picture");
            assert!(Arc::ptr_eq(&shown, &good), "the good GOP's picture");
        }
        assert_eq!(
            hub.decode_errors("cam1"),
            1,
            "one frame failed, counted once"
        );
    }

    /// A keyframe-depth snapshot decodes the latest keyframe only (its picture is attributed
    /// to the keyframe), a full one the whole GOP (the newest frame).
    #[test]
    fn a_keyframe_snapshot_decodes_only_the_keyframe() {
        let (mut writer, ring, mut enc, pic) = setup();
        let mut seqs = Vec::new();
        for i in 0..6 {
            let f = enc.encode(&pic, i == 0).unwrap().unwrap();
            seqs.push(writer.push_frame(&info(f.keyframe), &[f.data]).unwrap());
        }
        let full = snapshot(&ring, JpegSettings::default(), Depth::Newest);
        let key = snapshot(&ring, JpegSettings::default(), Depth::Keyframe);
        let full = full.picture.expect("a picture of the GOP");
        let key = key.picture.expect("the keyframe's picture");
        assert_eq!(full.meta.seq, seqs[5], "the newest frame");
        assert_eq!(key.meta.seq, seqs[0], "the keyframe, nothing after it");
        assert_eq!((key.width, key.height), (64, 48));
    }

    #[test]
    fn encodes_a_downscaled_jpeg_of_the_picture() {
        let mut pic = I420Frame::new(64, 32).unwrap();
        for (i, y) in pic.y.iter_mut().enumerate() {
            *y = (i % 200) as u8 + 16;
        }
        let mut out = Vec::new();
        let size = encode_i420(
            &pic,
            JpegSettings {
                quality: 80,
                downscale: 2,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(size, (32, 16));
        assert_eq!(&out[..2], &[0xff, 0xd8]);
        assert_eq!(&out[out.len() - 2..], &[0xff, 0xd9]);
    }

    #[test]
    fn video_range_is_stretched_to_full_range() {
        assert_eq!(full_y(16), 0);
        assert_eq!(full_y(235), 255);
        assert_eq!(full_c(128), 128);
        assert_eq!(full_c(16), 0);
        assert_eq!(full_c(240), 255);
        assert_eq!(FULL_RANGE.0[126], full_y(126));
        assert_eq!(FULL_RANGE.1[0], 0);
        assert_eq!(FULL_RANGE.1[255], 255);
    }

    #[test]
    fn full_size_and_downscaled_rows_hold_the_same_samples() {
        let mut pic = I420Frame::new(8, 4).unwrap();
        for (i, y) in pic.y.iter_mut().enumerate() {
            *y = 16 + i as u8 * 3;
        }
        for (i, u) in pic.u.iter_mut().enumerate() {
            *u = 100 + i as u8 * 7;
        }
        let row = |step: usize, width: u16| {
            let img = ScaledI420 {
                pic: &pic,
                step,
                width,
                height: 1,
            };
            let mut b: [Vec<u8>; 4] = Default::default();
            img.fill_buffers(0, &mut b);
            b
        };
        let full = row(1, 8);
        assert_eq!(
            full[0],
            pic.y[..8].iter().map(|&v| full_y(v)).collect::<Vec<_>>()
        );
        assert_eq!(full[1][2..4], [full_c(pic.u[1]), full_c(pic.u[1])]);
        let half = row(2, 4);
        let every_other = |v: &Vec<u8>| v.iter().step_by(2).copied().collect::<Vec<_>>();
        assert_eq!(half[0], every_other(&full[0]));
        assert_eq!(half[1], every_other(&full[1]));
    }
}
