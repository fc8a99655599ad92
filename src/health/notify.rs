//! Messages to systemd (`sd_notify`) and the one-line `STATUS=` summary.
//!
//! Every function is a no-op when `NOTIFY_SOCKET` is not set (not started by systemd with
//! `Type=notify`). A failed send is logged and otherwise ignored: systemd being unreachable
//! must never take the cameras down.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::select::ActiveView;

fn send(what: &str, states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(message = what, error = %e, "cannot notify systemd");
    }
}

/// `READY=1`: config loaded, rings allocated, web listener bound.
pub fn ready() {
    send("READY", &[NotifyState::Ready]);
}

/// `STOPPING=1`: graceful shutdown has begun.
pub fn stopping() {
    send("STOPPING", &[NotifyState::Stopping]);
}

/// `WATCHDOG=1`: every watched loop is alive.
pub fn watchdog() {
    send("WATCHDOG", &[NotifyState::Watchdog]);
}

/// `STATUS=<line>`.
pub fn status(line: &str) {
    send("STATUS", &[NotifyState::Status(line)]);
}

/// `EXTEND_TIMEOUT_USEC`: start-up needs up to `by` more before `READY=1`.
pub fn extend_timeout(by: Duration) {
    let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
    send(
        "EXTEND_TIMEOUT_USEC",
        &[NotifyState::ExtendTimeoutUsec(usec)],
    );
}

/// The watchdog period systemd asked for (`WATCHDOG_USEC` for this process), if any.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// The one-line summary, e.g. `3/4 live · active cam2 (alarm: door) · 1 viewer`.
pub fn status_line(live: usize, total: usize, view: &ActiveView, viewers: u64) -> String {
    let active = view.stream.as_deref().unwrap_or("none");
    let reason = match view.reason.split_once(':') {
        Some((kind, what)) => format!("{kind}: {what}"),
        None => view.reason.clone(),
    };
    let plural = if viewers == 1 { "" } else { "s" };
    format!("{live}/{total} live · active {active} ({reason}) · {viewers} viewer{plural}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_says_what_is_shown_and_why() {
        let view = ActiveView {
            stream: Some("cam2".into()),
            reason: "alarm:door".into(),
            ..ActiveView::default()
        };
        assert_eq!(
            status_line(3, 4, &view, 1),
            "3/4 live · active cam2 (alarm: door) · 1 viewer"
        );
        let view = ActiveView {
            stream: Some("cam1".into()),
            reason: "default".into(),
            ..ActiveView::default()
        };
        assert_eq!(
            status_line(1, 1, &view, 0),
            "1/1 live · active cam1 (default) · 0 viewers"
        );
    }
}
