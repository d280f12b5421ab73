//! The pure-Rust core of sidekiq-killer.
//!
//! Everything that can be decided without the Ruby VM lives here: the Redis
//! schema, the console-side client that records cancels, the registry of
//! running jobs, and the watcher thread that learns about cancels (pub/sub for
//! speed, a cheap poll for durability) and turns them into [`Event`]s for the
//! one Ruby thread that is allowed to act on them.
//!
//! Layers, each importing only those above it: data and pure decisions
//! (`schema`, `settings`, `registry`, `recycle`, `memory`, `memory_watch`,
//! `lease`, `report`, `event`), Redis (`redis_config`, `link`), the shared
//! context (`shared`), the watcher's tasks (`tasks/`), and the two entry
//! points, `watcher` and `client`.

mod backoff;
mod cgroup;
mod client;
mod error;
mod event;
mod fork;
mod lane;
mod lease;
mod link;
mod memory;
mod memory_watch;
mod parking;
mod recycle;
mod redact;
mod redis_config;
mod registry;
mod report;
mod schema;
mod settings;
mod shared;
mod stop;
mod switch;
mod tasks;
mod tls;
mod watcher;

pub use cgroup::{Cgroup, Reading as CgroupReading, Version as CgroupVersion};
pub use client::{Client, Delivery, Overview, Recorded, MAX_OVERVIEW_LIMIT};
pub use error::{Error, Result};
pub use event::{Event, LogLevel, StopReason};
pub use fork::{Origin, PerProcess};
pub use lease::{validate_lease, MAX_LEASE_NAME_BYTES, MIN_LEASE_TTL};
pub use memory::{cgroup_limit, CgroupStatus, MemoryReader, MemorySource};
pub use memory_watch::{CgroupReport, Grower, MemorySettings, MemoryStatus, MemoryWatch};
pub use parking::Parking;
pub use recycle::{Action, Input, Limits, Permit, Phase, Recycler, Step};
pub use redis_config::{redact_url, RedisConfig, Sentinels, Server, Tls, REDACTED};
pub use registry::{JobStart, Outcome, Reaction, RunningJob, Started, Stop};
pub use report::{JobReport, ProcessReport, RecycleEvent};
pub use schema::{
    validate_class, validate_jid, JobStatus, Keys, HISTORY_CAP, MAX_BY_BYTES, MAX_CANCELS,
    MAX_CLASS_BYTES, MAX_JID_BYTES, MAX_REASON_BYTES, MAX_SWITCHES, MAX_SWITCH_SECONDS,
    RECYCLES_CAP, RECYCLES_TTL, SCHEMA_VERSION, SIDEKIQ_PROCESSES, SWITCHES_CHANGED,
};
pub use settings::{Seconds, Settings, SECONDS};
pub use shared::{Kick, Kicker};
pub use switch::Switch;
pub use tasks::sampler::request_restart_slot;
pub use watcher::Watcher;
