//! Running jobs and known cancel requests, in one structure under one lock:
//! a job starting and a cancel arriving can then never interleave so that
//! the cancel is missed (checked on start, or found on arrival).
//!
//! Each running job is one record under one token: its ids, class, start,
//! whether a cancel may stop it, its deadline, the memory reading at its
//! start, and what stopped it. Nothing else in the process holds a job.
//! Pure: no I/O, time is passed in.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::StopReason;
use crate::schema::MAX_CANCELS;
use crate::switch::{Active, Switch};

/// How many ended jobs are remembered, and for how long, so a cancel that
/// arrives just after a job ended is answered `finished` at once instead of
/// staying `requested` until its TTL.
const RECENT_CAP: usize = 4096;
const RECENT_FOR: Duration = Duration::from_secs(600);

/// A job about to run, as its wrapper describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStart {
    /// Every id `Killer.cancel` may name it by (jid first; ActiveJob's
    /// job_id and provider_job_id).
    pub ids: Vec<String>,
    pub class: String,
    /// A cancel may stop it (Killer::Cancellable, CancelMiddleware). A job
    /// only measured by MemoryMiddleware is not.
    pub cancellable: bool,
    /// Killer::Timeout after this long (cancellable jobs only).
    pub timeout: Option<Duration>,
}

/// The answer to "may this job start?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Run the job; pass this token back when it ends.
    Run(u64),
    /// A cancel for this id was recorded before the job started: skip it.
    Cancelled(String),
}

/// How a job ended, as the Ruby wrapper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The body returned or raised on its own (or by Killer::Timeout).
    Finished,
    /// The body was stopped by `Killer::Cancelled`.
    Cancelled,
}

/// What stopped (or is stopping) a running job: the id a cancel named, or
/// its deadline. The first stop wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub id: String,
    pub reason: StopReason,
}

#[derive(Debug)]
struct Job {
    ids: Vec<String>,
    class: String,
    started: Instant,
    cancellable: bool,
    deadline: Option<Instant>,
    memory_start: Option<u64>,
    stop: Option<Stop>,
}

/// What a newly learned cancel request means for this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing here: the job is not running in this process.
    None,
    /// Raise into the running job with this token.
    Interrupt(u64),
    /// The job ended here moments ago; record it as finished.
    AlreadyFinished,
}

/// A running cancellable job as the process report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningJob {
    pub jid: String,
    pub class: String,
    pub started: Instant,
    /// A cancel or its deadline has reached it and it has not ended yet.
    pub cancel_requested: bool,
}

/// A job that ended, for the watcher to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Its first id (the jid).
    pub jid: String,
    pub class: String,
    /// The ids whose status should change; empty when nobody asked.
    pub requested: Vec<String>,
    /// The memory reading at its start, when memory is watched.
    pub memory_start: Option<u64>,
    /// It had a deadline (so a timer to abort).
    pub timed: bool,
    /// When the cancel that named it was recorded (ms since the epoch),
    /// if one did.
    pub requested_at: Option<u64>,
}

/// A cancel request as a process knows it.
#[derive(Debug, Clone, Copy)]
struct Request {
    until: Instant,
    /// When it was recorded (ms since the epoch): the durable record's
    /// score, or when pub/sub brought it.
    at_ms: u64,
}

#[derive(Debug, Default)]
pub struct Registry {
    next_token: u64,
    jobs: HashMap<u64, Job>,
    by_id: HashMap<String, u64>,
    /// The id is shared with `order` (one allocation per request).
    cancels: HashMap<Arc<str>, Request>,
    /// Ids of `cancels` in the order they were first learned (some may be
    /// gone already): who goes first when the copy is full.
    order: VecDeque<Arc<str>>,
    /// Requests dropped to stay at [`MAX_CANCELS`], since start.
    dropped: u64,
    /// Ids of jobs that ended lately, oldest first, with when they ended.
    recent: VecDeque<(String, Instant)>,
    /// How many times each id is in `recent`: found without a scan.
    recent_ids: HashMap<String, u32>,
    /// Classes switched off, by name.
    switches: HashMap<String, Active>,
}

/// A running job a class switch stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    pub token: u64,
    pub jid: String,
    pub class: String,
    pub switch: Switch,
}

impl Registry {
    /// Registers a job; a cancellable one is refused if a cancel for any of
    /// its ids is known.
    pub fn start(&mut self, job: JobStart, memory_start: Option<u64>, now: Instant) -> Started {
        if job.cancellable {
            if let Some(id) = job.ids.iter().find(|id| self.is_requested(id, now)) {
                return Started::Cancelled(id.clone());
            }
            if self.switch_of(&job.class, now).is_some() {
                return Started::Cancelled(job.ids.first().cloned().unwrap_or_default());
            }
        }
        self.next_token += 1;
        let token = self.next_token;
        // Only a job a cancel may reach is looked up by id.
        if job.cancellable {
            for id in &job.ids {
                self.by_id.insert(id.clone(), token);
            }
        }
        let cancellable = job.cancellable;
        self.jobs.insert(
            token,
            Job {
                ids: job.ids,
                class: job.class,
                started: now,
                cancellable,
                deadline: job.timeout.filter(|_| cancellable).map(|t| now + t),
                memory_start,
                stop: None,
            },
        );
        Started::Run(token)
    }

    /// Makes a running job (registered only to be measured) cancellable,
    /// under more ids: an inner wrapper knew what the outer one could not.
    /// Refused if a cancel for any of the ids is known.
    pub fn arm(
        &mut self,
        token: u64,
        ids: Vec<String>,
        timeout: Option<Duration>,
        now: Instant,
    ) -> Option<Started> {
        if let Some(id) = ids.iter().find(|id| self.is_requested(id, now)) {
            return Some(Started::Cancelled(id.clone()));
        }
        let job = self.jobs.get(&token)?;
        if self.switch_of(&job.class, now).is_some() {
            return Some(Started::Cancelled(
                ids.first().or(job.ids.first()).cloned().unwrap_or_default(),
            ));
        }
        let job = self.jobs.get_mut(&token)?;
        job.cancellable = true;
        job.deadline = timeout.map(|t| now + t);
        for id in ids {
            if !job.ids.contains(&id) {
                job.ids.push(id);
            }
        }
        for id in &job.ids {
            self.by_id.insert(id.clone(), token);
        }
        Some(Started::Run(token))
    }

    /// When a job's deadline passes, if it has one.
    pub fn deadline(&self, token: u64) -> Option<Instant> {
        self.jobs.get(&token)?.deadline
    }

    /// Records that `reason` stops job `token`, unless something else did
    /// first. True if this is the stop.
    pub fn stop(&mut self, token: u64, reason: StopReason) -> Option<Stop> {
        let job = self.jobs.get_mut(&token)?;
        if job.stop.is_some() || !job.cancellable {
            return None;
        }
        let stop = Stop {
            id: job.ids.first().cloned().unwrap_or_default(),
            reason,
        };
        job.stop = Some(stop.clone());
        Some(stop)
    }

    /// What is stopping job `token`, if anything.
    pub fn stop_of(&self, token: u64) -> Option<Stop> {
        self.jobs.get(&token)?.stop.clone()
    }

    /// Ends a job. Returns `None` for an unknown token (already ended).
    pub fn finish(&mut self, token: u64, now: Instant) -> Option<Ended> {
        let job = self.jobs.remove(&token)?;
        if !job.cancellable {
            return Some(Ended {
                requested: Vec::new(),
                memory_start: job.memory_start,
                timed: false,
                requested_at: None,
                class: job.class,
                jid: job.ids.into_iter().next().unwrap_or_default(),
            });
        }
        if job.stop.is_none() {
            for id in &job.ids {
                self.recent.push_back((id.clone(), now));
                *self.recent_ids.entry(id.clone()).or_default() += 1;
            }
            while self.recent.len() > RECENT_CAP {
                self.forget_oldest_recent();
            }
        }
        for id in &job.ids {
            // Another job may have started with the same id since; leave it.
            if self.by_id.get(id) == Some(&token) {
                self.by_id.remove(id);
            }
        }
        let requested = match job.stop {
            Some(Stop {
                id,
                reason: StopReason::Cancel,
            }) => vec![id],
            _ => job
                .ids
                .iter()
                .filter(|id| self.cancels.contains_key(id.as_str()))
                .cloned()
                .collect(),
        };
        let requested_at = requested.first().and_then(|id| self.requested_at(id));
        Some(Ended {
            jid: job.ids.into_iter().next().unwrap_or_default(),
            class: job.class,
            requested,
            memory_start: job.memory_start,
            timed: job.deadline.is_some(),
            requested_at,
        })
    }

    #[cfg(test)]
    pub fn request_cancel(&mut self, id: &str, until: Instant, now: Instant) -> Reaction {
        self.request_cancel_at(id, until, 0, now)
    }

    /// Learns about a cancel request, recorded at `at_ms` (ms since the
    /// epoch). Interrupts a running job only the first time a request
    /// reaches it: the poll re-reads recent requests, and those must not
    /// raise again.
    pub fn request_cancel_at(
        &mut self,
        id: &str,
        until: Instant,
        at_ms: u64,
        now: Instant,
    ) -> Reaction {
        if until <= now {
            return Reaction::None;
        }
        let new = match self.cancels.get_mut(id) {
            Some(known) => {
                known.until = until;
                false
            }
            None => {
                let shared: Arc<str> = Arc::from(id);
                self.cancels
                    .insert(shared.clone(), Request { until, at_ms });
                self.order.push_back(shared);
                true
            }
        };
        if new && self.cancels.len() > MAX_CANCELS {
            self.drop_oldest();
        }
        if let Some(&token) = self.by_id.get(id) {
            if let Some(job) = self.jobs.get_mut(&token) {
                if job.stop.is_some() || !job.cancellable {
                    return Reaction::None;
                }
                job.stop = Some(Stop {
                    id: id.to_owned(),
                    reason: StopReason::Cancel,
                });
                return Reaction::Interrupt(token);
            }
        }
        if new && self.recent_ids.contains_key(id) {
            return Reaction::AlreadyFinished;
        }
        Reaction::None
    }

    /// True if `switches` differ from those in place (another class, or
    /// another end).
    pub fn switches_differ(&self, switches: &HashMap<String, Active>) -> bool {
        switches.len() != self.switches.len()
            || switches
                .iter()
                .any(|(class, a)| self.switches.get(class).map(|b| &b.switch) != Some(&a.switch))
    }

    /// Replaces the switched-off classes with `switches` (what Redis holds
    /// now) and stops the running cancellable jobs of each class newly
    /// switched off (a job something else stops already is left to it).
    pub fn set_switches(
        &mut self,
        switches: HashMap<String, Active>,
        now: Instant,
    ) -> Vec<Switched> {
        let mut stopped = Vec::new();
        for (token, job) in self.jobs.iter_mut() {
            if job.stop.is_some() || !job.cancellable {
                continue;
            }
            let Some(active) = switches.get(&job.class).filter(|a| a.until > now) else {
                continue;
            };
            let jid = job.ids.first().cloned().unwrap_or_default();
            job.stop = Some(Stop {
                id: jid.clone(),
                reason: StopReason::Cancel,
            });
            stopped.push(Switched {
                token: *token,
                jid,
                class: job.class.clone(),
                switch: active.switch.clone(),
            });
        }
        self.switches = switches;
        stopped
    }

    /// The switch that keeps `class` off now, if any.
    pub fn switch_of(&self, class: &str, now: Instant) -> Option<&Switch> {
        self.switches
            .get(class)
            .filter(|a| a.until > now)
            .map(|a| &a.switch)
    }

    /// Requests dropped so far to keep the copy at [`MAX_CANCELS`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Drops the oldest requests for jobs not running here until the copy
    /// is back at its cap (a running job's request stays: it is acting).
    fn drop_oldest(&mut self) {
        let mut spared = 0;
        while self.cancels.len() > MAX_CANCELS && spared <= self.order.len() {
            let Some(id) = self.order.pop_front() else {
                break;
            };
            if !self.cancels.contains_key(&*id) {
                continue; // expired meanwhile
            }
            if self.by_id.contains_key(&*id) {
                self.order.push_back(id);
                spared += 1;
                continue;
            }
            self.cancels.remove(&*id);
            self.dropped += 1;
        }
    }

    fn forget_oldest_recent(&mut self) {
        if let Some((id, _)) = self.recent.pop_front() {
            if let Some(n) = self.recent_ids.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    self.recent_ids.remove(&id);
                }
            }
        }
    }

    /// When the cancel for `id` was recorded (ms since the epoch), if one
    /// is known.
    pub fn requested_at(&self, id: &str) -> Option<u64> {
        self.cancels.get(id).map(|r| r.at_ms)
    }

    /// The class of running job `token`.
    pub fn class_of(&self, token: u64) -> Option<String> {
        self.jobs.get(&token).map(|j| j.class.clone())
    }

    pub fn is_running(&self, token: u64) -> bool {
        self.jobs.contains_key(&token)
    }

    /// Every running job this process registered (the recycler's "busy").
    pub fn running(&self) -> usize {
        self.jobs.len()
    }

    /// The running cancellable jobs, oldest first, named by their first id
    /// (the jid).
    pub fn running_jobs(&self) -> Vec<RunningJob> {
        let mut jobs: Vec<RunningJob> = self
            .jobs
            .values()
            .filter(|j| j.cancellable)
            .map(|j| RunningJob {
                jid: j.ids.first().cloned().unwrap_or_default(),
                class: j.class.clone(),
                started: j.started,
                cancel_requested: j.stop.is_some(),
            })
            .collect();
        jobs.sort_by_key(|j| j.started);
        jobs
    }

    /// (class, jid, memory reading at start) of each running job that is
    /// measured: what the process grew by while each runs.
    pub fn measured_jobs(&self) -> Vec<(String, String, u64)> {
        self.jobs
            .values()
            .filter_map(|j| {
                let start = j.memory_start?;
                Some((
                    j.class.clone(),
                    j.ids.first().cloned().unwrap_or_default(),
                    start,
                ))
            })
            .collect()
    }

    pub fn known_cancels(&self) -> usize {
        self.cancels.len()
    }

    /// Forgets requests past their TTL, so memory follows the cancel rate,
    /// not the uptime.
    pub fn expire(&mut self, now: Instant) {
        self.cancels.retain(|_, r| r.until > now);
        self.switches.retain(|_, a| a.until > now);
        let cancels = &self.cancels;
        if self.order.len() > 2 * cancels.len() + 1024 {
            self.order.retain(|id| cancels.contains_key(&**id));
        }
        while self
            .recent
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) > RECENT_FOR)
        {
            self.forget_oldest_recent();
        }
    }

    fn is_requested(&self, id: &str, now: Instant) -> bool {
        self.cancels.get(id).is_some_and(|r| r.until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_storm_of_cancels_keeps_the_newest_and_every_running_jobs() {
        let now = Instant::now();
        let mut r = Registry::default();
        let Started::Run(_) = r.start(job(&["running-early"], "Job"), None, now) else {
            panic!("should run")
        };
        // Its request comes first, so it is the oldest of the storm.
        r.request_cancel("running-early", now + DAY, now);
        for i in 0..MAX_CANCELS + 5_000 {
            r.request_cancel(&format!("unknown-{i}"), now + DAY, now);
        }
        assert_eq!(r.known_cancels(), MAX_CANCELS);
        assert_eq!(r.dropped(), 5_001);
        assert!(
            r.is_requested("running-early", now),
            "a running job's request stays"
        );
        assert!(!r.is_requested("unknown-0", now), "the oldest went first");
        assert!(r.is_requested(&format!("unknown-{}", MAX_CANCELS + 4_999), now));
        // A job whose request was dropped starts: it was asked too long ago.
        assert!(matches!(
            r.start(job(&["unknown-0"], "Job"), None, now),
            Started::Run(_)
        ));
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A cancellable job without a deadline, as most are.
    fn job(v: &[&str], class: &str) -> JobStart {
        JobStart {
            ids: ids(v),
            class: class.into(),
            cancellable: true,
            timeout: None,
        }
    }

    const DAY: Duration = Duration::from_secs(86400);

    fn switched(class: &str, until: Instant) -> HashMap<String, Active> {
        let switch = Switch {
            until_ms: 0,
            at_ms: 7,
            by: "ops".into(),
            reason: String::new(),
        };
        HashMap::from([(class.to_owned(), Active { switch, until })])
    }

    #[test]
    fn a_class_switch_stops_its_running_jobs_once_and_skips_its_new_ones_until_it_ends() {
        let now = Instant::now();
        let mut r = Registry::default();
        let Started::Run(a) = r.start(job(&["a"], "Sync"), None, now) else {
            panic!()
        };
        let Started::Run(b) = r.start(job(&["b"], "Sync"), None, now) else {
            panic!()
        };
        let Started::Run(_) = r.start(job(&["c"], "Other"), None, now) else {
            panic!()
        };
        let measured = JobStart {
            cancellable: false,
            ..job(&["m"], "Sync")
        };
        let Started::Run(_) = r.start(measured, None, now) else {
            panic!()
        };
        r.stop(b, StopReason::Timeout); // already on its way out
        let stopped = r.set_switches(switched("Sync", now + DAY), now);
        assert_eq!(
            stopped
                .iter()
                .map(|s| (s.token, s.jid.as_str()))
                .collect::<Vec<_>>(),
            vec![(a, "a")]
        );
        assert_eq!(r.stop_of(a).map(|s| s.reason), Some(StopReason::Cancel));
        // Reloaded unchanged (the poll's overlap): nobody is stopped twice.
        assert!(r.set_switches(switched("Sync", now + DAY), now).is_empty());
        assert_eq!(
            r.start(job(&["d"], "Sync"), None, now),
            Started::Cancelled("d".into())
        );
        let Some(Ended { requested, .. }) = r.finish(a, now) else {
            panic!()
        };
        assert_eq!(
            requested,
            vec!["a".to_owned()],
            "its status becomes cancelled"
        );
        // Past its end, or lifted: jobs of the class run again.
        let later = now + DAY + Duration::from_secs(1);
        assert!(matches!(
            r.start(job(&["e"], "Sync"), None, later),
            Started::Run(_)
        ));
        r.set_switches(HashMap::new(), now);
        assert!(matches!(
            r.start(job(&["f"], "Sync"), None, now),
            Started::Run(_)
        ));
    }

    #[test]
    fn a_job_only_measured_is_never_stopped_until_a_wrapper_arms_it() {
        let now = Instant::now();
        let mut r = Registry::default();
        r.request_cancel("m", now + DAY, now);
        let measured = JobStart {
            cancellable: false,
            ..job(&["m"], "Plain")
        };
        let Started::Run(t) = r.start(measured, Some(100), now) else {
            panic!("a job that is not cancellable runs whatever was recorded")
        };
        assert_eq!(r.request_cancel("m", now + DAY, now), Reaction::None);
        assert!(
            r.running_jobs().is_empty(),
            "the report lists cancellable jobs"
        );
        assert_eq!(r.running(), 1, "the recycler counts it busy");
        assert_eq!(r.measured_jobs(), vec![("Plain".into(), "m".into(), 100)]);
        // An inner wrapper (an ActiveJob class inside JobWrapper) arms it
        // under its own id: a cancel recorded for that id stops it there.
        r.request_cancel("aj-9", now + DAY, now);
        assert_eq!(
            r.arm(t, ids(&["aj-9"]), None, now),
            Some(Started::Cancelled("aj-9".into()))
        );
        assert_eq!(r.arm(t, ids(&["aj-10"]), None, now), Some(Started::Run(t)));
        assert_eq!(
            r.request_cancel("aj-10", now + DAY, now),
            Reaction::Interrupt(t)
        );
        let ended = r.finish(t, now).unwrap();
        assert_eq!((ended.jid.as_str(), ended.memory_start), ("m", Some(100)));
        assert_eq!(ended.requested, ids(&["aj-10"]));
    }

    #[test]
    fn the_first_stop_wins_a_deadline_and_a_cancel() {
        let now = Instant::now();
        let mut r = Registry::default();
        let timed = JobStart {
            timeout: Some(Duration::from_secs(5)),
            ..job(&["t"], "J")
        };
        let Started::Run(t) = r.start(timed, None, now) else {
            panic!()
        };
        assert_eq!(r.deadline(t), Some(now + Duration::from_secs(5)));
        let stop = r.stop(t, StopReason::Timeout).unwrap();
        assert_eq!((stop.id.as_str(), stop.reason), ("t", StopReason::Timeout));
        assert_eq!(r.request_cancel("t", now + DAY, now), Reaction::None);
        assert_eq!(r.stop_of(t).unwrap().reason, StopReason::Timeout);
        assert!(
            r.running_jobs()[0].cancel_requested,
            "a deadline shows as a stop"
        );
        assert_eq!(r.finish(t, now).unwrap().requested, ids(&["t"]));
    }

    #[test]
    fn running_jobs_are_listed_oldest_first_with_their_cancel_state() {
        let now = Instant::now();
        let later = now + Duration::from_secs(3);
        let mut r = Registry::default();
        let Started::Run(young) = r.start(job(&["b"], "Young"), None, later) else {
            panic!("should run")
        };
        let Started::Run(_) = r.start(job(&["a", "aj-1"], "Old"), None, now) else {
            panic!("should run")
        };
        assert_eq!(
            r.request_cancel("aj-1", later + DAY, later),
            Reaction::Interrupt(2)
        );
        let jobs = r.running_jobs();
        assert_eq!(jobs.len(), 2);
        assert_eq!((jobs[0].jid.as_str(), jobs[0].class.as_str()), ("a", "Old"));
        assert!(jobs[0].cancel_requested);
        assert_eq!((jobs[1].jid.as_str(), jobs[1].started), ("b", later));
        assert!(!jobs[1].cancel_requested);
        r.finish(young, later);
        assert_eq!(r.running_jobs().len(), 1);
    }

    #[test]
    fn a_cancel_reaches_the_running_job_once() {
        let now = Instant::now();
        let mut r = Registry::default();
        let Started::Run(t) = r.start(job(&["a"], "Job"), None, now) else {
            panic!("should run")
        };
        assert_eq!(
            r.request_cancel("a", now + DAY, now),
            Reaction::Interrupt(t)
        );
        assert_eq!(
            r.request_cancel("a", now + DAY, now),
            Reaction::None,
            "re-read by the poll"
        );
        let ended = r.finish(t, now).unwrap();
        assert_eq!(ended.requested, ids(&["a"]));
        assert_eq!(r.finish(t, now), None);
        assert_eq!(r.running(), 0);
    }

    #[test]
    fn a_recorded_cancel_stops_the_job_from_starting_by_any_of_its_ids() {
        let now = Instant::now();
        let mut r = Registry::default();
        assert_eq!(r.request_cancel("aj-1", now + DAY, now), Reaction::None);
        assert_eq!(
            r.start(job(&["jid-1", "aj-1"], "Wrapper"), None, now),
            Started::Cancelled("aj-1".into())
        );
        assert_eq!(r.running(), 0);
    }

    #[test]
    fn a_cancel_for_one_job_never_names_another() {
        let now = Instant::now();
        let mut r = Registry::default();
        let Started::Run(a) = r.start(job(&["a"], "J"), None, now) else {
            panic!()
        };
        let Started::Run(b) = r.start(job(&["b"], "J"), None, now) else {
            panic!()
        };
        assert_ne!(a, b);
        assert_eq!(
            r.request_cancel("b", now + DAY, now),
            Reaction::Interrupt(b)
        );
        assert_eq!(r.finish(a, now).unwrap().requested, Vec::<String>::new());
        // A cancel for an id that already ended interrupts no one.
        assert_eq!(
            r.request_cancel("a", now + DAY, now),
            Reaction::AlreadyFinished
        );
    }

    #[test]
    fn a_job_that_ends_before_the_raise_reports_the_request() {
        let now = Instant::now();
        let mut r = Registry::default();
        let Started::Run(t) = r.start(job(&["a"], "J"), None, now) else {
            panic!()
        };
        r.request_cancel("a", now + DAY, now);
        assert_eq!(r.finish(t, now).unwrap().requested, ids(&["a"]));
    }

    #[test]
    fn expired_requests_neither_block_nor_linger() {
        let now = Instant::now();
        let mut r = Registry::default();
        r.request_cancel("a", now + Duration::from_secs(1), now);
        assert_eq!(r.known_cancels(), 1);
        let later = now + Duration::from_secs(2);
        assert!(matches!(
            r.start(job(&["a"], "J"), None, later),
            Started::Run(_)
        ));
        r.expire(later);
        assert_eq!(r.known_cancels(), 0);
        assert_eq!(
            r.request_cancel("x", now, now),
            Reaction::None,
            "already expired"
        );
    }

    #[test]
    fn a_cancel_just_after_the_end_is_answered_finished_once() {
        let now = Instant::now();
        let mut r = Registry::default();
        let Started::Run(t) = r.start(job(&["late"], "J"), None, now) else {
            panic!()
        };
        r.finish(t, now);
        assert_eq!(
            r.request_cancel("late", now + DAY, now),
            Reaction::AlreadyFinished
        );
        assert_eq!(r.request_cancel("late", now + DAY, now), Reaction::None);
        r.expire(now + Duration::from_secs(601));
        assert_eq!(
            r.request_cancel("fresh-after-expiry", now + 2 * DAY, now + DAY),
            Reaction::None
        );
    }

    #[test]
    fn a_reused_id_is_unregistered_only_by_its_own_job() {
        let now = Instant::now();
        let mut r = Registry::default();
        let Started::Run(old) = r.start(job(&["same"], "J"), None, now) else {
            panic!()
        };
        let Started::Run(new) = r.start(job(&["same"], "J"), None, now) else {
            panic!()
        };
        r.finish(old, now);
        assert_eq!(
            r.request_cancel("same", now + DAY, now),
            Reaction::Interrupt(new)
        );
    }
}
