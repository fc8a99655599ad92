//! GPIO and ONVIF alarm inputs wired to the control task: one supervised input task per alarm
//! with a `[alarms.gpio]` or `[alarms.onvif]` section, each retrying on its own, so a missing
//! chip or an unreachable camera only fails its alarm.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::backoff::BackoffConfig;
use crate::clock::Clock;
use crate::config::{AlarmConfig, StreamConfig};
use crate::gpio::{
    AlarmSignal, InputBackend, InputState, InputStatus, OutputBackend, run_gpio_input,
};
use crate::handles::InputEntry;
use crate::health::beacon::{BeaconGuard, BeaconTable};
use crate::health::{GPIO_BUDGET, ONVIF_BUDGET};
use crate::onvif::{OnvifInput, run_onvif_input};

use crate::control::{Command, Control};

/// The GPIO backends the daemon uses.
#[derive(Clone)]
pub struct GpioBackends {
    /// Opens alarm input lines.
    pub input: Arc<dyn InputBackend>,
    /// Opens relay/buzzer output lines.
    pub output: Arc<dyn OutputBackend>,
}

impl std::fmt::Debug for GpioBackends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GpioBackends")
    }
}

impl GpioBackends {
    /// The machine's GPIO: the character-device backend (gpiocdev), or rppal when the crate
    /// was built with the `rppal` feature for a Raspberry Pi image.
    pub fn system() -> Self {
        #[cfg(feature = "rppal")]
        {
            let b = Arc::new(crate::gpio::rppal::RppalBackend);
            GpioBackends {
                input: b.clone(),
                output: b,
            }
        }
        #[cfg(not(feature = "rppal"))]
        {
            Self::gpiocdev()
        }
    }

    /// The GPIO character-device backend (any Linux board).
    pub fn gpiocdev() -> Self {
        let b = Arc::new(crate::gpio::gpiocdev::GpiocdevBackend);
        GpioBackends {
            input: b.clone(),
            output: b,
        }
    }
}

/// The running input tasks of one config's alarms.
#[derive(Debug)]
pub struct AlarmInputs {
    /// One task per GPIO input, plus the forwarder; aborted on drop.
    tasks: Vec<JoinHandle<()>>,
    /// Tells the ONVIF input tasks to unsubscribe and end (set on drop); they are not
    /// aborted, so the camera's subscription is released.
    onvif_stop: watch::Sender<bool>,
    /// Each GPIO and ONVIF alarm's input state (`ok`, `failed: why`), for the status page.
    statuses: Vec<InputEntry>,
    /// The input tasks' watchdog slots (`gpio:<alarm id>`, `onvif:<alarm id>`), released
    /// with the tasks.
    _beacons: Vec<BeaconGuard>,
}

impl AlarmInputs {
    /// Starts an input task for every alarm with a GPIO input; their debounced levels go to
    /// `control` as [`Command::AlarmInput`]. Each task beats a `gpio:<alarm id>` slot of
    /// `beacons` for the watchdog. Alarms with an ONVIF input get a task that subscribes to
    /// the camera's events (the camera found in `streams` when named by a stream) and beats
    /// `onvif:<alarm id>`.
    pub fn start(
        alarms: &[AlarmConfig],
        streams: &[StreamConfig],
        backends: &GpioBackends,
        clock: Arc<dyn Clock>,
        control: Control,
        beacons: &Arc<BeaconTable>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<AlarmSignal>(64);
        let mut tasks = Vec::new();
        let mut statuses = Vec::new();
        let mut guards = Vec::new();
        for (index, alarm) in alarms.iter().enumerate() {
            let Some(gpio) = &alarm.gpio else { continue };
            let status = Arc::new(InputStatus::default());
            let name = format!("gpio:{}", alarm.id);
            match beacons.register(&name, GPIO_BUDGET, clock.mono_ns()) {
                Ok(guard) => {
                    status.watch_with(guard.beacon(), &alarm.id);
                    guards.push(guard);
                }
                Err(e) => tracing::warn!(alarm = %alarm.id, error = %e, "GPIO input not watched"),
            }
            statuses.push(entry(alarm, "gpio", &status));
            tasks.push(tokio::spawn(run_gpio_input(
                index,
                gpio.clone(),
                Arc::clone(&backends.input),
                Arc::clone(&clock),
                status,
                tx.clone(),
                BackoffConfig::default(),
            )));
        }
        let (onvif_stop, stop_rx) = watch::channel(false);
        for (index, alarm) in alarms.iter().enumerate() {
            let Some(onvif) = &alarm.onvif else { continue };
            let status = Arc::new(InputStatus::default());
            statuses.push(entry(alarm, "onvif", &status));
            let target = match onvif.target(streams) {
                Ok(t) => t,
                Err(e) => {
                    status.set(InputState::Failed(e));
                    continue;
                }
            };
            let name = format!("onvif:{}", alarm.id);
            match beacons.register(&name, ONVIF_BUDGET, clock.mono_ns()) {
                Ok(guard) => {
                    status.watch_as(guard.beacon(), "onvif", &alarm.id);
                    guards.push(guard);
                }
                Err(e) => tracing::warn!(alarm = %alarm.id, error = %e, "ONVIF input not watched"),
            }
            let input = OnvifInput {
                alarm: index,
                alarm_id: alarm.id.clone(),
                address: target.address,
                user: target.user,
                password: target.password,
                topic: onvif.topic.clone(),
                item: onvif.item.clone(),
            };
            // Not kept in `tasks`: it ends by itself on `onvif_stop`, after unsubscribing.
            tokio::spawn(run_onvif_input(
                input,
                Arc::clone(&clock),
                status,
                tx.clone(),
                BackoffConfig::default(),
                stop_rx.clone(),
            ));
        }
        drop(tx);
        tasks.push(tokio::spawn(async move {
            while let Some(sig) = rx.recv().await {
                let cmd = Command::AlarmInput {
                    alarm: sig.alarm,
                    on: sig.on,
                };
                if control.send(cmd).await.is_err() {
                    break;
                }
            }
        }));
        AlarmInputs {
            tasks,
            onvif_stop,
            statuses,
            _beacons: guards,
        }
    }

    /// Every GPIO and ONVIF alarm input's alarm id and state.
    pub fn statuses(&self) -> impl Iterator<Item = (&str, InputState)> {
        self.statuses
            .iter()
            .map(|e| (e.alarm.as_str(), e.status.state()))
    }

    /// Every GPIO and ONVIF input's alarm, kind and shared status, for the status published
    /// to the web.
    pub fn status_handles(&self) -> Vec<InputEntry> {
        self.statuses.clone()
    }
}

/// The status entry of `alarm`'s input of `kind`.
fn entry(alarm: &AlarmConfig, kind: &'static str, status: &Arc<InputStatus>) -> InputEntry {
    InputEntry {
        alarm: alarm.id.clone(),
        kind,
        status: Arc::clone(status),
    }
}

impl Drop for AlarmInputs {
    fn drop(&mut self) {
        let _ = self.onvif_stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}
