//! Raw pictures: an owned I420 buffer and conversions from the packed formats cameras send.
//!
//! Conversions take the camera buffer, the `bytesused` the driver reported and the line
//! stride, check every size first, and then write into a preallocated [`I420Frame`], so a
//! capture loop does not allocate per frame and a short buffer is an error, never a panic.

use super::CodecError;
use openh264::formats::YUVSource;

/// An I420 (planar 4:2:0) picture with tightly packed planes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Frame {
    /// Picture width in pixels; even, so chroma is exactly half.
    pub width: u32,
    /// Picture height in pixels; even, so chroma is exactly half.
    pub height: u32,
    /// Luma plane, `width * height` bytes, row after row.
    pub y: Vec<u8>,
    /// Cb plane, `width/2 * height/2` bytes.
    pub u: Vec<u8>,
    /// Cr plane, `width/2 * height/2` bytes.
    pub v: Vec<u8>,
}

/// Checks that a size can hold an I420 picture the encoder accepts.
pub fn check_dimensions(width: u32, height: u32) -> Result<(), CodecError> {
    let bad = |reason| CodecError::BadDimensions {
        width,
        height,
        reason,
    };
    if width == 0 || height == 0 {
        return Err(bad("width and height must be positive"));
    }
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(bad("width and height must be even for 4:2:0 chroma"));
    }
    if width.max(height) > 3840 || width.min(height) > 2160 {
        return Err(bad("larger than 3840x2160, the most openh264 supports"));
    }
    Ok(())
}

impl I420Frame {
    /// A black picture of the given size.
    pub fn new(width: u32, height: u32) -> Result<Self, CodecError> {
        check_dimensions(width, height)?;
        let luma = width as usize * height as usize;
        Ok(I420Frame {
            width,
            height,
            y: vec![16; luma],
            u: vec![128; luma / 4],
            v: vec![128; luma / 4],
        })
    }

    /// Width of the chroma planes.
    pub fn chroma_width(&self) -> usize {
        self.width as usize / 2
    }

    /// Height of the chroma planes.
    pub fn chroma_height(&self) -> usize {
        self.height as usize / 2
    }

    /// Fails unless the frame is `width`x`height` with planes of the right length (the
    /// fields are public, so a frame may have been put together by hand).
    pub fn expect_size(&self, width: u32, height: u32) -> Result<(), CodecError> {
        if self.width != width || self.height != height {
            return Err(CodecError::SizeMismatch {
                got_w: self.width,
                got_h: self.height,
                want_w: width,
                want_h: height,
            });
        }
        self.check_planes()
    }

    /// Fails unless the size is usable and every plane is exactly as long as it must be.
    pub fn check_planes(&self) -> Result<(), CodecError> {
        check_dimensions(self.width, self.height)?;
        let luma = self.width as usize * self.height as usize;
        for (have, need) in [
            (self.y.len(), luma),
            (self.u.len(), luma / 4),
            (self.v.len(), luma / 4),
        ] {
            if have != need {
                return Err(CodecError::ShortBuffer {
                    format: "I420 plane",
                    have,
                    need,
                    width: self.width,
                    height: self.height,
                });
            }
        }
        Ok(())
    }

    /// The (Y, U, V) values of the pixel at (x, y), or `None` outside the picture.
    pub fn pixel(&self, x: u32, y: u32) -> Option<(u8, u8, u8)> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let (x, y) = (x as usize, y as usize);
        let c = (y / 2) * self.chroma_width() + x / 2;
        Some((
            *self.y.get(y * self.width as usize + x)?,
            *self.u.get(c)?,
            *self.v.get(c)?,
        ))
    }
}

impl YUVSource for I420Frame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let c = self.chroma_width();
        (self.width as usize, c, c)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Cuts `buf` to `bytesused` and checks that `need` bytes are there.
fn cut<'a>(
    format: &'static str,
    buf: &'a [u8],
    bytesused: usize,
    need: usize,
    dst: &I420Frame,
) -> Result<&'a [u8], CodecError> {
    let have = bytesused.min(buf.len());
    if have < need {
        return Err(CodecError::ShortBuffer {
            format,
            have,
            need,
            width: dst.width,
            height: dst.height,
        });
    }
    Ok(&buf[..have])
}

/// Resolves a stride of 0 ("packed") and checks it covers a line of `line` bytes.
fn resolve_stride(
    format: &'static str,
    stride: usize,
    line: usize,
    width: u32,
) -> Result<usize, CodecError> {
    let stride = if stride == 0 { line } else { stride };
    if stride < line {
        return Err(CodecError::BadStride {
            format,
            stride,
            width,
        });
    }
    Ok(stride)
}

/// How a camera format lays one picture out in its buffer, for the size checks.
#[derive(Clone, Copy)]
struct Layout {
    /// The format's name, for errors.
    format: &'static str,
    /// Bytes of one buffer line per pixel of picture width.
    bytes_per_pixel: usize,
    /// True when a half-height chroma plane follows the luma lines (with the same stride).
    chroma_plane: bool,
}

/// YUYV: one plane, two bytes per pixel.
const YUYV: Layout = Layout {
    format: "YUYV",
    bytes_per_pixel: 2,
    chroma_plane: false,
};

/// NV12: a luma plane of one byte per pixel, then interleaved chroma at half height.
const NV12: Layout = Layout {
    format: "NV12",
    bytes_per_pixel: 1,
    chroma_plane: true,
};

/// The checks every converter starts with: `dst` is a valid picture, the stride (0 =
/// packed) covers a line, and the buffer cut to `bytesused` holds every line of `layout`
/// (the last one needs only its picture bytes). Returns the cut buffer and the stride.
fn checked_source<'a>(
    layout: Layout,
    src: &'a [u8],
    bytesused: usize,
    stride: usize,
    dst: &I420Frame,
) -> Result<(&'a [u8], usize), CodecError> {
    dst.check_planes()?;
    let line = layout.bytes_per_pixel * dst.width as usize;
    let mut lines = dst.height as usize;
    if layout.chroma_plane {
        lines += dst.chroma_height();
    }
    let stride = resolve_stride(layout.format, stride, line, dst.width)?;
    // Saturating: a driver's absurd stride is a short buffer, not an overflow.
    let need = stride.saturating_mul(lines - 1).saturating_add(line);
    let src = cut(layout.format, src, bytesused, need, dst)?;
    Ok((src, stride))
}

/// Converts packed YUYV 4:2:2 (`Y0 U Y1 V` per pixel pair) into `dst`, whose size says the
/// picture size. `stride` is bytes per line (0 = `2 * width`). Chroma of each pair of lines
/// is averaged to get 4:2:0.
pub fn yuyv_to_i420(
    src: &[u8],
    bytesused: usize,
    stride: usize,
    dst: &mut I420Frame,
) -> Result<(), CodecError> {
    let (src, stride) = checked_source(YUYV, src, bytesused, stride, dst)?;
    let w = dst.width as usize;
    let cw = dst.chroma_width();
    for cy in 0..dst.chroma_height() {
        let top = &src[2 * cy * stride..][..2 * w];
        let bottom = &src[(2 * cy + 1) * stride..][..2 * w];
        let (y_top, y_bottom) = dst.y[2 * cy * w..][..2 * w].split_at_mut(w);
        let u = &mut dst.u[cy * cw..][..cw];
        let v = &mut dst.v[cy * cw..][..cw];
        for (i, (t, b)) in top.chunks_exact(4).zip(bottom.chunks_exact(4)).enumerate() {
            y_top[2 * i] = t[0];
            y_top[2 * i + 1] = t[2];
            y_bottom[2 * i] = b[0];
            y_bottom[2 * i + 1] = b[2];
            u[i] = (t[1] as u16 + b[1] as u16).div_ceil(2) as u8;
            v[i] = (t[3] as u16 + b[3] as u16).div_ceil(2) as u8;
        }
    }
    Ok(())
}

/// Converts NV12 (a Y plane, then one plane of interleaved `U V` at half resolution) into
/// `dst`. `stride` is bytes per line of both planes (0 = `width`); the chroma plane starts
/// right after `height` luma lines.
pub fn nv12_to_i420(
    src: &[u8],
    bytesused: usize,
    stride: usize,
    dst: &mut I420Frame,
) -> Result<(), CodecError> {
    let (src, stride) = checked_source(NV12, src, bytesused, stride, dst)?;
    let (w, h) = (dst.width as usize, dst.height as usize);
    let ch = dst.chroma_height();
    for row in 0..h {
        dst.y[row * w..][..w].copy_from_slice(&src[row * stride..][..w]);
    }
    let cw = dst.chroma_width();
    let uv_plane = &src[stride * h..];
    for row in 0..ch {
        let line = &uv_plane[row * stride..][..w];
        let u = &mut dst.u[row * cw..][..cw];
        let v = &mut dst.v[row * cw..][..cw];
        for (i, pair) in line.chunks_exact(2).enumerate() {
            u[i] = pair[0];
            v[i] = pair[1];
        }
    }
    Ok(())
}

/// Converts one BT.601 limited-range YUV sample to RGB.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (y as i32 - 16) * 298;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

/// Converts one RGB colour to BT.601 limited-range YUV (the inverse of [`yuv_to_rgb`]).
pub fn rgb_to_yuv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (y as u8, u as u8, v as u8)
}

/// Writes `frame` as packed 8-bit RGB (3 bytes per pixel, row after row) into `out`, which
/// is resized to `width * height * 3` (its capacity is reused across calls).
pub fn i420_to_rgb(frame: &I420Frame, out: &mut Vec<u8>) -> Result<(), CodecError> {
    frame.check_planes()?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    out.resize(w * h * 3, 0);
    let cw = frame.chroma_width();
    for (row, line) in out.chunks_exact_mut(w * 3).enumerate() {
        let ys = &frame.y[row * w..][..w];
        let us = &frame.u[(row / 2) * cw..][..cw];
        let vs = &frame.v[(row / 2) * cw..][..cw];
        for (x, px) in line.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(&yuv_to_rgb(ys[x], us[x / 2], vs[x / 2]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(have, need)` of a [`CodecError::ShortBuffer`]; `None` for any other outcome.
    fn short(r: Result<(), CodecError>) -> Option<(usize, usize)> {
        match r {
            Err(CodecError::ShortBuffer { have, need, .. }) => Some((have, need)),
            _ => None,
        }
    }

    #[test]
    fn an_absurd_stride_is_a_short_buffer_not_an_overflow() {
        let mut dst = I420Frame::new(4, 2).unwrap();
        let src = [0u8; 64];
        for convert in [yuyv_to_i420, nv12_to_i420] {
            let r = convert(&src, src.len(), usize::MAX, &mut dst);
            assert_eq!(short(r), Some((64, usize::MAX)));
        }
    }

    #[test]
    fn each_layout_needs_every_line_but_the_last_ones_padding() {
        let mut dst = I420Frame::new(4, 2).unwrap();
        let src = [0u8; 20];
        // YUYV 4x2, stride 12: one padded line of 12, then 8 bytes.
        assert!(yuyv_to_i420(&src, 20, 12, &mut dst).is_ok());
        assert_eq!(short(yuyv_to_i420(&src, 19, 12, &mut dst)), Some((19, 20)));
        // NV12 4x2, stride 6: two luma lines and one chroma line, the last needing 4 bytes.
        assert!(nv12_to_i420(&src, 16, 6, &mut dst).is_ok());
        assert_eq!(short(nv12_to_i420(&src, 15, 6, &mut dst)), Some((15, 16)));
    }
}
