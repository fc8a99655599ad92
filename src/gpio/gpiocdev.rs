//! The default backend: the Linux GPIO character device through the `gpiocdev` crate.
//!
//! Lines are found by offset or by name on the configured chip. Inputs ask the kernel to
//! debounce (`with_debounce_period`, uAPI v2); when the chip or kernel refuses, the request is
//! made again without it and the input task debounces in software. Edges are read
//! asynchronously with `gpiocdev::tokio::AsyncRequest`.

use super::{
    GpioError, InputBackend, InputLine, OutputBackend, OutputLine, chip_path, errno_error,
};
use crate::config::{ActiveLevel, Bias, GpioInputConfig, GpioOutputConfig, LineRef};
use ::gpiocdev::line::{EdgeDetection, EdgeKind, Value};
use ::gpiocdev::tokio::AsyncRequest;
use ::gpiocdev::{Chip, Request};
use futures::future::BoxFuture;
use std::time::Duration;

/// Consumer label the kernel shows for our lines (`gpioinfo`).
const CONSUMER: &str = "edgecam";

/// The gpiocdev backend; stateless, lines are opened on demand.
#[derive(Debug, Default, Clone, Copy)]
pub struct GpiocdevBackend;

/// Maps a gpiocdev error met while using `path` (and `line`) to a [`GpioError`].
fn map_err(path: &str, line: &LineRef, e: ::gpiocdev::Error) -> GpioError {
    match e {
        ::gpiocdev::Error::Os(errno) => errno_error(path, errno.0),
        ::gpiocdev::Error::GpioChip(..) => GpioError::NotAGpioChip { path: path.into() },
        ::gpiocdev::Error::NoGpioChips() => GpioError::NoSuchChip { path: path.into() },
        other => GpioError::Io {
            path: path.into(),
            message: format!("line {line}: {other}"),
        },
    }
}

/// Opens the chip and resolves the line to an offset, checking it exists and is free.
fn resolve(chip: &str, line: &LineRef) -> Result<(String, u32), GpioError> {
    let path = chip_path(chip);
    let c = Chip::from_path(&path).map_err(|e| map_err(&path, line, e))?;
    let no_line = || GpioError::NoSuchLine {
        path: path.clone(),
        line: line.to_string(),
    };
    let info = match line {
        LineRef::Offset(o) => c.line_info(*o).map_err(|_| no_line())?,
        LineRef::Name(n) => c.find_line_info(n).ok_or_else(no_line)?,
    };
    if info.used {
        return Err(GpioError::LineBusy {
            path,
            line: line.to_string(),
        });
    }
    Ok((path, info.offset))
}

fn bias(b: Bias) -> ::gpiocdev::line::Bias {
    match b {
        Bias::PullUp => ::gpiocdev::line::Bias::PullUp,
        Bias::PullDown => ::gpiocdev::line::Bias::PullDown,
        Bias::None => ::gpiocdev::line::Bias::Disabled,
    }
}

/// An input line with edge detection on both edges, read as the raw electrical level.
struct GpiocdevInput {
    /// The request, registered with the tokio reactor.
    req: AsyncRequest,
    /// Whether the kernel debounces this line.
    kernel_debounce: bool,
    /// For error messages.
    path: String,
    /// For error messages.
    line: LineRef,
}

impl InputLine for GpiocdevInput {
    fn read_high(&mut self) -> Result<bool, GpioError> {
        let v = self
            .req
            .as_ref()
            .lone_value()
            .map_err(|e| map_err(&self.path, &self.line, e))?;
        Ok(v == Value::Active)
    }

    fn next_edge(&mut self) -> BoxFuture<'_, Result<bool, GpioError>> {
        Box::pin(async move {
            let ev = self
                .req
                .read_edge_event()
                .await
                .map_err(|e| map_err(&self.path, &self.line, e))?;
            Ok(ev.kind == EdgeKind::Rising)
        })
    }

    fn debounced(&self) -> bool {
        self.kernel_debounce
    }
}

impl InputBackend for GpiocdevBackend {
    /// Must be called within a tokio runtime (the request registers with its reactor).
    fn open_input(&self, cfg: &GpioInputConfig) -> Result<Box<dyn InputLine>, GpioError> {
        let (path, offset) = resolve(&cfg.chip, &cfg.line)?;
        let request = |debounce: Option<Duration>| {
            let mut b = Request::builder();
            b.on_chip(&path)
                .with_consumer(CONSUMER)
                .with_line(offset)
                .as_input()
                .as_active_high()
                .with_bias(bias(cfg.bias))
                .with_edge_detection(EdgeDetection::BothEdges);
            if let Some(d) = debounce {
                b.with_debounce_period(d);
            }
            b.request()
        };
        let period = Duration::from_millis(u64::from(cfg.debounce_ms));
        let (req, kernel_debounce) = if period.is_zero() {
            (request(None), false)
        } else {
            match request(Some(period)) {
                Ok(r) => (Ok(r), true),
                Err(e) => {
                    tracing::debug!(chip = %path, line = %cfg.line, error = %e,
                        "kernel debounce refused; debouncing in software");
                    (request(None), false)
                }
            }
        };
        let req = req.map_err(|e| map_err(&path, &cfg.line, e))?;
        Ok(Box::new(GpiocdevInput {
            req: AsyncRequest::new(req),
            kernel_debounce,
            path,
            line: cfg.line.clone(),
        }))
    }
}

/// An output line; the kernel applies the active level, so `set` speaks logical on/off.
struct GpiocdevOutput {
    /// The request.
    req: Request,
    /// For error messages.
    path: String,
    /// For error messages.
    line: LineRef,
}

impl OutputLine for GpiocdevOutput {
    fn set(&mut self, on: bool) -> Result<(), GpioError> {
        let v = if on { Value::Active } else { Value::Inactive };
        self.req
            .set_lone_value(v)
            .map_err(|e| map_err(&self.path, &self.line, e))
    }
}

impl OutputBackend for GpiocdevBackend {
    fn open_output(&self, cfg: &GpioOutputConfig) -> Result<Box<dyn OutputLine>, GpioError> {
        let (path, offset) = resolve(&cfg.chip, &cfg.line)?;
        let mut b = Request::builder();
        b.on_chip(&path).with_consumer(CONSUMER).with_line(offset);
        match cfg.active {
            ActiveLevel::Low => b.as_active_low(),
            ActiveLevel::High => b.as_active_high(),
        };
        let req = b
            .as_output(Value::Inactive)
            .request()
            .map_err(|e| map_err(&path, &cfg.line, e))?;
        Ok(Box::new(GpiocdevOutput {
            req,
            path,
            line: cfg.line.clone(),
        }))
    }
}
