//! The "no video" picture: what an MJPEG client is sent while its stream has no picture (the
//! camera is offline, or no keyframe came yet), so VLC, Home Assistant or a browser show which
//! camera is down and why instead of a spinner that times out.
//!
//! A dark frame with `No video from <name>` and the reason (the supervisor's state and last
//! error, as `/api/status` shows them) drawn with the test pattern's bitmap font, encoded with
//! the same JPEG encoder as real pictures.

use thiserror::Error;

use super::LiveStream;
use super::jpeg::{JpegSettings, encode_i420};
use crate::codec::{CodecError, I420Frame};
use crate::ingest::font::{GLYPH_H, GLYPH_W, draw_text, text_width};
use crate::ingest::stats::StreamState;

/// Size of the picture when neither the config nor an earlier picture gives the stream's.
pub const DEFAULT_SIZE: (u32, u32) = (640, 360);
/// Smallest picture drawn (the text needs room).
const MIN_SIZE: (u32, u32) = (160, 96);
/// Largest picture drawn (a placeholder need not be 4K).
const MAX_SIZE: (u32, u32) = (1920, 1080);
/// Background luma (video range): dark grey, so the picture is visibly "on".
const BACKGROUND: u8 = 40;
/// Text luma: white.
const INK: u8 = 235;
/// Blank font pixels between lines.
const LINE_GAP: usize = 3;

/// Why the placeholder could not be made.
#[derive(Debug, Error)]
pub enum PlaceholderError {
    /// The picture size is unusable.
    #[error("placeholder picture: {0}")]
    Size(#[from] CodecError),
    /// The JPEG encoder failed.
    #[error("placeholder JPEG: {0}")]
    Encode(#[from] jpeg_encoder::EncodingError),
}

/// Why `stream` has no picture now; `None` while it is live with a keyframe in its ring.
pub fn no_video_reason(stream: &LiveStream) -> Option<String> {
    let state = stream.stats.state();
    if state == StreamState::Live && stream.ring.latest_keyframe().is_some() {
        return None;
    }
    Some(describe(state, stream.stats.last_error()))
}

/// The reason text for a stream in `state` whose last attempt ended with `last_error`.
fn describe(state: StreamState, last_error: Option<String>) -> String {
    match (state, last_error) {
        (StreamState::Live, _) => "waiting for the first keyframe".to_string(),
        (s, Some(e)) => format!("{s}: {e}"),
        (s, None) => s.as_str().to_string(),
    }
}

/// The placeholder's size for `stream`: its configured size, else the size of the last real
/// picture a client was sent (`last`, 0x0 when unknown), else [`DEFAULT_SIZE`]; even, bounded.
pub fn size_for(stream: &LiveStream, settings: JpegSettings, last: (u32, u32)) -> (u32, u32) {
    let d = u32::from(settings.downscale.max(1));
    let (w, h) = match (stream.width, stream.height, last) {
        (Some(w), Some(h), _) => (w / d, h / d),
        (_, _, (w, h)) if w > 0 && h > 0 => (w, h),
        _ => DEFAULT_SIZE,
    };
    let fit = |v: u32, lo: u32, hi: u32| v.clamp(lo, hi) & !1;
    (
        fit(w, MIN_SIZE.0, MAX_SIZE.0),
        fit(h, MIN_SIZE.1, MAX_SIZE.1),
    )
}

/// A `width`x`height` JPEG saying `No video from <name>` and `reason`.
pub fn render(
    name: &str,
    reason: &str,
    (width, height): (u32, u32),
    settings: JpegSettings,
) -> Result<Vec<u8>, PlaceholderError> {
    let mut pic = I420Frame::new(width, height)?;
    pic.y.fill(BACKGROUND);
    let (w, h) = (width as usize, height as usize);
    let title = format!("No video from {name}");
    let layout = Layout::new(w, h, &title, reason);
    let line_h = (GLYPH_H + LINE_GAP) * layout.scale;
    let mut y = h.saturating_sub(layout.lines.len() * line_h) / 2;
    for line in &layout.lines {
        let x = w.saturating_sub(text_width(line) * layout.scale) / 2;
        draw_text(&mut pic.y, w, h, x, y, layout.scale, line, INK);
        y += line_h;
    }
    let mut out = Vec::new();
    let plain = JpegSettings {
        downscale: 1,
        ..settings
    };
    encode_i420(&pic, plain, &mut out)?;
    Ok(out)
}

/// Where the text goes: the font scale and the wrapped lines that fit.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// Font pixel size in picture pixels.
    scale: usize,
    /// The lines, title first, then a blank one, then the reason; cut to what fits.
    lines: Vec<String>,
}

impl Layout {
    /// The largest scale (up to 4, a quarter of the width per 320 px) at which the title
    /// and reason fit `w`x`h`, wrapped at spaces.
    fn new(w: usize, h: usize, title: &str, reason: &str) -> Layout {
        let mut scale = (w / 320).clamp(1, 4);
        loop {
            let cols = (w * 9 / 10) / ((GLYPH_W + 1) * scale);
            let rows = (h * 9 / 10) / ((GLYPH_H + LINE_GAP) * scale);
            let mut lines = wrap(title, cols);
            lines.push(String::new());
            lines.extend(wrap(reason, cols));
            if lines.len() <= rows || scale == 1 {
                lines.truncate(rows.max(1));
                return Layout { scale, lines };
            }
            scale -= 1;
        }
    }
}

/// `text` in lines of at most `cols` characters, broken at spaces (a longer word is cut).
fn wrap(text: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > cols {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..cols).collect());
        }
        let word: String = word.into_iter().collect();
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if needed > cols && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_the_state_and_the_last_error() {
        assert_eq!(
            describe(StreamState::Backoff, Some("connection refused".into())),
            "backoff: connection refused"
        );
        assert_eq!(describe(StreamState::Connecting, None), "connecting");
        assert_eq!(
            describe(StreamState::Live, Some("old".into())),
            "waiting for the first keyframe"
        );
    }

    #[test]
    fn text_wraps_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("ab cd ef", 5), ["ab cd", "ef"]);
        assert_eq!(wrap("abcdefgh x", 3), ["abc", "def", "gh", "x"]);
        assert_eq!(wrap("abcdefg h", 3), ["abc", "def", "g h"]);
        assert_eq!(wrap("", 3), Vec::<String>::new());
    }

    #[test]
    fn the_layout_shrinks_the_font_until_the_text_fits() {
        let long = "backoff: rtsp://10.0.0.7:554/stream1: connection refused (os error 111)";
        let l = Layout::new(640, 360, "No video from Front door", long);
        assert_eq!(l.scale, 2);
        assert_eq!(l.lines[0], "No video from Front door");
        assert_eq!(l.lines[1], "");
        assert!(l.lines.len() > 3, "{l:?}");
        let cols = 640 * 9 / 10 / ((GLYPH_W + 1) * 2);
        assert!(l.lines.iter().all(|x| x.chars().count() <= cols), "{l:?}");
        let tiny = Layout::new(160, 96, "No video from Front door", long);
        assert_eq!(tiny.scale, 1);
        assert!(tiny.lines.len() <= 96 * 9 / 10 / (GLYPH_H + LINE_GAP));
    }

    #[test]
    fn renders_a_jpeg_of_the_requested_size() {
        let jpeg = render(
            "cam1",
            "backoff: connection refused",
            (320, 180),
            JpegSettings::default(),
        )
        .unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9]);
        // Baseline SOF0: height and width follow the marker's length and precision.
        let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        let be = |i: usize| u16::from_be_bytes([jpeg[sof + i], jpeg[sof + i + 1]]);
        assert_eq!((be(7), be(5)), (320, 180));
    }
}
