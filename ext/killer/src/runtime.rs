//! `Killer::Native::Runtime`: one per Sidekiq server process. Owns the
//! core's watcher thread and the event channel the Ruby dispatcher thread
//! waits on.

use std::mem::ManuallyDrop;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use killer_core::{
    Event, Limits, MemorySettings, MemorySource, MemoryWatch, Outcome, Started, Watcher,
};
use magnus::{function, method, prelude::*, Error, IntoValue, RArray, RHash, RModule, Ruby, Value};

use crate::errors::{self, to_ruby};
use crate::fork_watch;
use crate::logging;
use crate::nogvl::{without_gvl, without_gvl_interruptible};
use crate::settings;

/// Events handed to Ruby per GVL turn, at most.
const MAX_BATCH: usize = 256;

#[magnus::wrap(class = "Killer::Native::Runtime", free_immediately, size)]
struct Runtime {
    /// Never dropped in a forked child (see Drop).
    parts: ManuallyDrop<Parts>,
    /// Fork generation at start: a forked child inherits this object but
    /// not the threads behind it.
    generation: u64,
}

struct Parts {
    watcher: Watcher,
    events: Receiver<Event>,
    waker: Sender<Event>,
}

impl std::ops::Deref for Runtime {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl Drop for Runtime {
    /// In a forked child the parent's channel and watcher are left alone:
    /// dropping them takes locks a parent thread may have held at the
    /// instant of fork, which nothing in the child would ever release.
    fn drop(&mut self) {
        if !fork_watch::forked_since(self.generation, self.parts.watcher.pid()) {
            // SAFETY: dropped once, here; never used again.
            unsafe { ManuallyDrop::drop(&mut self.parts) };
        }
    }
}

impl Runtime {
    /// From `Killer::Configuration#to_native` (one Hash; see settings.rs).
    fn new(ruby: &Ruby, options: RHash) -> Result<Self, Error> {
        let s = settings::settings(ruby, options)?;
        let redis = s.redis.clone();
        s.validate()
            .map_err(|e| to_ruby(ruby, redis.redact_error(e)))?;
        let (tx, rx) = unbounded();
        logging::route_to(tx.clone());
        let watcher =
            Watcher::start(s, tx.clone()).map_err(|e| to_ruby(ruby, redis.redact_error(e)))?;
        Ok(Runtime {
            parts: ManuallyDrop::new(Parts {
                watcher,
                events: rx,
                waker: tx,
            }),
            generation: fork_watch::generation(),
        })
    }

    /// Integer token: run the job. String: the id a cancel was recorded for
    /// before the job started; skip it. `timeout`: seconds, or nil.
    fn job_started(
        ruby: &Ruby,
        rb_self: &Self,
        ids: Vec<String>,
        class: String,
        timeout: Option<f64>,
    ) -> Result<Value, Error> {
        let timeout = timeout
            .map(|t| errors::seconds(ruby, "timeout", t))
            .transpose()?;
        match rb_self.watcher.job_started(ids, &class, timeout) {
            Ok(Started::Run(token)) => Ok(token.into_value_with(ruby)),
            Ok(Started::Cancelled(id)) => Ok(id.into_value_with(ruby)),
            Err(e) => Err(to_ruby(ruby, e)),
        }
    }

    fn job_finished(
        ruby: &Ruby,
        rb_self: &Self,
        token: u64,
        cancelled: bool,
        primary_id: String,
    ) -> Result<(), Error> {
        let outcome = if cancelled {
            Outcome::Cancelled
        } else {
            Outcome::Finished
        };
        rb_self
            .watcher
            .job_finished(token, outcome, &primary_id)
            .map_err(|e| to_ruby(ruby, e))
    }

    /// Waits up to `timeout` seconds with the GVL released, then returns
    /// every event queued by the time the GVL is back, cancels first: one GVL turn serves them
    /// all, and a log line never delays a raise. Each event is
    /// `[:cancel, token, jid, attempt]`, `[:log, level, jid, message]` or
    /// `[:shutdown]`; an empty array means the wait timed out or Ruby woke it.
    fn next_events(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<RArray, Error> {
        let timeout = errors::seconds(ruby, "timeout", timeout)?.min(Duration::from_secs(3600));
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
        batch.sort_by_key(|e| !matches!(e, Event::Cancel { .. }));
        let out = ruby.ary_new_capa(batch.len());
        let sym = |s: &str| ruby.to_symbol(s).into_value_with(ruby);
        for event in batch {
            let item = match event {
                Event::Wake => continue,
                Event::Cancel {
                    token,
                    jid,
                    attempt,
                    why,
                } => ruby.ary_new_from_values(&[
                    sym("cancel"),
                    token.into_value_with(ruby),
                    jid.into_value_with(ruby),
                    attempt.into_value_with(ruby),
                    sym(why.as_str()),
                ]),
                Event::Log {
                    level,
                    jid,
                    message,
                } => ruby.ary_new_from_values(&[
                    sym("log"),
                    sym(level.as_str()),
                    jid.into_value_with(ruby),
                    message.into_value_with(ruby),
                ]),
                Event::LeaseLost { id, name, reason } => ruby.ary_new_from_values(&[
                    sym("lease_lost"),
                    id.into_value_with(ruby),
                    name.into_value_with(ruby),
                    reason.into_value_with(ruby),
                ]),
                Event::Shutdown => ruby.ary_new_from_values(&[sym("shutdown")]),
                Event::RunGc => ruby.ary_new_from_values(&[sym("gc")]),
                Event::Recycling {
                    reason,
                    bytes,
                    running,
                } => ruby.ary_new_from_values(&[
                    sym("recycling"),
                    reason.into_value_with(ruby),
                    bytes.into_value_with(ruby),
                    running.into_value_with(ruby),
                ]),
            };
            out.push(item)?;
        }
        Ok(out)
    }

    /// Stops the watcher (bounded wait, GVL released) and wakes the dispatcher.
    fn shutdown(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        without_gvl(ruby, || rb_self.watcher.shutdown())
    }

    fn running(&self) -> usize {
        self.watcher.running()
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
            .watcher
            .enable_memory(settings)
            .map(|_| ())
            .map_err(|e| to_ruby(ruby, e))
    }

    fn memory_job_started(
        ruby: &Ruby,
        rb_self: &Self,
        class: String,
        jid: String,
    ) -> Result<u64, Error> {
        let watch = memory(ruby, rb_self)?;
        watch
            .job_started(&class, &jid)
            .map_err(|e| to_ruby(ruby, e))
    }

    fn memory_job_finished(ruby: &Ruby, rb_self: &Self, token: u64) -> Result<(), Error> {
        let watch = memory(ruby, rb_self)?;
        watch.job_finished(token).map_err(|e| to_ruby(ruby, e))
    }

    fn memory_gc_done(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        memory(ruby, rb_self)?.gc_done();
        Ok(())
    }

    /// `[bytes, soft, hard, state, busy, reason, [[class, jid, grew], ...]]`,
    /// or nil when this process does not watch memory.
    fn memory_status(ruby: &Ruby, rb_self: &Self) -> Result<Option<RArray>, Error> {
        let Some(watch) = rb_self.watcher.memory() else {
            return Ok(None);
        };
        let st = watch.status().map_err(|e| to_ruby(ruby, e))?;
        let top: Vec<(String, String, i64)> = st
            .top
            .into_iter()
            .map(|g| (g.class, g.jid, g.grew))
            .collect();
        Ok(Some(ruby.ary_new_from_values(&[
            st.bytes.into_value_with(ruby),
            st.soft.into_value_with(ruby),
            st.hard.into_value_with(ruby),
            ruby.to_symbol(st.phase).into_value_with(ruby),
            st.busy.into_value_with(ruby),
            st.reason.into_value_with(ruby),
            top.into_value_with(ruby),
        ])))
    }

    fn known_cancels(&self) -> usize {
        self.watcher.known_cancels()
    }

    fn pid(&self) -> u32 {
        self.watcher.pid()
    }

    fn exit_with_parent(ruby: &Ruby, rb_self: &Self, kill_after: f64) -> Result<(), Error> {
        let kill_after = errors::seconds(ruby, "kill_after", kill_after)?;
        rb_self
            .watcher
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
        without_gvl(ruby, || rb_self.watcher.lease_acquire(&name, ttl))?
            .map_err(|e| to_ruby(ruby, e))
    }

    fn lease_release(ruby: &Ruby, rb_self: &Self, id: u64) -> Result<(), Error> {
        without_gvl(ruby, || rb_self.watcher.lease_release(id))?.map_err(|e| to_ruby(ruby, e))
    }

    fn forked(&self) -> bool {
        fork_watch::forked_since(self.generation, self.watcher.pid())
    }
}

fn memory(ruby: &Ruby, rb_self: &Runtime) -> Result<std::sync::Arc<MemoryWatch>, Error> {
    rb_self
        .watcher
        .memory()
        .ok_or_else(|| errors::internal(ruby, "the memory watch is not enabled in this process"))
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Runtime", ruby.class_object())?;
    class.define_singleton_method("new", function!(Runtime::new, 1))?;
    class.define_method("job_started", method!(Runtime::job_started, 3))?;
    class.define_method("job_finished", method!(Runtime::job_finished, 3))?;
    class.define_method("next_events", method!(Runtime::next_events, 1))?;
    class.define_method("shutdown", method!(Runtime::shutdown, 0))?;
    class.define_method("running", method!(Runtime::running, 0))?;
    class.define_method("enable_memory", method!(Runtime::enable_memory, 1))?;
    class.define_method(
        "memory_job_started",
        method!(Runtime::memory_job_started, 2),
    )?;
    class.define_method(
        "memory_job_finished",
        method!(Runtime::memory_job_finished, 1),
    )?;
    class.define_method("memory_gc_done", method!(Runtime::memory_gc_done, 0))?;
    class.define_method("memory_status", method!(Runtime::memory_status, 0))?;
    class.define_method("known_cancels", method!(Runtime::known_cancels, 0))?;
    class.define_method("pid", method!(Runtime::pid, 0))?;
    class.define_method("forked?", method!(Runtime::forked, 0))?;
    class.define_method("lease_acquire", method!(Runtime::lease_acquire, 2))?;
    class.define_method("lease_release", method!(Runtime::lease_release, 1))?;
    class.define_method("exit_with_parent", method!(Runtime::exit_with_parent, 1))?;
    Ok(())
}
