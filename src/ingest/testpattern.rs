//! A synthetic camera: a moving picture with the stream id and a frame counter drawn large,
//! encoded with openh264. `demo` and many tests use it instead of a real camera.
//!
//! Rendering and encoding run on a dedicated thread per connection attempt. The async side
//! paces frames with a tokio interval, stamps receive times and pushes into the sink. Two
//! output buffers circulate between the two sides, so the steady state allocates nothing.

use super::font;
use super::gate::{Gated, KeyframeGate};
use super::{Source, SourceCtx, SourceError};
use crate::codec::yuv::{I420Frame, check_dimensions, rgb_to_yuv};
use crate::codec::{EncoderSettings, H264Encoder};
use crate::config::schema::StreamConfig;
use crate::frame::{Codec, FrameInfo};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

/// Encoded frames in circulation between the render thread and the async side.
const BUFFERS: usize = 2;

/// Renders the test picture into a reused I420 buffer.
#[derive(Debug)]
pub struct TestPattern {
    /// The picture, rewritten by every [`TestPattern::render`].
    picture: I420Frame,
    /// The stream id drawn into the picture.
    id: String,
    /// A triangle wave 0..=255..0 over 512 steps, for gradients and motion.
    tri: [u8; 512],
    /// Colour of the moving box, derived from the id so streams also differ in colour.
    box_yuv: (u8, u8, u8),
    /// State of the noise generator (xorshift64).
    rng: u64,
    /// Reused text buffer for the frame counter.
    counter: String,
}

impl TestPattern {
    /// A renderer for a `width` x `height` picture labelled `id`.
    pub fn new(id: &str, width: u32, height: u32) -> Result<Self, crate::codec::CodecError> {
        let mut tri = [0u8; 512];
        for (i, t) in tri.iter_mut().enumerate() {
            *t = if i < 256 { i as u8 } else { (511 - i) as u8 };
        }
        let hash = id.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        });
        let [r, g, b, _] = hash.to_le_bytes();
        Ok(TestPattern {
            picture: I420Frame::new(width, height)?,
            id: id.to_string(),
            tri,
            box_yuv: rgb_to_yuv(r | 0x40, g | 0x40, b | 0x40),
            rng: 0x9E37_79B9_7F4A_7C15 ^ hash as u64,
            counter: String::with_capacity(16),
        })
    }

    /// Renders frame number `n` and returns it.
    pub fn render(&mut self, n: u64) -> &I420Frame {
        let (w, h) = (self.picture.width as usize, self.picture.height as usize);
        let (cw, ch) = (w / 2, h / 2);
        let t = n as usize;
        // Diagonal luma gradient that slides, with low-amplitude sensor-like noise.
        for y in 0..h {
            let line = &mut self.picture.y[y * w..][..w];
            let base = 2 * y + 4 * t;
            for (x8, chunk) in line.chunks_mut(8).enumerate() {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                let noise = self.rng.to_le_bytes();
                for (i, px) in chunk.iter_mut().enumerate() {
                    let g = self.tri[(x8 * 8 + i + base) & 511] as u32;
                    *px = (40 + g * 5 / 8) as u8 + (noise[i] & 3);
                }
            }
        }
        // Chroma: two slowly moving colour waves.
        for y in 0..ch {
            let vv = 64 + self.tri[(3 * y + 2 * t) & 511] / 2;
            let u = &mut self.picture.u[y * cw..][..cw];
            let v = &mut self.picture.v[y * cw..][..cw];
            for x in 0..cw {
                u[x] = 64 + self.tri[(2 * x + 3 * t) & 511] / 2;
                v[x] = vv;
            }
        }
        // A bouncing box and a disc moving the other way.
        let side = (h / 4).max(2);
        let bx = bounce(t * 7, w.saturating_sub(side));
        let by = bounce(t * 5, h.saturating_sub(side));
        self.fill_rect(bx, by, side, side, self.box_yuv);
        let r = (h / 8).max(1);
        let dx = bounce(t * 4 + w, w.saturating_sub(2 * r)) + r;
        let dy = bounce(t * 3 + h / 3, h.saturating_sub(2 * r)) + r;
        self.fill_disc(dx, dy, r, (81, 90, 240));
        // The stream id, large, on a dark band at the top; the counter at the bottom.
        let margin = (h / 40).max(1);
        let id_scale = (h / 60)
            .min(w.saturating_sub(2 * margin) / (font::text_width(&self.id) + 2).max(1))
            .max(1);
        let band = font::GLYPH_H * id_scale + 2 * margin;
        self.fill_rect(0, 0, w, band.min(h), (16, 128, 128));
        font::draw_text(
            &mut self.picture.y,
            w,
            h,
            margin,
            margin,
            id_scale,
            &self.id,
            235,
        );
        self.counter.clear();
        use std::fmt::Write;
        let _ = write!(self.counter, "#{n:06}");
        let c_scale = (h / 90).max(1);
        let c_h = font::GLYPH_H * c_scale + 2 * margin;
        let c_y = h.saturating_sub(c_h);
        let c_w = (font::text_width(&self.counter) * c_scale + 2 * margin).min(w);
        self.fill_rect(0, c_y, c_w, c_h, (16, 128, 128));
        font::draw_text(
            &mut self.picture.y,
            w,
            h,
            margin,
            c_y + margin,
            c_scale,
            &self.counter,
            235,
        );
        &self.picture
    }

    /// Fills a rectangle (clipped) with one colour.
    fn fill_rect(&mut self, x0: usize, y0: usize, rw: usize, rh: usize, (y, u, v): (u8, u8, u8)) {
        let p = &mut self.picture;
        let (w, h) = (p.width as usize, p.height as usize);
        let (x1, y1) = ((x0 + rw).min(w), (y0 + rh).min(h));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        for row in y0..y1 {
            p.y[row * w + x0..row * w + x1].fill(y);
        }
        let cw = w / 2;
        for row in y0 / 2..y1.div_ceil(2).min(h / 2) {
            p.u[row * cw + x0 / 2..row * cw + x1.div_ceil(2).min(cw)].fill(u);
            p.v[row * cw + x0 / 2..row * cw + x1.div_ceil(2).min(cw)].fill(v);
        }
    }

    /// Fills a disc centred at (`cx`, `cy`) with radius `r` (clipped) with one colour.
    fn fill_disc(&mut self, cx: usize, cy: usize, r: usize, (y, u, v): (u8, u8, u8)) {
        let p = &mut self.picture;
        let (w, h) = (p.width as usize, p.height as usize);
        let r2 = (r * r) as isize;
        for row in cy.saturating_sub(r)..(cy + r).min(h) {
            let dy = row as isize - cy as isize;
            let half = ((r2 - dy * dy).max(0) as f64).sqrt() as usize;
            let (x0, x1) = (cx.saturating_sub(half), (cx + half).min(w));
            if x0 >= x1 {
                continue;
            }
            p.y[row * w + x0..row * w + x1].fill(y);
            if row % 2 == 0 {
                let cw = w / 2;
                let c = (row / 2) * cw;
                p.u[c + x0 / 2..c + (x1 / 2).max(x0 / 2)].fill(u);
                p.v[c + x0 / 2..c + (x1 / 2).max(x0 / 2)].fill(v);
            }
        }
    }
}

/// Position `t` along a back-and-forth path over `0..=span`.
fn bounce(t: usize, span: usize) -> usize {
    if span == 0 {
        return 0;
    }
    let p = t % (2 * span);
    if p <= span { p } else { 2 * span - p }
}

/// One encoded frame travelling from the render thread to the async side and back.
#[derive(Debug)]
struct Encoded {
    /// The access unit; its capacity is reused.
    data: Vec<u8>,
    /// The access unit is an IDR picture with SPS/PPS.
    keyframe: bool,
}

/// What the render thread sends.
#[derive(Debug)]
enum Msg {
    /// A finished frame.
    Frame(Encoded),
    /// The thread stopped for this reason.
    Failed(SourceError),
}

/// A `testpattern` stream: synthetic moving pictures encoded as H.264.
#[derive(Debug, Clone)]
pub struct TestPatternSource {
    /// Stream id, drawn into the picture and used in log fields.
    id: String,
    /// Size, rate, bitrate and GOP of the encoded stream.
    settings: EncoderSettings,
}

impl TestPatternSource {
    /// A source for one `[[streams]]` entry (size, fps, bitrate and GOP with their defaults).
    pub fn new(cfg: &StreamConfig) -> Self {
        Self::with_settings(
            &cfg.id,
            EncoderSettings {
                width: cfg.width_or_default(),
                height: cfg.height_or_default(),
                fps: cfg.fps_or_default(),
                bitrate_kbps: cfg.bitrate_kbps_or_default(),
                gop: cfg.gop_or_default(),
            },
        )
    }

    /// A source with explicit settings.
    pub fn with_settings(id: &str, settings: EncoderSettings) -> Self {
        TestPatternSource {
            id: id.to_string(),
            settings,
        }
    }

    /// The settings frames are encoded with.
    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// One attempt: start the render thread and push its frames at the configured rate.
    async fn run_attempt(&self, ctx: SourceCtx<'_>) -> Result<(), SourceError> {
        let s = self.settings;
        check_dimensions(s.width, s.height).map_err(|e| SourceError::Config(e.to_string()))?;
        if s.fps == 0 {
            return Err(SourceError::Config("fps must be at least 1".to_string()));
        }
        let pattern = TestPattern::new(&self.id, s.width, s.height)
            .map_err(|e| SourceError::Config(e.to_string()))?;
        let (filled_tx, mut filled_rx) = mpsc::channel::<Msg>(BUFFERS);
        let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Encoded>(BUFFERS);
        let capacity = (s.width as usize * s.height as usize) / 2;
        for _ in 0..BUFFERS {
            let buf = Encoded {
                data: Vec::with_capacity(capacity),
                keyframe: false,
            };
            // Cannot fail: the channel holds exactly BUFFERS and the receiver is alive.
            let _ = free_tx.try_send(buf);
        }
        let force_keyframe = Arc::new(AtomicBool::new(false));
        let force = Arc::clone(&force_keyframe);
        std::thread::Builder::new()
            .name(format!("testpattern-{}", self.id))
            .spawn(move || render_thread(pattern, s, free_rx, filled_tx, force))
            .map_err(|e| SourceError::Connect(format!("cannot start the render thread: {e}")))?;
        tracing::info!(stream = %ctx.id, width = s.width, height = s.height, fps = s.fps,
            bitrate_kbps = s.bitrate_kbps, gop = s.gop, "test pattern started");

        let mut interval =
            tokio::time::interval(Duration::from_nanos(1_000_000_000 / u64::from(s.fps)));
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let start = tokio::time::Instant::now();
        let mut gate = KeyframeGate::new();
        loop {
            let tick = interval.tick().await;
            let frame = match filled_rx.recv().await {
                Some(Msg::Frame(f)) => f,
                Some(Msg::Failed(e)) => return Err(e),
                None => {
                    return Err(SourceError::Stream(
                        "test pattern render thread stopped".to_string(),
                    ));
                }
            };
            if gate.admits(frame.keyframe) {
                let info = FrameInfo {
                    codec: Codec::H264,
                    keyframe: frame.keyframe,
                    // The gate flags the session's first keyframe; the encoder's parameters
                    // never change within a session.
                    params_changed: false,
                    pts_us: tick.duration_since(start).as_micros() as i64,
                    recv_mono_ns: ctx.clock.mono_ns(),
                    recv_wall_us: ctx.clock.wall_us(),
                    epoch: ctx.epoch,
                };
                if gate.push(ctx.sink, ctx.id, &info, &[&frame.data]) == Gated::Refused {
                    force_keyframe.store(true, Ordering::Relaxed);
                }
            }
            // Never full: at most BUFFERS frames exist and this one is back from the sink.
            let _ = free_tx.try_send(frame);
        }
    }
}

/// Lowers the calling thread's CPU priority (nice 10; Linux gives every thread its own). The
/// test pattern stands in for a camera's own encoder, which costs a real box nothing, so on a
/// busy machine it must not hold up the live view or the JPEG decoder it feeds.
fn yield_cpu_to_the_pipeline() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take and return plain integers; no memory is shared.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
        if r != 0 {
            let error = std::io::Error::last_os_error();
            tracing::debug!(%error, "cannot lower the test pattern's priority");
        }
    }
}

/// Renders and encodes frames into recycled buffers until the async side goes away.
fn render_thread(
    mut pattern: TestPattern,
    settings: EncoderSettings,
    free: std::sync::mpsc::Receiver<Encoded>,
    filled: mpsc::Sender<Msg>,
    force_keyframe: Arc<AtomicBool>,
) {
    yield_cpu_to_the_pipeline();
    let mut encoder = match H264Encoder::new(settings) {
        Ok(e) => e,
        Err(e) => {
            let _ = filled.blocking_send(Msg::Failed(SourceError::Connect(e.to_string())));
            return;
        }
    };
    let mut n: u64 = 0;
    // Dropping the async side closes both channels, which ends this loop.
    while let Ok(mut buf) = free.recv() {
        loop {
            let picture = pattern.render(n);
            n += 1;
            match encoder.encode(picture, force_keyframe.swap(false, Ordering::Relaxed)) {
                Ok(Some(f)) => {
                    buf.data.clear();
                    buf.data.extend_from_slice(f.data);
                    buf.keyframe = f.keyframe;
                    break;
                }
                Ok(None) => continue,
                Err(e) => {
                    let msg = Msg::Failed(SourceError::Stream(e.to_string()));
                    let _ = filled.blocking_send(msg);
                    return;
                }
            }
        }
        if filled.blocking_send(Msg::Frame(buf)).is_err() {
            return;
        }
    }
}

impl Source for TestPatternSource {
    fn run<'a>(&'a self, ctx: SourceCtx<'a>) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.run_attempt(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tiny_and_odd_shaped_pictures_without_panicking() {
        for (w, h) in [(2, 2), (4, 64), (64, 4), (18, 10)] {
            let mut pattern = TestPattern::new("a-very-long-stream-id", w, h).expect("size");
            for n in [0, 1, 97, 10_000] {
                let picture = pattern.render(n);
                assert_eq!(picture.y.len(), (w * h) as usize);
            }
        }
    }

    #[test]
    fn bounce_goes_back_and_forth() {
        let path: Vec<usize> = (0..7).map(|t| bounce(t, 3)).collect();
        assert_eq!(path, vec![0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(bounce(5, 0), 0);
    }
}
