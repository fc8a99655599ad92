//! What the outputs need to know of a JPEG image without decoding it: its picture size, from
//! the frame header (SOFn). RTP/JPEG cameras (through retina) and V4L2 MJPEG cameras store
//! whole JPEG images in the ring; the live `init` message and *Test connection* report their
//! size.

/// The width and height in a JPEG's first frame header (any SOFn marker), or `None` when
/// the data is not a JPEG or ends before one. Reads markers only, never entropy-coded data
/// (which comes after the frame header).
pub fn picture_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    if jpeg.get(..2)? != [0xff, 0xd8] {
        return None;
    }
    let mut i = 2;
    loop {
        // Fill bytes (0xff repeated) may precede a marker.
        while *jpeg.get(i)? == 0xff && *jpeg.get(i + 1)? == 0xff {
            i += 1;
        }
        if *jpeg.get(i)? != 0xff {
            return None;
        }
        let marker = *jpeg.get(i + 1)?;
        let len = usize::from(u16::from_be_bytes([*jpeg.get(i + 2)?, *jpeg.get(i + 3)?]));
        // SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc).
        if (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let h = u16::from_be_bytes([*jpeg.get(i + 5)?, *jpeg.get(i + 6)?]);
            let w = u16::from_be_bytes([*jpeg.get(i + 7)?, *jpeg.get(i + 8)?]);
            return Some((u32::from(w), u32::from(h)));
        }
        // Start of scan: the frame header would have come before it.
        if marker == 0xda || len < 2 {
            return None;
        }
        i += 2 + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, an APP0 segment, SOF0 of 320x240, EOI.
    fn tiny(sof: u8) -> Vec<u8> {
        let mut j = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x4a, 0x46];
        j.extend_from_slice(&[
            0xff, sof, 0x00, 0x0b, 8, 0x00, 0xf0, 0x01, 0x40, 1, 1, 0x11, 0,
        ]);
        j.extend_from_slice(&[0xff, 0xd9]);
        j
    }

    #[test]
    fn reads_the_frame_header() {
        assert_eq!(picture_size(&tiny(0xc0)), Some((320, 240)));
        assert_eq!(picture_size(&tiny(0xc2)), Some((320, 240)));
    }

    #[test]
    fn refuses_what_is_not_a_jpeg_or_is_cut() {
        assert_eq!(picture_size(b"\x00\x00\x00\x01\x67"), None);
        assert_eq!(picture_size(&[]), None);
        let j = tiny(0xc0);
        for n in 0..j.len() - 6 {
            assert_eq!(picture_size(&j[..n]), None, "cut at {n}");
        }
        // A DHT (c4) is not a frame header.
        assert_eq!(picture_size(&tiny(0xc4)), None);
    }
}
