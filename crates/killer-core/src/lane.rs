//! What the GVL express lane kicks for (`tasks/express.rs` drives it): the
//! deliveries waiting for their thread to get Ruby's GVL, and how to kick
//! while any is. A leaf: it knows tokens and clocks, not jobs.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Between two kicks while a delivery is young. A kick moves the GVL one
/// thread along Ruby's queue; with `Pace::Chain` the binding moves it along
/// the rest as each thread takes it, once per thread until the kicks end,
/// so these restart a broken chain; they alone carry the kicks that do not
/// chain, and a stream of cancels, whose kicks never end. (Every 30 µs
/// kept the kicker on a CPU a third of the time, in the way of the threads
/// the GVL passes to; every 1 ms, a stream's later stops waited a
/// millisecond per thread: the in-process stress spec stopped 1,779 of
/// 5,959 jobs mid-body, against 5,450.)
pub(crate) const FAST: Duration = Duration::from_micros(100);
/// A job still there after this (a long C call, `handle_interrupt(never)`)
/// is kicked alone, every `SLOW`: every other thread is not held up for
/// all of `grace`.
const CHAIN_FOR: Duration = Duration::from_millis(100);
const SLOW: Duration = Duration::from_millis(1);

/// Kicks that begin within this of the last chained ones do not chain: a
/// chain sets aside every thread that takes the GVL, and a storm of
/// cancels whose kicks each chained kept the process's threads parked (the
/// in-process stress spec stopped 4,756 of 5,959 jobs mid-body, against
/// 5,450 without a chain). A console's cancels, seconds apart, all chain.
const CHAIN_EVERY: Duration = Duration::from_millis(100);

/// How the kicks go while a delivery is pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Some delivery is younger than `CHAIN_FOR` and these kicks chain: the
    /// holder every `FAST`, and each thread as it takes the GVL.
    Chain,
    /// Some delivery is younger than `CHAIN_FOR`: the holder every `FAST`.
    Fast,
    /// Every delivery is older: the holder only, every `SLOW`.
    Late,
}

impl Pace {
    /// The wait before the next kick.
    pub(crate) fn period(self) -> Duration {
        match self {
            Pace::Chain | Pace::Fast => FAST,
            Pace::Late => SLOW,
        }
    }
}

#[derive(Default)]
pub(crate) struct Lane {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pending: Vec<Pending>,
    kicking: bool,
    /// Whether these kicks chain (decided when they began).
    chaining: bool,
    /// When the last kicks that chained began.
    chained_at: Option<Instant>,
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

    /// Adds a delivery pending until `until`: whether nobody kicked yet
    /// (the caller starts the kicking and must say if it cannot), and the
    /// pace now.
    pub(crate) fn pend(&self, token: Option<u64>, now: Instant, until: Instant) -> (bool, Pace) {
        let mut state = self.state();
        state.pending.push(Pending {
            token,
            since: now,
            until,
        });
        let start = !std::mem::replace(&mut state.kicking, true);
        if start {
            state.chaining = state.chained_at.is_none_or(|at| now >= at + CHAIN_EVERY);
            if state.chaining {
                state.chained_at = Some(now);
            }
        }
        (
            start,
            if state.chaining {
                Pace::Chain
            } else {
                Pace::Fast
            },
        )
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
        Some(match (young, state.chaining) {
            (true, true) => Pace::Chain,
            (true, false) => Pace::Fast,
            (false, _) => Pace::Late,
        })
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
        assert_eq!(lane.pend(Some(1), t0, t0 + 5000 * MS), (true, Pace::Chain));
        assert_eq!(lane.pend(Some(2), t0, t0 + 5000 * MS), (false, Pace::Chain));
        assert_eq!(lane.tokens(), vec![1, 2]);
    }

    #[test]
    fn fast_while_young_then_slow_then_done() {
        let lane = Lane::default();
        let t0 = Instant::now();
        lane.pend(Some(1), t0, t0 + 5000 * MS);
        assert_eq!(lane.next_pace(&[], t0 + MS), Some(Pace::Chain));
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
        // Job 1 is old, the lease's burst young: still chained.
        assert_eq!(lane.next_pace(&[1], t0 + 130 * MS), Some(Pace::Chain));
        assert!(lane.tokens().is_empty());
        assert_eq!(lane.next_pace(&[], t0 + 170 * MS), None);
        // The next delivery starts the kicking again.
        assert_eq!(
            lane.pend(Some(3), t0 + 200 * MS, t0 + 300 * MS),
            (true, Pace::Chain)
        );
    }

    #[test]
    fn kicks_beginning_soon_after_chained_ones_do_not_chain() {
        let lane = Lane::default();
        let t0 = Instant::now();
        assert_eq!(lane.pend(Some(1), t0, t0 + 5000 * MS), (true, Pace::Chain));
        assert_eq!(lane.next_pace(&[1], t0 + 2 * MS), None);
        // A storm: the next kicks, 3 ms later, only kick the holder.
        assert_eq!(
            lane.pend(Some(2), t0 + 3 * MS, t0 + 5000 * MS),
            (true, Pace::Fast)
        );
        assert_eq!(lane.next_pace(&[], t0 + 4 * MS), Some(Pace::Fast));
        assert_eq!(lane.next_pace(&[2], t0 + 5 * MS), None);
        // Chained ones 100 ms after the last that chained.
        assert_eq!(
            lane.pend(Some(3), t0 + 100 * MS, t0 + 5000 * MS),
            (true, Pace::Chain)
        );
    }
}
