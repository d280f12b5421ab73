//! The one native thread per Sidekiq process, and what job threads call.
//!
//! The thread runs the tasks of [`crate::tasks`] on a tokio current-thread
//! runtime. Job threads call [`Watcher::job_started`] and
//! [`Watcher::job_finished`]: two calls per job, whatever wraps it
//! (Killer::Cancellable, CancelMiddleware, MemoryMiddleware) — a lock, a
//! map operation and, with MemoryMiddleware, a memory reading; no I/O.
//! Decisions to interrupt leave as [`Event`]s on a channel; only the Ruby
//! dispatcher thread acts on them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use tokio::sync::{mpsc, Notify};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::fork::Origin;
use crate::link::Link;
use crate::memory_watch::{MemorySettings, MemoryStatus, MemoryWatch};
use crate::registry::{JobStart, Outcome, Started, Stop};
use crate::schema::JobStatus;
use crate::settings::Settings;
use crate::shared::Shared;
use crate::tasks;

/// How long `shutdown` waits for the thread before leaving it to die with
/// the process: shutdown must never delay Sidekiq's exit.
const JOIN_WAIT: Duration = Duration::from_secs(1);
/// Beyond network_timeout, how long Watcher::start waits for the first load.
const FIRST_LOAD_SLACK: Duration = Duration::from_millis(200);

pub struct Watcher {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    stop: Arc<Notify>,
    done: crossbeam_channel::Receiver<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
    origin: Origin,
}

impl Watcher {
    /// Starts the watcher thread and waits, at most `network_timeout`, for
    /// its first load of recorded cancels: a job Sidekiq pushed back after
    /// its cancel must not start in the moment before this process knows.
    /// With Redis down it starts anyway; jobs run whether or not Redis is
    /// there.
    pub fn start(settings: Settings, events: Sender<Event>) -> Result<Self> {
        let keys = settings.validate()?;
        let link = Link::new(&settings)?;
        let (write_tx, write_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(settings, keys, link, events, write_tx));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(format!("cannot build the tokio runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let stop = Arc::new(Notify::new());
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let (loaded_tx, loaded) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("killer-watcher".into())
            .spawn({
                let shared = shared.clone();
                let stop = stop.clone();
                move || {
                    runtime.block_on(tasks::run(shared, write_rx, stop, loaded_tx));
                    drop(runtime);
                    let _ = done_tx.send(());
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start the watcher thread: {e}")))?;
        let _ = loaded.recv_timeout(shared.settings.network_timeout + FIRST_LOAD_SLACK);
        info!(event = "watcher.started", "watching for cancels");
        Ok(Watcher {
            shared,
            handle,
            stop,
            done,
            thread: Mutex::new(Some(thread)),
            origin: Origin::here(),
        })
    }

    /// A job is about to run (the first of its wrappers calls this). A
    /// cancellable job with a cancel recorded for one of its ids must not
    /// run: `Started::Cancelled`. With a timeout, it gets `Killer::Timeout`
    /// once it has run that long: a timer on the watcher's runtime (tokio's
    /// timer wheel), no thread per job. With MemoryMiddleware, the memory
    /// at its start is kept with it, to tell what it grew the process by.
    pub fn job_started(&self, job: JobStart) -> Result<Started> {
        self.check_fork()?;
        let memory_start = self.shared.memory().and_then(|w| w.reading());
        // Only a job a cancel may reach can be skipped or timed out.
        let cancel_class = job.cancellable.then(|| job.class.clone());
        let timed = job.cancellable && job.timeout.is_some();
        let now = Instant::now();
        let started = self.shared.registry().start(job, memory_start, now);
        match (&started, cancel_class) {
            (Started::Cancelled(id), Some(class)) => self.skipped(id, class, now),
            (Started::Run(token), _) if timed => self.arm_deadline(*token, now),
            _ => {}
        }
        Ok(started)
    }

    /// A job is not run: a cancel recorded for `id` before it started, or
    /// its class switched off. Logged, and `id`'s status written.
    fn skipped(&self, id: &str, class: String, now: Instant) {
        let switched = self
            .shared
            .registry()
            .switch_of(&class, now)
            .map(|s| s.who());
        match switched {
            Some(who) => {
                info!(jid = %id, event = "cancel.class_skipped", class, "class {class} is cancelled{who}; not running this job")
            }
            None => {
                info!(jid = %id, event = "cancel.before_start", class, "cancelled before it started; not running it")
            }
        }
        self.shared
            .write(vec![id.to_owned()], JobStatus::Cancelled, &class);
    }

    /// Makes a running job, registered by an outer wrapper only to be
    /// measured, cancellable under `ids` (an inner wrapper knew what the
    /// outer one could not: an ActiveJob class inside Sidekiq's JobWrapper).
    /// `Started::Cancelled` if a cancel for one of the ids was recorded:
    /// the body must not run (logged and written as for `job_started`; the
    /// job then ends as measured only).
    pub fn arm(&self, token: u64, ids: Vec<String>, timeout: Option<Duration>) -> Result<Started> {
        self.check_fork()?;
        let now = Instant::now();
        let (armed, class) = {
            let mut registry = self.shared.registry();
            (
                registry.arm(token, ids, timeout, now),
                registry.class_of(token),
            )
        };
        match (armed, class) {
            (Some(Started::Run(token)), _) => {
                self.arm_deadline(token, now);
                Ok(Started::Run(token))
            }
            (Some(Started::Cancelled(id)), Some(class)) => {
                self.skipped(&id, class, now);
                Ok(Started::Cancelled(id))
            }
            _ => Err(Error::Runtime(format!("no running job with token {token}"))),
        }
    }

    fn arm_deadline(&self, token: u64, now: Instant) {
        let Some(deadline) = self.shared.registry().deadline(token) else {
            return;
        };
        let after = deadline.saturating_duration_since(now);
        let timer = self
            .handle
            .spawn(tasks::stops::deadline(self.shared.clone(), token, after));
        self.shared.timers().insert(token, timer.abort_handle());
    }

    /// The job's body is over and no raise can reach it any more; records
    /// its status if someone asked to cancel it, and what it grew the
    /// process by. Returns when the cancel that named it was recorded (ms
    /// since the epoch), if one did.
    pub fn job_finished(&self, token: u64, outcome: Outcome) -> Result<Option<u64>> {
        self.check_fork()?;
        let Some(ended) = self.shared.registry().finish(token, Instant::now()) else {
            return Ok(None);
        };
        let requested_at = ended.requested_at;
        // A deadline firing in between finds no job and does nothing.
        if ended.timed {
            if let Some(timer) = self.shared.timers().remove(&token) {
                timer.abort();
            }
        }
        if let (Some(start), Some(watch)) = (ended.memory_start, self.shared.memory()) {
            watch.job_ended(&ended.class, &ended.jid, start);
        }
        match outcome {
            Outcome::Cancelled => {
                let ids = if ended.requested.is_empty() {
                    vec![ended.jid]
                } else {
                    ended.requested
                };
                info!(jid = %ids.join(","), event = "cancel.done", class = %ended.class, "job stopped by Killer::Cancelled");
                self.shared.write(ids, JobStatus::Cancelled, &ended.class);
            }
            Outcome::Finished if !ended.requested.is_empty() => {
                info!(jid = %ended.requested.join(","), event = "cancel.too_late", class = %ended.class, "job finished before the cancel reached it");
                self.shared
                    .write(ended.requested, JobStatus::Finished, &ended.class);
            }
            Outcome::Finished => {}
        }
        Ok(requested_at)
    }

    /// When the cancel for `id` was recorded (ms since the epoch), if this
    /// process knows one.
    pub fn requested_at(&self, id: &str) -> Option<u64> {
        self.shared.registry().requested_at(id)
    }

    /// What is stopping job `token` (a cancel, its deadline), if anything:
    /// for `Killer.checkpoint!`.
    pub fn stop_of(&self, token: u64) -> Option<Stop> {
        self.shared.registry().stop_of(token)
    }

    pub fn running(&self) -> usize {
        self.shared.registry().running()
    }

    /// Starts watching memory (once per process; later calls return the
    /// same watch). Fails with InvalidArgument if the memory source cannot
    /// be read here.
    pub fn enable_memory(&self, settings: MemorySettings) -> Result<Arc<MemoryWatch>> {
        self.check_fork()?;
        if let Some(watch) = self.shared.memory() {
            return Ok(watch.clone());
        }
        // Two first calls at once: both build a watch, one is kept.
        let (watch, ours) = self
            .shared
            .set_memory(Arc::new(MemoryWatch::new(settings)?));
        if !ours {
            return Ok(watch);
        }
        self.handle
            .spawn(tasks::sampler::sampler(self.shared.clone(), watch.clone()));
        info!(
            event = "memory.started",
            limit_mb = crate::recycle::mb(watch.settings().limits.soft),
            "watching memory"
        );
        Ok(watch)
    }

    /// The memory state, or None when memory is not watched.
    pub fn memory_status(&self) -> Option<Result<MemoryStatus>> {
        let watch = self.shared.memory()?;
        Some(watch.status(self.running()))
    }

    /// A full GC the recycler asked for is over.
    pub fn memory_gc_done(&self) -> Result<()> {
        let watch = self.shared.memory().ok_or_else(|| {
            Error::Runtime("the memory watch is not enabled in this process".into())
        })?;
        watch.gc_done();
        Ok(())
    }

    /// Stops this process (TERM, then SIGKILL after `kill_after`) once its
    /// parent exits. Once per process; later calls do nothing.
    pub fn exit_with_parent(&self, kill_after: Duration) -> Result<()> {
        self.check_fork()?;
        if !self.shared.parent_watched.swap(true, Ordering::SeqCst) {
            self.handle.spawn(tasks::parent::watch(kill_after));
        }
        Ok(())
    }

    /// Tries once to take the exclusive lease `name` for `ttl`; see
    /// [`crate::lease`]. Blocks the calling (non-runtime) thread.
    pub fn lease_acquire(&self, name: &str, ttl: Duration) -> Result<Option<u64>> {
        self.check_fork()?;
        crate::lease::validate_lease(name, ttl)?;
        let shared = self.shared.clone();
        let name = name.to_owned();
        self.handle
            .block_on(async move { tasks::leases::acquire(&shared, &name, ttl).await })
    }

    /// Releases lease `id` (compare-and-delete). Blocks the calling thread.
    pub fn lease_release(&self, id: u64) -> Result<()> {
        self.check_fork()?;
        let shared = self.shared.clone();
        self.handle
            .block_on(async move { tasks::leases::release(&shared, id).await })
    }

    pub fn known_cancels(&self) -> usize {
        self.shared.registry().known_cancels()
    }

    pub fn pid(&self) -> u32 {
        self.origin.pid()
    }

    /// Hands the watcher the GVL express lane's kicker (the binding, on
    /// Ruby ≥ 3.3); ignored when `express` is off. True if it will be used.
    pub fn set_kicker(&self, kick: crate::shared::Kicker) -> bool {
        self.shared.settings.express && self.shared.kicker.set(kick).is_ok()
    }

    /// Whether this process is a fork of the one that started the watcher
    /// (whose thread did not come along). No syscall.
    pub fn forked(&self) -> bool {
        self.origin.forked()
    }

    /// Stops the thread and tells the dispatcher to leave. Waits at most
    /// [`JOIN_WAIT`] for the thread; never hangs.
    pub fn shutdown(&self) {
        if self.forked() {
            // The thread was left behind in the parent; touch no lock that
            // a parent thread may have held at the instant of fork.
            return;
        }
        let taken = self.thread.lock().map(|mut t| t.take());
        let Ok(Some(thread)) = taken else {
            return;
        };
        if let Some(watch) = self.shared.memory() {
            let shared = self.shared.clone();
            self.handle.block_on(async move {
                tasks::sampler::release_slot(&shared, watch).await;
            });
        }
        self.stop.notify_one();
        let _ = self.shared.events.send(Event::Shutdown);
        if self.done.recv_timeout(JOIN_WAIT).is_ok() {
            let _ = thread.join();
        } else {
            warn!(
                event = "watcher.slow_stop",
                "watcher did not stop within 1s; leaving it to exit with the process"
            );
        }
    }

    fn check_fork(&self) -> Result<()> {
        if self.forked() {
            Err(Error::Forked {
                started_in: self.origin.pid(),
                now: std::process::id(),
            })
        } else {
            Ok(())
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}
