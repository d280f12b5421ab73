//! The GVL express lane's driver. A raise for a job waits until the
//! dispatcher thread, then the job's thread, get Ruby's GVL; a CPU-bound
//! thread holding it gives it up only when the VM's timer says so (100 ms on
//! Ruby 3.1, 50 on 3.3). The binding can hand the watcher a kicker (on Ruby
//! ≥ 3.3, `rb_postponed_job_trigger`: the thread holding the GVL yields it
//! at its next safe point, running no Ruby code). While a delivery is
//! pending — until the job has left, at most `grace` — the watcher kicks
//! about every half millisecond; never while idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::sleep;

use crate::shared::Shared;

const EVERY: Duration = Duration::from_micros(500);
/// A lease's holder is not a registered job: kicks for this long.
const LEASE_BURST: Duration = Duration::from_millis(50);

/// Kicks until job `token` has ended, at most `grace`.
pub(crate) fn for_job(shared: &Arc<Shared>, token: u64) {
    let Some(kick) = shared.kicker.get().cloned() else {
        return;
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let until = Instant::now() + shared.settings.grace;
        while Instant::now() < until && shared.registry().is_running(token) {
            kick();
            sleep(EVERY).await;
        }
    });
}

/// Kicks for a short burst: a lease's holder must stop.
pub(crate) fn for_lease(shared: &Arc<Shared>) {
    let Some(kick) = shared.kicker.get().cloned() else {
        return;
    };
    tokio::spawn(async move {
        let until = Instant::now() + LEASE_BURST;
        while Instant::now() < until {
            kick();
            sleep(EVERY).await;
        }
    });
}
