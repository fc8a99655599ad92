//! The test-pattern source end to end: frames come out at the configured size, decodable,
//! moving, with keyframes (SPS/PPS/IDR) at the GOP, and two stream ids look different.

use edgecam::clock::ManualClock;
use edgecam::codec::h264::{NAL_IDR, NAL_PPS, NAL_SPS, nal_units};
use edgecam::codec::{EncoderSettings, H264Decoder, I420Frame};
use edgecam::frame::{Codec, FrameInfo, FrameSink, SinkError, VecSink};
use edgecam::ingest::testpattern::{TestPattern, TestPatternSource};
use edgecam::ingest::{Source, SourceCtx};
use std::sync::Arc;
use tokio::sync::Notify;

/// A [`VecSink`] that signals once it holds `budget` frames.
struct BudgetSink {
    /// Where frames are kept.
    inner: VecSink,
    /// How many frames the test wants.
    budget: usize,
    /// Woken when the budget is reached.
    done: Arc<Notify>,
}

impl FrameSink for BudgetSink {
    fn push_frame(&mut self, info: &FrameInfo, parts: &[&[u8]]) -> Result<u64, SinkError> {
        let seq = self.inner.push_frame(info, parts)?;
        if self.inner.frames.len() == self.budget {
            self.done.notify_one();
        }
        Ok(seq)
    }
}

const SETTINGS: EncoderSettings = EncoderSettings {
    width: 320,
    height: 180,
    fps: 25,
    bitrate_kbps: 500,
    gop: 10,
};

/// Runs a test-pattern source until it has pushed `budget` frames.
async fn capture(id: &str, budget: usize) -> VecSink {
    let source = TestPatternSource::with_settings(id, SETTINGS);
    let clock = ManualClock::new(1_700_000_000_000_000);
    let done = Arc::new(Notify::new());
    let mut sink = BudgetSink {
        inner: VecSink::default(),
        budget,
        done: Arc::clone(&done),
    };
    let ctx = SourceCtx {
        id,
        sink: &mut sink,
        clock: &clock,
        epoch: 3,
        phase: Default::default(),
    };
    tokio::select! {
        r = source.run(ctx) => panic!("source ended early: {r:?}"),
        _ = done.notified() => {}
    }
    sink.inner
}

fn nal_types(au: &[u8]) -> Vec<u8> {
    nal_units(au).map(|n| n.nal_type()).collect()
}

#[tokio::test(start_paused = true)]
async fn frames_are_decodable_keyed_at_the_gop_and_moving() {
    let sink = capture("cam-a", 25).await;
    assert_eq!(sink.frames.len(), 25);

    let (first, payload) = &sink.frames[0];
    assert!(first.info.keyframe && first.info.params_changed);
    assert_eq!(nal_types(payload), vec![NAL_SPS, NAL_PPS, NAL_IDR]);

    let mut decoder = H264Decoder::new().expect("decoder");
    let mut previous: Option<I420Frame> = None;
    let mut last_pts = -1;
    for (i, (meta, payload)) in sink.frames.iter().enumerate() {
        let info = meta.info;
        assert_eq!(info.codec, Codec::H264);
        assert_eq!(info.epoch, 3);
        assert_eq!(
            info.keyframe,
            i % 10 == 0,
            "frame {i}: keyframes every GOP=10"
        );
        assert_eq!(info.params_changed, i == 0, "frame {i}");
        assert!(info.pts_us > last_pts, "pts increases");
        last_pts = info.pts_us;
        let types = nal_types(payload);
        if info.keyframe {
            assert_eq!(&types[..3], &[NAL_SPS, NAL_PPS, NAL_IDR], "frame {i}");
        } else {
            assert!(!types.contains(&NAL_IDR), "frame {i}");
        }
        let picture = decoder
            .decode(payload)
            .expect("decodes")
            .expect("one picture per access unit")
            .clone();
        assert_eq!((picture.width, picture.height), (320, 180));
        if let Some(prev) = &previous {
            assert_ne!(prev.y, picture.y, "frame {i} differs from the one before");
        }
        previous = Some(picture);
    }
    // Paused time advances exactly one frame interval per frame.
    assert_eq!(sink.frames[24].0.info.pts_us, 24 * 40_000);
}

#[tokio::test(start_paused = true)]
async fn streams_with_different_ids_look_different() {
    let a = capture("north", 1).await;
    let b = capture("south", 1).await;
    let mut decoder = H264Decoder::new().expect("decoder");
    let pa = decoder
        .decode(&a.frames[0].1)
        .expect("decodes")
        .expect("picture")
        .clone();
    decoder.reset().expect("reset");
    let pb = decoder
        .decode(&b.frames[0].1)
        .expect("decodes")
        .expect("picture")
        .clone();
    // Compare the id band at the top: the text differs, so many luma samples differ.
    let band = 320 * 30;
    let differing = pa.y[..band]
        .iter()
        .zip(&pb.y[..band])
        .filter(|(x, y)| x.abs_diff(**y) > 64)
        .count();
    assert!(
        differing > 200,
        "only {differing} samples differ in the id band"
    );
}

#[test]
fn rendered_id_band_shows_text() {
    let mut pattern = TestPattern::new("ab", 320, 180).expect("pattern");
    let picture = pattern.render(0);
    // The band behind the id is dark except where the glyphs are drawn white.
    let band = &picture.y[..320 * 20];
    assert!(band.iter().filter(|&&v| v == 235).count() > 50);
    assert!(band.iter().filter(|&&v| v == 16).count() > 1000);
}

/// A sink that refuses its `reject_at`-th push, as a ring does with an oversized frame.
struct RejectOnceSink {
    /// Frames stored.
    inner: VecSink,
    /// Pushes seen, stored or not.
    calls: usize,
    /// Which push to refuse.
    reject_at: usize,
    /// How many stored frames the test wants.
    budget: usize,
    /// Woken when the budget is reached.
    done: Arc<Notify>,
}

impl FrameSink for RejectOnceSink {
    fn push_frame(&mut self, info: &FrameInfo, parts: &[&[u8]]) -> Result<u64, SinkError> {
        self.calls += 1;
        if self.calls - 1 == self.reject_at {
            return Err(SinkError::FrameTooLarge { len: 1, max: 0 });
        }
        let seq = self.inner.push_frame(info, parts)?;
        if self.inner.frames.len() == self.budget {
            self.done.notify_one();
        }
        Ok(seq)
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_frame_brings_an_early_keyframe() {
    let source = TestPatternSource::with_settings("cam-r", SETTINGS);
    let clock = ManualClock::new(0);
    let done = Arc::new(Notify::new());
    let mut sink = RejectOnceSink {
        inner: VecSink::default(),
        calls: 0,
        reject_at: 3,
        budget: 5,
        done: Arc::clone(&done),
    };
    let ctx = SourceCtx {
        id: "cam-r",
        sink: &mut sink,
        clock: &clock,
        epoch: 0,
        phase: Default::default(),
    };
    tokio::select! {
        r = source.run(ctx) => panic!("source ended early: {r:?}"),
        _ = done.notified() => {}
    }
    let frames = &sink.inner.frames;
    let flags: Vec<bool> = frames.iter().map(|(m, _)| m.info.keyframe).collect();
    assert_eq!(&flags[..3], &[true, false, false]);
    // Delta frames after the refused one are useless, so the next stored frame is a fresh
    // keyframe, well before the GOP would have made one (frame 10, pts 400 ms).
    let (meta, payload) = &frames[3];
    assert!(
        meta.info.keyframe && !meta.info.params_changed,
        "{:?}",
        meta.info
    );
    assert!(meta.info.pts_us < 10 * 40_000, "pts {}", meta.info.pts_us);
    assert_eq!(&nal_types(payload)[..3], &[NAL_SPS, NAL_PPS, NAL_IDR]);
}

#[tokio::test]
async fn unusable_settings_are_permanent_config_errors() {
    let clock = ManualClock::new(0);
    for settings in [
        EncoderSettings {
            width: 321,
            ..SETTINGS
        },
        EncoderSettings {
            height: 0,
            ..SETTINGS
        },
        EncoderSettings { fps: 0, ..SETTINGS },
    ] {
        let mut sink = VecSink::default();
        let ctx = SourceCtx {
            id: "bad",
            sink: &mut sink,
            clock: &clock,
            epoch: 0,
            phase: Default::default(),
        };
        let e = TestPatternSource::with_settings("bad", settings)
            .run(ctx)
            .await
            .expect_err("refused");
        assert!(e.is_permanent(), "{settings:?}: {e}");
        assert!(sink.frames.is_empty());
    }
}

/// Names of this process's threads (Linux).
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|t| t.ok())
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn dropping_the_future_stops_the_render_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let name = "testpattern-cx".to_string();
    runtime.block_on(async {
        let source = TestPatternSource::with_settings("cx", SETTINGS);
        let clock = ManualClock::new(0);
        let done = Arc::new(Notify::new());
        let mut sink = BudgetSink {
            inner: VecSink::default(),
            budget: 3,
            done: Arc::clone(&done),
        };
        let ctx = SourceCtx {
            id: "cx",
            sink: &mut sink,
            clock: &clock,
            epoch: 0,
            phase: Default::default(),
        };
        let run = source.run(ctx);
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => panic!("source ended early: {r:?}"),
            _ = done.notified() => {}
        }
        assert!(thread_names().contains(&name), "{:?}", thread_names());
        // `run` is dropped here, like the supervisor does on a timeout.
    });
    // The future is gone; the thread notices at its next channel operation. Wait for it
    // generously (this bounds the wait, it does not measure anything).
    let gone = (0..500).any(|_| {
        if thread_names().contains(&name) {
            std::thread::sleep(std::time::Duration::from_millis(20));
            false
        } else {
            true
        }
    });
    assert!(gone, "render thread still running: {:?}", thread_names());
}
