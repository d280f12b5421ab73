//! `Killer::Native::Watcher`: one per Sidekiq server process. Owns the
//! core's watcher thread and the event channel the Ruby dispatcher thread
//! waits on. (`Killer::Runtime` is the Ruby object around it, with the
//! dispatcher and the table of job threads.)

use std::mem::ManuallyDrop;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use killer_core::{
    Event, JobStart, Limits, MemorySettings, MemorySource, Outcome, Started, Watcher as CoreWatcher,
};
use magnus::{function, method, prelude::*, Error, IntoValue, RArray, RHash, RModule, Ruby, Value};

use crate::errors::{self, to_ruby};
use crate::events;
use crate::express;
use crate::logging;
use crate::nogvl::{without_gvl, without_gvl_interruptible};
use crate::settings;

/// Events handed to Ruby per GVL turn, at most.
const MAX_BATCH: usize = 256;

#[magnus::wrap(class = "Killer::Native::Watcher", free_immediately, size)]
struct Watcher {
    /// Never dropped in a forked child (see Drop).
    parts: ManuallyDrop<Parts>,
}

struct Parts {
    core: CoreWatcher,
    events: Receiver<Event>,
    waker: Sender<Event>,
}

impl std::ops::Deref for Watcher {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl Drop for Watcher {
    /// In a forked child the parent's channel and watcher are left alone:
    /// dropping them takes locks a parent thread may have held at the
    /// instant of fork, which nothing in the child would ever release.
    fn drop(&mut self) {
        if !self.parts.core.forked() {
            // SAFETY: dropped once, here; never used again.
            unsafe { ManuallyDrop::drop(&mut self.parts) };
        }
    }
}

/// A started job's answer for Ruby: its Integer token, or the String id a
/// cancel was recorded for before it started.
fn started(ruby: &Ruby, answer: killer_core::Result<Started>) -> Result<Value, Error> {
    match answer {
        Ok(Started::Run(token)) => Ok(token.into_value_with(ruby)),
        Ok(Started::Cancelled(id)) => Ok(id.into_value_with(ruby)),
        Err(e) => Err(to_ruby(ruby, e)),
    }
}

/// Events as the dispatcher takes them, cancels first.
fn to_ruby_events(ruby: &Ruby, mut batch: Vec<Event>) -> Result<RArray, Error> {
    batch.sort_by_key(|e| !matches!(e, Event::Cancel { .. }));
    let out = ruby.ary_new_capa(batch.len());
    for event in batch {
        if let Some(value) = events::event(ruby, event)? {
            out.push(value)?;
        }
    }
    Ok(out)
}

fn timeout(ruby: &Ruby, seconds: Option<f64>) -> Result<Option<Duration>, Error> {
    seconds
        .map(|t| errors::seconds(ruby, "timeout", t))
        .transpose()
}

impl Watcher {
    /// From `Killer::Configuration#to_native` (one Hash; see settings.rs).
    fn new(ruby: &Ruby, options: RHash) -> Result<Self, Error> {
        let s = settings::settings(ruby, options)?;
        let redis = s.redis.clone();
        s.validate()
            .map_err(|e| to_ruby(ruby, redis.redact_error(e)))?;
        let (tx, rx) = unbounded();
        logging::route_to(tx.clone());
        // Off, the lane registers nothing with the VM (no postponed job,
        // no thread event hook).
        let express = s.express;
        let core =
            CoreWatcher::start(s, tx.clone()).map_err(|e| to_ruby(ruby, redis.redact_error(e)))?;
        if let Some(kick) = express.then(express::kicker).flatten() {
            core.set_kicker(kick);
        }
        Ok(Watcher {
            parts: ManuallyDrop::new(Parts {
                core,
                events: rx,
                waker: tx,
            }),
        })
    }

    /// The one call as a job starts, from its first wrapper: `ids` (jid
    /// first), `class`, whether a cancel may stop it, its timeout in
    /// seconds or nil. Integer token: run it. String: the id a cancel was
    /// recorded for before it started; skip it. In a forked child:
    /// Killer::ForkError (the caller starts a new watcher).
    fn job_started(
        ruby: &Ruby,
        rb_self: &Self,
        ids: Vec<String>,
        class: String,
        cancellable: bool,
        timeout_s: Option<f64>,
    ) -> Result<Value, Error> {
        let job = JobStart {
            ids,
            class,
            cancellable,
            timeout: timeout(ruby, timeout_s)?,
        };
        started(ruby, rb_self.core.job_started(job))
    }

    /// An inner wrapper makes job `token` (registered only to be measured)
    /// cancellable under `ids`: as `job_started`.
    fn arm(
        ruby: &Ruby,
        rb_self: &Self,
        token: u64,
        ids: Vec<String>,
        timeout_s: Option<f64>,
    ) -> Result<Value, Error> {
        let timeout = timeout(ruby, timeout_s)?;
        started(ruby, rb_self.core.arm(token, ids, timeout))
    }

    /// The one call as a job ends: `cancelled` is true when
    /// Killer::Cancelled stopped it. Returns when the cancel that named it
    /// was recorded (ms since the epoch), or nil when none did.
    fn job_finished(
        ruby: &Ruby,
        rb_self: &Self,
        token: u64,
        cancelled: bool,
    ) -> Result<Option<u64>, Error> {
        let outcome = if cancelled {
            Outcome::Cancelled
        } else {
            Outcome::Finished
        };
        express::job_left();
        rb_self
            .core
            .job_finished(token, outcome)
            .map_err(|e| to_ruby(ruby, e))
    }

    /// When the cancel for `id` was recorded (ms since the epoch), or nil.
    fn requested_at(&self, id: String) -> Option<u64> {
        self.core.requested_at(&id)
    }

    /// The dispatcher has just raised into the OS thread `tid` (Ruby's
    /// `Thread#native_thread_id`): the express lane lets it unwind without
    /// kicking it back in the GVL's queue. Nothing below Ruby 3.3.
    fn express_unwinding(&self, tid: u64) {
        express::unwinding(tid);
    }

    /// What is stopping job `token`: a `Killer::Native::Stop` (jid,
    /// :cancel or :timeout), or nil.
    fn stop_of(ruby: &Ruby, rb_self: &Self, token: u64) -> Result<Option<Value>, Error> {
        rb_self
            .core
            .stop_of(token)
            .map(|s| events::stop(ruby, s))
            .transpose()
    }

    /// Waits up to `timeout` seconds with the GVL released, then returns
    /// every event queued by the time the GVL is back, cancels first: one
    /// GVL turn serves them all, and a log line never delays a raise. Each
    /// event is a `Killer::Native` Struct (Cancel, LogLine, LeaseLost,
    /// Recycling) or `:gc` / `:shutdown`; an empty array means the wait
    /// timed out or Ruby woke it.
    fn next_events(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<RArray, Error> {
        let timeout = errors::seconds(ruby, "timeout", timeout)?.min(Duration::from_secs(3600));
        express::dispatcher_here();
        let events = &rb_self.events;
        let waker = &rb_self.waker;
        let mut batch = without_gvl_interruptible(
            ruby,
            || {
                let mut batch: Vec<Event> = events.recv_timeout(timeout).into_iter().collect();
                batch.extend(events.try_iter().take(MAX_BATCH));
                batch
            },
            || {
                let _ = waker.send(Event::Wake);
            },
        )?;
        // Taking the GVL back can take a whole timeslice; whatever arrived
        // meanwhile (a cancel, typically) is served in this same turn.
        batch.extend(events.try_iter().take(MAX_BATCH));
        to_ruby_events(ruby, batch)
    }

    /// The events queued now, cancels first, without waiting and without
    /// giving the GVL away: the dispatcher asks between two slower events
    /// (writing a log line gives the GVL away), so that a cancel arriving
    /// meanwhile is raised before the next one.
    fn ready_events(ruby: &Ruby, rb_self: &Self) -> Result<RArray, Error> {
        to_ruby_events(ruby, rb_self.events.try_iter().take(MAX_BATCH).collect())
    }

    /// Stops the watcher (bounded wait, GVL released) and wakes the dispatcher.
    fn shutdown(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        without_gvl(ruby, || rb_self.core.shutdown())
    }

    fn running(&self) -> usize {
        self.core.running()
    }

    /// Starts the memory watch from a Hash with String keys (built and
    /// validated by Killer::MemoryOptions). Once per process.
    fn enable_memory(ruby: &Ruby, rb_self: &Self, opts: RHash) -> Result<(), Error> {
        let f = |k: &str| -> Result<f64, Error> { opts.fetch::<_, f64>(k) };
        let secs = |k: &str| -> Result<Duration, Error> { errors::seconds(ruby, k, f(k)?) };
        let source = MemorySource::parse(&opts.fetch::<_, String>("memory_source")?)
            .map_err(|e| to_ruby(ruby, e))?;
        let settings = MemorySettings {
            limits: Limits {
                soft: opts.fetch::<_, u64>("soft_bytes")?,
                soft_percent: opts.fetch::<_, Option<f64>>("soft_percent")?,
                hard: opts.fetch::<_, Option<u64>>("hard_bytes")?,
                grace: secs("grace")?,
                min_uptime: secs("min_uptime")?,
                drain_timeout: secs("drain_timeout")?,
                kill_after: secs("kill_after")?,
                gc_before_restart: opts.fetch::<_, bool>("gc_before_restart")?,
                retry_every: secs("retry_every")?,
            },
            source,
            check_interval: secs("check_interval")?,
            min_live_processes: opts.fetch::<_, u32>("min_live_processes")?,
            max_concurrent_restarts: opts.fetch::<_, u32>("max_concurrent_restarts")?,
            hostname: opts.fetch::<_, String>("hostname")?,
            cannot_signal: opts.fetch::<_, Option<String>>("cannot_signal")?,
        };
        rb_self
            .core
            .enable_memory(settings)
            .map(|_| ())
            .map_err(|e| to_ruby(ruby, e))
    }

    fn memory_gc_done(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        rb_self.core.memory_gc_done().map_err(|e| to_ruby(ruby, e))
    }

    /// A `Killer::Native::MemoryStatus`, or nil when this process does not
    /// watch memory.
    fn memory_status(ruby: &Ruby, rb_self: &Self) -> Result<Option<Value>, Error> {
        match rb_self.core.memory_status() {
            None => Ok(None),
            Some(Ok(st)) => events::memory_status(ruby, st).map(Some),
            Some(Err(e)) => Err(to_ruby(ruby, e)),
        }
    }

    fn known_cancels(&self) -> usize {
        self.core.known_cancels()
    }

    fn pid(&self) -> u32 {
        self.core.pid()
    }

    fn exit_with_parent(ruby: &Ruby, rb_self: &Self, kill_after: f64) -> Result<(), Error> {
        let kill_after = errors::seconds(ruby, "kill_after", kill_after)?;
        rb_self
            .core
            .exit_with_parent(kill_after)
            .map_err(|e| to_ruby(ruby, e))
    }

    /// Lease id when taken, nil when another holder has it. Waits on Redis
    /// without the GVL (bounded by network_timeout).
    fn lease_acquire(
        ruby: &Ruby,
        rb_self: &Self,
        name: String,
        ttl: f64,
    ) -> Result<Option<u64>, Error> {
        let ttl = errors::seconds(ruby, "ttl", ttl)?;
        without_gvl(ruby, || rb_self.core.lease_acquire(&name, ttl))?.map_err(|e| to_ruby(ruby, e))
    }

    fn lease_release(ruby: &Ruby, rb_self: &Self, id: u64) -> Result<(), Error> {
        without_gvl(ruby, || rb_self.core.lease_release(id))?.map_err(|e| to_ruby(ruby, e))
    }

    fn forked(&self) -> bool {
        self.core.forked()
    }
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Watcher", ruby.class_object())?;
    class.define_singleton_method("new", function!(Watcher::new, 1))?;
    class.define_method("job_started", method!(Watcher::job_started, 4))?;
    class.define_method("arm", method!(Watcher::arm, 3))?;
    class.define_method("job_finished", method!(Watcher::job_finished, 2))?;
    class.define_method("requested_at", method!(Watcher::requested_at, 1))?;
    class.define_method("stop_of", method!(Watcher::stop_of, 1))?;
    class.define_method("ready_events", method!(Watcher::ready_events, 0))?;
    class.define_method("express_unwinding", method!(Watcher::express_unwinding, 1))?;
    class.define_method("next_events", method!(Watcher::next_events, 1))?;
    class.define_method("shutdown", method!(Watcher::shutdown, 0))?;
    class.define_method("running", method!(Watcher::running, 0))?;
    class.define_method("enable_memory", method!(Watcher::enable_memory, 1))?;
    class.define_method("memory_gc_done", method!(Watcher::memory_gc_done, 0))?;
    class.define_method("memory_status", method!(Watcher::memory_status, 0))?;
    class.define_method("known_cancels", method!(Watcher::known_cancels, 0))?;
    class.define_method("pid", method!(Watcher::pid, 0))?;
    class.define_method("forked?", method!(Watcher::forked, 0))?;
    class.define_method("lease_acquire", method!(Watcher::lease_acquire, 2))?;
    class.define_method("lease_release", method!(Watcher::lease_release, 1))?;
    class.define_method("exit_with_parent", method!(Watcher::exit_with_parent, 1))?;
    Ok(())
}
