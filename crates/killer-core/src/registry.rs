//! Running jobs and known cancel requests, in one structure under one lock:
//! a job starting and a cancel arriving can then never interleave so that
//! the cancel is missed (checked on start, or found on arrival).
//! Pure: no I/O, time is passed in.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::schema::MAX_CANCELS;

/// How many ended jobs are remembered, and for how long, so a cancel that
/// arrives just after a job ended is answered `finished` at once instead of
/// staying `requested` until its TTL.
const RECENT_CAP: usize = 4096;
const RECENT_FOR: Duration = Duration::from_secs(600);

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
    /// The body returned or raised on its own.
    Finished,
    /// The body was stopped by `Killer::Cancelled`.
    Cancelled,
}

#[derive(Debug)]
struct Job {
    ids: Vec<String>,
    class: String,
    started: Instant,
    /// The id a cancel arrived for, once one has.
    cancel_for: Option<String>,
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

/// A running job as the process report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningJob {
    pub jid: String,
    pub class: String,
    pub started: Instant,
    /// A cancel has reached it and it has not ended yet.
    pub cancel_requested: bool,
}

/// What the watcher must record in Redis about a job that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub class: String,
    /// The ids whose status should change; empty when nobody asked.
    pub requested: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Registry {
    next_token: u64,
    jobs: HashMap<u64, Job>,
    by_id: HashMap<String, u64>,
    /// id -> when the request stops applying (cancel_ttl after it was made).
    /// The id is shared with `order` (one allocation per request).
    cancels: HashMap<Arc<str>, Instant>,
    /// Ids of `cancels` in the order they were first learned (some may be
    /// gone already): who goes first when the copy is full.
    order: VecDeque<Arc<str>>,
    /// Requests dropped to stay at [`MAX_CANCELS`], since start.
    dropped: u64,
    /// Ids of jobs that ended lately, oldest first, with when they ended.
    recent: VecDeque<(String, Instant)>,
    /// How many times each id is in `recent`: found without a scan.
    recent_ids: HashMap<String, u32>,
}

impl Registry {
    pub fn start(&mut self, ids: Vec<String>, class: String, now: Instant) -> Started {
        if let Some(id) = ids.iter().find(|id| self.is_requested(id, now)) {
            return Started::Cancelled(id.clone());
        }
        self.next_token += 1;
        let token = self.next_token;
        for id in &ids {
            self.by_id.insert(id.clone(), token);
        }
        self.jobs.insert(
            token,
            Job {
                ids,
                class,
                started: now,
                cancel_for: None,
            },
        );
        Started::Run(token)
    }

    /// Ends a job. Returns `None` for an unknown token (already ended).
    pub fn finish(&mut self, token: u64, now: Instant) -> Option<Ended> {
        let job = self.jobs.remove(&token)?;
        if job.cancel_for.is_none() {
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
        let requested = match job.cancel_for {
            Some(id) => vec![id],
            None => job
                .ids
                .into_iter()
                .filter(|id| self.cancels.contains_key(id.as_str()))
                .collect(),
        };
        Some(Ended {
            class: job.class,
            requested,
        })
    }

    /// Learns about a cancel request. Interrupts a running job only the
    /// first time a request reaches it: the poll re-reads recent requests,
    /// and those must not raise again.
    pub fn request_cancel(&mut self, id: &str, until: Instant, now: Instant) -> Reaction {
        if until <= now {
            return Reaction::None;
        }
        let new = match self.cancels.get_mut(id) {
            Some(known) => {
                *known = until;
                false
            }
            None => {
                let shared: Arc<str> = Arc::from(id);
                self.cancels.insert(shared.clone(), until);
                self.order.push_back(shared);
                true
            }
        };
        if new && self.cancels.len() > MAX_CANCELS {
            self.drop_oldest();
        }
        if let Some(&token) = self.by_id.get(id) {
            if let Some(job) = self.jobs.get_mut(&token) {
                if job.cancel_for.is_some() {
                    return Reaction::None;
                }
                job.cancel_for = Some(id.to_owned());
                return Reaction::Interrupt(token);
            }
        }
        if new && self.recent_ids.contains_key(id) {
            return Reaction::AlreadyFinished;
        }
        Reaction::None
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

    pub fn is_running(&self, token: u64) -> bool {
        self.jobs.contains_key(&token)
    }

    pub fn running(&self) -> usize {
        self.jobs.len()
    }

    /// The running jobs, oldest first, named by their first id (the jid).
    pub fn running_jobs(&self) -> Vec<RunningJob> {
        let mut jobs: Vec<RunningJob> = self
            .jobs
            .values()
            .map(|j| RunningJob {
                jid: j.ids.first().cloned().unwrap_or_default(),
                class: j.class.clone(),
                started: j.started,
                cancel_requested: j.cancel_for.is_some(),
            })
            .collect();
        jobs.sort_by_key(|j| j.started);
        jobs
    }

    pub fn known_cancels(&self) -> usize {
        self.cancels.len()
    }

    /// Forgets requests past their TTL, so memory follows the cancel rate,
    /// not the uptime.
    pub fn expire(&mut self, now: Instant) {
        self.cancels.retain(|_, until| *until > now);
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
        self.cancels.get(id).is_some_and(|until| *until > now)
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
        let Started::Run(_) = r.start(ids(&["running-early"]), "Job".into(), now) else {
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
            r.start(ids(&["unknown-0"]), "Job".into(), now),
            Started::Run(_)
        ));
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn running_jobs_are_listed_oldest_first_with_their_cancel_state() {
        let now = Instant::now();
        let later = now + Duration::from_secs(3);
        let mut r = Registry::default();
        let Started::Run(young) = r.start(ids(&["b"]), "Young".into(), later) else {
            panic!("should run")
        };
        let Started::Run(_) = r.start(ids(&["a", "aj-1"]), "Old".into(), now) else {
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
        let Started::Run(t) = r.start(ids(&["a"]), "Job".into(), now) else {
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
            r.start(ids(&["jid-1", "aj-1"]), "Wrapper".into(), now),
            Started::Cancelled("aj-1".into())
        );
        assert_eq!(r.running(), 0);
    }

    #[test]
    fn a_cancel_for_one_job_never_names_another() {
        let now = Instant::now();
        let mut r = Registry::default();
        let Started::Run(a) = r.start(ids(&["a"]), "J".into(), now) else {
            panic!()
        };
        let Started::Run(b) = r.start(ids(&["b"]), "J".into(), now) else {
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
        let Started::Run(t) = r.start(ids(&["a"]), "J".into(), now) else {
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
            r.start(ids(&["a"]), "J".into(), later),
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
        let Started::Run(t) = r.start(ids(&["late"]), "J".into(), now) else {
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
        let Started::Run(old) = r.start(ids(&["same"]), "J".into(), now) else {
            panic!()
        };
        let Started::Run(new) = r.start(ids(&["same"]), "J".into(), now) else {
            panic!()
        };
        r.finish(old, now);
        assert_eq!(
            r.request_cancel("same", now + DAY, now),
            Reaction::Interrupt(new)
        );
    }
}
