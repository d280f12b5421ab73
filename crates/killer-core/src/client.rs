//! The console side: record a cancel, read a status. Blocking, with
//! timeouts, and no thread: a Rails console or web process that calls
//! `Killer.cancel` pays one Redis round trip and nothing else.

use std::sync::Mutex;

use redis::{Connection, Script};

use crate::error::{Error, Result};
use std::collections::HashMap;

use crate::schema::{
    validate_jid, JobStatus, Keys, CANCEL_SCRIPT, HISTORY_CAP, MAX_BY_BYTES, MAX_REASON_BYTES,
};
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
    client: redis::Client,
    cancel: Script,
    conn: Mutex<Option<Connection>>,
}

impl Client {
    pub fn new(settings: Settings) -> Result<Self> {
        let keys = settings.validate()?;
        let client = redis::Client::open(settings.redis_url.as_str())?;
        Ok(Client {
            settings,
            keys,
            client,
            cancel: Script::new(CANCEL_SCRIPT),
            conn: Mutex::new(None),
        })
    }

    /// Records a cancel for `jid` and notifies every watcher. Returns the
    /// job's status after the call (`Requested`, or the terminal status if
    /// the job had already been stopped).
    pub fn cancel(&self, jid: &str) -> Result<JobStatus> {
        self.cancel_by(jid, "", "")
    }

    /// As `cancel`, recording who asked and why in the job's status and in
    /// the audit trail (`Keys::history`).
    pub fn cancel_by(&self, jid: &str, by: &str, reason: &str) -> Result<JobStatus> {
        validate_jid(jid)?;
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
        let state: String = self.with_conn(|c| {
            self.cancel
                .key(self.keys.cancels())
                .key(self.keys.status(jid))
                .key(self.keys.history())
                .arg(jid)
                .arg(self.settings.ttl_ms())
                .arg(self.keys.channel())
                .arg(by)
                .arg(reason)
                .arg(HISTORY_CAP)
                .invoke(c)
        })?;
        JobStatus::parse(&state)
            .ok_or_else(|| Error::Redis(format!("unexpected status {state:?} for {jid}")))
    }

    pub fn status(&self, jid: &str) -> Result<Option<JobStatus>> {
        validate_jid(jid)?;
        let state: Option<String> = self.with_conn(|c| {
            redis::cmd("HGET")
                .arg(self.keys.status(jid))
                .arg("state")
                .query(c)
        })?;
        Ok(state.as_deref().and_then(JobStatus::parse))
    }

    /// Every field of the job's status hash (state, `<state>_at` ms, by,
    /// reason); empty when no cancel is known.
    pub fn status_details(&self, jid: &str) -> Result<HashMap<String, String>> {
        validate_jid(jid)?;
        self.with_conn(|c| redis::cmd("HGETALL").arg(self.keys.status(jid)).query(c))
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
        let last = limit as isize - 1;
        let (history, recycles, reports): (Vec<String>, Vec<String>, Vec<Option<String>>) = self
            .with_conn(|c| {
                let mut pipe = redis::pipe();
                pipe.cmd("LRANGE").arg(self.keys.history()).arg(0).arg(last);
                pipe.cmd("LRANGE")
                    .arg(self.keys.recycles())
                    .arg(0)
                    .arg(last);
                if processes.is_empty() {
                    let (h, r): (Vec<String>, Vec<String>) = pipe.query(c)?;
                    return Ok((h, r, Vec::new()));
                }
                let mget = pipe.cmd("MGET");
                for (host, pid) in processes {
                    mget.arg(self.keys.process(host, *pid));
                }
                pipe.query(c)
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
            self.with_conn(|c| {
                let mut pipe = redis::pipe();
                for jid in &jids {
                    pipe.cmd("HGETALL").arg(self.keys.status(jid));
                }
                pipe.query(c)
            })?
        };
        Ok(Overview {
            cancels: history.into_iter().zip(statuses).collect(),
            reports,
            recycles,
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Runs `f` on the cached connection, reconnecting once if the cached
    /// one has gone stale (Redis restarted since the last call).
    fn with_conn<T>(&self, f: impl Fn(&mut Connection) -> redis::RedisResult<T>) -> Result<T> {
        let mut slot = self
            .conn
            .lock()
            .map_err(|_| Error::Runtime("client lock poisoned".into()))?;
        for attempt in 0..2 {
            if slot.is_none() {
                *slot = Some(self.connect()?);
            }
            let Some(conn) = slot.as_mut() else {
                continue;
            };
            match f(conn) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let err = Error::from(e);
                    *slot = None;
                    if attempt == 1 || !matches!(err, Error::Connection(_)) {
                        return Err(err);
                    }
                }
            }
        }
        Err(Error::Connection("no connection".into()))
    }

    fn connect(&self) -> Result<Connection> {
        let t = self.settings.network_timeout;
        let c = self.client.get_connection_with_timeout(t)?;
        c.set_read_timeout(Some(t))?;
        c.set_write_timeout(Some(t))?;
        Ok(c)
    }
}
