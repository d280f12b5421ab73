//! What a Sidekiq process tells the Web tab: its report (running jobs and
//! memory), rewritten every `report_interval` under a key that expires a
//! few intervals after the process stops, and the cluster's recycle
//! history, one event per recycle transition.
//!
//! One SET per interval per process, whatever the concurrency: the report
//! is read from the registry and the memory watch, never written per job.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::time::{sleep, timeout};
use tracing::debug;

use crate::error::Result;
use crate::memory_watch::MemoryStatus;
use crate::schema::{RECYCLES_CAP, RECYCLES_TTL};
use crate::watcher::Shared;

/// A report outlives its last write by this many intervals (and at least
/// [`MIN_REPORT_TTL`]), so one slow write does not make a process vanish.
const REPORT_TTL_INTERVALS: u32 = 3;
const MIN_REPORT_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    pub hostname: String,
    pub pid: u32,
    /// When the report was written, ms since the epoch.
    pub at: u64,
    pub version: &'static str,
    pub jobs: Vec<JobReport>,
    /// None when the process does not run Killer::MemoryMiddleware.
    pub memory: Option<MemoryStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub jid: String,
    pub class: String,
    /// ms since the epoch.
    pub started_at: u64,
    pub cancel_requested: bool,
}

/// One step of a recycle, as the Web tab's history shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RecycleEvent {
    pub at: u64,
    pub hostname: String,
    pub pid: u32,
    pub state: &'static str,
    pub bytes: u64,
    pub limit: u64,
    pub message: String,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Shared {
    /// This process's report as of now.
    pub(crate) fn report(&self) -> ProcessReport {
        let (wall, now) = (now_ms(), Instant::now());
        let jobs = self
            .registry()
            .running_jobs()
            .into_iter()
            .map(|j| JobReport {
                started_at: wall.saturating_sub(
                    u64::try_from(now.duration_since(j.started).as_millis()).unwrap_or(0),
                ),
                jid: j.jid,
                class: j.class,
                cancel_requested: j.cancel_requested,
            })
            .collect();
        let memory = self.memory().and_then(|w| w.status().ok());
        ProcessReport {
            hostname: self.settings.hostname.clone(),
            pid: std::process::id(),
            at: wall,
            version: env!("CARGO_PKG_VERSION"),
            jobs,
            memory,
        }
    }

    /// Appends a recycle step to the cluster's history, in the background:
    /// the recycle itself never waits for Redis.
    pub(crate) fn record_recycle(self: &Arc<Self>, event: RecycleEvent) {
        let shared = self.clone();
        tokio::spawn(async move {
            let write = async {
                let json = serde_json::to_string(&event)?;
                let key = shared.keys.recycles();
                let mut con = shared.link.get().await?;
                let () = redis::pipe()
                    .atomic()
                    .cmd("LPUSH")
                    .arg(&key)
                    .arg(json)
                    .ignore()
                    .cmd("LTRIM")
                    .arg(&key)
                    .arg(0)
                    .arg(RECYCLES_CAP - 1)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(RECYCLES_TTL.as_millis() as u64)
                    .ignore()
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

    async fn publish_report(&self) -> Result<()> {
        let report = self.report();
        let json = serde_json::to_string(&report)?;
        let ttl = (self.settings.report_interval * REPORT_TTL_INTERVALS).max(MIN_REPORT_TTL);
        let mut con = self.link.get().await?;
        let () = redis::cmd("SET")
            .arg(self.keys.process(&report.hostname, report.pid))
            .arg(json)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut con)
            .await?;
        Ok(())
    }
}

/// Publishes the report at once, then every `report_interval`. A failed
/// write waits for the next tick: the poller owns reconnecting.
pub(crate) async fn reporter(shared: &Arc<Shared>) {
    loop {
        match timeout(shared.settings.network_timeout, shared.publish_report()).await {
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
