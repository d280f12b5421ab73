//! The console side: record a cancel, read a status. No thread: a Rails
//! console or web process that calls `Killer.cancel` pays one Redis round
//! trip and nothing else. Calls run on a current-thread tokio runtime owned
//! by the client and driven by the calling thread, through the same
//! [`Link`] as the watcher (TLS, Sentinel re-resolution, timeouts).

use std::collections::HashMap;
use std::future::Future;
use std::mem::ManuallyDrop;

use redis::aio::MultiplexedConnection;

use crate::error::{Error, Result};
use crate::fork::Origin;
use crate::link::Link;
use crate::schema::{
    commands, validate_class, validate_jid, JobStatus, Keys, MAX_BY_BYTES, MAX_REASON_BYTES,
    MAX_SWITCHES, MAX_SWITCH_SECONDS,
};
use crate::switch::Switch;

use crate::settings::Settings;

/// What the Web tab shows, read in two round trips.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    /// The audit trail, newest first: each cancel record (JSON) with the
    /// current status hash of its jid (empty once expired).
    pub cancels: Vec<(String, HashMap<String, String>)>,
    /// One per process asked for, in order: its report (JSON) if fresh.
    pub reports: Vec<Option<String>>,
    /// Recycle events (JSON), newest first.
    pub recycles: Vec<String>,
}

/// Most records [`Client::overview`] reads from each list.
pub const MAX_OVERVIEW_LIMIT: usize = 1000;

pub struct Client {
    settings: Settings,
    keys: Keys,
    link: Link,
    /// Never dropped in a forked child: its sockets and epoll instance are
    /// the parent's too, and dropping them would unregister the parent's.
    runtime: ManuallyDrop<tokio::runtime::Runtime>,
    origin: Origin,
}

/// What recording a cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The job's status after the call: `Requested`, or the terminal one
    /// if the job had already been stopped or had finished.
    pub status: JobStatus,
    pub delivery: Delivery,
    /// Oldest requests dropped to keep the durable record at
    /// [`MAX_CANCELS`].
    pub dropped: u64,
}

/// How a recorded cancel was announced to the watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// PUBLISHed: running jobs stop within milliseconds.
    Published,
    /// Redis refused the PUBLISH (an ACL without `&killer:*`); the watchers'
    /// poll applies the cancel within `poll_interval`. Holds Redis's words.
    ByPoll(String),
}

impl Client {
    pub fn new(settings: Settings) -> Result<Self> {
        let keys = settings.validate()?;
        let link = Link::new(&settings)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(format!("cannot build the client's runtime: {e}")))?;
        Ok(Client {
            settings,
            keys,
            link,
            runtime: ManuallyDrop::new(runtime),
            origin: Origin::here(),
        })
    }

    /// Records a cancel for `jid` and notifies every watcher. Returns the
    /// job's status after the call (`Requested`, or the terminal status if
    /// the job had already been stopped).
    pub fn cancel(&self, jid: &str) -> Result<JobStatus> {
        self.cancel_and_publish(jid, "", "").map(|r| r.status)
    }

    /// Records a cancel for `jid` with who asked and why, in the durable
    /// record, the job's status and the audit trail (`Keys::history`),
    /// without announcing it (see [`Self::cancel_and_publish`]).
    pub fn cancel_by(&self, jid: &str, by: &str, reason: &str) -> Result<Recorded> {
        validate_jid(jid)?;
        check_requester(by, reason)?;
        let (state, dropped): (String, u64) = self.with_conn(|mut c| async move {
            commands::record_cancel(&self.keys, jid, self.settings.cancel_ttl, by, reason)
                .invoke_async(&mut c)
                .await
        })?;
        let status = JobStatus::parse(&state)
            .ok_or_else(|| Error::Redis(format!("unexpected status {state:?} for {jid}")))?;
        Ok(Recorded {
            status,
            delivery: Delivery::Published,
            dropped,
        })
    }

    /// Records a cancel and announces it; see [`Self::cancel_by`]. The
    /// record is what makes the cancel happen: once it is written, a
    /// refused PUBLISH is reported, never raised.
    pub fn cancel_and_publish(&self, jid: &str, by: &str, reason: &str) -> Result<Recorded> {
        let recorded = self.cancel_by(jid, by, reason)?;
        let published: Result<i64> = self.with_conn(|mut c| async move {
            commands::publish_cancel(&self.keys, jid)
                .query_async(&mut c)
                .await
        });
        Ok(match published {
            Ok(_) => recorded,
            Err(e) => Recorded {
                delivery: Delivery::ByPoll(e.to_string()),
                ..recorded
            },
        })
    }

    /// Switches `class` off for `duration`: its running jobs across the
    /// cluster get `Killer::Cancelled`, and its jobs that start before the
    /// end are skipped. Recorded (switches hash, durable record, audit
    /// trail) and announced as a cancel is. Returns the end (ms, Redis
    /// clock) and how it was announced.
    pub fn cancel_class(
        &self,
        class: &str,
        duration: std::time::Duration,
        by: &str,
        reason: &str,
    ) -> Result<(u64, Delivery)> {
        validate_class(class)?;
        check_requester(by, reason)?;
        if duration.is_zero() || duration.as_secs() > MAX_SWITCH_SECONDS {
            return Err(Error::InvalidArgument(format!(
                "for must be more than 0 and at most {MAX_SWITCH_SECONDS} seconds, got {}",
                duration.as_secs_f64()
            )));
        }
        let (until, _) = self.switch(class, Some(duration), by, reason)?;
        Ok((until, self.publish_switches()))
    }

    /// Switches `class` back on; true if it was off.
    pub fn resume_class(&self, class: &str, by: &str) -> Result<(bool, Delivery)> {
        validate_class(class)?;
        check_requester(by, "")?;
        let (_, was) = self.switch(class, None, by, "")?;
        Ok((was == 1, self.publish_switches()))
    }

    /// The classes switched off now, soonest end first.
    pub fn switches(&self) -> Result<Vec<(String, Switch)>> {
        let ((secs, micros), raw): ((u64, u64), HashMap<String, String>) =
            self.with_conn(|mut c| async move {
                commands::load_switches(&self.keys)
                    .query_async(&mut c)
                    .await
            })?;
        let now = secs * 1000 + micros / 1000;
        let mut live: Vec<(String, Switch)> = raw
            .into_iter()
            .filter_map(|(class, json)| {
                let s: Switch = serde_json::from_str(&json).ok()?;
                (s.until_ms > now).then_some((class, s))
            })
            .collect();
        live.sort_by(|a, b| (a.1.until_ms, &a.0).cmp(&(b.1.until_ms, &b.0)));
        Ok(live)
    }

    fn switch(
        &self,
        class: &str,
        duration: Option<std::time::Duration>,
        by: &str,
        reason: &str,
    ) -> Result<(u64, i64)> {
        self.with_conn(|mut c| async move {
            commands::record_switch(
                &self.keys,
                class,
                duration,
                by,
                reason,
                self.settings.cancel_ttl,
            )
            .invoke_async(&mut c)
            .await
        })
        .map_err(|e| match e {
            Error::Redis(m) if m.contains("KILLER_CAP") => Error::InvalidArgument(format!(
                "cannot switch off {class}: {MAX_SWITCHES} classes are switched off already; resume one first"
            )),
            other => other,
        })
    }

    fn publish_switches(&self) -> Delivery {
        let published: Result<i64> = self.with_conn(|mut c| async move {
            commands::publish_switches(&self.keys)
                .query_async(&mut c)
                .await
        });
        match published {
            Ok(_) => Delivery::Published,
            Err(e) => Delivery::ByPoll(e.to_string()),
        }
    }

    pub fn status(&self, jid: &str) -> Result<Option<JobStatus>> {
        validate_jid(jid)?;
        let state: Option<String> = self.with_conn(|mut c| async move {
            commands::status_state(&self.keys, jid)
                .query_async(&mut c)
                .await
        })?;
        Ok(state.as_deref().and_then(JobStatus::parse))
    }

    /// Every field of the job's status hash (state, `<state>_at` ms, by,
    /// reason); empty when no cancel is known.
    pub fn status_details(&self, jid: &str) -> Result<HashMap<String, String>> {
        validate_jid(jid)?;
        self.with_conn(|mut c| async move {
            commands::status_details(&self.keys, jid)
                .query_async(&mut c)
                .await
        })
    }

    /// The Web tab's data: the last `limit` cancel records with their
    /// jids' statuses, the reports of `processes` (hostname, pid) and the
    /// last `limit` recycle events.
    pub fn overview(&self, processes: &[(String, u32)], limit: usize) -> Result<Overview> {
        if limit == 0 || limit > MAX_OVERVIEW_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "limit must be between 1 and {MAX_OVERVIEW_LIMIT}, got {limit}"
            )));
        }
        let (history, recycles, reports): (Vec<String>, Vec<String>, Vec<Option<String>>) = self
            .with_conn(|mut c| async move {
                let pipe = commands::overview(&self.keys, processes, limit);
                if processes.is_empty() {
                    let (h, r): (Vec<String>, Vec<String>) = pipe.query_async(&mut c).await?;
                    return Ok((h, r, Vec::new()));
                }
                pipe.query_async(&mut c).await
            })?;
        let jids: Vec<String> = history
            .iter()
            .map(|record| {
                serde_json::from_str::<serde_json::Value>(record)
                    .ok()
                    .and_then(|v| v.get("jid")?.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        let statuses: Vec<HashMap<String, String>> = if jids.is_empty() {
            Vec::new()
        } else {
            self.with_conn(|mut c| {
                let jids = &jids;
                async move {
                    commands::statuses(&self.keys, jids)
                        .query_async(&mut c)
                        .await
                }
            })?
        };
        Ok(Overview {
            cancels: history.into_iter().zip(statuses).collect(),
            reports,
            recycles,
        })
    }

    /// Runs `f` on the shared connection, on this client's runtime, from
    /// the calling thread. A connection error or READONLY (a failover)
    /// makes one new connection — resolved again through the sentinels —
    /// and one more try.
    fn with_conn<'a, T, F, Fut>(&'a self, f: F) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>> + 'a,
    {
        if self.origin.forked() {
            return Err(Error::Forked {
                started_in: self.origin.pid(),
                now: std::process::id(),
            });
        }
        self.runtime.block_on(async {
            let mut last = None;
            for _ in 0..2 {
                // A connection attempt that failed was a whole attempt.
                let conn = self.link.get().await?;
                match f(conn).await {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        let err = self.link.error(e);
                        if !err.is_connection() {
                            return Err(err);
                        }
                        self.link.reset().await;
                        last = Some(err);
                    }
                }
            }
            Err(last.unwrap_or_else(|| Error::Connection("no connection".into())))
        })
    }
}

fn check_requester(by: &str, reason: &str) -> Result<()> {
    for (name, value, max) in [
        ("by", by, MAX_BY_BYTES),
        ("reason", reason, MAX_REASON_BYTES),
    ] {
        if value.len() > max {
            return Err(Error::InvalidArgument(format!(
                "{name} must be at most {max} bytes, got {} bytes",
                value.len()
            )));
        }
    }
    Ok(())
}

impl Drop for Client {
    fn drop(&mut self) {
        if !self.origin.forked() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.runtime) };
        }
    }
}
