//! The watcher thread's tasks, one concern a file, all on one tokio
//! current-thread runtime and one multiplexed connection (plus pub/sub):
//!
//! - [`subscriber`]: pub/sub on the cancel channel, for millisecond delivery;
//! - [`poller`]: the durable record every `poll_interval`, so a lost message
//!   costs at most one interval; Redis down and back;
//! - [`writer`]: the statuses of jobs someone asked to cancel;
//! - [`switches`]: classes switched off, reloaded when they change;
//! - [`reporter`]: this process's report for the Web tab, every
//!   `report_interval`;
//! - [`failover`]: with Sentinel, `+switch-master`;
//! - [`express`]: kicks Ruby's GVL holder while a raise is pending (Ruby ≥ 3.3);
//! - and, started as needed: [`sampler`] (memory), [`stops`] (deadlines,
//!   the re-raise ladder), [`leases`] (renewals), [`parent`]
//!   (`exit_with_parent`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tracing::debug;

use crate::shared::{Shared, StatusWrite};

pub(crate) mod express;
pub(crate) mod failover;
pub(crate) mod leases;
pub(crate) mod parent;
pub(crate) mod poller;
pub(crate) mod reporter;
pub(crate) mod sampler;
pub(crate) mod stops;
pub(crate) mod subscriber;
pub(crate) mod switches;
pub(crate) mod writer;

pub(crate) const BACKOFF_FIRST: Duration = Duration::from_millis(100);
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Runs the standing tasks until `stop`.
pub(crate) async fn run(
    shared: Arc<Shared>,
    writes: mpsc::UnboundedReceiver<StatusWrite>,
    stop: Arc<Notify>,
    loaded: crossbeam_channel::Sender<()>,
) {
    let link = &shared.link;
    tokio::select! {
        _ = stop.notified() => {}
        _ = subscriber::subscriber(&shared, link) => {}
        _ = poller::poller(&shared, link, loaded) => {}
        _ = writer::writer(&shared, link, writes) => {}
        _ = reporter::reporter(&shared) => {}
        _ = failover::failover_watch(&shared, link) => {}
    }
    debug!(event = "watcher.stopped", "watcher stopped");
}
