//! Fault injection for the watchdog tests (cargo feature `fault-injection`).
//!
//! Watched loops call [`checkpoint`] next to every beat. Without the feature it is an empty
//! `async fn` the compiler removes. With it, the environment variable `EDGECAM_FAULT` can name
//! one loop and what to do to it:
//!
//! * `hang:stream:cam2` — the loop of stream `cam2` stops at its next checkpoint forever
//!   (like a deadlocked `.await`); its beacon goes stale.
//! * `panic:control` — the control task panics at its next checkpoint (`main` names the
//!   daemon's main loop, `web` the web server's `/api/health` handler, which the self-probe
//!   calls, `live` the live pusher's relay, `live:client` every `/api/live` client loop and
//!   `gpio:door` the input task of GPIO alarm `door`, `onvif:door` that of ONVIF alarm `door`).
//! * A suffix `@MS` delays the fault until `MS` milliseconds after the first checkpoint of the
//!   process, e.g. `hang:stream:cam2@3000`, so a test can first see the healthy behaviour.
//!
//! In-process tests arm a fault with [`arm`] instead of the environment.

/// Applies the configured fault, if it targets the loop `kind` (`stream`, `control`, `main`,
/// `web`, `live`, `gpio`, `onvif`) with `id` (the stream id, `client` for live clients, the alarm id for
/// `gpio` and `onvif`; empty for single loops).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub async fn checkpoint(_kind: &str, _id: &str) {}

/// Applies the configured fault, if it targets the loop `kind` (`stream`, `control`, `main`,
/// `web`, `live`, `gpio`, `onvif`) with `id` (the stream id, `client` for live clients, the alarm id for
/// `gpio` and `onvif`; empty for single loops).
#[cfg(feature = "fault-injection")]
pub async fn checkpoint(kind: &str, id: &str) {
    let Some(fault) = imp::fault() else {
        return;
    };
    if !fault.targets(kind, id) || imp::since_start() < fault.after {
        return;
    }
    match fault.action {
        imp::Action::Hang => {
            tracing::warn!(kind, id, "fault injection: hanging this loop");
            std::future::pending::<()>().await;
        }
        imp::Action::Panic => panic!("fault injection: panic in {kind} {id}"),
    }
}

/// Arms `spec` (same syntax as `EDGECAM_FAULT`) for this process, for in-process tests;
/// it wins over the environment. Only the first call takes effect; `false` when `spec` does
/// not parse or a fault was armed already.
#[cfg(feature = "fault-injection")]
pub fn arm(spec: &str) -> bool {
    let Some(fault) = imp::Fault::parse(spec) else {
        return false;
    };
    tracing::warn!(fault = ?fault, "fault injection armed in-process");
    imp::ARMED.set(fault).is_ok()
}

#[cfg(feature = "fault-injection")]
mod imp {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// What to do to the targeted loop.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Action {
        /// Stop forever at the checkpoint.
        Hang,
        /// Panic at the checkpoint.
        Panic,
    }

    /// A parsed `EDGECAM_FAULT`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Fault {
        /// What to do.
        pub(super) action: Action,
        /// `stream:<id>` or a single loop's name.
        pub(super) target: String,
        /// Delay after the first checkpoint of the process.
        pub(super) after: Duration,
    }

    impl Fault {
        /// Parses `hang:stream:cam2@3000`; `None` for anything else.
        pub(super) fn parse(s: &str) -> Option<Fault> {
            let (action, rest) = s.split_once(':')?;
            let action = match action {
                "hang" => Action::Hang,
                "panic" => Action::Panic,
                _ => return None,
            };
            let (target, after) = match rest.rsplit_once('@') {
                Some((t, ms)) => (t, Duration::from_millis(ms.parse().ok()?)),
                None => (rest, Duration::ZERO),
            };
            Some(Fault {
                action,
                target: target.to_string(),
                after,
            })
        }

        /// True when the loop `kind`/`id` is the target (no allocation).
        pub(super) fn targets(&self, kind: &str, id: &str) -> bool {
            match self.target.strip_prefix(kind) {
                Some("") => id.is_empty(),
                Some(rest) => !id.is_empty() && rest.strip_prefix(':') == Some(id),
                None => false,
            }
        }
    }

    /// A fault armed in-process ([`super::arm`]).
    pub(super) static ARMED: OnceLock<Fault> = OnceLock::new();

    /// The fault armed in-process, else the one from the environment (read once).
    pub(super) fn fault() -> Option<&'static Fault> {
        if let Some(f) = ARMED.get() {
            return Some(f);
        }
        static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
        FAULT
            .get_or_init(|| {
                let _ = since_start();
                let raw = std::env::var("EDGECAM_FAULT").ok()?;
                let fault = Fault::parse(&raw);
                match &fault {
                    Some(f) => tracing::warn!(fault = ?f, "fault injection armed"),
                    None => tracing::warn!(value = %raw, "EDGECAM_FAULT not understood"),
                }
                fault
            })
            .as_ref()
    }

    /// Time since the first call.
    pub(super) fn since_start() -> Duration {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn faults_parse_and_target_one_loop() {
            let f = Fault::parse("hang:stream:cam2@3000").unwrap();
            assert_eq!(f.action, Action::Hang);
            assert_eq!(f.after, Duration::from_secs(3));
            assert!(f.targets("stream", "cam2"));
            assert!(!f.targets("stream", "cam22"));
            assert!(!f.targets("stream", "cam1"));
            assert!(!f.targets("control", ""));
            let f = Fault::parse("panic:control").unwrap();
            assert_eq!(f.action, Action::Panic);
            assert!(f.targets("control", ""));
            assert!(!f.targets("stream", "control"));
            assert_eq!(Fault::parse("explode:control"), None);
            assert_eq!(Fault::parse("hang:control@soon"), None);
            let f = Fault::parse("hang:live:client").unwrap();
            assert!(f.targets("live", "client"));
            assert!(!f.targets("live", ""), "the relay is another loop");
            let f = Fault::parse("hang:live").unwrap();
            assert!(f.targets("live", ""));
            assert!(!f.targets("live", "client"));
        }
    }
}
