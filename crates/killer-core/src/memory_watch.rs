//! Per-process memory watch: what each job grew the process by, a sampler
//! task on the watcher thread that feeds the recycler, and the I/O the
//! recycler asks for (a Redis permit, signals to this very process).
//!
//! Acting through Sidekiq's own signals to our own pid (TSTP = quiet,
//! TERM = stop with Sidekiq's `-t` timeout) behaves the same on Sidekiq 6,
//! 7 and 8 and takes effect at once; remote `quiet!`/`stop!` wait for a
//! heartbeat. SIGKILL is the last resort, never before Sidekiq's own
//! timeout + 5 s has passed since TERM.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::Script;
use tokio::sync::Notify;
use tokio::time::sleep;
use tracing::{error, info, warn};

use crate::error::Result;
use crate::event::{Event, LogLevel};
use crate::memory::{MemoryReader, MemorySource};
use crate::recycle::{mb, Action, Input, Limits, Permit, Recycler, Step};
use crate::report::RecycleEvent;
use crate::schema::{Keys, PERMIT_SCRIPT, SIDEKIQ_PROCESSES};
use crate::stop::{self, signal_self};
use crate::watcher::Shared;

/// A process whose heartbeat is older than this is not counted as alive
/// (Sidekiq 6 beats every 5 s, 7 every 10 s).
const FRESH_HEARTBEAT_SECS: u64 = 30;
const TOP_GROWERS: usize = 5;
const LAST_WORDS: Duration = Duration::from_millis(500);
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
}

struct Job {
    class: String,
    jid: String,
    start: u64,
}

struct State {
    reader: MemoryReader,
    recycler: Recycler,
    jobs: HashMap<u64, Job>,
    next_token: u64,
    top: Vec<Grower>,
    gc_done: bool,
    force: Option<String>,
}

pub struct MemoryWatch {
    settings: MemorySettings,
    state: Mutex<State>,
    wake: Notify,
    started: Instant,
    holding_slot: AtomicBool,
}

impl MemoryWatch {
    pub fn new(settings: MemorySettings) -> Result<Self> {
        let reader = MemoryReader::new(settings.source)?;
        Ok(MemoryWatch {
            state: Mutex::new(State {
                reader,
                recycler: Recycler::new(settings.limits.clone()),
                jobs: HashMap::new(),
                next_token: 0,
                top: Vec::new(),
                gc_done: false,
                force: None,
            }),
            settings,
            wake: Notify::new(),
            started: Instant::now(),
            holding_slot: AtomicBool::new(false),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One map insert, and a memory read unless a reading is fresh.
    pub fn job_started(&self, class: &str, jid: &str) -> Result<u64> {
        let mut s = self.state();
        let start = s.reader.read_recent(READING_MAX_AGE)?;
        s.next_token += 1;
        let token = s.next_token;
        s.jobs.insert(
            token,
            Job {
                class: class.to_owned(),
                jid: jid.to_owned(),
                start,
            },
        );
        Ok(token)
    }

    /// Records the job's growth; wakes the sampler at once when over the
    /// limit instead of waiting for its next tick.
    pub fn job_finished(&self, token: u64) -> Result<()> {
        let mut s = self.state();
        let Some(job) = s.jobs.remove(&token) else {
            return Ok(());
        };
        let now = s.reader.read_recent(READING_MAX_AGE)?;
        let grew = now as i64 - job.start as i64;
        if grew > 0 && (s.top.len() < TOP_GROWERS || s.top.last().is_some_and(|g| g.grew < grew)) {
            s.top.push(Grower {
                class: job.class,
                jid: job.jid,
                grew,
            });
            s.top.sort_by_key(|g| std::cmp::Reverse(g.grew));
            s.top.truncate(TOP_GROWERS);
        }
        if now > self.settings.limits.soft {
            self.wake.notify_one();
        }
        Ok(())
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

    pub fn status(&self) -> Result<MemoryStatus> {
        let mut s = self.state();
        let bytes = s.reader.read()?;
        Ok(MemoryStatus {
            bytes,
            soft: self.settings.limits.soft,
            hard: self.settings.limits.hard,
            phase: s.recycler.phase().name(),
            busy: s.jobs.len(),
            reason: s.recycler.reason().to_owned(),
            top: s.top.clone(),
        })
    }

    pub fn settings(&self) -> &MemorySettings {
        &self.settings
    }

    /// What the sampler feeds the recycler now: a forced reason first, then
    /// a finished GC, else a sample.
    fn next_step(&self) -> Result<(Step, u64)> {
        let mut s = self.state();
        let bytes = s.reader.read()?;
        let input = if let Some(reason) = s.force.take() {
            Input::Force(reason)
        } else if std::mem::take(&mut s.gc_done) {
            Input::GcDone { bytes }
        } else {
            Input::Sample {
                bytes,
                busy: s.jobs.len(),
            }
        };
        let uptime = self.started.elapsed();
        Ok((s.recycler.step(input, Instant::now(), uptime), bytes))
    }

    fn feed(&self, input: Input) -> Step {
        let uptime = self.started.elapsed();
        self.state().recycler.step(input, Instant::now(), uptime)
    }

    fn running(&self, bytes: u64) -> Vec<(String, String, i64)> {
        self.state()
            .jobs
            .values()
            .map(|j| {
                (
                    j.class.clone(),
                    j.jid.clone(),
                    bytes as i64 - j.start as i64,
                )
            })
            .collect()
    }

    fn growers_line(&self, bytes: u64) -> String {
        let running = self.running(bytes);
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

    /// Gives the restart slot back as the process exits, so the next
    /// process over its limit need not wait for the slot's TTL.
    pub(crate) async fn release_slot(&self, shared: &Shared) {
        if !self.holding_slot.swap(false, Ordering::SeqCst) {
            return;
        }
        let me = format!("{}:{}", self.settings.hostname, std::process::id());
        let release = async {
            let mut con = shared.link.get().await?;
            redis::cmd("ZREM")
                .arg(shared.keys.restart_slots())
                .arg(&me)
                .query_async::<i64>(&mut con)
                .await
                .map_err(|e| shared.link.error(e))
        };
        let released = match tokio::time::timeout(SLOT_RELEASE_WAIT, release).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(crate::error::Error::Connection("no answer".into())),
        };
        if let Err(e) = released {
            warn!(
                event = "memory.slot_release_failed",
                "could not release the restart slot ({e}); it expires by itself"
            );
        }
    }
}

/// Bounds the slot's release at exit: the slot expires by itself anyway.
const SLOT_RELEASE_WAIT: Duration = Duration::from_millis(300);

pub(crate) async fn sampler(shared: Arc<Shared>, watch: Arc<MemoryWatch>) {
    let mut read_failed = false;
    loop {
        tokio::select! {
            _ = sleep(watch.settings.check_interval) => {}
            _ = watch.wake.notified() => {}
        }
        let (mut step, bytes) = match watch.next_step() {
            Ok(v) => {
                read_failed = false;
                v
            }
            Err(e) => {
                if !read_failed {
                    warn!(event = "memory.read_failed", "cannot read memory: {e}");
                }
                read_failed = true;
                continue;
            }
        };
        loop {
            log_step(&shared, &watch, &step, bytes);
            match step.action {
                None => break,
                Some(Action::RunGc) => {
                    let _ = shared.events.send(Event::RunGc);
                    break;
                }
                Some(Action::AskPermit) => {
                    let permit = ask_permit(&shared, &watch).await;
                    step = watch.feed(Input::Permit(permit));
                }
                Some(Action::Quiet) => {
                    warn!(
                        event = "memory.growers",
                        rss_mb = mb(bytes),
                        "jobs that grew this process most: {}",
                        watch.growers_line(bytes)
                    );
                    let reason = watch.state().recycler.reason().to_owned();
                    let _ = shared.events.send(Event::Recycling {
                        reason,
                        bytes,
                        running: watch.running(bytes),
                    });
                    signal_self(libc::SIGTSTP);
                    break;
                }
                Some(Action::Terminate) => {
                    // The reaper backs up the Kill step below, one second
                    // later, in case Sidekiq's shutdown stops this watcher
                    // and then hangs.
                    let limits = &watch.settings.limits;
                    stop::terminate(limits.kill_after + Duration::from_secs(1), "recycling");
                    break;
                }
                Some(Action::Kill) => {
                    // The line above is the last thing the operator will
                    // read; give the dispatcher a moment to write it.
                    sleep(LAST_WORDS).await;
                    signal_self(libc::SIGKILL);
                    break;
                }
            }
        }
    }
}

/// Logs a recycle step and adds it to the cluster's recycle history.
fn log_step(shared: &Arc<Shared>, watch: &MemoryWatch, step: &Step, bytes: u64) {
    let Some((level, message)) = &step.log else {
        return;
    };
    let state = watch.state().recycler.phase().name();
    shared.record_recycle(RecycleEvent {
        at: crate::report::now_ms(),
        hostname: watch.settings.hostname.clone(),
        pid: std::process::id(),
        state,
        bytes,
        limit: watch.settings.limits.soft,
        message: message.clone(),
    });
    let (rss_mb, limit_mb) = (mb(bytes), mb(watch.settings.limits.soft));
    match level {
        LogLevel::Error => error!(event = "memory", state, rss_mb, limit_mb, "{message}"),
        LogLevel::Warn => warn!(event = "memory", state, rss_mb, limit_mb, "{message}"),
        _ => info!(event = "memory", state, rss_mb, limit_mb, "{message}"),
    }
}

async fn ask_permit(shared: &Arc<Shared>, watch: &MemoryWatch) -> Permit {
    let s = &watch.settings;
    if let Some(why) = &s.cannot_signal {
        return Permit::Denied(why.clone());
    }
    let mut con = match shared.link.get().await {
        Ok(c) => c,
        Err(e) => return Permit::Unknown(e.to_string()),
    };
    let limits = &s.limits;
    let slot_ttl = limits.drain_timeout + limits.kill_after + Duration::from_secs(30);
    let who = (s.hostname.as_str(), std::process::id());
    let answer = request_restart_slot(
        &mut con,
        &shared.keys,
        who,
        s.min_live_processes,
        s.max_concurrent_restarts,
        slot_ttl,
    )
    .await;
    match answer {
        Ok(Permit::Granted) => {
            watch.holding_slot.store(true, Ordering::SeqCst);
            Permit::Granted
        }
        Ok(other) => other,
        Err(e) => {
            shared.link.reset().await;
            Permit::Unknown(e.to_string())
        }
    }
}

/// Asks Redis, atomically, for one of `max_concurrent_restarts` slots for
/// the process `who` (hostname, pid), granted only while at least
/// `min_live` other processes in Sidekiq's process set have a fresh
/// heartbeat and are neither quiet nor recycling.
pub async fn request_restart_slot<C: redis::aio::ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    who: (&str, u32),
    min_live: u32,
    max_concurrent: u32,
    slot_ttl: Duration,
) -> redis::RedisResult<Permit> {
    let (granted, why): (i64, String) = Script::new(PERMIT_SCRIPT)
        .key(SIDEKIQ_PROCESSES)
        .key(keys.restart_slots())
        .arg(who.0)
        .arg(who.1)
        .arg(min_live)
        .arg(max_concurrent)
        .arg(slot_ttl.as_millis() as u64)
        .arg(FRESH_HEARTBEAT_SECS)
        .invoke_async(con)
        .await?;
    Ok(if granted == 1 {
        Permit::Granted
    } else {
        Permit::Denied(why)
    })
}
