//! What the watcher's tasks share: the settings, Redis, the registry of
//! running jobs and known cancels, the dispatcher's channel and the
//! process-wide watches. A leaf: it imports no task and no watcher.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crossbeam_channel::Sender;
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

use crate::event::Event;
use crate::lane::Lane;
use crate::lease::Leases;
use crate::link::Link;
use crate::memory_watch::MemoryWatch;
use crate::registry::Registry;
use crate::schema::{JobStatus, Keys};
use crate::settings::Settings;

/// A status to record in Redis for a job someone asked to cancel.
pub(crate) struct StatusWrite {
    pub(crate) ids: Vec<String>,
    pub(crate) status: JobStatus,
    pub(crate) class: String,
}

/// What the GVL express lane's kicker is told (`tasks/express.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kick {
    /// Make the thread holding Ruby's GVL yield it soon, and each thread
    /// that takes it next, as it takes it: a stop is young, and the GVL
    /// should pass along every waiting thread at once.
    Chain,
    /// Make the thread holding the GVL yield it soon, that one only: a stop
    /// has waited long (its job is in a long C call or ignores it), and the
    /// other threads are not all held up for as long as it lasts.
    Now,
    /// No delivery is pending any more: threads a kick set aside go on.
    Over,
}

/// The binding's side of the express lane. Called from the core's threads,
/// never a Ruby one; must touch no Ruby object.
pub type Kicker = Arc<dyn Fn(Kick) + Send + Sync>;

pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) keys: Keys,
    pub(crate) link: Link,
    registry: Mutex<Registry>,
    pub(crate) events: Sender<Event>,
    /// Set once per process; read lock-free twice per job.
    memory: OnceLock<Arc<MemoryWatch>>,
    /// The GVL express lane's kicker, if the binding gave one.
    pub(crate) kicker: OnceLock<Kicker>,
    /// Deliveries the express lane kicks for.
    pub(crate) lane: Lane,
    /// Deadline timers of running jobs, aborted when the job ends so that
    /// long timeouts do not pile up sleeping tasks.
    timers: Mutex<HashMap<u64, AbortHandle>>,
    pub(crate) parent_watched: AtomicBool,
    /// The local copy of requests met its cap (warned once).
    pub(crate) cap_warned: AtomicBool,
    pub(crate) leases: Leases,
    writes: mpsc::UnboundedSender<StatusWrite>,
    /// subscriber -> poller: just (re)subscribed, reload every request.
    pub(crate) resync: Notify,
    /// poller -> subscriber: Redis came back, subscribe anew in case the
    /// old socket died silently.
    pub(crate) resubscribe: Notify,
}

impl Shared {
    pub(crate) fn new(
        settings: Settings,
        keys: Keys,
        link: Link,
        events: Sender<Event>,
        writes: mpsc::UnboundedSender<StatusWrite>,
    ) -> Self {
        Shared {
            settings,
            keys,
            link,
            registry: Mutex::new(Registry::default()),
            events,
            memory: OnceLock::new(),
            kicker: OnceLock::new(),
            lane: Lane::default(),
            timers: Mutex::new(HashMap::new()),
            parent_watched: AtomicBool::new(false),
            cap_warned: AtomicBool::new(false),
            leases: Leases::default(),
            writes,
            resync: Notify::new(),
            resubscribe: Notify::new(),
        }
    }

    pub(crate) fn memory(&self) -> Option<&Arc<MemoryWatch>> {
        self.memory.get()
    }

    /// Sets the memory watch unless one is set; returns the one in place
    /// and whether it is `watch`.
    pub(crate) fn set_memory(&self, watch: Arc<MemoryWatch>) -> (Arc<MemoryWatch>, bool) {
        match self.memory.set(watch.clone()) {
            Ok(()) => (watch, true),
            Err(_) => (self.memory.get().cloned().unwrap_or(watch), false),
        }
    }

    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than stopping cancellation would.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn timers(&self) -> MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.timers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a status write; `class` ("" if unknown) is kept for the Web
    /// tab's recent cancels.
    pub(crate) fn write(&self, ids: Vec<String>, status: JobStatus, class: &str) {
        let _ = self.writes.send(StatusWrite {
            ids,
            status,
            class: class.to_owned(),
        });
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.settings.cancel_ttl
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::redis_config::RedisConfig;

    /// A Shared that talks to nobody (nothing connects until a task runs).
    pub(crate) fn shared() -> Shared {
        let settings = Settings::new(
            RedisConfig::from_url("redis://127.0.0.1:1/0").expect("a valid URL"),
            "killer:",
        );
        let keys = settings.validate().expect("default settings");
        let link = Link::new(&settings).expect("a link");
        let (events, _) = crossbeam_channel::unbounded();
        let (writes, _) = mpsc::unbounded_channel();
        Shared::new(settings, keys, link, events, writes)
    }
}
