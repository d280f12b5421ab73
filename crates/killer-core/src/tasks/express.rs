//! The GVL express lane's driver. A raise for a job waits until the
//! dispatcher thread, then the job's thread, get Ruby's GVL; a CPU-bound
//! thread holding it gives it up only when the VM's timer says so (100 ms on
//! Ruby 3.1, 50 on 3.3). The binding can hand the watcher a kicker (on Ruby
//! ≥ 3.3, `rb_postponed_job_trigger`: the thread holding the GVL yields it
//! at its next safe point, running no Ruby code).
//!
//! The first kick is at once, from the task that learned of the stop.
//! While the stop is young (`Kick::Chain`) the binding passes the GVL along
//! from there: each thread taking it kicks itself. The later kicks restart
//! a broken chain and look whether the job has left; they come from a
//! thread of their own, `killer-express` (tokio's timer rounds up to whole
//! milliseconds, and its workers may be busy with Redis), started when a
//! delivery becomes pending (until its job has left, at most `grace`; 50 ms
//! for a lost lease) and ended when none is: neither a thread nor a kick
//! while idle. The pace is `lane.rs`'s. When it ends, the binding hears
//! `Kick::Over`: the threads the kicks set aside take their turns again at
//! once, not at some later look.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::lane::Pace;
use crate::shared::{Kick, Kicker, Shared};

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
    let (start, pace) = shared.lane.pend(token, now, now + lasting);
    // The first kick at once: the dispatcher may be queued for the GVL now.
    kick(kick_for(pace));
    if !start {
        return;
    }
    let weak = Arc::downgrade(shared);
    let kicker = kick.clone();
    let spawned = std::thread::Builder::new()
        .name("killer-express".into())
        .spawn(move || kick_while_pending(&weak, &kicker));
    if let Err(e) = spawned {
        shared.lane.not_kicking();
        kick(Kick::Over);
        warn!(
            event = "express.no_thread",
            "cannot start the express lane's thread ({e}); this stop waits for Ruby's timeslice"
        );
    }
}

fn kick_for(pace: Pace) -> Kick {
    match pace {
        Pace::Chain => Kick::Chain,
        Pace::Fast | Pace::Late => Kick::Now,
    }
}

fn kick_while_pending(shared: &Weak<Shared>, kick: &Kicker) {
    kick_until_none_pending(shared, kick);
    kick(Kick::Over);
}

fn kick_until_none_pending(shared: &Weak<Shared>, kick: &Kicker) {
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
        let Some(pace) = shared.lane.next_pace(&gone, Instant::now()) else {
            return;
        };
        drop(shared);
        std::thread::sleep(pace.period());
        kick(kick_for(pace));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Heard = Arc<Mutex<Vec<Kick>>>;

    fn kicked_shared() -> (Arc<Shared>, Heard) {
        let shared = Arc::new(crate::shared::tests::shared());
        let heard: Heard = Arc::default();
        let log = heard.clone();
        let _ = shared.kicker.set(Arc::new(move |kick| {
            log.lock().unwrap().push(kick);
        }));
        (shared, heard)
    }

    /// The kicks heard once the express thread has ended and said so.
    fn await_over(heard: &Heard) -> Vec<Kick> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let kicks = heard.lock().unwrap().clone();
            if kicks.last() == Some(&Kick::Over) {
                return kicks;
            }
            assert!(Instant::now() < until, "the express thread never ended");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn count(kicks: &[Kick], kind: Kick) -> usize {
        kicks.iter().filter(|k| **k == kind).count()
    }

    #[test]
    fn a_lease_burst_kicks_from_a_thread_that_then_ends_and_says_so() {
        let (shared, heard) = kicked_shared();
        for_lease(&shared);
        let kicks = await_over(&heard);
        assert!(!shared.lane.kicking());
        // The first at once, then the thread's, at most one per FAST; a
        // burst is always young.
        let most = 1 + (LEASE_BURST.as_micros() / crate::lane::FAST.as_micros()) as usize;
        assert!(
            (2..=most).contains(&count(&kicks, Kick::Chain)),
            "{kicks:?}"
        );
        assert_eq!(count(&kicks, Kick::Now), 0);
        assert_eq!(
            kicks.iter().position(|k| *k == Kick::Over),
            Some(kicks.len() - 1)
        );
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            heard.lock().unwrap().len(),
            kicks.len(),
            "kicked while idle"
        );
    }

    #[test]
    fn kicks_end_when_the_job_has_left() {
        let (shared, heard) = kicked_shared();
        // Token 42 is no running job: pending until the thread's first look.
        for_job(&shared, 42);
        assert_eq!(await_over(&heard), vec![Kick::Chain, Kick::Over]);
        assert!(shared.lane.tokens().is_empty());
    }

    #[test]
    fn deliveries_while_kicking_share_one_thread_and_one_over() {
        let (shared, heard) = kicked_shared();
        for_lease(&shared);
        for_lease(&shared);
        let kicks = await_over(&heard);
        assert_eq!(
            kicks.iter().filter(|k| **k == Kick::Over).count(),
            1,
            "{kicks:?}"
        );
        assert!(count(&kicks, Kick::Chain) >= 3, "{kicks:?}");
    }

    #[test]
    fn a_job_still_there_after_a_while_is_kicked_alone_until_it_leaves() {
        let (shared, heard) = kicked_shared();
        let job = crate::registry::JobStart {
            ids: vec!["stuck".into()],
            class: "Stuck".into(),
            cancellable: true,
            timeout: None,
        };
        let crate::registry::Started::Run(token) =
            shared.registry().start(job, None, Instant::now())
        else {
            panic!("the job did not start");
        };
        for_job(&shared, token);
        // Young: chained kicks; then, past CHAIN_FOR, the holder only.
        let until = Instant::now() + Duration::from_secs(10);
        while !heard.lock().unwrap().contains(&Kick::Now) {
            assert!(Instant::now() < until, "never kicked alone");
            std::thread::sleep(Duration::from_millis(5));
        }
        shared.registry().finish(token, Instant::now());
        let kicks = await_over(&heard);
        let first_alone = kicks.iter().position(|k| *k == Kick::Now).unwrap();
        assert!(
            kicks[..first_alone].iter().all(|k| *k == Kick::Chain),
            "{kicks:?}"
        );
        assert!(
            kicks[first_alone..kicks.len() - 1]
                .iter()
                .all(|k| *k == Kick::Now),
            "chained again once late: {kicks:?}"
        );
    }
}
