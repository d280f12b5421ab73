//! The one native thread per Sidekiq process that learns about cancels.
//!
//! A tokio current-thread runtime runs three tasks over two connections:
//! - subscriber: pub/sub on the cancel channel, for millisecond delivery;
//! - poller: every `poll_interval`, one ZRANGEBYSCORE over the requests
//!   recorded since its cursor, so a lost message costs at most one interval
//!   and the Redis cost per process is one command per interval, whatever
//!   the concurrency; after (re)connecting it reloads everything recorded;
//! - reporter: this process's report for the Web tab, every
//!   `report_interval` (see [`crate::report`]);
//! - writer: job statuses (`cancelled` / `finished`), only for jobs someone
//!   asked to cancel, so plain jobs cost no Redis command at all.
//!
//! Job threads call `job_started` / `job_finished`: a lock and a map
//! operation, no I/O. Decisions to interrupt leave as [`Event`]s on a
//! channel; only the Ruby dispatcher thread acts on them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;
use tokio::time::{sleep, timeout};
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::event::{Event, StopReason};
use crate::link::Link;
use crate::memory_watch::{self, MemorySettings, MemoryWatch};
use crate::redis_config::Server;
use crate::registry::{Outcome, Reaction, Registry, Started};
use crate::schema::{JobStatus, Keys, MAX_CANCELS};
use crate::settings::Settings;

/// The incremental poll re-reads this much before its cursor, so a request
/// scored a little in the past (Redis clock stepping back) is still seen.
const POLL_OVERLAP_MS: f64 = 2000.0;
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// How often a SUBSCRIBE refused by an ACL is tried again.
const NOPERM_RETRY: Duration = Duration::from_secs(60);
/// How long `shutdown` waits for the thread before leaving it to die with
/// the process: shutdown must never delay Sidekiq's exit.
const JOIN_WAIT: Duration = Duration::from_secs(1);

struct StatusWrite {
    ids: Vec<String>,
    status: JobStatus,
    class: String,
}

/// Beyond network_timeout, how long Watcher::start waits for the first load.
const FIRST_LOAD_SLACK: Duration = Duration::from_millis(200);

pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) keys: Keys,
    pub(crate) link: Link,
    registry: Mutex<Registry>,
    pub(crate) events: Sender<Event>,
    memory: Mutex<Option<Arc<MemoryWatch>>>,
    /// Deadline timers of running jobs, aborted when the job ends so that
    /// long timeouts do not pile up sleeping tasks.
    timers: Mutex<HashMap<u64, AbortHandle>>,
    parent_watched: AtomicBool,
    /// The local copy of requests met its cap (warned once).
    cap_warned: AtomicBool,
    pub(crate) leases: crate::lease::Leases,
    writes: mpsc::UnboundedSender<StatusWrite>,
    /// subscriber -> poller: just (re)subscribed, reload every request.
    resync: Notify,
    /// poller -> subscriber: Redis came back, subscribe anew in case the old
    /// socket died silently.
    resubscribe: Notify,
}

pub struct Watcher {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    stop: Arc<Notify>,
    done: crossbeam_channel::Receiver<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
    pid: u32,
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
        let shared = Arc::new(Shared {
            settings,
            keys,
            link,
            memory: Mutex::new(None),
            timers: Mutex::new(HashMap::new()),
            parent_watched: AtomicBool::new(false),
            cap_warned: AtomicBool::new(false),
            leases: Default::default(),
            registry: Mutex::new(Registry::default()),
            events,
            writes: write_tx,
            resync: Notify::new(),
            resubscribe: Notify::new(),
        });
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
                    runtime.block_on(run(shared, write_rx, stop, loaded_tx));
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
            pid: std::process::id(),
        })
    }

    /// Called by a job thread before the job body runs. With a `timeout`,
    /// the job gets `Killer::Timeout` once it has run that long: a timer on
    /// the watcher's runtime (tokio's timer wheel), no thread per job.
    pub fn job_started(
        &self,
        ids: Vec<String>,
        class: &str,
        timeout: Option<Duration>,
    ) -> Result<Started> {
        self.check_pid()?;
        // Only a job with a deadline needs its jid kept for the timer.
        let deadline = timeout.map(|t| (t, ids.first().cloned().unwrap_or_default()));
        let started = self
            .shared
            .registry()
            .start(ids, class.to_owned(), Instant::now());
        match &started {
            Started::Cancelled(id) => {
                info!(jid = %id, event = "cancel.before_start", class, "cancelled before it started; not running it");
                self.shared
                    .write(vec![id.clone()], JobStatus::Cancelled, class);
            }
            Started::Run(token) => {
                if let Some((timeout, jid)) = deadline {
                    let timer = self
                        .handle
                        .spawn(self.shared.clone().deadline(*token, jid, timeout));
                    self.shared.timers().insert(*token, timer.abort_handle());
                }
            }
        }
        Ok(started)
    }

    /// Called by a job thread once the job body is over and no raise can
    /// reach it any more.
    pub fn job_finished(&self, token: u64, outcome: Outcome, primary_id: &str) -> Result<()> {
        self.check_pid()?;
        if let Some(timer) = self.shared.timers().remove(&token) {
            timer.abort();
        }
        let Some(ended) = self.shared.registry().finish(token, Instant::now()) else {
            return Ok(());
        };
        match outcome {
            Outcome::Cancelled => {
                let ids = if ended.requested.is_empty() {
                    vec![primary_id.to_owned()]
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
        Ok(())
    }

    pub fn running(&self) -> usize {
        self.shared.registry().running()
    }

    /// Starts watching memory (once per process; later calls return the
    /// same watch). Fails with InvalidArgument if the memory source cannot
    /// be read here.
    pub fn enable_memory(&self, settings: MemorySettings) -> Result<Arc<MemoryWatch>> {
        self.check_pid()?;
        let mut slot = self.shared.memory.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(watch) = slot.as_ref() {
            return Ok(watch.clone());
        }
        let watch = Arc::new(MemoryWatch::new(settings)?);
        *slot = Some(watch.clone());
        self.handle
            .spawn(memory_watch::sampler(self.shared.clone(), watch.clone()));
        info!(
            event = "memory.started",
            limit_mb = crate::recycle::mb(watch.settings().limits.soft),
            "watching memory"
        );
        Ok(watch)
    }

    /// Stops this process (TERM, then SIGKILL after `kill_after`) once its
    /// parent exits. Once per process; later calls do nothing.
    pub fn exit_with_parent(&self, kill_after: Duration) -> Result<()> {
        self.check_pid()?;
        if !self.shared.parent_watched.swap(true, Ordering::SeqCst) {
            self.handle.spawn(crate::parent::watch(kill_after));
        }
        Ok(())
    }

    /// Tries once to take the exclusive lease `name` for `ttl`; see
    /// [`crate::lease`]. Blocks the calling (non-runtime) thread.
    pub fn lease_acquire(&self, name: &str, ttl: Duration) -> Result<Option<u64>> {
        self.check_pid()?;
        crate::lease::validate_lease(name, ttl)?;
        let shared = self.shared.clone();
        let name = name.to_owned();
        self.handle
            .block_on(async move { crate::lease::acquire(&shared, &name, ttl).await })
    }

    /// Releases lease `id` (compare-and-delete). Blocks the calling thread.
    pub fn lease_release(&self, id: u64) -> Result<()> {
        self.check_pid()?;
        let shared = self.shared.clone();
        self.handle
            .block_on(async move { crate::lease::release(&shared, id).await })
    }

    pub fn memory(&self) -> Option<Arc<MemoryWatch>> {
        self.shared.memory()
    }

    pub fn known_cancels(&self) -> usize {
        self.shared.registry().known_cancels()
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops the thread and tells the dispatcher to leave. Waits at most
    /// [`JOIN_WAIT`] for the thread; never hangs.
    pub fn shutdown(&self) {
        if std::process::id() != self.pid {
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
            self.handle
                .block_on(async move { watch.release_slot(&shared).await });
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

    fn check_pid(&self) -> Result<()> {
        let now = std::process::id();
        if now == self.pid {
            Ok(())
        } else {
            Err(Error::Forked {
                started_in: self.pid,
                now,
            })
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    pub(crate) fn memory(&self) -> Option<Arc<MemoryWatch>> {
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than stopping cancellation would.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn timers(&self) -> MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.timers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Raises `Killer::Timeout` into job `token` once it has run `after`,
    /// then insists as for a cancel. Aborted when the job ends first.
    async fn deadline(self: Arc<Self>, token: u64, jid: String, after: Duration) {
        sleep(after).await;
        self.timers().remove(&token);
        if !self.registry().is_running(token) {
            return;
        }
        let _ = self.events.send(Event::Cancel {
            token,
            jid: jid.clone(),
            attempt: 1,
            why: StopReason::Timeout,
        });
        warn!(
            jid = %jid,
            event = "timeout.delivered",
            "job ran past its timeout of {:.1}s; raising Killer::Timeout",
            after.as_secs_f64()
        );
        self.insist(token, jid, StopReason::Timeout).await;
    }

    /// Queues a status write; `class` ("" if unknown) is kept for the Web
    /// tab's recent cancels.
    fn write(&self, ids: Vec<String>, status: JobStatus, class: &str) {
        let _ = self.writes.send(StatusWrite {
            ids,
            status,
            class: class.to_owned(),
        });
    }

    /// A request for `jid` is known to exist for `remaining` more time.
    fn cancel_seen(self: &Arc<Self>, jid: &str, remaining: Duration) {
        let now = Instant::now();
        let (reaction, dropped) = {
            let mut registry = self.registry();
            let reaction = registry.request_cancel(jid, now + remaining, now);
            (reaction, registry.dropped())
        };
        if dropped > 0 && !self.cap_warned.swap(true, Ordering::Relaxed) {
            warn!(event = "cancel.cap", "more than {MAX_CANCELS} cancel requests are known; the oldest for jobs not running here are dropped first (a job they named may run)");
        }
        match reaction {
            Reaction::Interrupt(token) => {
                // The raise first: the log line must not cost it a GVL turn.
                let _ = self.events.send(Event::Cancel {
                    token,
                    jid: jid.to_owned(),
                    attempt: 1,
                    why: StopReason::Cancel,
                });
                tokio::spawn(self.clone().log_delivery(jid.to_owned()));
                tokio::spawn(
                    self.clone()
                        .insist(token, jid.to_owned(), StopReason::Cancel),
                );
            }
            Reaction::AlreadyFinished => {
                info!(
                    jid,
                    event = "cancel.too_late",
                    "cancel arrived after the job finished"
                );
                self.write(vec![jid.to_owned()], JobStatus::Finished, "");
            }
            Reaction::None => {}
        }
    }

    /// The delivery's log line, naming who asked and why (one read of the
    /// job's status, after the raise so that it costs the job nothing).
    async fn log_delivery(self: Arc<Self>, jid: String) {
        let asked = async {
            let mut con = self.link.get().await?;
            let fields: (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(self.keys.status(&jid))
                .arg("by")
                .arg("reason")
                .query_async(&mut con)
                .await?;
            Ok::<_, Error>(fields)
        };
        let (by, reason) = match timeout(self.settings.network_timeout, asked).await {
            Ok(Ok((by, reason))) => (by.unwrap_or_default(), reason.unwrap_or_default()),
            _ => (String::new(), String::new()),
        };
        let mut who = String::new();
        if !by.is_empty() {
            who.push_str(&format!(" by {by}"));
        }
        if !reason.is_empty() {
            who.push_str(&format!(" ({reason})"));
        }
        info!(
            jid = %jid,
            event = "cancel.delivered",
            "cancel requested{who}; raising Killer::Cancelled in the job"
        );
    }

    /// Raises again every `grace` while the job is still running: it may
    /// rescue Exception, or sit in native code that holds the GVL.
    async fn insist(self: Arc<Self>, token: u64, jid: String, why: StopReason) {
        let exception = match why {
            StopReason::Cancel => "Killer::Cancelled",
            StopReason::Timeout => "Killer::Timeout",
        };
        let grace = self.settings.grace;
        let first = Instant::now();
        let mut escalated = false;
        for attempt in 2.. {
            sleep(grace).await;
            if !self.registry().is_running(token) {
                return;
            }
            if let Some(limit) = self
                .settings
                .hard_timeout
                .filter(|l| !escalated && first.elapsed() >= *l)
            {
                escalated = true;
                let reason = format!(
                    "job {jid} ignored {exception} for {:.0}s (hard_timeout)",
                    limit.as_secs_f64()
                );
                match self.memory() {
                    Some(watch) => {
                        error!(jid = %jid, event = "cancel.escalated", "{reason}; recycling the process");
                        watch.force(reason);
                    }
                    None => {
                        error!(jid = %jid, event = "cancel.escalated", "{reason}; add Killer::MemoryMiddleware so Killer can recycle the process")
                    }
                }
            }
            let _ = self.events.send(Event::Cancel {
                token,
                jid: jid.clone(),
                attempt,
                why,
            });
            warn!(jid = %jid, event = "cancel.ignored", attempt, "job still running {:.1}s after {exception} (rescued Exception? native code holding the GVL?); raising again", grace.as_secs_f64());
        }
    }

    fn ttl(&self) -> Duration {
        self.settings.cancel_ttl
    }
}

async fn run(
    shared: Arc<Shared>,
    writes: mpsc::UnboundedReceiver<StatusWrite>,
    stop: Arc<Notify>,
    loaded: crossbeam_channel::Sender<()>,
) {
    let link = &shared.link;
    tokio::select! {
        _ = stop.notified() => {}
        _ = subscriber(&shared, link) => {}
        _ = poller(&shared, link, loaded) => {}
        _ = writer(&shared, link, writes) => {}
        _ = failover_watch(&shared, link) => {}
        _ = crate::report::reporter(&shared) => {}
    }
    debug!(event = "watcher.stopped", "watcher stopped");
}

async fn subscriber(shared: &Arc<Shared>, link: &Link) {
    let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_CAP);
    let mut refused = false;
    loop {
        let why = listen(shared, link, &mut backoff).await;
        let mut pause = backoff.next_delay();
        if why.is_no_permission() {
            // An ACL without `&killer:*`: the poll still applies every
            // cancel, within poll_interval. Said once; asked again rarely.
            if !refused {
                warn!(event = "subscriber.refused", "Redis refused SUBSCRIBE to {} ({why}); cancels arrive by the poll within poll_interval instead of at once. Allow the channel: ACL rule &{}*", shared.keys.channel(), shared.settings.key_prefix);
            }
            refused = true;
            pause = NOPERM_RETRY;
        } else {
            link.reset().await;
            debug!(
                event = "subscriber.down",
                "cancel notifications interrupted: {why}"
            );
        }
        tokio::select! {
            _ = sleep(pause) => {}
            _ = shared.resubscribe.notified() => {}
        }
    }
}

/// Listens until the subscription breaks; returns why.
async fn listen(shared: &Arc<Shared>, link: &Link, backoff: &mut Backoff) -> Error {
    let t = shared.settings.network_timeout;
    let client = match link.client().await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut pubsub = match timeout(t, client.get_async_pubsub()).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return link.error(e),
        Err(_) => return Error::Connection("subscribe timed out".into()),
    };
    match timeout(t, pubsub.subscribe(shared.keys.channel())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return link.error(e),
        Err(_) => return Error::Connection("subscribe timed out".into()),
    }
    backoff.reset();
    // Anything published while we were not listening is in the durable record.
    shared.resync.notify_one();
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            msg = messages.next() => match msg {
                Some(msg) => match msg.get_payload::<String>() {
                    Ok(jid) => shared.cancel_seen(&jid, shared.ttl()),
                    Err(e) => debug!(event = "subscriber.bad_message", "ignoring a message: {e}"),
                },
                None => return Error::Connection("subscription closed".into()),
            },
            _ = shared.resubscribe.notified() => {
                return Error::Connection("re-subscribing after Redis came back".into())
            }
        }
    }
}

async fn poller(shared: &Arc<Shared>, link: &Link, loaded: crossbeam_channel::Sender<()>) {
    // None: reload every request still within its TTL.
    let mut cursor: Option<f64> = None;
    let mut down = false;
    let mut first = Some(loaded);
    // While Redis is down, tries are spaced out (poll_interval up to 5 s).
    let mut backoff = Backoff::new(shared.settings.poll_interval, BACKOFF_CAP);
    let mut pause = shared.settings.poll_interval;
    let mut eviction_checked = false;
    loop {
        if first.is_none() {
            tokio::select! {
                _ = sleep(pause) => {}
                _ = shared.resync.notified() => cursor = None,
            }
        }
        let polled = match cursor {
            None => load_all(shared, link).await,
            Some(c) => load_since(shared, link, c).await,
        };
        match polled {
            Ok(next) => {
                cursor = Some(next);
                pause = shared.settings.poll_interval;
                backoff.reset();
                if !eviction_checked {
                    eviction_checked = true;
                    warn_if_evicting(link).await;
                }
                if down {
                    down = false;
                    info!(
                        event = "redis.up",
                        "Redis reachable again ({}); cancels recorded meanwhile now apply",
                        link.config()
                    );
                    shared.resubscribe.notify_one();
                }
            }
            Err(e) => {
                link.reset().await;
                cursor = None;
                pause = backoff.next_delay().max(shared.settings.poll_interval);
                if !down {
                    down = true;
                    // One line that says what to check; quiet until it is back.
                    error!(event = "redis.down", "{e}; jobs keep running, Killer retries, and cancels apply once Redis answers");
                } else {
                    debug!(event = "redis.retry", "Redis still unavailable: {e}");
                }
            }
        }
        shared.registry().expire(Instant::now());
        // Loaded, or failed to: either way Watcher::start may return.
        if let Some(loaded) = first.take() {
            let _ = loaded.send(());
        }
    }
}

/// Warns once if Redis may evict keys: under memory pressure an evicting
/// policy would drop Killer's durable record (and Sidekiq's jobs), as
/// Sidekiq itself warns. INFO rather than CONFIG, which managed Redis
/// often disables; an INFO refused says nothing.
async fn warn_if_evicting(link: &Link) {
    let Ok(mut con) = link.get().await else {
        return;
    };
    let info: redis::RedisResult<String> =
        redis::cmd("INFO").arg("memory").query_async(&mut con).await;
    let Some(policy) = info.ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("maxmemory_policy:"))
            .map(|p| p.trim().to_owned())
    }) else {
        return;
    };
    if policy != "noeviction" {
        warn!(event = "redis.eviction", "Redis's maxmemory-policy is {policy}: under memory pressure it may evict Killer's records of cancels (and Sidekiq's jobs). Set maxmemory-policy noeviction, as Sidekiq asks");
    }
}

/// With sentinels: resets every connection as soon as a sentinel announces
/// `+switch-master` for our master, so that nothing keeps talking to the
/// old one (READONLY and lost connections do the same, later).
async fn failover_watch(shared: &Arc<Shared>, link: &Link) {
    let Server::Sentinel(sentinels) = &link.config().server else {
        return std::future::pending().await;
    };
    let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_CAP);
    loop {
        let why = match watch_sentinel(shared, link, &sentinels.master, &mut backoff).await {
            Ok(()) => "sentinel subscription closed".to_owned(),
            Err(e) => e.to_string(),
        };
        debug!(event = "sentinel.down", "failover watch interrupted: {why}");
        sleep(backoff.next_delay()).await;
    }
}

async fn watch_sentinel(
    shared: &Arc<Shared>,
    link: &Link,
    master: &str,
    backoff: &mut Backoff,
) -> Result<()> {
    let t = shared.settings.network_timeout;
    let client = match link.sentinel().await {
        Some(c) => c?,
        None => return Ok(()),
    };
    let mut pubsub = timeout(t, client.get_async_pubsub())
        .await
        .map_err(|_| Error::Connection("sentinel subscribe timed out".into()))?
        .map_err(|e| link.error(e))?;
    timeout(t, pubsub.subscribe("+switch-master"))
        .await
        .map_err(|_| Error::Connection("sentinel subscribe timed out".into()))?
        .map_err(|e| link.error(e))?;
    backoff.reset();
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        // "<master name> <old ip> <old port> <new ip> <new port>"
        let Ok(text) = msg.get_payload::<String>() else {
            continue;
        };
        if text.split(' ').next() == Some(master) {
            warn!(
                event = "redis.failover",
                "sentinels moved master {master} ({text}); reconnecting to the new master"
            );
            link.reset().await;
            shared.resubscribe.notify_one();
        }
    }
    Ok(())
}

/// Loads every request still within its TTL, aged by the Redis clock.
/// Returns the next cursor.
async fn load_all(shared: &Arc<Shared>, link: &Link) -> Result<f64> {
    let mut con = link.get().await?;
    let ((secs, micros), entries): ((u64, u64), Vec<(String, f64)>) = redis::pipe()
        .cmd("TIME")
        .cmd("ZRANGEBYSCORE")
        .arg(shared.keys.cancels())
        .arg("-inf")
        .arg("+inf")
        .arg("WITHSCORES")
        .query_async(&mut con)
        .await?;
    let server_now = (secs * 1000 + micros / 1000) as f64;
    let ttl_ms = shared.settings.cancel_ttl.as_millis() as f64;
    for (jid, score) in entries {
        let left = score + ttl_ms - server_now;
        if left > 0.0 {
            shared.cancel_seen(&jid, Duration::from_millis(left as u64));
        }
    }
    Ok(server_now - POLL_OVERLAP_MS)
}

/// One command: the requests scored at or after `cursor`.
async fn load_since(shared: &Arc<Shared>, link: &Link, cursor: f64) -> Result<f64> {
    let mut con = link.get().await?;
    let entries: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
        .arg(shared.keys.cancels())
        .arg(cursor)
        .arg("+inf")
        .arg("WITHSCORES")
        .query_async(&mut con)
        .await?;
    let mut next = cursor;
    for (jid, score) in entries {
        shared.cancel_seen(&jid, shared.ttl());
        next = next.max(score - POLL_OVERLAP_MS);
    }
    Ok(next)
}

async fn writer(
    shared: &Arc<Shared>,
    link: &Link,
    mut writes: mpsc::UnboundedReceiver<StatusWrite>,
) {
    let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_CAP);
    while let Some(w) = writes.recv().await {
        let mut failures = 0u32;
        loop {
            match write_status(shared, link, &w).await {
                Ok(()) => {
                    backoff.reset();
                    break;
                }
                Err(e) => {
                    // A new connection each time: after a failover, to the
                    // new master.
                    link.reset().await;
                    failures += 1;
                    if failures == 3 {
                        warn!(jid = %w.ids.join(","), event = "status.retry", "cannot record the job's status yet ({e}); retrying until Redis takes it");
                    } else {
                        debug!(
                            event = "status.retry",
                            "status write failed ({e}); retrying"
                        );
                    }
                    sleep(backoff.next_delay()).await;
                }
            }
        }
    }
    // Every sender is gone only when the watcher is being dropped.
    std::future::pending::<()>().await;
}

async fn write_status(shared: &Arc<Shared>, link: &Link, w: &StatusWrite) -> Result<()> {
    let mut con = link.get().await?;
    let now_ms = crate::report::now_ms();
    let ttl_ms = shared.settings.ttl_ms();
    let state = w.status.as_str();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for id in &w.ids {
        let key = shared.keys.status(id);
        let hset = pipe
            .cmd("HSET")
            .arg(&key)
            .arg("state")
            .arg(state)
            .arg(format!("{state}_at"))
            .arg(now_ms);
        if !w.class.is_empty() {
            hset.arg("class").arg(&w.class);
        }
        hset.ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).ignore();
    }
    let () = pipe.query_async(&mut con).await?;
    Ok(())
}
