//! What the GVL express lane kicks for (`tasks/express.rs` drives it): the
//! deliveries waiting for their thread to get Ruby's GVL, and how to kick
//! while any is. A leaf: it knows tokens and clocks, not jobs.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Between two kicks. A kick moves the GVL one thread along Ruby's queue;
/// while a delivery is young the binding moves it along the rest as each
/// thread takes it (`Pace::Young`), so these only restart a broken chain
/// and look whether the job has left. (Kicking every 30 µs instead kept
/// the kicker on a CPU a third of the time, and on 2 cores the threads the
/// GVL passed to waited for one: p90 7.1 vs 4.5 ms with ten CPU-bound jobs.)
pub(crate) const PERIOD: Duration = Duration::from_millis(1);
/// A job still there after this (a long C call, `handle_interrupt(never)`)
/// is kicked alone: every other thread is not held up for all of `grace`.
const CHAIN_FOR: Duration = Duration::from_millis(100);

/// How the kicks go while a delivery is pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Some delivery is younger than `CHAIN_FOR`: the holder, and each
    /// thread as it takes the GVL (the binding's chain).
    Young,
    /// Every delivery is older: the holder only.
    Late,
}

#[derive(Default)]
pub(crate) struct Lane {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pending: Vec<Pending>,
    kicking: bool,
}

struct Pending {
    /// The job that must leave; none for a lost lease's burst.
    token: Option<u64>,
    since: Instant,
    until: Instant,
}

impl Lane {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a delivery pending until `until`; true if nobody kicks yet
    /// (the caller starts the kicking and must say if it cannot).
    pub(crate) fn pend(&self, token: Option<u64>, now: Instant, until: Instant) -> bool {
        let mut state = self.state();
        state.pending.push(Pending {
            token,
            since: now,
            until,
        });
        !std::mem::replace(&mut state.kicking, true)
    }

    /// The kicking could not start (or has ended).
    pub(crate) fn not_kicking(&self) {
        self.state().kicking = false;
    }

    /// The jobs some delivery waits for.
    pub(crate) fn tokens(&self) -> Vec<u64> {
        self.state()
            .pending
            .iter()
            .filter_map(|p| p.token)
            .collect()
    }

    /// Drops the deliveries whose job is `gone` or whose time is up; how
    /// the kicks go on, or none (and nobody kicks) if nothing is pending.
    pub(crate) fn next_pace(&self, gone: &[u64], now: Instant) -> Option<Pace> {
        let mut state = self.state();
        state
            .pending
            .retain(|p| now < p.until && p.token.is_none_or(|t| !gone.contains(&t)));
        if state.pending.is_empty() {
            state.kicking = false;
            return None;
        }
        let young = state.pending.iter().any(|p| now < p.since + CHAIN_FOR);
        Some(if young { Pace::Young } else { Pace::Late })
    }

    #[cfg(test)]
    pub(crate) fn kicking(&self) -> bool {
        self.state().kicking
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn one_kicker_for_many_deliveries() {
        let lane = Lane::default();
        let t0 = Instant::now();
        assert!(lane.pend(Some(1), t0, t0 + 5000 * MS));
        assert!(!lane.pend(Some(2), t0, t0 + 5000 * MS));
        assert_eq!(lane.tokens(), vec![1, 2]);
    }

    #[test]
    fn fast_while_young_then_slow_then_done() {
        let lane = Lane::default();
        let t0 = Instant::now();
        lane.pend(Some(1), t0, t0 + 5000 * MS);
        assert_eq!(lane.next_pace(&[], t0 + MS), Some(Pace::Young));
        assert_eq!(lane.next_pace(&[], t0 + 150 * MS), Some(Pace::Late));
        assert_eq!(lane.next_pace(&[], t0 + 5000 * MS), None);
        assert!(!lane.kicking());
    }

    #[test]
    fn a_job_that_left_ends_its_delivery_only() {
        let lane = Lane::default();
        let t0 = Instant::now();
        lane.pend(Some(1), t0, t0 + 5000 * MS);
        lane.pend(None, t0 + 120 * MS, t0 + 170 * MS);
        // Job 1 is old, the lease's burst young: still fast.
        assert_eq!(lane.next_pace(&[1], t0 + 130 * MS), Some(Pace::Young));
        assert!(lane.tokens().is_empty());
        assert_eq!(lane.next_pace(&[], t0 + 170 * MS), None);
        // The next delivery starts the kicking again.
        assert!(lane.pend(Some(3), t0 + 200 * MS, t0 + 300 * MS));
    }
}
