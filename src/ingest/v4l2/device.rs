//! The real V4L2 calls (the `v4l` crate), behind [`CameraBackend`]: a thin layer, so that
//! everything above it (steps, timeouts, a driver that hangs) is tested with a fake.

use super::{BufferMeta, CameraBackend, CameraDevice, Configured, PREFERENCE};
use crate::codec::{CaptureFormat, EncoderSettings};
use crate::ingest::SourceError;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;
use v4l::buffer::{Flags as BufferFlags, Type};
use v4l::capability::Flags as CapFlags;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, Format, FourCC};

/// Kernel buffers to queue on the device.
const DEVICE_BUFFERS: u32 = 4;
/// How long a dequeue may block before the thread checks whether it is still wanted.
const POLL_TIMEOUT: Duration = Duration::from_millis(500);

/// Opens real devices through the kernel's V4L2 API.
#[derive(Debug, Default, Clone, Copy)]
pub struct V4lBackend;

impl CameraBackend for V4lBackend {
    fn open(&self, path: &str) -> Result<Box<dyn CameraDevice>, SourceError> {
        let dev = Device::with_path(path).map_err(|e| open_error(path, &e))?;
        Ok(Box::new(V4lCamera {
            path: path.to_string(),
            dev,
            stream: None,
        }))
    }
}

/// One open device.
struct V4lCamera {
    /// Device path, for messages.
    path: String,
    /// The open device.
    dev: Device,
    /// Capture buffers once [`CameraDevice::start`] set them up. Its lifetime is not tied to
    /// `dev` (it holds its own handle), hence `'static`.
    stream: Option<Stream<'static>>,
}

impl CameraDevice for V4lCamera {
    fn configure(&mut self, settings: &EncoderSettings) -> Result<Configured, SourceError> {
        let path = self.path.as_str();
        let caps = self
            .dev
            .query_caps()
            .map_err(|e| SourceError::Connect(format!("{path}: cannot query the device: {e}")))?;
        if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE)
            || !caps.capabilities.contains(CapFlags::STREAMING)
        {
            return Err(SourceError::Config(format!(
                "{path} ({}) is not a streaming video capture device",
                caps.card
            )));
        }
        let (format, capture) = choose_format(&self.dev, path, settings)?;
        let fps = match self
            .dev
            .set_params(&Parameters::with_fps(settings.fps.max(1)))
        {
            Ok(p) if p.interval.numerator > 0 => p.interval.denominator / p.interval.numerator,
            _ => settings.fps,
        };
        Ok(Configured {
            card: caps.card,
            fourcc: format.fourcc.repr,
            width: format.width,
            height: format.height,
            fps,
            capture,
        })
    }

    fn start(&mut self) -> Result<(), SourceError> {
        let mut stream = Stream::with_buffers(&self.dev, Type::VideoCapture, DEVICE_BUFFERS)
            .map_err(|e| device_error(&self.path, "cannot set up capture buffers", &e))?;
        stream.set_timeout(POLL_TIMEOUT);
        self.stream = Some(stream);
        Ok(())
    }

    fn next_buffer(&mut self) -> Result<Option<(&[u8], BufferMeta)>, SourceError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(SourceError::Stream(format!(
                "{}: capture was not started",
                self.path
            )));
        };
        match stream.next() {
            Ok((buf, meta)) => {
                // `time_t` is 32 bits on some 32-bit ARM targets, so the conversion is not
                // useless there.
                #[allow(clippy::useless_conversion)]
                let pts_us =
                    i64::from(meta.timestamp.sec) * 1_000_000 + i64::from(meta.timestamp.usec);
                let meta = BufferMeta {
                    bytesused: meta.bytesused as usize,
                    pts_us,
                    corrupted: meta.flags.contains(BufferFlags::ERROR),
                };
                Ok(Some((buf, meta)))
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
            // Once streaming, anything but a timeout ends the session.
            Err(e) => Err(match device_error(&self.path, "capture failed", &e) {
                SourceError::Connect(msg) => SourceError::Stream(msg),
                other => other,
            }),
        }
    }
}

/// Picks the first format of [`PREFERENCE`] the device offers and accepts.
fn choose_format(
    dev: &Device,
    path: &str,
    settings: &EncoderSettings,
) -> Result<(Format, CaptureFormat), SourceError> {
    let offered = dev
        .enum_formats()
        .map_err(|e| device_error(path, "cannot list formats", &e))?;
    for (fourcc, name) in PREFERENCE {
        if !offered.iter().any(|d| d.fourcc.repr == *fourcc) {
            continue;
        }
        let want = Format::new(settings.width, settings.height, FourCC::new(fourcc));
        let got = dev
            .set_format(&want)
            .map_err(|e| device_error(path, "cannot set the format", &e))?;
        if got.fourcc.repr != *fourcc {
            tracing::debug!(device = %path, format = name, "driver refused the format");
            continue;
        }
        let capture = match fourcc {
            b"H264" => CaptureFormat::H264,
            b"MJPG" => CaptureFormat::Mjpeg,
            b"YUYV" => CaptureFormat::Yuyv {
                stride: got.stride as usize,
            },
            _ => CaptureFormat::Nv12 {
                stride: got.stride as usize,
            },
        };
        return Ok((got, capture));
    }
    let names: Vec<String> = offered
        .iter()
        .map(|d| String::from_utf8_lossy(&d.fourcc.repr).into_owned())
        .collect();
    Err(SourceError::Config(format!(
        "{path} offers none of H264, MJPG, YUYV, NV12 (it offers: {})",
        names.join(", ")
    )))
}

/// A human sentence for a failed `open`.
fn open_error(path: &str, e: &io::Error) -> SourceError {
    match e.kind() {
        io::ErrorKind::NotFound => SourceError::Connect(format!("{path} does not exist")),
        io::ErrorKind::PermissionDenied => SourceError::Connect(permission_error(
            path,
            e.raw_os_error(),
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.uid(), m.gid(), m.mode())),
        )),
        _ => device_error(path, "cannot open", e),
    }
}

/// The sentence for a refused `open`: what the file allows, and what to change. `EPERM`
/// comes from the service's device policy (systemd's `DeviceAllow=`), `EACCES` from the
/// file's owner, group and mode, which udev sets when the camera appears.
pub(super) fn permission_error(
    path: &str,
    errno: Option<i32>,
    stat: Option<(u32, u32, u32)>,
) -> String {
    const EPERM: i32 = 1;
    if errno == Some(EPERM) {
        return format!(
            "not allowed to open {path}: the service's device policy blocks it (systemd \
             DeviceAllow=char-video4linux needs the camera driver loaded before edgecam starts)"
        );
    }
    let file = match stat {
        Some((uid, gid, mode)) => format!(
            " ({path} is owned by uid {uid}, gid {gid}, mode {:04o})",
            mode & 0o7777
        ),
        None => String::new(),
    };
    format!(
        "no permission to open {path}{file}: the service user must be in the device's group \
         (`video`), and udev must give that group access (is udev running?)"
    )
}

/// A human sentence for a failed device call; EBUSY and a vanished device get their own.
fn device_error(path: &str, what: &str, e: &io::Error) -> SourceError {
    const EBUSY: i32 = 16;
    const ENODEV: i32 = 19;
    match e.raw_os_error() {
        Some(EBUSY) => SourceError::Connect(format!(
            "{path} is busy (another program is using the camera)"
        )),
        Some(ENODEV) => SourceError::Connect(format!("{path} was disconnected")),
        _ => SourceError::Connect(format!("{path}: {what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_say_which_rule_refused() {
        let eperm = permission_error("/dev/video0", Some(1), Some((0, 44, 0o20660)));
        assert!(eperm.contains("device policy"), "{eperm}");
        let eacces = permission_error("/dev/video0", Some(13), Some((0, 0, 0o20600)));
        assert_eq!(
            eacces,
            "no permission to open /dev/video0 (/dev/video0 is owned by uid 0, gid 0, mode 0600): \
             the service user must be in the device's group (`video`), and udev must give that \
             group access (is udev running?)"
        );
        let unknown = permission_error("/dev/video0", Some(13), None);
        assert!(
            unknown.starts_with("no permission to open /dev/video0: "),
            "{unknown}"
        );
    }
}
