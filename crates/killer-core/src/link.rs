//! Every connection Killer holds is made here: one multiplexed async
//! connection shared by the watcher's tasks (or by the console client),
//! made through the [`Connector`] — for Sentinel, to the master the
//! sentinels name at that moment. After any failure (a dropped socket,
//! READONLY from a demoted master, `+switch-master`) the caller resets the
//! link and the next call resolves and connects anew: a failover is a
//! reconnect, never a stuck state.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::Mutex;
use tokio::time::timeout;

use crate::error::{Error, Result};
use crate::redis_config::{Connector, RedisConfig};
use crate::settings::Settings;

pub(crate) struct Link {
    config: RedisConfig,
    connector: Connector,
    conn_config: AsyncConnectionConfig,
    /// Bounds a whole (re)connection: sentinel lookup, TCP, TLS, AUTH.
    connect_timeout: Duration,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    client: Option<redis::Client>,
    conn: Option<MultiplexedConnection>,
}

impl Link {
    pub(crate) fn new(settings: &Settings) -> Result<Self> {
        let connector = settings.redis.connector()?;
        let t = settings.network_timeout;
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(t))
            .set_response_timeout(Some(t));
        // A sentinel lookup talks to a sentinel, then checks the master.
        let connect_timeout = match connector {
            Connector::Direct(_) => t,
            Connector::Sentinel(_) => t * 3,
        };
        Ok(Link {
            config: settings.redis.clone(),
            connector,
            conn_config,
            connect_timeout,
            slot: Mutex::new(Slot::default()),
        })
    }

    pub(crate) fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The shared connection, made (and for Sentinel, resolved) if needed.
    pub(crate) async fn get(&self) -> Result<MultiplexedConnection> {
        let mut slot = self.slot.lock().await;
        if let Some(c) = &slot.conn {
            return Ok(c.clone());
        }
        let made = timeout(self.connect_timeout, async {
            let client = match &slot.client {
                Some(c) => c.clone(),
                None => self.connector.resolve().await?,
            };
            let conn = client
                .get_multiplexed_async_connection_with_config(&self.conn_config)
                .await?;
            Ok::<_, redis::RedisError>((client, conn))
        })
        .await;
        match made {
            Ok(Ok((client, conn))) => {
                slot.client = Some(client);
                slot.conn = Some(conn.clone());
                Ok(conn)
            }
            Ok(Err(e)) => {
                *slot = Slot::default();
                Err(self.error(e))
            }
            Err(_) => {
                *slot = Slot::default();
                Err(self.timed_out())
            }
        }
    }

    /// The client of the Redis to talk to now (resolved through the
    /// sentinels if need be), for connections of their own (pub/sub).
    pub(crate) async fn client(&self) -> Result<redis::Client> {
        let mut slot = self.slot.lock().await;
        if let Some(c) = &slot.client {
            return Ok(c.clone());
        }
        match timeout(self.connect_timeout, self.connector.resolve()).await {
            Ok(Ok(client)) => {
                slot.client = Some(client.clone());
                Ok(client)
            }
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// A client for one live sentinel, or None without sentinels.
    pub(crate) async fn sentinel(&self) -> Option<Result<redis::Client>> {
        let asked = timeout(self.connect_timeout, self.connector.sentinel()).await;
        match asked {
            Ok(None) => None,
            Ok(Some(Ok(c))) => Some(Ok(c)),
            Ok(Some(Err(e))) => Some(Err(self.error(e))),
            Err(_) => Some(Err(self.timed_out())),
        }
    }

    /// Drops the connection (and, for Sentinel, which master it was) after
    /// an error, so the next call resolves and reconnects.
    pub(crate) async fn reset(&self) {
        *self.slot.lock().await = Slot::default();
    }

    /// A redis crate error as Killer reports it: classified, and with no
    /// password in it.
    pub(crate) fn error(&self, e: redis::RedisError) -> Error {
        match Error::from(e) {
            // Which Redis: the first thing to check.
            Error::Connection(m) => Error::Connection(format!(
                "{}: {}{}",
                self.config,
                self.config.redact(&m),
                self.silent_tls(&m)
            )),
            other => self.config.redact_error(other),
        }
    }

    fn timed_out(&self) -> Error {
        Error::Connection(format!(
            "{}: no answer within {:.1}s{}",
            self.config,
            self.connect_timeout.as_secs_f64(),
            self.silent_tls("timed out")
        ))
    }

    /// A TLS client talking to a plain Redis waits for an answer that
    /// never comes: say that this may be why.
    fn silent_tls(&self, m: &str) -> &'static str {
        let timeout = m.contains("timed out") || m.contains("no answer");
        if timeout && self.config.tls.is_some() {
            " (a TLS handshake got no answer: is this a TLS port?)"
        } else {
            ""
        }
    }
}
