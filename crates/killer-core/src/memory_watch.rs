//! Per-process memory watch: the memory reader, the recycler fed by the
//! sampler (`tasks/sampler.rs`), and the jobs that grew the process most.
//! The running jobs themselves, with the reading at their start, are in
//! the registry: this holds no job.

use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::warn;

use crate::cgroup::Version as CgroupVersion;
use crate::error::Result;
use crate::memory::{CgroupStatus, MemoryReader, MemorySource};
use crate::recycle::{Input, Limits, Recycler, Step};

const TOP_GROWERS: usize = 5;
/// A job's memory at start and end may be a reading this recent, taken
/// for another job: a busy process reads memory at most 1000 times a
/// second, not twice per job, and growth is still placed within 1 ms.
const READING_MAX_AGE: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct MemorySettings {
    pub limits: Limits,
    pub source: MemorySource,
    pub check_interval: Duration,
    pub min_live_processes: u32,
    pub max_concurrent_restarts: u32,
    /// As Sidekiq names this process in its process set.
    pub hostname: String,
    /// Why this process must not signal itself (Sidekiq embedded in a web
    /// server, where TERM would stop the host), if so.
    pub cannot_signal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Grower {
    pub class: String,
    pub jid: String,
    /// Bytes the process grew by while this job ran (negative: shrank).
    pub grew: i64,
}

/// Also the `memory` of the process report (`report.rs`), as JSON.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemoryStatus {
    pub bytes: u64,
    pub soft: u64,
    pub hard: Option<u64>,
    #[serde(rename = "state")]
    pub phase: &'static str,
    #[serde(skip)]
    pub busy: usize,
    pub reason: String,
    pub top: Vec<Grower>,
    /// With `memory_source: :cgroup`: which cgroup, and the numbers of the
    /// last reading (`bytes` is its working set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<CgroupReport>,
}

/// The cgroup behind a `:cgroup` reading, as the report and
/// `Killer.memory_status` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CgroupReport {
    pub version: u8,
    pub dir: String,
    pub usage: u64,
    pub working_set: u64,
    pub limit: Option<u64>,
    pub limit_dir: Option<String>,
}

impl From<CgroupStatus> for CgroupReport {
    fn from(s: CgroupStatus) -> Self {
        let (limit, limit_dir) = match s.cgroup.limit {
            Some((bytes, dir)) => (Some(bytes), Some(dir.display().to_string())),
            None => (None, None),
        };
        CgroupReport {
            version: match s.cgroup.version {
                CgroupVersion::V1 => 1,
                CgroupVersion::V2 => 2,
            },
            dir: s.cgroup.dir.display().to_string(),
            usage: s.last.usage,
            working_set: s.last.working_set(),
            limit,
            limit_dir,
        }
    }
}

pub(crate) struct State {
    reader: MemoryReader,
    pub(crate) recycler: Recycler,
    top: Vec<Grower>,
    gc_done: bool,
    force: Option<String>,
    /// A reading failed (said once until one succeeds).
    read_failed: bool,
}

pub struct MemoryWatch {
    pub(crate) settings: MemorySettings,
    state: Mutex<State>,
    pub(crate) wake: Notify,
    started: Instant,
    /// This process holds a restart slot (given back as it exits).
    pub(crate) holding_slot: AtomicBool,
}

impl MemoryWatch {
    pub fn new(settings: MemorySettings) -> Result<Self> {
        let reader = MemoryReader::new(settings.source)?;
        Ok(MemoryWatch {
            state: Mutex::new(State {
                reader,
                recycler: Recycler::new(settings.limits.clone()),
                top: Vec::new(),
                gc_done: false,
                force: None,
                read_failed: false,
            }),
            settings,
            wake: Notify::new(),
            started: Instant::now(),
            holding_slot: AtomicBool::new(false),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The memory now, for a job starting or ending: a reading under 1 ms
    /// old is reused. None if memory cannot be read (said once): a job never
    /// fails because its growth cannot be measured.
    pub fn reading(&self) -> Option<u64> {
        let mut s = self.state();
        match s.reader.read_recent(READING_MAX_AGE) {
            Ok(bytes) => {
                s.read_failed = false;
                Some(bytes)
            }
            Err(e) => {
                if !std::mem::replace(&mut s.read_failed, true) {
                    warn!(event = "memory.read_failed", "cannot read memory: {e}");
                }
                None
            }
        }
    }

    /// A measured job ended: keeps the biggest growers; wakes the sampler
    /// at once when over the limit instead of waiting for its next tick.
    pub fn job_ended(&self, class: &str, jid: &str, start: u64) {
        let Some(now) = self.reading() else {
            return;
        };
        let grew = now as i64 - start as i64;
        let mut s = self.state();
        if grew > 0 && (s.top.len() < TOP_GROWERS || s.top.last().is_some_and(|g| g.grew < grew)) {
            s.top.push(Grower {
                class: class.to_owned(),
                jid: jid.to_owned(),
                grew,
            });
            s.top.sort_by_key(|g| std::cmp::Reverse(g.grew));
            s.top.truncate(TOP_GROWERS);
        }
        if now > self.settings.limits.soft {
            self.wake.notify_one();
        }
    }

    pub fn gc_done(&self) {
        self.state().gc_done = true;
        self.wake.notify_one();
    }

    /// Recycles for a reason other than memory (a job ignoring a cancel).
    pub fn force(&self, reason: String) {
        self.state().force = Some(reason);
        self.wake.notify_one();
    }

    /// The memory state, with `busy` jobs running (from the registry).
    pub fn status(&self, busy: usize) -> Result<MemoryStatus> {
        let mut s = self.state();
        let bytes = s.reader.read()?;
        Ok(MemoryStatus {
            bytes,
            soft: self.settings.limits.soft,
            hard: self.settings.limits.hard,
            phase: s.recycler.phase().name(),
            busy,
            reason: s.recycler.reason().to_owned(),
            top: s.top.clone(),
            cgroup: s.reader.cgroup_status().map(CgroupReport::from),
        })
    }

    /// (class, jid, growth) of the biggest growers so far.
    pub(crate) fn top_growers(&self) -> Vec<(String, String, i64)> {
        self.state()
            .top
            .iter()
            .map(|g| (g.class.clone(), g.jid.clone(), g.grew))
            .collect()
    }

    pub fn settings(&self) -> &MemorySettings {
        &self.settings
    }

    /// What the sampler feeds the recycler now: a forced reason first, then
    /// a finished GC, else a sample with `busy` jobs running.
    pub(crate) fn next_step(&self, busy: usize) -> Result<(Step, u64)> {
        let mut s = self.state();
        let bytes = s.reader.read()?;
        let input = if let Some(reason) = s.force.take() {
            Input::Force(reason)
        } else if std::mem::take(&mut s.gc_done) {
            Input::GcDone { bytes }
        } else {
            Input::Sample { bytes, busy }
        };
        let uptime = self.started.elapsed();
        Ok((s.recycler.step(input, Instant::now(), uptime), bytes))
    }

    pub(crate) fn feed(&self, input: Input) -> Step {
        let uptime = self.started.elapsed();
        self.state().recycler.step(input, Instant::now(), uptime)
    }

    /// (class, jid, growth so far) of the measured jobs running, given
    /// the registry's readings at their start.
    pub(crate) fn growth(
        measured: Vec<(String, String, u64)>,
        bytes: u64,
    ) -> Vec<(String, String, i64)> {
        measured
            .into_iter()
            .map(|(class, jid, start)| (class, jid, bytes as i64 - start as i64))
            .collect()
    }

    /// The recycle log's list: running jobs with their growth so far, then
    /// the biggest growers that ended.
    pub(crate) fn growers_line(&self, running: &[(String, String, i64)]) -> String {
        let top = self.state().top.clone();
        let fmt = |c: &str, j: &str, g: i64| format!("{c} jid={j} {:+} MB", g / (1 << 20));
        let mut parts: Vec<String> = running
            .iter()
            .map(|(c, j, g)| format!("{} (running)", fmt(c, j, *g)))
            .collect();
        parts.extend(top.iter().map(|g| fmt(&g.class, &g.jid, g.grew)));
        if parts.is_empty() {
            "no job recorded growth".into()
        } else {
            parts.join(", ")
        }
    }
}
