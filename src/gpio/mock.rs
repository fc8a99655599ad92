//! In-memory backends for tests and for running without GPIO hardware.

use super::{GpioError, InputBackend, InputLine, OutputBackend, OutputLine};
use crate::config::{GpioInputConfig, GpioOutputConfig};
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// What the mock input backend shares with its test.
#[derive(Debug, Default)]
struct InputShared {
    /// When set, every open fails with this error.
    fail: Option<GpioError>,
    /// Successful and failed open attempts.
    opens: u64,
    /// The electrical level of the simulated line.
    high: bool,
    /// Edge feed of the line currently open.
    feed: Option<mpsc::UnboundedSender<Result<bool, GpioError>>>,
}

/// A simulated input line, driven with [`MockInput::set_high`]. Clones share the line.
#[derive(Debug, Clone, Default)]
pub struct MockInput {
    /// State shared with the opened lines.
    shared: Arc<Mutex<InputShared>>,
}

impl MockInput {
    /// A line reading `high`, whose opens succeed.
    pub fn new(high: bool) -> MockInput {
        let m = MockInput::default();
        m.lock().high = high;
        m
    }

    fn lock(&self) -> MutexGuard<'_, InputShared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes later opens fail with `err` (or succeed again with `None`).
    pub fn fail_opens(&self, err: Option<GpioError>) {
        self.lock().fail = err;
    }

    /// Open attempts so far.
    pub fn opens(&self) -> u64 {
        self.lock().opens
    }

    /// Changes the electrical level, producing an edge on the open line.
    pub fn set_high(&self, high: bool) {
        let mut s = self.lock();
        if s.high != high {
            s.high = high;
            if let Some(feed) = &s.feed {
                // The line may have been dropped; then nobody needs the edge.
                let _ = feed.send(Ok(high));
            }
        }
    }

    /// Makes the open line fail, as a disconnected device would.
    pub fn break_line(&self, err: GpioError) {
        if let Some(feed) = self.lock().feed.take() {
            let _ = feed.send(Err(err));
        }
    }
}

/// The open side of a [`MockInput`].
struct MockLine {
    /// Shared state, for the level.
    input: MockInput,
    /// Edges fed by the test.
    rx: mpsc::UnboundedReceiver<Result<bool, GpioError>>,
}

impl InputLine for MockLine {
    fn read_high(&mut self) -> Result<bool, GpioError> {
        Ok(self.input.lock().high)
    }

    fn next_edge(&mut self) -> BoxFuture<'_, Result<bool, GpioError>> {
        Box::pin(async move {
            match self.rx.recv().await {
                Some(r) => r,
                None => Err(GpioError::Io {
                    path: "mock".into(),
                    message: "line closed".into(),
                }),
            }
        })
    }

    fn debounced(&self) -> bool {
        false
    }
}

impl InputBackend for MockInput {
    fn open_input(&self, _cfg: &GpioInputConfig) -> Result<Box<dyn InputLine>, GpioError> {
        let mut s = self.lock();
        s.opens += 1;
        if let Some(e) = &s.fail {
            return Err(e.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        s.feed = Some(tx);
        drop(s);
        Ok(Box::new(MockLine {
            input: self.clone(),
            rx,
        }))
    }
}

/// Records what outputs are set to: `(line as configured, on)` in order. Clones share the log.
#[derive(Debug, Clone, Default)]
pub struct MockOutputs {
    /// Every `set` call.
    log: Arc<Mutex<Vec<(String, bool)>>>,
}

impl MockOutputs {
    /// Every `set` call so far.
    pub fn log(&self) -> Vec<(String, bool)> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One recorded output line.
struct MockOutputLine {
    /// The line as configured, for the log.
    name: String,
    /// Where sets are recorded.
    log: Arc<Mutex<Vec<(String, bool)>>>,
}

impl OutputLine for MockOutputLine {
    fn set(&mut self, on: bool) -> Result<(), GpioError> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((self.name.clone(), on));
        Ok(())
    }
}

impl OutputBackend for MockOutputs {
    fn open_output(&self, cfg: &GpioOutputConfig) -> Result<Box<dyn OutputLine>, GpioError> {
        Ok(Box::new(MockOutputLine {
            name: cfg.line.to_string(),
            log: self.log.clone(),
        }))
    }
}
