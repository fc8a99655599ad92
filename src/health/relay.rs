//! One beacon for a group of loops that come and go: the live pusher.
//!
//! Every `/api/live` client is its own loop, and there may be none at all. Each client registers
//! in a member [`BeaconTable`] of its own (allocated once, like the daemon's) and beats it on
//! every iteration and every frame sent. A relay task beats the group's one slot in the
//! daemon's table every second with the time of the member that beat *least recently*, or with
//! the current time while there is no member: no viewer is healthy, one hung client is not,
//! and a hung relay is not either. The group's beacon therefore ages exactly like its stalest
//! member, and the watchdog names the group (`live`) when one client loop hangs.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::beacon::{BeaconGuard, BeaconTable};
use crate::clock::Clock;

/// How often the relay beats the group's beacon.
pub const RELAY_PERIOD: Duration = Duration::from_secs(1);

/// Beats `group` with the stalest member's last beat, or `now_ns` when `members` is empty.
pub fn relay_beat(members: &BeaconTable, group: &BeaconGuard, now_ns: u64) {
    let at = members.oldest_beat().map_or(now_ns, |t| t.min(now_ns));
    group.beat(at);
}

/// Runs the relay for `members` into `group` every [`RELAY_PERIOD`]. `fault_kind` names the
/// loop for fault injection (`hang:<fault_kind>` hangs the relay itself).
pub fn spawn_relay(
    fault_kind: &'static str,
    members: Arc<BeaconTable>,
    group: BeaconGuard,
    clock: Arc<dyn Clock>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(RELAY_PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            super::fault::checkpoint(fault_kind, "").await;
            relay_beat(&members, &group, clock.mono_ns());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_group_ages_like_its_stalest_member_and_is_fresh_when_empty() {
        let daemon = BeaconTable::new(4);
        let members = BeaconTable::new(4);
        let group = daemon.register("live", Duration::from_secs(10), 0).unwrap();
        // No member: fresh at every relay.
        relay_beat(&members, &group, 30 * S);
        assert_eq!(daemon.stalest(39 * S), None);
        // Two clients; one stops beating at 40 s, the other keeps going.
        let hung = members.register("live client", Duration::from_secs(10), 40 * S);
        let hung = hung.unwrap();
        let busy = members
            .register("live client", Duration::from_secs(10), 40 * S)
            .unwrap();
        for t in 41..=60 {
            busy.beat(t * S);
            relay_beat(&members, &group, t * S);
        }
        let stale = daemon
            .stalest(60 * S)
            .expect("the hung client makes it stale");
        assert_eq!(stale.name, "live");
        assert_eq!(stale.age, Duration::from_secs(20));
        // The hung client leaves (its connection dropped): fresh again.
        drop(hung);
        relay_beat(&members, &group, 61 * S);
        assert_eq!(daemon.stalest(61 * S), None);
    }

    /// A relay that runs keeps an idle group fresh as time passes (paused tokio time moves the
    /// relay's timer, the manual clock moves the beacon clock).
    #[tokio::test(start_paused = true)]
    async fn the_relay_task_beats_while_idle() {
        let clock = Arc::new(ManualClock::new(0));
        let daemon = BeaconTable::new(2);
        let members = BeaconTable::new(2);
        let group = daemon.register("live", Duration::from_secs(10), 0).unwrap();
        let task = spawn_relay("live", members, group, clock.clone());
        for _ in 0..5 {
            clock.advance_ns(8 * S);
            tokio::time::sleep(RELAY_PERIOD * 2).await;
            assert_eq!(daemon.stalest(clock.mono_ns()), None);
        }
        task.abort();
        let _ = task.await;
        clock.advance_ns(11 * S);
        // A relay that is stopped on purpose (shutdown) frees the group's slot with it.
        assert_eq!(daemon.stalest(clock.mono_ns()), None);
        assert!(daemon.names().is_empty());
    }
}
