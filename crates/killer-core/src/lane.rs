//! What the GVL express lane kicks for (`tasks/express.rs` drives it): the
//! deliveries waiting for their thread to get Ruby's GVL, and how often to
//! kick while any is. A leaf: it knows tokens and clocks, not jobs.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Each kick moves the GVL one thread along Ruby's queue: with ten
/// CPU-bound threads the dispatcher and then the job wait up to ten kicks
/// each.
pub(crate) const FAST: Duration = Duration::from_micros(30);
/// A job still there after this (a long C call, `handle_interrupt(never)`)
/// is kicked every millisecond, not ten times as often for all of `grace`.
const FAST_FOR: Duration = Duration::from_millis(100);
const SLOW: Duration = Duration::from_millis(1);

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

    /// Drops the deliveries whose job is `gone` or whose time is up; the
    /// wait before the next kick, or none (and nobody kicks) if nothing is
    /// pending.
    pub(crate) fn next_period(&self, gone: &[u64], now: Instant) -> Option<Duration> {
        let mut state = self.state();
        state
            .pending
            .retain(|p| now < p.until && p.token.is_none_or(|t| !gone.contains(&t)));
        if state.pending.is_empty() {
            state.kicking = false;
            return None;
        }
        let young = state.pending.iter().any(|p| now < p.since + FAST_FOR);
        Some(if young { FAST } else { SLOW })
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
        assert_eq!(lane.next_period(&[], t0 + MS), Some(FAST));
        assert_eq!(lane.next_period(&[], t0 + 150 * MS), Some(SLOW));
        assert_eq!(lane.next_period(&[], t0 + 5000 * MS), None);
        assert!(!lane.kicking());
    }

    #[test]
    fn a_job_that_left_ends_its_delivery_only() {
        let lane = Lane::default();
        let t0 = Instant::now();
        lane.pend(Some(1), t0, t0 + 5000 * MS);
        lane.pend(None, t0 + 120 * MS, t0 + 170 * MS);
        // Job 1 is old, the lease's burst young: still fast.
        assert_eq!(lane.next_period(&[1], t0 + 130 * MS), Some(FAST));
        assert!(lane.tokens().is_empty());
        assert_eq!(lane.next_period(&[], t0 + 170 * MS), None);
        // The next delivery starts the kicking again.
        assert!(lane.pend(Some(3), t0 + 200 * MS, t0 + 300 * MS));
    }
}
