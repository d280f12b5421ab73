//! What a Sidekiq process tells the Web tab: its report (running jobs and
//! memory), and the cluster's recycle history, one event per recycle
//! transition. The writing is `tasks/reporter.rs`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::memory_watch::MemoryStatus;
use crate::registry::RunningJob;

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

impl ProcessReport {
    /// The report of this process, from the registry's running jobs and
    /// the memory watch's status.
    pub(crate) fn new(
        hostname: &str,
        running: Vec<RunningJob>,
        memory: Option<MemoryStatus>,
    ) -> Self {
        let (wall, now) = (now_ms(), Instant::now());
        let jobs = running
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
        ProcessReport {
            hostname: hostname.to_owned(),
            pid: std::process::id(),
            at: wall,
            version: env!("CARGO_PKG_VERSION"),
            jobs,
            memory,
        }
    }
}
