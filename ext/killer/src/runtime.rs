//! `Killer::Native::Runtime`: one per Sidekiq server process. Owns the
//! core's watcher thread and the event channel the Ruby dispatcher thread
//! waits on.

use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use killer_core::{Event, Outcome, Settings, Started, Watcher};
use magnus::{function, method, prelude::*, Error, IntoValue, RArray, RModule, Ruby, Value};

use crate::errors::{self, to_ruby};
use crate::logging;
use crate::nogvl::{without_gvl, without_gvl_interruptible};

/// Events handed to Ruby per GVL turn, at most.
const MAX_BATCH: usize = 256;

#[magnus::wrap(class = "Killer::Native::Runtime", free_immediately, size)]
struct Runtime {
    watcher: Watcher,
    events: Receiver<Event>,
    waker: Sender<Event>,
}

impl Runtime {
    #[allow(clippy::too_many_arguments)]
    fn new(
        ruby: &Ruby,
        redis_url: String,
        key_prefix: String,
        poll_interval: f64,
        cancel_ttl: f64,
        grace: f64,
        network_timeout: f64,
    ) -> Result<Self, Error> {
        let mut s = Settings::new(&redis_url, &key_prefix);
        s.poll_interval = errors::seconds(ruby, "poll_interval", poll_interval)?;
        s.cancel_ttl = errors::seconds(ruby, "cancel_ttl", cancel_ttl)?;
        s.grace = errors::seconds(ruby, "grace", grace)?;
        s.network_timeout = errors::seconds(ruby, "network_timeout", network_timeout)?;
        s.validate().map_err(|e| to_ruby(ruby, e))?;
        let (tx, rx) = unbounded();
        logging::route_to(tx.clone());
        let watcher = Watcher::start(s, tx.clone()).map_err(|e| to_ruby(ruby, e))?;
        Ok(Runtime {
            watcher,
            events: rx,
            waker: tx,
        })
    }

    /// Integer token: run the job. String: the id a cancel was recorded for
    /// before the job started; skip it.
    fn job_started(
        ruby: &Ruby,
        rb_self: &Self,
        ids: Vec<String>,
        class: String,
    ) -> Result<Value, Error> {
        match rb_self.watcher.job_started(ids, &class) {
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
                } => ruby.ary_new_from_values(&[
                    sym("cancel"),
                    token.into_value_with(ruby),
                    jid.into_value_with(ruby),
                    attempt.into_value_with(ruby),
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
                Event::Shutdown => ruby.ary_new_from_values(&[sym("shutdown")]),
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

    fn known_cancels(&self) -> usize {
        self.watcher.known_cancels()
    }

    fn pid(&self) -> u32 {
        self.watcher.pid()
    }
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("Runtime", ruby.class_object())?;
    class.define_singleton_method("new", function!(Runtime::new, 6))?;
    class.define_method("job_started", method!(Runtime::job_started, 2))?;
    class.define_method("job_finished", method!(Runtime::job_finished, 3))?;
    class.define_method("next_events", method!(Runtime::next_events, 1))?;
    class.define_method("shutdown", method!(Runtime::shutdown, 0))?;
    class.define_method("running", method!(Runtime::running, 0))?;
    class.define_method("known_cancels", method!(Runtime::known_cancels, 0))?;
    class.define_method("pid", method!(Runtime::pid, 0))?;
    Ok(())
}
