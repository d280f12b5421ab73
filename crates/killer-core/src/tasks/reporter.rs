//! The process's report for the Web tab, rewritten every
//! `report_interval` under a key that expires a few intervals after the
//! process stops; and each recycle step appended to the cluster's history.
//! One SET per interval per process, whatever the concurrency: the report
//! is read from the registry and the memory watch, never written per job.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, timeout};
use tracing::debug;

use crate::error::Result;
use crate::report::{ProcessReport, RecycleEvent};
use crate::schema::commands;
use crate::shared::Shared;

/// A report outlives its last write by this many intervals (and at least
/// [`MIN_REPORT_TTL`]), so one slow write does not make a process vanish.
const REPORT_TTL_INTERVALS: u32 = 3;
const MIN_REPORT_TTL: Duration = Duration::from_secs(2);

/// This process's report as of now.
pub(crate) fn report(shared: &Shared) -> ProcessReport {
    let (running, busy) = {
        let registry = shared.registry();
        (registry.running_jobs(), registry.running())
    };
    let memory = shared.memory().and_then(|w| w.status(busy).ok());
    ProcessReport::new(&shared.settings.hostname, running, memory)
}

/// Appends a recycle step to the cluster's history, in the background:
/// the recycle itself never waits for Redis.
pub(crate) fn record_recycle(shared: &Arc<Shared>, event: RecycleEvent) {
    let shared = shared.clone();
    tokio::spawn(async move {
        let write = async {
            let json = serde_json::to_string(&event)?;
            let mut con = shared.link.get().await?;
            let () = commands::record_recycle(&shared.keys, json)
                .query_async(&mut con)
                .await?;
            Ok::<_, crate::error::Error>(())
        };
        match timeout(shared.settings.network_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(event = "recycle.history_failed", "{e}"),
            Err(_) => debug!(event = "recycle.history_failed", "timed out"),
        }
    });
}

async fn publish_report(shared: &Shared) -> Result<()> {
    let report = report(shared);
    let json = serde_json::to_string(&report)?;
    let ttl = (shared.settings.report_interval * REPORT_TTL_INTERVALS).max(MIN_REPORT_TTL);
    let mut con = shared.link.get().await?;
    let () = commands::write_report(&shared.keys, &report.hostname, report.pid, json, ttl)
        .query_async(&mut con)
        .await?;
    Ok(())
}

/// Publishes the report at once, then every `report_interval`. A failed
/// write waits for the next tick: the poller owns reconnecting.
pub(crate) async fn reporter(shared: &Arc<Shared>) {
    loop {
        match timeout(shared.settings.network_timeout, publish_report(shared)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(
                event = "report.failed",
                "cannot publish the process report: {e}"
            ),
            Err(_) => debug!(
                event = "report.failed",
                "publishing the process report timed out"
            ),
        }
        sleep(shared.settings.report_interval).await;
    }
}
