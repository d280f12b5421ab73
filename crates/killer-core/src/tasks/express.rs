//! The GVL express lane's driver. A raise for a job waits until the
//! dispatcher thread, then the job's thread, get Ruby's GVL; a CPU-bound
//! thread holding it gives it up only when the VM's timer says so (100 ms on
//! Ruby 3.1, 50 on 3.3). The binding can hand the watcher a kicker (on Ruby
//! ≥ 3.3, `rb_postponed_job_trigger`: the thread holding the GVL yields it
//! at its next safe point, running no Ruby code).
//!
//! tokio's timer ticks in whole milliseconds, too coarse when the GVL must
//! pass along ten threads twice; so the kicks come from a thread of their
//! own, `killer-express`, started when a delivery becomes pending (until its
//! job has left, at most `grace`; 50 ms for a lost lease) and ended when
//! none is: neither a thread nor a kick while idle. The pace is `lane.rs`'s.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::shared::{Kicker, Shared};

/// A lease's holder is not a registered job: kicks for this long.
const LEASE_BURST: Duration = Duration::from_millis(50);

/// Kicks until job `token` has ended, at most `grace`.
pub(crate) fn for_job(shared: &Arc<Shared>, token: u64) {
    pend(shared, Some(token), shared.settings.grace);
}

/// Kicks for a short burst: a lease's holder must stop.
pub(crate) fn for_lease(shared: &Arc<Shared>) {
    pend(shared, None, LEASE_BURST);
}

fn pend(shared: &Arc<Shared>, token: Option<u64>, lasting: Duration) {
    let Some(kick) = shared.kicker.get().cloned() else {
        return;
    };
    let now = Instant::now();
    let start = shared.lane.pend(token, now, now + lasting);
    // The first kick at once: the dispatcher may be queued for the GVL now.
    kick();
    if !start {
        return;
    }
    let weak = Arc::downgrade(shared);
    let spawned = std::thread::Builder::new()
        .name("killer-express".into())
        .spawn(move || kick_while_pending(&weak, &kick));
    if let Err(e) = spawned {
        shared.lane.not_kicking();
        warn!(
            event = "express.no_thread",
            "cannot start the express lane's thread ({e}); this stop waits for Ruby's timeslice"
        );
    }
}

fn kick_while_pending(shared: &Weak<Shared>, kick: &Kicker) {
    loop {
        // Not held across the sleep: a stopped watcher's Shared may go.
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let tokens = shared.lane.tokens();
        // The registry's lock is never taken under the lane's.
        let gone: Vec<u64> = {
            let registry = shared.registry();
            tokens
                .into_iter()
                .filter(|t| !registry.is_running(*t))
                .collect()
        };
        let Some(period) = shared.lane.next_period(&gone, Instant::now()) else {
            return;
        };
        drop(shared);
        std::thread::sleep(period);
        kick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn kicked_shared() -> (Arc<Shared>, Arc<AtomicUsize>) {
        let shared = Arc::new(crate::shared::tests::shared());
        let kicks = Arc::new(AtomicUsize::new(0));
        let counter = kicks.clone();
        let _ = shared.kicker.set(Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        }));
        (shared, kicks)
    }

    fn await_idle(shared: &Shared) {
        let until = Instant::now() + Duration::from_secs(10);
        while shared.lane.kicking() {
            assert!(Instant::now() < until, "the express thread never ended");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_lease_burst_kicks_from_a_thread_that_then_ends() {
        let (shared, kicks) = kicked_shared();
        for_lease(&shared);
        await_idle(&shared);
        // The first at once, then the thread's; at most one per 100 µs.
        let n = kicks.load(Ordering::Relaxed);
        assert!((2..=501).contains(&n), "{n} kicks");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(kicks.load(Ordering::Relaxed), n, "kicked while idle");
    }

    #[test]
    fn kicks_end_when_the_job_has_left() {
        let (shared, kicks) = kicked_shared();
        // Token 42 is no running job: pending until the thread's first look.
        for_job(&shared, 42);
        await_idle(&shared);
        assert_eq!(kicks.load(Ordering::Relaxed), 1);
        assert!(shared.lane.tokens().is_empty());
    }
}
