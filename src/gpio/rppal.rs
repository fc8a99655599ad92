//! The `rppal` backend (feature `rppal`), for Raspberry Pi images that still want it.
//!
//! rppal is retired upstream (its repository is archived); prefer [`super::gpiocdev`], which
//! works on every Linux board. Here lines are BCM GPIO numbers (`line = 17`); the `chip` field
//! is ignored and line names are refused. Edges come from rppal's interrupt thread
//! (`set_async_interrupt`), which only wakes the input task: the task then reads the pin's
//! level itself, so a dropped wake-up can never leave a stale level.

use super::{GpioError, InputBackend, InputLine, OutputBackend, OutputLine};
use crate::config::{ActiveLevel, Bias, GpioInputConfig, GpioOutputConfig, LineRef};
use ::rppal::gpio::{Gpio, InputPin, Level, OutputPin, Trigger};
use futures::future::BoxFuture;
use std::time::Duration;
use tokio::sync::mpsc;

/// Path named in messages; rppal opens `/dev/gpiomem` or `/dev/gpiochip0` itself.
const PATH: &str = "/dev/gpiomem";

/// The rppal backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct RppalBackend;

fn map_err(line: &LineRef, e: ::rppal::gpio::Error) -> GpioError {
    use ::rppal::gpio::Error as E;
    match e {
        E::PermissionDenied(path) => GpioError::PermissionDenied { path },
        E::PinNotAvailable(_) => GpioError::NoSuchLine {
            path: PATH.into(),
            line: line.to_string(),
        },
        E::PinUsed(_) => GpioError::LineBusy {
            path: PATH.into(),
            line: line.to_string(),
        },
        E::Io(io) => match io.raw_os_error() {
            Some(errno) => super::errno_error(PATH, errno),
            None => GpioError::Io {
                path: PATH.into(),
                message: io.to_string(),
            },
        },
        other => GpioError::Io {
            path: PATH.into(),
            message: other.to_string(),
        },
    }
}

fn bcm(line: &LineRef) -> Result<u8, GpioError> {
    match line {
        LineRef::Offset(o) => u8::try_from(*o).map_err(|_| GpioError::NoSuchLine {
            path: PATH.into(),
            line: line.to_string(),
        }),
        LineRef::Name(n) => Err(GpioError::Unsupported(format!(
            "the rppal backend takes BCM numbers, not line names (`{n}`)"
        ))),
    }
}

/// An input pin with an interrupt on both edges.
struct RppalInput {
    /// The pin; kept so the interrupt stays registered and the level can be read.
    pin: InputPin,
    /// Wake-ups from the interrupt thread.
    rx: mpsc::Receiver<()>,
    /// Whether rppal debounces (a debounce period was given).
    debounced: bool,
    /// The level last reported, to turn wake-ups into edges.
    last_high: bool,
}

impl InputLine for RppalInput {
    fn read_high(&mut self) -> Result<bool, GpioError> {
        self.last_high = self.pin.read() == Level::High;
        Ok(self.last_high)
    }

    fn next_edge(&mut self) -> BoxFuture<'_, Result<bool, GpioError>> {
        Box::pin(async move {
            loop {
                if self.rx.recv().await.is_none() {
                    return Err(GpioError::Io {
                        path: PATH.into(),
                        message: "interrupt thread stopped".into(),
                    });
                }
                let high = self.pin.read() == Level::High;
                if high != self.last_high {
                    self.last_high = high;
                    return Ok(high);
                }
            }
        })
    }

    fn debounced(&self) -> bool {
        self.debounced
    }
}

impl InputBackend for RppalBackend {
    fn open_input(&self, cfg: &GpioInputConfig) -> Result<Box<dyn InputLine>, GpioError> {
        let n = bcm(&cfg.line)?;
        let gpio = Gpio::new().map_err(|e| map_err(&cfg.line, e))?;
        let pin = gpio.get(n).map_err(|e| map_err(&cfg.line, e))?;
        let mut pin = match cfg.bias {
            Bias::PullUp => pin.into_input_pullup(),
            Bias::PullDown => pin.into_input_pulldown(),
            Bias::None => pin.into_input(),
        };
        let debounce =
            (cfg.debounce_ms > 0).then(|| Duration::from_millis(u64::from(cfg.debounce_ms)));
        let (tx, rx) = mpsc::channel(1);
        pin.set_async_interrupt(Trigger::Both, debounce, move |_event| {
            // Full means a wake-up is already pending, which is all the reader needs.
            let _ = tx.try_send(());
        })
        .map_err(|e| map_err(&cfg.line, e))?;
        let last_high = pin.read() == Level::High;
        Ok(Box::new(RppalInput {
            pin,
            rx,
            debounced: debounce.is_some(),
            last_high,
        }))
    }
}

/// An output pin.
struct RppalOutput {
    /// The pin.
    pin: OutputPin,
    /// Which level is "on".
    active: ActiveLevel,
}

impl OutputLine for RppalOutput {
    fn set(&mut self, on: bool) -> Result<(), GpioError> {
        let high = on == (self.active == ActiveLevel::High);
        self.pin.write(if high { Level::High } else { Level::Low });
        Ok(())
    }
}

impl OutputBackend for RppalBackend {
    fn open_output(&self, cfg: &GpioOutputConfig) -> Result<Box<dyn OutputLine>, GpioError> {
        let n = bcm(&cfg.line)?;
        let gpio = Gpio::new().map_err(|e| map_err(&cfg.line, e))?;
        let pin = gpio.get(n).map_err(|e| map_err(&cfg.line, e))?;
        // Start off.
        let pin = match cfg.active {
            ActiveLevel::High => pin.into_output_low(),
            ActiveLevel::Low => pin.into_output_high(),
        };
        Ok(Box::new(RppalOutput {
            pin,
            active: cfg.active,
        }))
    }
}
