/// What the watcher (or the binding's log layer) hands to the Ruby dispatcher
/// thread. Only that thread touches the Ruby VM; Rust threads never do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Raise `Killer::Cancelled` (or `Killer::Timeout`) into the thread
    /// running job `token`. `attempt` > 1 means the job ignored the
    /// previous raise for `grace`.
    Cancel {
        token: u64,
        jid: String,
        attempt: u32,
        why: StopReason,
        /// The job's class (for instrumentation).
        class: String,
        /// When the cancel was recorded (ms since the epoch); None for a
        /// deadline.
        requested_at: Option<u64>,
    },
    /// A line for Sidekiq's logger.
    Log {
        level: LogLevel,
        jid: Option<String>,
        message: String,
    },
    /// Run a full GC (the recycler re-measures after it).
    RunGc,
    /// The process is about to quiet and recycle; for `on_recycle`.
    Recycling {
        reason: String,
        bytes: u64,
        /// (class, jid, growth in bytes so far) of the jobs running now.
        running: Vec<(String, String, i64)>,
    },
    /// The recycler took a step (logged, and kept in the recycle history):
    /// for `recycle.killer` subscribers.
    RecycleStep {
        state: &'static str,
        message: String,
        bytes: u64,
        limit: u64,
        /// (class, jid, growth in bytes) of the biggest growers so far.
        top: Vec<(String, String, i64)>,
    },
    /// Lease `id` could not be renewed: its holder must stop at once.
    LeaseLost {
        id: u64,
        name: String,
        reason: String,
    },
    /// Sent by the unblocking function so a waiting dispatcher returns to Ruby
    /// (Thread#kill, Ctrl-C, process exit) without any other effect.
    Wake,
    /// The runtime is shutting down; the dispatcher should leave its loop.
    Shutdown,
}

/// Why a running job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Somebody called Killer.cancel.
    Cancel,
    /// The job ran past its deadline (`timeout`).
    Timeout,
}

impl StopReason {
    /// The exception Ruby raises, as the dispatcher names it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Cancel => "cancel",
            StopReason::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}
