//! GPIO alarm inputs (contacts) and outputs (relays, buzzers).
//!
//! The alarm logic never touches hardware directly: it goes through the small backend traits
//! here ([`InputBackend`] / [`InputLine`], [`OutputBackend`] / [`OutputLine`]), so it is tested
//! with [`mock`]. Real backends: [`gpiocdev`] (the default; any Linux board with the GPIO
//! character device) and `rppal` (feature `rppal`, Raspberry Pi only; retired upstream).
//!
//! An input runs as one task ([`run_gpio_input`]): it opens the line, debounces its edges
//! ([`Debouncer`], or the kernel's debounce where available), turns levels into logical alarm
//! on/off ([`crate::config::ActiveLevel`]) and sends [`AlarmSignal`]s to the selector task. When
//! the line cannot be opened or fails, the task reports `failed` in its [`InputStatus`] and
//! retries with capped exponential backoff; the daemon keeps running.

pub mod debounce;
pub mod gpiocdev;
mod input;
pub mod mock;
mod output;
#[cfg(feature = "rppal")]
pub mod rppal;

pub use debounce::Debouncer;
pub use input::{AlarmSignal, HEARTBEAT, InputState, InputStatus, run_gpio_input};
pub use output::OutputDriver;

use crate::config::{GpioInputConfig, GpioOutputConfig};
use futures::future::BoxFuture;
use thiserror::Error;

/// Why a GPIO line could not be used. Messages are meant for the operator as they are.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GpioError {
    /// The chip device does not exist.
    #[error("cannot open {path}: no such GPIO chip")]
    NoSuchChip {
        /// The chip path tried.
        path: String,
    },
    /// The process may not open the chip.
    #[error("permission denied on {path}: add the edgecam user to the gpio group")]
    PermissionDenied {
        /// The chip path tried.
        path: String,
    },
    /// The path exists but is not a GPIO character device.
    #[error("{path} is not a GPIO chip")]
    NotAGpioChip {
        /// The path tried.
        path: String,
    },
    /// The chip has no such line (offset out of range, or no line with that name).
    #[error("GPIO line {line} not found on {path}")]
    NoSuchLine {
        /// The chip path.
        path: String,
        /// The line as configured.
        line: String,
    },
    /// Another program holds the line.
    #[error("GPIO line {line} on {path} is busy (requested by another program)")]
    LineBusy {
        /// The chip path.
        path: String,
        /// The line as configured.
        line: String,
    },
    /// The backend cannot do what the config asks.
    #[error("unsupported GPIO configuration: {0}")]
    Unsupported(String),
    /// Any other failure, with the system's message.
    #[error("GPIO error on {path}: {message}")]
    Io {
        /// The chip path.
        path: String,
        /// What the system said.
        message: String,
    },
}

/// Maps an errno from opening or using `path` to a [`GpioError`] with a clear message.
pub fn errno_error(path: &str, errno: i32) -> GpioError {
    match errno {
        // ENOENT, ENXIO, ENODEV: nothing there.
        2 | 6 | 19 => GpioError::NoSuchChip { path: path.into() },
        // EPERM, EACCES.
        1 | 13 => GpioError::PermissionDenied { path: path.into() },
        _ => GpioError::Io {
            path: path.into(),
            message: std::io::Error::from_raw_os_error(errno).to_string(),
        },
    }
}

/// The device path for a configured chip: `gpiochip0` becomes `/dev/gpiochip0`; paths stay.
pub fn chip_path(chip: &str) -> String {
    if chip.contains('/') {
        chip.to_string()
    } else {
        format!("/dev/{chip}")
    }
}

/// An open input line.
pub trait InputLine: Send {
    /// The electrical level now (`true` = high).
    fn read_high(&mut self) -> Result<bool, GpioError>;
    /// Waits for the next edge and returns the new electrical level. Must be cancel-safe: the
    /// input task drops it when a debounce deadline comes first.
    fn next_edge(&mut self) -> BoxFuture<'_, Result<bool, GpioError>>;
    /// Whether the backend already debounces (in the kernel); then no software debounce is added.
    fn debounced(&self) -> bool;
}

/// Opens input lines. Called from inside the tokio runtime.
pub trait InputBackend: Send + Sync {
    /// Opens the line `cfg` names, with its bias and (where supported) debounce.
    fn open_input(&self, cfg: &GpioInputConfig) -> Result<Box<dyn InputLine>, GpioError>;
}

/// An open output line, driven in logical terms (the backend applies the active level).
pub trait OutputLine: Send {
    /// Drives the line on (relay energised) or off.
    fn set(&mut self, on: bool) -> Result<(), GpioError>;
}

/// Opens output lines; each starts off.
pub trait OutputBackend: Send + Sync {
    /// Opens the line `cfg` names as an output, initially off.
    fn open_output(&self, cfg: &GpioOutputConfig) -> Result<Box<dyn OutputLine>, GpioError>;
}
