//! The decision to recycle a bloated process, as a pure state machine:
//! samples, the clock and answers come in; actions and the log line for
//! each transition come out. The runtime does the I/O (reads memory, asks
//! Redis for a restart slot, signals the process).
//!
//! Running → OverLimit (grace) → [full GC, re-measure] → AwaitingPermit →
//! Draining (quiet sent) → Stopping (TERM sent) → Killed (SIGKILL sent).
//! Refused permits, Redis outages and young processes park it in Blocked,
//! from which it retries; dropping back under the limit returns to Running.

use std::time::{Duration, Instant};

use crate::event::LogLevel;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Over this for `grace`: recycle.
    pub soft: u64,
    /// `soft` as a share of the cgroup's limit (max_memory_percent), when
    /// set that way: log lines name the option the user wrote.
    pub soft_percent: Option<f64>,
    /// Over this: recycle now.
    pub hard: Option<u64>,
    pub grace: Duration,
    /// Never recycle a process younger than this (restart storms).
    pub min_uptime: Duration,
    /// Longest wait for busy jobs after quieting, before TERM.
    pub drain_timeout: Duration,
    /// After TERM, before SIGKILL; Killer::MemoryOptions makes it at least
    /// Sidekiq's own shutdown timeout + 5 s so Sidekiq can push unfinished
    /// jobs back.
    pub kill_after: Duration,
    pub gc_before_restart: bool,
    /// How soon a refused or unknown permit is asked for again.
    pub retry_every: Duration,
}

impl Limits {
    /// The soft limit as the user set it: "max_rss_mb 400 MB", or
    /// "max_memory_percent 50% (400 MB)".
    fn soft_label(&self) -> String {
        match self.soft_percent {
            Some(percent) => format!("max_memory_percent {percent}% ({} MB)", mb(self.soft)),
            None => format!("max_rss_mb {} MB", mb(self.soft)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    OverLimit { since: Instant },
    Collecting,
    AwaitingPermit,
    Blocked { retry_at: Instant },
    Draining { since: Instant },
    Stopping { since: Instant },
    Killed,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::OverLimit { .. } => "over_limit",
            Phase::Collecting => "collecting",
            Phase::AwaitingPermit => "awaiting_permit",
            Phase::Blocked { .. } => "blocked",
            Phase::Draining { .. } => "draining",
            Phase::Stopping { .. } => "stopping",
            Phase::Killed => "killed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    Granted,
    /// Redis answered no: not enough other live processes, or too many
    /// restarts already in progress.
    Denied(String),
    /// Redis could not be asked: nobody can prove others are alive.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Sample {
        bytes: u64,
        busy: usize,
    },
    /// The full GC the machine asked for is done; memory re-measured.
    GcDone {
        bytes: u64,
    },
    Permit(Permit),
    /// Recycle for a reason other than memory (a job that ignores a cancel).
    Force(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RunGc,
    AskPermit,
    Quiet,
    Terminate,
    Kill,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub action: Option<Action>,
    pub log: Option<(LogLevel, String)>,
}

impl Step {
    fn none() -> Self {
        Step::default()
    }

    fn log(level: LogLevel, message: String) -> Self {
        Step {
            action: None,
            log: Some((level, message)),
        }
    }

    fn act(action: Action, level: LogLevel, message: String) -> Self {
        Step {
            action: Some(action),
            log: Some((level, message)),
        }
    }
}

#[derive(Debug)]
pub struct Recycler {
    limits: Limits,
    phase: Phase,
    reason: String,
    /// One full GC per episode over the limit, not one per retry.
    gc_tried: bool,
    /// Recycling for a non-memory reason: dropping under the limit does not undo it.
    forced: bool,
}

pub fn mb(bytes: u64) -> u64 {
    bytes / (1 << 20)
}

impl Recycler {
    pub fn new(limits: Limits) -> Self {
        Recycler {
            limits,
            phase: Phase::Running,
            reason: String::new(),
            gc_tried: false,
            forced: false,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn step(&mut self, input: Input, now: Instant, uptime: Duration) -> Step {
        let soft = self.limits.soft;
        let over_hard = |b: u64| self.limits.hard.is_some_and(|h| b > h);
        match (self.phase, input) {
            (Phase::Killed, _) => Step::none(),
            (_, Input::Force(reason)) => match self.phase {
                Phase::Running | Phase::OverLimit { .. } | Phase::Blocked { .. } => {
                    self.forced = true;
                    self.gc_tried = true;
                    self.decide(reason, now, uptime)
                }
                _ => Step::none(),
            },
            (Phase::Running, Input::Sample { bytes, .. }) if over_hard(bytes) => {
                let reason = format!("memory {} MB is over hard_rss_mb {} MB", mb(bytes), mb(self.limits.hard.unwrap_or(0)));
                self.decide(reason, now, uptime)
            }
            (Phase::Running, Input::Sample { bytes, .. }) if bytes > soft => {
                self.phase = Phase::OverLimit { since: now };
                Step::log(
                    LogLevel::Info,
                    format!(
                        "memory {} MB is over {}; recycling in {:.0}s unless it drops",
                        mb(bytes),
                        self.limits.soft_label(),
                        self.limits.grace.as_secs_f64()
                    ),
                )
            }
            (Phase::OverLimit { .. } | Phase::Blocked { .. }, Input::Sample { bytes, .. })
                if bytes <= soft && !self.forced =>
            {
                self.phase = Phase::Running;
                self.gc_tried = false;
                Step::log(LogLevel::Info, format!("memory {} MB is back under {}", mb(bytes), self.limits.soft_label()))
            }
            (Phase::OverLimit { since }, Input::Sample { bytes, .. })
                if over_hard(bytes) || now.duration_since(since) >= self.limits.grace =>
            {
                let reason = format!(
                    "memory {} MB over {} for {:.0}s",
                    mb(bytes),
                    self.limits.soft_label(),
                    now.duration_since(since).as_secs_f64()
                );
                self.decide(reason, now, uptime)
            }
            (Phase::Blocked { retry_at }, Input::Sample { .. }) if now >= retry_at => {
                let reason = self.reason.clone();
                self.decide(reason, now, uptime)
            }
            (Phase::Collecting, Input::GcDone { bytes }) => {
                if bytes <= soft && !over_hard(bytes) && !self.forced {
                    self.phase = Phase::Running;
                    self.gc_tried = false;
                    Step::log(LogLevel::Info, format!("a full GC brought memory back to {} MB, under {}; not recycling", mb(bytes), self.limits.soft_label()))
                } else {
                    self.phase = Phase::AwaitingPermit;
                    Step::act(Action::AskPermit, LogLevel::Info, format!("still {} MB after a full GC; asking for a restart slot", mb(bytes)))
                }
            }
            (Phase::AwaitingPermit, Input::Permit(permit)) => match permit {
                Permit::Granted => {
                    self.phase = Phase::Draining { since: now };
                    Step::act(Action::Quiet, LogLevel::Warn, format!("recycling: {}; quieting (no new jobs), draining busy jobs for up to {:.0}s", self.reason, self.limits.drain_timeout.as_secs_f64()))
                }
                Permit::Denied(why) => self.block(now, format!("over the limit but not recycling now: {why}")),
                Permit::Unknown(why) => self.block(now, format!("over the limit but not recycling: cannot prove another live process exists ({why})")),
            },
            (Phase::Draining { since }, Input::Sample { busy, .. }) => {
                if busy == 0 {
                    self.phase = Phase::Stopping { since: now };
                    Step::act(Action::Terminate, LogLevel::Warn, "drained; stopping with TERM (Sidekiq's own shutdown)".into())
                } else if now.duration_since(since) >= self.limits.drain_timeout {
                    self.phase = Phase::Stopping { since: now };
                    Step::act(Action::Terminate, LogLevel::Warn, format!("drain_timeout {:.0}s passed with {busy} busy job(s); stopping with TERM (Sidekiq pushes unfinished jobs back)", self.limits.drain_timeout.as_secs_f64()))
                } else {
                    Step::none()
                }
            }
            (Phase::Stopping { since }, Input::Sample { .. })
                if now.duration_since(since) >= self.limits.kill_after =>
            {
                self.phase = Phase::Killed;
                Step::act(Action::Kill, LogLevel::Error, format!("still alive {:.0}s after TERM; sending SIGKILL", self.limits.kill_after.as_secs_f64()))
            }
            _ => Step::none(),
        }
    }

    fn decide(&mut self, reason: String, now: Instant, uptime: Duration) -> Step {
        self.reason = reason;
        if uptime < self.limits.min_uptime {
            let wait = self.limits.min_uptime - uptime;
            self.phase = Phase::Blocked {
                retry_at: now + wait,
            };
            return Step::log(LogLevel::Warn, format!("{}, but the process is only {:.0}s old; waiting {:.0}s (min_uptime) so a process that boots big does not restart in a loop", self.reason, uptime.as_secs_f64(), wait.as_secs_f64()));
        }
        if self.limits.gc_before_restart && !self.gc_tried {
            self.gc_tried = true;
            self.phase = Phase::Collecting;
            return Step::act(
                Action::RunGc,
                LogLevel::Info,
                format!("{}; running a full GC before deciding", self.reason),
            );
        }
        self.phase = Phase::AwaitingPermit;
        Step::act(
            Action::AskPermit,
            LogLevel::Info,
            format!("{}; asking for a restart slot", self.reason),
        )
    }

    fn block(&mut self, now: Instant, message: String) -> Step {
        let retry = self.limits.retry_every;
        self.phase = Phase::Blocked {
            retry_at: now + retry,
        };
        Step::log(
            LogLevel::Warn,
            format!("{message}; asking again in {:.0}s", retry.as_secs_f64()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn limits() -> Limits {
        Limits {
            soft: 100 * MB,
            soft_percent: None,
            hard: Some(200 * MB),
            grace: Duration::from_secs(10),
            min_uptime: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            kill_after: Duration::from_secs(13),
            gc_before_restart: true,
            retry_every: Duration::from_secs(10),
        }
    }

    struct Clock {
        start: Instant,
        at: Duration,
    }

    impl Clock {
        fn new() -> Self {
            Clock {
                start: Instant::now(),
                at: Duration::from_secs(100), // uptime 100 s: old enough
            }
        }
        fn advance(&mut self, secs: u64) -> (Instant, Duration) {
            self.at += Duration::from_secs(secs);
            (self.start + self.at, self.at)
        }
    }

    fn sample(mb: u64, busy: usize) -> Input {
        Input::Sample {
            bytes: mb * MB,
            busy,
        }
    }

    fn drive(r: &mut Recycler, c: &mut Clock, secs: u64, input: Input) -> Step {
        let (now, up) = c.advance(secs);
        r.step(input, now, up)
    }

    #[test]
    fn a_limit_set_as_a_share_of_the_cgroup_is_named_so() {
        let percent = Limits {
            soft_percent: Some(50.0),
            ..limits()
        };
        let (mut r, mut c) = (Recycler::new(percent), Clock::new());
        let over = drive(&mut r, &mut c, 0, sample(150, 2)).log.unwrap().1;
        assert!(
            over.contains("over max_memory_percent 50% (100 MB)"),
            "{over}"
        );
        assert!(!over.contains("max_rss_mb"), "{over}");
        let back = drive(&mut r, &mut c, 1, sample(90, 2)).log.unwrap().1;
        assert!(
            back.contains("back under max_memory_percent 50% (100 MB)"),
            "{back}"
        );
    }

    #[test]
    fn the_whole_path_over_soft_limit_to_sigkill() {
        let (mut r, mut c) = (Recycler::new(limits()), Clock::new());
        let s = drive(&mut r, &mut c, 0, sample(150, 2));
        assert_eq!((s.action, r.phase().name()), (None, "over_limit"));
        assert!(s.log.unwrap().1.contains("over max_rss_mb 100 MB"));
        assert_eq!(
            drive(&mut r, &mut c, 5, sample(150, 2)).action,
            None,
            "within grace"
        );
        assert_eq!(
            drive(&mut r, &mut c, 5, sample(150, 2)).action,
            Some(Action::RunGc)
        );
        assert_eq!(
            drive(&mut r, &mut c, 1, sample(150, 2)).action,
            None,
            "waits for the GC"
        );
        let s = drive(&mut r, &mut c, 0, Input::GcDone { bytes: 140 * MB });
        assert_eq!(s.action, Some(Action::AskPermit));
        let s = drive(&mut r, &mut c, 0, Input::Permit(Permit::Granted));
        assert_eq!(s.action, Some(Action::Quiet));
        assert_eq!(s.log.unwrap().0, LogLevel::Warn);
        assert_eq!(
            drive(&mut r, &mut c, 1, sample(150, 1)).action,
            None,
            "draining"
        );
        assert_eq!(
            drive(&mut r, &mut c, 1, sample(150, 0)).action,
            Some(Action::Terminate)
        );
        assert_eq!(r.phase().name(), "stopping");
        assert_eq!(drive(&mut r, &mut c, 12, sample(150, 0)).action, None);
        let s = drive(&mut r, &mut c, 1, sample(150, 0));
        assert_eq!(s.action, Some(Action::Kill));
        assert_eq!(drive(&mut r, &mut c, 60, sample(150, 0)), Step::none());
    }

    #[test]
    fn a_drain_that_takes_too_long_proceeds_to_term() {
        let (mut r, mut c) = (Recycler::new(limits()), Clock::new());
        drive(&mut r, &mut c, 0, sample(250, 3));
        assert_eq!(r.phase().name(), "collecting", "hard limit: no grace");
        drive(&mut r, &mut c, 0, Input::GcDone { bytes: 250 * MB });
        drive(&mut r, &mut c, 0, Input::Permit(Permit::Granted));
        assert_eq!(drive(&mut r, &mut c, 29, sample(250, 3)).action, None);
        let s = drive(&mut r, &mut c, 1, sample(250, 3));
        assert_eq!(s.action, Some(Action::Terminate));
        assert!(s.log.unwrap().1.contains("3 busy"));
    }

    #[test]
    fn a_full_gc_that_frees_enough_cancels_the_recycle() {
        let (mut r, mut c) = (Recycler::new(limits()), Clock::new());
        drive(&mut r, &mut c, 0, sample(120, 0));
        drive(&mut r, &mut c, 10, sample(120, 0));
        let s = drive(&mut r, &mut c, 0, Input::GcDone { bytes: 90 * MB });
        assert_eq!((s.action, r.phase().name()), (None, "running"));
        assert!(s.log.unwrap().1.contains("not recycling"));
    }

    #[test]
    fn dropping_under_the_limit_resets_everything() {
        let (mut r, mut c) = (Recycler::new(limits()), Clock::new());
        drive(&mut r, &mut c, 0, sample(120, 0));
        let s = drive(&mut r, &mut c, 5, sample(80, 0));
        assert_eq!(r.phase().name(), "running");
        assert!(s.log.unwrap().1.contains("back under"));
        drive(&mut r, &mut c, 0, sample(120, 0));
        assert_eq!(
            drive(&mut r, &mut c, 9, sample(120, 0)).action,
            None,
            "grace restarts"
        );
    }

    #[test]
    fn refused_and_unknown_permits_block_then_retry_without_a_second_gc() {
        let (mut r, mut c) = (Recycler::new(limits()), Clock::new());
        drive(&mut r, &mut c, 0, sample(250, 0));
        drive(&mut r, &mut c, 0, Input::GcDone { bytes: 250 * MB });
        let s = drive(
            &mut r,
            &mut c,
            0,
            Input::Permit(Permit::Denied("only 0 other live processes; need 1".into())),
        );
        assert_eq!(r.phase().name(), "blocked");
        assert!(s.log.unwrap().1.contains("only 0 other live processes"));
        assert_eq!(drive(&mut r, &mut c, 9, sample(250, 0)).action, None);
        assert_eq!(
            drive(&mut r, &mut c, 1, sample(250, 0)).action,
            Some(Action::AskPermit)
        );
        let s = drive(
            &mut r,
            &mut c,
            0,
            Input::Permit(Permit::Unknown("connection refused".into())),
        );
        assert!(s
            .log
            .unwrap()
            .1
            .contains("cannot prove another live process"));
        assert_eq!(r.phase().name(), "blocked");
    }

    #[test]
    fn a_process_that_boots_over_the_limit_waits_min_uptime() {
        let mut r = Recycler::new(limits());
        let start = Instant::now();
        let s = r.step(sample(250, 0), start, Duration::from_secs(5));
        assert_eq!((s.action, r.phase().name()), (None, "blocked"));
        assert!(s.log.unwrap().1.contains("waiting 55s (min_uptime)"));
        let s = r.step(
            sample(250, 0),
            start + Duration::from_secs(30),
            Duration::from_secs(35),
        );
        assert_eq!(s.action, None, "still too young");
        let s = r.step(
            sample(250, 0),
            start + Duration::from_secs(55),
            Duration::from_secs(60),
        );
        assert_eq!(s.action, Some(Action::RunGc));
    }

    #[test]
    fn a_forced_recycle_skips_the_gc_and_survives_low_memory() {
        let (mut r, mut c) = (Recycler::new(limits()), Clock::new());
        let s = drive(
            &mut r,
            &mut c,
            0,
            Input::Force("job abc ignored a cancel for 60s".into()),
        );
        assert_eq!(s.action, Some(Action::AskPermit));
        drive(
            &mut r,
            &mut c,
            0,
            Input::Permit(Permit::Denied("no slot".into())),
        );
        assert_eq!(drive(&mut r, &mut c, 5, sample(10, 0)).action, None);
        assert_eq!(
            r.phase().name(),
            "blocked",
            "low memory does not undo a forced recycle"
        );
        assert_eq!(
            drive(&mut r, &mut c, 5, sample(10, 0)).action,
            Some(Action::AskPermit)
        );
        assert!(r.reason().contains("ignored a cancel"));
    }
}
