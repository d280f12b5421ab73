//! The console side: record a cancel, read a status. Blocking, with
//! timeouts, and no thread: a Rails console or web process that calls
//! `Killer.cancel` pays one Redis round trip and nothing else.

use std::sync::Mutex;

use redis::{Connection, Script};

use crate::error::{Error, Result};
use crate::schema::{validate_jid, JobStatus, Keys, CANCEL_SCRIPT};
use crate::settings::Settings;

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
        validate_jid(jid)?;
        let state: String = self.with_conn(|c| {
            self.cancel
                .key(self.keys.cancels())
                .key(self.keys.status(jid))
                .arg(jid)
                .arg(self.settings.ttl_ms())
                .arg(self.keys.channel())
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
